//! `redis.conf` files, `--directive value` flags, and `CONFIG GET/SET/REWRITE`, as Redis 7.0 has them.

mod redis_directives;
mod rewrite;
mod spec;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use amber_keyspace::glob_match;
use amber_protocol::split_args;

use redis_directives::{ALIASES, DEFAULTS, FILE_ONLY, HIDDEN};
pub use spec::{Kind, parse_memory};
use spec::{Spec, spec_of};

/// The server's configuration: the current value of every directive, as `CONFIG GET` shows it.
#[derive(Debug, Clone)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
    /// The config file the server was started with, for `CONFIG REWRITE`.
    pub file: Option<PathBuf>,
    /// Directives that were set at start-up but have no effect in Amber yet.
    pub without_effect: Vec<String>,
    /// Whether a `save` line has been seen while loading (the first one replaces the default).
    save_seen: bool,
    /// `user <name> <rules...>` lines, in order (ACL users defined in the config file).
    pub users: Vec<Vec<String>>,
    /// `rename-command <old> <new>` lines, in order.
    pub renames: Vec<(String, String)>,
}

/// A config file or flag that cannot be applied; shown as Redis shows it, then start-up stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Line number in the combined config text (file, then flags).
    pub line_number: usize,
    /// The offending line.
    pub line: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\n*** FATAL CONFIG FILE ERROR (Amber {}) ***",
            env!("CARGO_PKG_VERSION")
        )?;
        writeln!(
            f,
            "Reading the configuration file, at line {}",
            self.line_number
        )?;
        writeln!(f, ">>> '{}'", self.line)?;
        write!(f, "{}", self.message)
    }
}

/// Why one `CONFIG SET` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    /// No such directive.
    Unknown(String),
    /// The value is not valid for the directive.
    Invalid {
        /// The directive.
        name: String,
        /// Why.
        reason: String,
    },
}

impl SetError {
    /// The error reply Redis gives for it.
    pub fn reply(&self) -> String {
        match self {
            SetError::Unknown(name) => {
                format!("ERR Unknown option or number of arguments for CONFIG SET - '{name}'")
            }
            SetError::Invalid { name, reason } => {
                format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")
            }
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            values: DEFAULTS
                .iter()
                .map(|(name, value)| (*name, value.to_string()))
                .collect(),
            file: None,
            without_effect: Vec::new(),
            save_seen: false,
            users: Vec::new(),
            renames: Vec::new(),
        }
    }
}

/// The canonical name of a directive, following aliases; `None` if unknown.
fn canonical(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if let Some((_, target)) = ALIASES.iter().find(|(alias, _)| *alias == lower) {
        return Some(target);
    }
    DEFAULTS
        .iter()
        .find(|(known, _)| *known == lower)
        .map(|(known, _)| *known)
}

impl Config {
    /// Builds the configuration from `redis-server`-style arguments: an optional config file
    /// (or `-` for standard input) followed by `--directive value ...` flags.
    pub fn from_args(args: &[String]) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut rest = args;
        let mut text = String::new();
        if let Some(first) = rest.first().filter(|a| !a.starts_with("--")) {
            let path = PathBuf::from(first);
            text = read_config_source(&path).map_err(|message| ConfigError {
                line_number: 0,
                line: first.clone(),
                message,
            })?;
            if first != "-" {
                config.file = Some(std::fs::canonicalize(&path).unwrap_or(path));
            }
            rest = &rest[1..];
        }
        text.push_str(&flags_to_config(rest));
        config.apply_text(&text, true)?;
        Ok(config)
    }

    /// Applies config-file text; `from_start` marks start-up (where `include` is allowed).
    fn apply_text(&mut self, text: &str, from_start: bool) -> Result<(), ConfigError> {
        for (index, raw_line) in text.split('\n').enumerate() {
            let line = raw_line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |message: String| ConfigError {
                line_number: index + 1,
                line: line.to_string(),
                message,
            };
            let args = split_args(line.as_bytes())
                .map_err(|_| error("Unbalanced quotes in configuration line".into()))?;
            let args: Vec<String> = args
                .into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect();
            let Some((name, values)) = args.split_first() else {
                continue;
            };
            self.apply_directive(name, values, from_start)
                .map_err(error)?;
        }
        Ok(())
    }

    fn apply_directive(
        &mut self,
        name: &str,
        values: &[String],
        from_start: bool,
    ) -> Result<(), String> {
        let lower = name.to_ascii_lowercase();
        if FILE_ONLY.contains(&lower.as_str()) {
            if values.is_empty() {
                return Err("Bad directive or wrong number of arguments".into());
            }
            if lower == "user" {
                let name = values[0].split_whitespace().next().unwrap_or_default();
                let defined = |user: &Vec<String>| {
                    user.first()
                        .and_then(|first| first.split_whitespace().next())
                        == Some(name)
                };
                if self.users.iter().any(defined) {
                    return Err(
                        "Duplicate user found. A user can only be defined once in config files"
                            .into(),
                    );
                }
                self.users.push(values.to_vec());
                return Ok(());
            }
            if lower == "rename-command" {
                let [old, new] = values else {
                    return Err("Bad directive or wrong number of arguments".into());
                };
                self.renames.push((old.clone(), new.clone()));
                // Checked line by line, so an error names the line that caused it.
                crate::commands::resolve_renames(&self.renames)?;
                return Ok(());
            }
            if lower == "include" && from_start {
                let text = read_config_source(Path::new(&values[0]))?;
                return self
                    .apply_text(&text, from_start)
                    .map_err(|e| e.to_string());
            }
            self.without_effect.push(lower);
            return Ok(());
        }
        let Some(canonical) = canonical(&lower) else {
            return Err("Bad directive or wrong number of arguments".into());
        };
        let spec = spec_of(canonical);
        // Like Redis 7.0, a multi-argument directive given as one quoted value
        // (`--save "3600 1"`) is split on spaces.
        let split: Vec<String>;
        let values = if spec.kind.multi_arg() && values.len() == 1 && values[0].contains(' ') {
            split = values[0].split_whitespace().map(str::to_string).collect();
            &split[..]
        } else {
            values
        };
        if canonical == "replicaof" {
            check_replicaof(values)?;
        }
        let value = if canonical == "save" {
            self.save_from_file(values)?
        } else {
            join_values(&spec, values)?
        };
        let normalized = spec.kind.normalize(&value)?;
        if !spec.implemented && normalized != self.values[canonical] {
            self.without_effect.push(canonical.to_string());
        }
        self.values.insert(canonical, normalized);
        Ok(())
    }

    /// `save` lines accumulate; the first one in the config replaces the default save points.
    fn save_from_file(&mut self, values: &[String]) -> Result<String, String> {
        if !self.save_seen {
            self.save_seen = true;
            self.values.insert("save", String::new());
        }
        // `save` alone or `save ""` means "no save points", as in Redis.
        if values.is_empty() || (values.len() == 1 && values[0].is_empty()) {
            return Ok(String::new());
        }
        if !values.len().is_multiple_of(2) {
            return Err("Invalid save parameters".into());
        }
        let current = &self.values["save"];
        let added = values.join(" ");
        Ok(if current.is_empty() {
            added
        } else {
            format!("{current} {added}")
        })
    }

    /// The current value of a directive (by canonical name or alias).
    /// The canonical name of a directive (aliases followed, any case), if it is one.
    pub fn canonical_name(name: &str) -> Option<&'static str> {
        canonical(name)
    }

    pub fn get(&self, name: &str) -> &str {
        canonical(name)
            .and_then(|c| self.values.get(c))
            .map_or("", String::as_str)
    }

    /// A numeric directive's value (sizes already in bytes).
    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or(0)
    }

    /// A `yes`/`no` directive's value.
    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name) == "yes"
    }

    /// `CONFIG GET`: every `(name, value)` whose name (or alias) matches one of the patterns.
    pub fn matching(&self, patterns: &[&[u8]]) -> Vec<(String, String)> {
        let mut found = BTreeMap::new();
        let names = DEFAULTS
            .iter()
            .map(|(n, _)| (*n, *n))
            .chain(ALIASES.iter().copied());
        for (name, target) in names {
            let hidden = HIDDEN.contains(&name);
            if patterns.iter().any(|p| {
                if hidden {
                    p.eq_ignore_ascii_case(name.as_bytes())
                } else {
                    glob_match(p, name.as_bytes(), true)
                }
            }) {
                let mut value = self.values[target].clone();
                if target == "notify-keyspace-events" {
                    // As Redis shows it (which drops `n` next to `A`; the setting keeps it).
                    value = crate::notify::parse_flags(&value)
                        .map_or(value, crate::notify::flags_to_string);
                }
                found.insert(name.to_string(), value);
            }
        }
        found.into_iter().collect()
    }

    /// `CONFIG SET name value [name value ...]`: validates every pair, then applies them all.
    /// Returns the canonical names that changed.
    pub fn set_many(&mut self, pairs: &[(String, String)]) -> Result<Vec<&'static str>, SetError> {
        let mut updates: Vec<(&'static str, String)> = Vec::new();
        for (name, value) in pairs {
            let canonical = canonical(name).ok_or_else(|| SetError::Unknown(name.clone()))?;
            let invalid = |reason: String| SetError::Invalid {
                name: name.clone(),
                reason,
            };
            if updates.iter().any(|(n, _)| *n == canonical) {
                return Err(invalid("duplicate parameter".into()));
            }
            let spec = spec_of(canonical);
            let normalized = spec.kind.normalize(value).map_err(invalid)?;
            if !spec.mutable {
                return Err(invalid("can't set immutable config".into()));
            }
            updates.push((canonical, normalized));
        }
        let changed = updates.iter().map(|(name, _)| *name).collect();
        for (name, value) in updates {
            self.values.insert(name, value);
        }
        Ok(changed)
    }

    /// Notes that `name` was set although Amber does not act on it: `true` the first time
    /// (the caller logs it once per process), `false` after, and for directives that work.
    pub fn first_set_without_effect(&mut self, name: &str) -> bool {
        if spec_of(name).implemented || self.without_effect.iter().any(|n| n == name) {
            return false;
        }
        self.without_effect.push(name.to_string());
        true
    }

    /// `CONFIG REWRITE`: rewrites the config file with the current values, atomically.
    pub fn rewrite(&self) -> Result<(), String> {
        let path = self
            .file
            .as_ref()
            .ok_or("The server is running without a config file")?;
        let defaults = Config::default();
        rewrite::rewrite_file(path, &self.values, &defaults.values)
    }

    /// `DEBUG CONFIG-REWRITE-FORCE-ALL`: rewrites the config file with every directive,
    /// defaults included (but an unset `replicaof`, which has no value to write).
    pub fn rewrite_all(&self) -> Result<(), String> {
        let path = self
            .file
            .as_ref()
            .ok_or("The server is running without a config file")?;
        let mut current = self.values.clone();
        if current.get("replicaof").is_some_and(String::is_empty) {
            current.remove("replicaof");
        }
        rewrite::rewrite_file(path, &current, &BTreeMap::new())
    }
}

fn join_values(spec: &Spec, values: &[String]) -> Result<String, String> {
    if matches!(spec.kind, spec::Kind::FlagSet(_)) {
        // No flag at all is refused by the flag check, with the list of flags.
        return Ok(values.join(" "));
    }
    match (spec.kind.multi_arg(), values.len()) {
        (_, 0) => Err("wrong number of arguments".into()),
        (false, 1) => Ok(values[0].clone()),
        (false, _) => Err("wrong number of arguments".into()),
        (true, _) => Ok(values.join(" ")),
    }
}

/// `replicaof host port` (or `no one`), checked as Redis reads it from a file.
fn check_replicaof(values: &[String]) -> Result<(), String> {
    let [host, port] = values else {
        return Err("wrong number of arguments".into());
    };
    if host.eq_ignore_ascii_case("no") && port.eq_ignore_ascii_case("one") {
        return Ok(());
    }
    match port.parse::<i64>() {
        Ok(port) if (0..=65535).contains(&port) => Ok(()),
        _ => Err("Invalid master port".into()),
    }
}

fn read_config_source(path: &Path) -> Result<String, String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("Error reading config from standard input: {e}"))?;
        return Ok(text);
    }
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|e| {
            format!(
                "Fatal error, can't open config file '{}': {e}",
                path.display()
            )
        })
}

/// Turns `--name v1 v2 --other v` into config lines the way Redis does (values quoted, one
/// directive per line, after an empty first line).
fn flags_to_config(args: &[String]) -> String {
    let mut text = String::new();
    // Whether the last directive has a value: only then does `--x` start a new directive;
    // a bare name takes the next argument as its value even if it starts with `--`.
    let mut has_value = true;
    for (j, arg) in args.iter().enumerate() {
        let next_is_option = args.get(j + 1).is_some_and(|next| next.starts_with("--"));
        let last = j + 1 == args.len();
        match arg.strip_prefix("--") {
            Some(name) if has_value => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(name);
                text.push(' ');
                // `"--port 6380"` in one argument carries its value.
                let words = split_args(arg.as_bytes()).map_or(1, |words| words.len());
                has_value = words != 1;
                if words == 1 && arg.eq_ignore_ascii_case("--save") && (next_is_option || last) {
                    // `--save` with nothing after it means `save ""`.
                    text.push_str("\"\"");
                    has_value = true;
                } else if words == 1 && arg.eq_ignore_ascii_case("--sentinel") && next_is_option {
                    has_value = true;
                }
            }
            _ => {
                text.push_str(&quote(arg));
                text.push(' ');
                has_value = true;
            }
        }
    }
    // After the config file's last line, as Redis appends the flags.
    format!("\n{text}")
}

/// Quotes a value like Redis's `sdscatrepr`, so the config parser reads it back unchanged.
fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for byte in value.bytes() {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_work_like_redis_server() {
        let config = Config::from_args(&args(&[
            "--port",
            "7000",
            "--save",
            "",
            "--maxmemory",
            "64mb",
        ]))
        .unwrap();
        assert_eq!(config.get("port"), "7000");
        assert_eq!(config.get("save"), "");
        assert_eq!(config.get("maxmemory"), "67108864");
    }

    #[test]
    fn a_bare_name_takes_the_next_argument_even_with_dashes() {
        // The cases of Redis's "redis-server command line arguments" tests.
        let config = Config::from_args(&args(&[
            "--proc-title-template",
            "--my--title--template",
            "--loglevel",
            "verbose",
        ]))
        .unwrap();
        assert_eq!(config.get("proc-title-template"), "--my--title--template");
        assert_eq!(config.get("loglevel"), "verbose");
        let config = Config::from_args(&args(&["--save", "--loglevel", "verbose"])).unwrap();
        assert_eq!(config.get("save"), "");
        let config = Config::from_args(&args(&["--loglevel", "verbose", "--save"])).unwrap();
        assert_eq!(config.get("save"), "");
        let config = Config::from_args(&args(&[
            "--maxmemory 700mb",
            "--maxmemory-policy volatile-lru",
        ]))
        .unwrap();
        assert_eq!(config.get("maxmemory"), "734003200");
        let error = Config::from_args(&args(&["--port", "--loglevel", "verbose"])).unwrap_err();
        assert_eq!(error.line, r#"port "--loglevel" "verbose""#);
        let error = Config::from_args(&args(&["--port", "6379", "6380"])).unwrap_err();
        assert_eq!(error.line, r#"port "6379" "6380""#);
    }

    #[test]
    fn bad_flags_name_the_line() {
        let error = Config::from_args(&args(&["--port", "7000", "--foo", "bar"])).unwrap_err();
        assert_eq!(error.line_number, 3);
        assert_eq!(error.line, "foo \"bar\"");
        assert_eq!(error.message, "Bad directive or wrong number of arguments");
        let error = Config::from_args(&args(&["--port", "abc"])).unwrap_err();
        assert_eq!(error.message, "argument couldn't be parsed into an integer");
    }

    #[test]
    fn save_lines_accumulate_and_aliases_resolve() {
        let mut config = Config::default();
        config
            .apply_text(
                "save 900 1\nsave 300 10\nhash-max-ziplist-entries 64\n",
                true,
            )
            .unwrap();
        assert_eq!(config.get("save"), "900 1 300 10");
        assert_eq!(config.get("hash-max-listpack-entries"), "64");
        assert_eq!(config.get("hash-max-ziplist-entries"), "64");
    }

    #[test]
    fn config_set_is_all_or_nothing() {
        let mut config = Config::default();
        let pairs = vec![
            ("timeout".to_string(), "5".to_string()),
            ("port".to_string(), "x".to_string()),
        ];
        let error = config.set_many(&pairs).unwrap_err();
        assert_eq!(
            error.reply(),
            "ERR CONFIG SET failed (possibly related to argument 'port') - argument couldn't be parsed into an integer"
        );
        assert_eq!(config.get("timeout"), "0");
        let error = config.set_many(&[("nope".into(), "1".into())]).unwrap_err();
        assert_eq!(
            error.reply(),
            "ERR Unknown option or number of arguments for CONFIG SET - 'nope'"
        );
    }

    #[test]
    fn config_get_matches_globs_and_aliases() {
        let config = Config::default();
        let found = config.matching(&[b"*max-*-entries"]);
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"hash-max-listpack-entries"));
        assert!(names.contains(&"hash-max-ziplist-entries"));
        assert!(names.contains(&"set-max-intset-entries"));
    }
}
