//! How each directive's value is checked and normalised, and which directives Amber implements.

/// The type of a directive's value.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `yes` or `no`.
    Bool,
    /// An integer within bounds.
    Int(i64, i64),
    /// A size with an optional unit (`64mb`), stored in bytes.
    Memory(i64, i64),
    /// One of a fixed set of words.
    Enum(&'static [&'static str]),
    /// Free text (one argument).
    Text,
    /// `save` points: pairs of seconds and changes, or empty.
    Save,
    /// Several words (`bind`, and directives Amber does not implement), kept as given.
    Words,
    /// An octal file mode (`unixsocketperm`).
    Octal,
    /// Percentiles from 0 to 100 (`latency-tracking-info-percentiles`).
    Percentiles,
    /// Keyspace event classes (`notify-keyspace-events`), stored in Redis's canonical order.
    EventClasses,
    /// A size in bytes, or a percentage of `maxmemory` (`maxmemory-clients`).
    MemoryOrPercent,
    /// A `proc-title-template`: text whose variables must expand.
    ProcTitle,
    /// Any combination of flags from a list whose first word means "none"
    /// (`shutdown-on-sigint`), shown in the list's order.
    FlagSet(&'static [&'static str]),
}

/// `shutdown-on-sigint` and `shutdown-on-sigterm` flags, in Redis's order.
const SHUTDOWN_FLAGS: &[&str] = &["default", "save", "nosave", "now", "force"];

/// What Amber knows about one directive.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spec {
    /// How its value is checked.
    pub kind: Kind,
    /// Whether `CONFIG SET` may change it.
    pub mutable: bool,
    /// Whether Amber acts on it (others are accepted with a warning).
    pub implemented: bool,
}

const LOG_LEVELS: &[&str] = &["debug", "verbose", "notice", "warning"];
const DEBUG_COMMAND: &[&str] = &["no", "yes", "local"];
const FSYNC: &[&str] = &["always", "everysec", "no"];
const SANITIZE: &[&str] = &["no", "yes", "clients"];
const MB: i64 = 1024 * 1024;

/// The spec of a directive, by canonical name.
pub(super) fn spec_of(name: &str) -> Spec {
    let (kind, mutable) = match name {
        "port" => (Kind::Int(0, 65535), true),
        "replicaof" => (Kind::Words, false),
        "bind" => (Kind::Words, true),
        "dir"
        | "requirepass"
        | "dbfilename"
        | "backup-dir"
        | "backup-remote"
        | "backup-s3-endpoint"
        | "backup-s3-region"
        | "backup-encryption-key-file" => (Kind::Text, true),
        "backup-s3-path-style" => (Kind::Bool, true),
        "backup-interval"
        | "backup-archive-interval"
        | "backup-keep-daily"
        | "backup-keep-hourly"
        | "backup-ship-interval"
        | "backup-remote-keep-daily"
        | "backup-remote-keep-hourly" => (Kind::Int(0, i64::from(i32::MAX)), true),
        "rdb-version" => (Kind::Int(9, 11), true),
        "bgsave-method" => (Kind::Enum(&["fork", "forkless"]), true),
        "logfile" | "unixsocket" | "pidfile" | "appendfilename" | "appenddirname" => {
            (Kind::Text, false)
        }
        "daemonize" | "always-show-logo" => (Kind::Bool, false),
        "protected-mode" | "rdbcompression" | "rdbchecksum" | "stop-writes-on-bgsave-error" => {
            (Kind::Bool, true)
        }
        "loglevel" => (Kind::Enum(LOG_LEVELS), true),
        "databases" => (Kind::Int(1, i64::from(i32::MAX)), false),
        "maxclients" => (Kind::Int(1, i64::from(u32::MAX)), true),
        "timeout" => (Kind::Int(0, i64::from(i32::MAX)), true),
        "tcp-keepalive" => (Kind::Int(0, i64::from(i32::MAX)), true),
        "tcp-backlog" => (Kind::Int(0, i64::from(i32::MAX)), false),
        "unixsocketperm" => (Kind::Octal, false),
        "hz" => (Kind::Int(0, i64::from(i32::MAX)), true),
        "active-expire-effort" => (Kind::Int(1, 10), true),
        "proto-max-bulk-len" => (Kind::Memory(MB, i64::MAX), true),
        "client-query-buffer-limit" => (Kind::Memory(MB, i64::MAX), true),
        "enable-debug-command" | "enable-protected-configs" | "enable-module-command" => {
            (Kind::Enum(DEBUG_COMMAND), false)
        }
        "save" => (Kind::Save, true),
        "appendfsync" => (Kind::Enum(FSYNC), true),
        "sanitize-dump-payload" => (Kind::Enum(SANITIZE), true),
        "maxmemory-clients" => (Kind::MemoryOrPercent, true),
        "maxmemory-policy" => (Kind::Enum(EVICTION_POLICIES), true),
        "oom-score-adj" => (Kind::Words, true),
        "shutdown-on-sigint" | "shutdown-on-sigterm" => (Kind::FlagSet(SHUTDOWN_FLAGS), true),
        "latency-tracking-info-percentiles" => (Kind::Percentiles, true),
        "notify-keyspace-events" => (Kind::EventClasses, true),
        "proc-title-template" => (Kind::ProcTitle, true),
        other if MEMORY.contains(&other) => (Kind::Memory(0, i64::MAX), true),
        other => (kind_from_default(other), true),
    };
    let implemented = IMPLEMENTED.contains(&name);
    Spec {
        kind,
        mutable,
        implemented,
    }
}

/// `maxmemory-policy` values, in the order Redis lists them in its error.
const EVICTION_POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];

/// Size directives that take units (`64mb`) in Redis 7.0.
const MEMORY: &[&str] = &[
    "maxmemory",
    "repl-backlog-size",
    "auto-aof-rewrite-min-size",
    "aof-preallocate",
    "active-defrag-ignore-bytes",
    "stream-node-max-bytes",
    "hll-sparse-max-bytes",
    "cluster-link-sendbuf-limit",
];

/// For directives Amber does not act on, the value is still checked by the type its default
/// shows (`yes`/`no`, an integer, or free words), so a typo in a value stops start-up.
fn kind_from_default(name: &str) -> Kind {
    let default = super::redis_directives::DEFAULTS
        .iter()
        .find(|(known, _)| *known == name)
        .map_or("", |(_, value)| *value);
    match default {
        "yes" | "no" => Kind::Bool,
        value if !value.is_empty() && value.parse::<i64>().is_ok() => Kind::Int(i64::MIN, i64::MAX),
        _ => Kind::Words,
    }
}

/// Directives Amber acts on. Persistence directives join this list as their issues land.
const IMPLEMENTED: &[&str] = &[
    "client-output-buffer-limit",
    "shutdown-on-sigint",
    "shutdown-on-sigterm",
    "acl-pubsub-default",
    "aclfile",
    "acllog-max-len",
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "maxmemory-eviction-tenacity",
    "maxmemory-clients",
    "lfu-log-factor",
    "lfu-decay-time",
    "replica-ignore-maxmemory",
    "hll-sparse-max-bytes",
    "tracking-table-max-keys",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "latency-monitor-threshold",
    "busy-reply-threshold",
    "port",
    "replicaof",
    "masterauth",
    "masteruser",
    "repl-backlog-size",
    "repl-backlog-ttl",
    "repl-diskless-load",
    "repl-diskless-sync",
    "repl-diskless-sync-delay",
    "repl-diskless-sync-max-replicas",
    "repl-ping-replica-period",
    "repl-timeout",
    "replica-read-only",
    "replica-serve-stale-data",
    "replica-announce-ip",
    "replica-announce-port",
    "replica-announced",
    "replica-priority",
    "min-replicas-to-write",
    "min-replicas-max-lag",
    "notify-keyspace-events",
    "bind",
    "dir",
    "requirepass",
    "logfile",
    "unixsocket",
    "unixsocketperm",
    "pidfile",
    "daemonize",
    "always-show-logo",
    "protected-mode",
    "loglevel",
    "databases",
    "maxclients",
    "timeout",
    "tcp-keepalive",
    "tcp-backlog",
    "hz",
    "activerehashing",
    "active-expire-effort",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "enable-debug-command",
    "enable-protected-configs",
    "dbfilename",
    "save",
    "rdb-key-save-delay",
    "key-load-delay",
    "rdbcompression",
    "rdb-save-incremental-fsync",
    "aof-rewrite-incremental-fsync",
    "rdbchecksum",
    "stop-writes-on-bgsave-error",
    "appendonly",
    "appendfsync",
    "appendfilename",
    "appenddirname",
    "aof-load-truncated",
    "aof-preallocate",
    "aof-use-rdb-preamble",
    "aof-timestamp-enabled",
    "aof-disable-auto-gc",
    "auto-aof-rewrite-percentage",
    "auto-aof-rewrite-min-size",
    "backup-archive-interval",
    "backup-dir",
    "backup-encryption-key-file",
    "backup-interval",
    "backup-keep-daily",
    "backup-keep-hourly",
    "backup-remote",
    "backup-remote-keep-daily",
    "backup-remote-keep-hourly",
    "backup-s3-endpoint",
    "backup-s3-path-style",
    "backup-s3-region",
    "backup-ship-interval",
    "rdb-version",
    "bgsave-method",
    "sanitize-dump-payload",
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "set-max-intset-entries",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "list-max-listpack-size",
    "stream-node-max-bytes",
    "stream-node-max-entries",
    "latency-tracking",
    "latency-tracking-info-percentiles",
    "proc-title-template",
];

impl Kind {
    /// Whether the directive takes several arguments in a config file.
    pub fn multi_arg(self) -> bool {
        matches!(
            self,
            Kind::Save | Kind::Words | Kind::Percentiles | Kind::FlagSet(_)
        )
    }

    /// Checks `value` and returns it in the form `CONFIG GET` shows.
    pub fn normalize(self, value: &str) -> Result<String, String> {
        match self {
            Kind::Bool => match value.to_ascii_lowercase().as_str() {
                "yes" => Ok("yes".into()),
                "no" => Ok("no".into()),
                _ => Err("argument must be 'yes' or 'no'".into()),
            },
            Kind::Int(min, max) => {
                let number: i64 = value
                    .parse()
                    .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
                in_range(number, min, max)
            }
            Kind::Memory(min, max) => {
                let number = parse_memory(value)
                    .ok_or_else(|| "argument must be a memory value".to_string())?;
                in_range(number, min, max)
            }
            Kind::Enum(words) => {
                let lower = value.to_ascii_lowercase();
                if words.contains(&lower.as_str()) {
                    Ok(lower)
                } else {
                    Err(format!(
                        "argument(s) must be one of the following: {}",
                        words.join(", ")
                    ))
                }
            }
            Kind::Octal => i64::from_str_radix(value, 8)
                .map(|mode| format!("{mode:o}"))
                .map_err(|_| "argument couldn't be parsed into an integer".into()),
            Kind::Save => normalize_save(value),
            Kind::FlagSet(names) => {
                let error = || {
                    format!(
                        "argument(s) must be one of the following: {}",
                        names.join(", ")
                    )
                };
                let words: Vec<&str> = value.split_whitespace().collect();
                if words.is_empty() {
                    return Err(error());
                }
                let mut set = vec![false; names.len()];
                for word in words {
                    let index = names
                        .iter()
                        .position(|name| name.eq_ignore_ascii_case(word))
                        .ok_or_else(error)?;
                    set[index] = true;
                }
                let shown: Vec<&str> = names
                    .iter()
                    .zip(&set)
                    .skip(1)
                    .filter(|(_, on)| **on)
                    .map(|(name, _)| *name)
                    .collect();
                Ok(if shown.is_empty() {
                    names[0].to_string()
                } else {
                    shown.join(" ")
                })
            }
            Kind::Percentiles => crate::commands::stats::parse_percentiles(value)
                .map(|values| {
                    values
                        .iter()
                        .map(f64::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .ok_or_else(|| "Invalid latency-tracking-info-percentiles parameters".into()),
            Kind::EventClasses => crate::notify::parse_flags(value)
                .map(crate::notify::flags_to_stored_string)
                .ok_or_else(|| crate::notify::INVALID_CLASS.into()),
            Kind::MemoryOrPercent => match value.strip_suffix('%') {
                Some(percent) => match percent.parse::<i64>() {
                    Ok(percent) if percent > 100 => {
                        Err("percentage argument must be less or equal to 100".into())
                    }
                    Ok(percent) if percent >= 0 => Ok(format!("{percent}%")),
                    _ => Err("argument must be a memory or percent value".into()),
                },
                None => parse_memory(value)
                    .filter(|bytes| *bytes >= 0)
                    .map(|bytes| bytes.to_string())
                    .ok_or_else(|| "argument must be a memory or percent value".into()),
            },
            Kind::ProcTitle if crate::proctitle::is_valid(value) => Ok(value.to_string()),
            Kind::ProcTitle => Err(crate::proctitle::INVALID_TEMPLATE.into()),
            Kind::Text | Kind::Words => Ok(value.to_string()),
        }
    }
}

fn in_range(number: i64, min: i64, max: i64) -> Result<String, String> {
    if number < min || number > max {
        Err(format!(
            "argument must be between {min} and {max} inclusive"
        ))
    } else {
        Ok(number.to_string())
    }
}

fn normalize_save(value: &str) -> Result<String, String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if !words.len().is_multiple_of(2) || words.iter().any(|w| w.parse::<u64>().is_err()) {
        return Err("Invalid save parameters".into());
    }
    Ok(words.join(" "))
}

/// Parses a size the way Redis's `memtoll` does: `1k` = 1000, `1kb` = 1024, also `m`, `mb`,
/// `g`, `gb`, `b`; case-insensitive.
pub fn parse_memory(value: &str) -> Option<i64> {
    let lower = value.to_ascii_lowercase();
    let digits_end = lower
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(lower.len(), |(i, _)| i);
    let (number, unit) = lower.split_at(digits_end);
    let multiplier: i64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    number.parse::<i64>().ok()?.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("64mb"), Some(64 * 1024 * 1024));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("2GB"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_memory("12"), Some(12));
        assert_eq!(parse_memory("1xb"), None);
        assert_eq!(parse_memory("mb"), None);
    }

    #[test]
    fn normalizes_values() {
        assert_eq!(Kind::Bool.normalize("YES"), Ok("yes".into()));
        assert!(Kind::Bool.normalize("maybe").is_err());
        assert_eq!(
            Kind::Save.normalize("3600  1 300 100"),
            Ok("3600 1 300 100".into())
        );
        assert!(Kind::Save.normalize("3600").is_err());
        assert_eq!(Kind::Octal.normalize("700"), Ok("700".into()));
        assert_eq!(
            Kind::Int(0, 10).normalize("11"),
            Err("argument must be between 0 and 10 inclusive".into())
        );
    }
}
