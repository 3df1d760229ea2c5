//! The process title (`proc-title-template`): what `ps` and `/proc/<pid>/cmdline` show for the
//! server, expanded from Redis's template variables.
//!
//! As Redis, the title is written over the process's own argument strings (and environment
//! strings, copied elsewhere first), which is what the kernel shows as the command line.
//! (Pointing the kernel at a new buffer with `prctl(PR_SET_MM)` would need
//! `CAP_SYS_RESOURCE`, which containers usually drop.)

use std::sync::Mutex;

/// What `CONFIG SET proc-title-template` answers for a template that does not expand.
pub(crate) const INVALID_TEMPLATE: &str =
    "template format is invalid or contains unknown variables";

/// The values a template's variables expand to.
#[derive(Debug, Clone, Default)]
pub(crate) struct TitleVars {
    /// `{title}`: the name the server was started as (`argv[0]`).
    pub title: String,
    /// `{listen-addr}`: the first bind address and the port, or the Unix socket.
    pub listen_addr: String,
    /// `{port}`.
    pub port: u16,
    /// `{unixsocket}`.
    pub unixsocket: String,
    /// `{config-file}`: its path, or `-`.
    pub config_file: String,
}

impl TitleVars {
    /// The value of variable `name`, or `None` for a name Redis does not know.
    fn value(&self, name: &str) -> Option<String> {
        Some(match name {
            "title" => self.title.clone(),
            "listen-addr" => self.listen_addr.clone(),
            // Amber runs neither cluster nor Sentinel mode.
            "server-mode" => String::new(),
            "config-file" => self.config_file.clone(),
            "port" => self.port.to_string(),
            "tls-port" => "0".into(),
            "unixsocket" => self.unixsocket.clone(),
            _ => return None,
        })
    }
}

/// Expands `template` as Redis's `sdstemplate` does (`{name}` is a variable, `{{` a literal
/// brace), then trims spaces at both ends; `None` for an unknown variable or a brace left open.
pub(crate) fn expand(template: &str, vars: &TitleVars) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        if let Some(quoted) = after.strip_prefix('{') {
            out.push('{');
            rest = quoted;
            continue;
        }
        let close = after.find('}')?;
        out.push_str(&vars.value(&after[..close])?);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Some(out.trim_matches(' ').to_string())
}

/// Whether `template` is one Redis accepts: it expands, to something not empty, with an empty
/// `{title}` (as Redis checks it; the other variables are never empty).
pub(crate) fn is_valid(template: &str) -> bool {
    let vars = TitleVars {
        listen_addr: "*:0".into(),
        config_file: "-".into(),
        ..TitleVars::default()
    };
    expand(template, &vars).is_some_and(|title| !title.is_empty())
}

/// The memory the kernel shows as the command line: the original argument strings, followed
/// by the environment strings once those were copied elsewhere. Found at the first title.
static AREA: Mutex<Option<Area>> = Mutex::new(None);

/// Where the title may be written: `len` bytes from `start`.
struct Area {
    start: usize,
    len: usize,
}

/// Shows `title` as the process's command line, as Redis does: written over the argument
/// strings, and over the environment strings after they are copied to the heap when the
/// title needs the room. A title longer than both is cut.
pub(crate) fn set(title: &str) -> std::io::Result<()> {
    let mut area = AREA
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if area.is_none() {
        *area = Some(claim_area()?);
    }
    let Some(area) = area.as_ref() else {
        return Ok(());
    };
    let shown = &title.as_bytes()[..title.len().min(area.len - 1)];
    // SAFETY: the area is this process's argument and (copied away) environment strings,
    // mapped for the process's life; nothing reads them but the kernel (/proc/<pid>/cmdline)
    // and std::env::args, which `refresh` no longer calls once the area is claimed.
    let memory = unsafe { std::slice::from_raw_parts_mut(area.start as *mut u8, area.len) };
    memory.fill(0);
    memory[..shown.len()].copy_from_slice(shown);
    Ok(())
}

/// Finds the argument and environment strings (`/proc/self/stat` fields 48 to 51), copies the
/// environment strings to the heap and points `environ` at the copies, so the whole span may
/// hold the title.
fn claim_area() -> std::io::Result<Area> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let invalid = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "unexpected /proc/self/stat",
        )
    };
    // Fields after the command name, which may hold spaces, start at field 3.
    let fields: Vec<usize> = stat
        .rsplit_once(") ")
        .ok_or_else(invalid)?
        .1
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let field = |number: usize| fields.get(number - 3).copied().ok_or_else(invalid);
    let (arg_start, arg_end, env_start, env_end) = (field(48)?, field(49)?, field(50)?, field(51)?);
    if arg_start == 0 || arg_end <= arg_start {
        return Err(invalid());
    }
    let mut end = arg_end;
    if env_start == arg_end && env_end > env_start {
        // SAFETY: `environ` is the process's environment array, NULL-terminated; each entry
        // within the environment area is replaced by a heap copy that is never freed, before
        // the area is written. The server calls this from the event loop at start-up, before
        // it reads the environment again; no other thread reads it.
        unsafe {
            let mut entry = libc::environ;
            while !entry.is_null() && !(*entry).is_null() {
                let address = *entry as usize;
                if (env_start..env_end).contains(&address) {
                    let copy = libc::strdup(*entry);
                    if copy.is_null() {
                        return Err(std::io::Error::last_os_error());
                    }
                    *entry = copy;
                }
                entry = entry.add(1);
            }
        }
        end = env_end;
    }
    Ok(Area {
        start: arg_start,
        len: end - arg_start,
    })
}

/// The name the server was started as (`argv[0]`), read before the first title replaces it.
fn started_as() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| std::env::args().next().unwrap_or_default())
}

/// Shows the title `proc-title-template` makes from the server's configuration (at start-up,
/// and when `CONFIG SET` changes the template, the port or the bind addresses). A failure is
/// logged once: the title is cosmetic, and Redis never fails to set it.
pub(crate) fn refresh(config: &crate::config::Config) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let port = u16::try_from(config.get_i64("port")).unwrap_or(0);
    let unixsocket = config.get("unixsocket").to_string();
    let listen_addr = if port != 0 {
        let bind = config.get("bind").split_whitespace().next().unwrap_or("*");
        format!("{}:{port}", bind.trim_start_matches('-'))
    } else {
        format!("unixsocket:{unixsocket}")
    };
    let vars = TitleVars {
        title: started_as().to_string(),
        listen_addr,
        port,
        unixsocket,
        config_file: config
            .file
            .as_ref()
            .map_or_else(|| "-".to_string(), |file| file.display().to_string()),
    };
    let Some(title) = expand(config.get("proc-title-template"), &vars) else {
        return;
    };
    if let Err(error) = set(&title)
        && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        crate::warning!(
            "Unable to set the process title ({error}); the command line stays as started"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TitleVars {
        TitleVars {
            title: "/usr/bin/amber-server".into(),
            listen_addr: "127.0.0.1:6379".into(),
            port: 6379,
            unixsocket: "/tmp/amber.sock".into(),
            config_file: "/etc/amber.conf".into(),
        }
    }

    #[test]
    fn templates_expand_as_redis_expands_them() {
        let cases = [
            (
                "{title} {listen-addr} {server-mode}",
                Some("/usr/bin/amber-server 127.0.0.1:6379"),
            ),
            (
                "TEST {port} {tls-port} {unixsocket} {config-file}",
                Some("TEST 6379 0 /tmp/amber.sock /etc/amber.conf"),
            ),
            ("{{literal}} }", Some("{literal}} }")),
            ("  padded  ", Some("padded")),
            ("{invalid-var}", None),
            ("{title", None),
            ("end {", None),
        ];
        for (template, expected) in cases {
            assert_eq!(expand(template, &vars()).as_deref(), expected, "{template}");
        }
    }

    #[test]
    fn only_templates_that_expand_to_something_are_valid() {
        assert!(is_valid("{title} {listen-addr} {server-mode}"));
        assert!(is_valid("x"));
        assert!(!is_valid("{server-mode}"), "expands to nothing");
        assert!(!is_valid("{title}"), "checked with an empty title");
        assert!(!is_valid("{invalid-var}"));
        assert!(!is_valid(""));
    }
}
