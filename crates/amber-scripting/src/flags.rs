//! Script flags, declared in a shebang line (`#!lua flags=no-writes,allow-oom`) or, for
//! Functions, in `redis.register_function`.

/// The flags a script or function declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScriptFlags(u8);

impl ScriptFlags {
    /// The script never writes (`no-writes`): it may run on read-only replicas and with `*_RO`.
    pub const NO_WRITES: ScriptFlags = ScriptFlags(1);
    /// The script may run when memory is over `maxmemory` (`allow-oom`).
    pub const ALLOW_OOM: ScriptFlags = ScriptFlags(2);
    /// The script may run on a stale replica (`allow-stale`).
    pub const ALLOW_STALE: ScriptFlags = ScriptFlags(4);
    /// The script refuses to run in cluster mode (`no-cluster`).
    pub const NO_CLUSTER: ScriptFlags = ScriptFlags(8);
    /// The script may touch keys of several slots (`allow-cross-slot-keys`).
    pub const ALLOW_CROSS_SLOT: ScriptFlags = ScriptFlags(16);
    /// An `EVAL` script without a shebang: Redis 6 semantics, flags taken from the commands
    /// it runs rather than declared.
    pub const EVAL_COMPAT: ScriptFlags = ScriptFlags(32);

    /// No flag.
    pub const fn empty() -> ScriptFlags {
        ScriptFlags(0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: ScriptFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Adds the flags of `other`.
    pub fn insert(&mut self, other: ScriptFlags) {
        self.0 |= other.0;
    }

    /// Looks a flag up by the name Redis gives it.
    pub fn from_name(name: &str) -> Option<ScriptFlags> {
        NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(flag, _)| *flag)
    }

    /// The names of the declared flags, in Redis's order (what `FUNCTION LIST` shows).
    pub fn names(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
            .collect()
    }
}

const NAMES: &[(ScriptFlags, &str)] = &[
    (ScriptFlags::NO_WRITES, "no-writes"),
    (ScriptFlags::ALLOW_OOM, "allow-oom"),
    (ScriptFlags::ALLOW_STALE, "allow-stale"),
    (ScriptFlags::NO_CLUSTER, "no-cluster"),
    (ScriptFlags::ALLOW_CROSS_SLOT, "allow-cross-slot-keys"),
];

/// A script's shebang line, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shebang {
    /// The flags it declares; [`ScriptFlags::EVAL_COMPAT`] when there is no shebang.
    pub flags: ScriptFlags,
    /// Bytes the shebang takes, up to (not including) its line feed, so line numbers stay.
    pub len: usize,
}

/// Parses the optional `#!lua [flags=a,b]` first line of an `EVAL` script, with Redis's error
/// texts (without the `ERR ` code).
pub fn parse_shebang(body: &[u8]) -> Result<Shebang, String> {
    if !body.starts_with(b"#!") {
        return Ok(Shebang {
            flags: ScriptFlags::EVAL_COMPAT,
            len: 0,
        });
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".to_string());
    };
    let line = &body[..end];
    let parts = amber_protocol::split_args(line)
        .ok()
        .filter(|parts| !parts.is_empty())
        .ok_or_else(|| "Invalid engine in script shebang".to_string())?;
    if parts[0] != b"#!lua" {
        return Err(format!(
            "Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(&parts[0])
        ));
    }
    let mut flags = ScriptFlags::empty();
    for part in &parts[1..] {
        let part = String::from_utf8_lossy(part);
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("Unknown lua shebang option: {part}"));
        };
        // `flags=` alone declares no flag (as Redis, which splits an empty list into none).
        if list.is_empty() {
            continue;
        }
        for name in list.split(',') {
            match ScriptFlags::from_name(name) {
                Some(flag) => flags.insert(flag),
                None => return Err(format!("Unexpected flag in script shebang: {name}")),
            }
        }
    }
    Ok(Shebang { flags, len: end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_shebang_is_compat_mode() {
        let parsed = parse_shebang(b"return 1").unwrap();
        assert_eq!(parsed.flags, ScriptFlags::EVAL_COMPAT);
        assert_eq!(parsed.len, 0);
    }

    #[test]
    fn shebang_flags_are_parsed() {
        let parsed = parse_shebang(b"#!lua flags=no-writes,allow-stale\nreturn 1").unwrap();
        assert!(parsed.flags.contains(ScriptFlags::NO_WRITES));
        assert!(parsed.flags.contains(ScriptFlags::ALLOW_STALE));
        assert!(!parsed.flags.contains(ScriptFlags::EVAL_COMPAT));
        assert_eq!(parsed.len, 33);
    }

    #[test]
    fn an_empty_flag_list_declares_none() {
        let parsed = parse_shebang(b"#!lua flags=\nreturn 1").unwrap();
        assert_eq!(parsed.flags, ScriptFlags::empty());
        assert!(parse_shebang(b"#!lua flags=no-writes,,allow-oom\nreturn 1").is_err());
    }

    #[test]
    fn shebang_errors_have_redis_texts() {
        assert_eq!(
            parse_shebang(b"#!lua").unwrap_err(),
            "Invalid script shebang"
        );
        assert_eq!(
            parse_shebang(b"#!python\n").unwrap_err(),
            "Unexpected engine in script shebang: #!python"
        );
        assert_eq!(
            parse_shebang(b"#!lua flags=bad\n").unwrap_err(),
            "Unexpected flag in script shebang: bad"
        );
        assert_eq!(
            parse_shebang(b"#!lua name=x\n").unwrap_err(),
            "Unknown lua shebang option: name=x"
        );
    }
}
