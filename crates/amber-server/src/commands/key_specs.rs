//! Redis 7.0's key specifications: where each command's keys are in its arguments and what it
//! does to each (`RO`/`RW`/`OW`/`RM`, `access`, `insert`, `update`, `delete`...). The table,
//! `redis_key_specs.txt`, is Redis 7.0.15's own (`cargo xtask command-table`). It serves ACL
//! key permissions (`%R~`/`%W~`), `COMMAND GETKEYSANDFLAGS` and the key specifications of
//! `COMMAND INFO`. Where a specification cannot say (an `unknown` search, an `incomplete` or
//! `variable_flags` one, arguments that do not fit), the command's own rule answers, as
//! Redis's `getkeys_proc` functions do.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use super::is;

/// What a command does to one key (Redis's `CMD_KEY_*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct KeyFlags(u16);

impl KeyFlags {
    pub(crate) const RO: KeyFlags = KeyFlags(1);
    pub(crate) const RW: KeyFlags = KeyFlags(1 << 1);
    pub(crate) const OW: KeyFlags = KeyFlags(1 << 2);
    pub(crate) const RM: KeyFlags = KeyFlags(1 << 3);
    pub(crate) const ACCESS: KeyFlags = KeyFlags(1 << 4);
    pub(crate) const UPDATE: KeyFlags = KeyFlags(1 << 5);
    pub(crate) const INSERT: KeyFlags = KeyFlags(1 << 6);
    pub(crate) const DELETE: KeyFlags = KeyFlags(1 << 7);
    pub(crate) const NOT_KEY: KeyFlags = KeyFlags(1 << 8);
    pub(crate) const INCOMPLETE: KeyFlags = KeyFlags(1 << 9);
    pub(crate) const VARIABLE_FLAGS: KeyFlags = KeyFlags(1 << 10);

    /// The names as Redis replies them, in its order.
    const NAMES: [(KeyFlags, &'static str); 11] = [
        (KeyFlags::RO, "RO"),
        (KeyFlags::RW, "RW"),
        (KeyFlags::OW, "OW"),
        (KeyFlags::RM, "RM"),
        (KeyFlags::ACCESS, "access"),
        (KeyFlags::UPDATE, "update"),
        (KeyFlags::INSERT, "insert"),
        (KeyFlags::DELETE, "delete"),
        (KeyFlags::NOT_KEY, "not_key"),
        (KeyFlags::INCOMPLETE, "incomplete"),
        (KeyFlags::VARIABLE_FLAGS, "variable_flags"),
    ];

    /// Whether every flag of `other` is set.
    pub(crate) fn contains(self, other: KeyFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flag names, as `COMMAND INFO` and `COMMAND GETKEYSANDFLAGS` reply them.
    pub(crate) fn names(self) -> Vec<&'static str> {
        KeyFlags::NAMES
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
            .collect()
    }

    /// Whether the command reads the key's data (ACL `%R~`).
    pub(crate) fn reads(self) -> bool {
        self.contains(KeyFlags::ACCESS)
    }

    /// Whether the command changes the key (ACL `%W~`).
    pub(crate) fn writes(self) -> bool {
        self.0 & (KeyFlags::INSERT.0 | KeyFlags::DELETE.0 | KeyFlags::UPDATE.0) != 0
    }

    fn parse(text: &str) -> KeyFlags {
        let bits = text
            .split(',')
            .filter_map(|word| KeyFlags::NAMES.iter().find(|(_, name)| *name == word))
            .fold(0, |bits, (flag, _)| bits | flag.0);
        KeyFlags(bits)
    }
}

impl std::ops::BitOr for KeyFlags {
    type Output = KeyFlags;
    fn bitor(self, other: KeyFlags) -> KeyFlags {
        KeyFlags(self.0 | other.0)
    }
}

/// Where a specification's keys begin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BeginSearch {
    /// At this argument.
    Index(i32),
    /// After this keyword, searched from `start_from` (backwards when negative).
    Keyword { keyword: String, start_from: i32 },
    /// The command's own rule must find them.
    Unknown,
}

/// How many keys follow the beginning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FindKeys {
    /// Up to `last` (relative to the beginning; from the end when negative), every `step`
    /// arguments; with `limit`, a 1/limit share of what is left.
    Range { last: i32, step: i32, limit: i32 },
    /// A count at `count_at`, keys from `first`, every `step` (all relative to the beginning).
    KeyNum {
        count_at: i32,
        first: i32,
        step: i32,
    },
    /// The command's own rule must find them.
    Unknown,
}

/// One key specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeySpec {
    pub flags: KeyFlags,
    pub begin: BeginSearch,
    pub find: FindKeys,
    pub notes: String,
}

const TABLE: &str = include_str!("redis_key_specs.txt");

fn table() -> &'static HashMap<String, Vec<KeySpec>> {
    static PARSED: OnceLock<HashMap<String, Vec<KeySpec>>> = OnceLock::new();
    PARSED.get_or_init(|| parse_table(TABLE))
}

fn parse_table(text: &str) -> HashMap<String, Vec<KeySpec>> {
    let mut specs: HashMap<String, Vec<KeySpec>> = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut fields = line.split('\t');
        let (Some(name), Some(flags), Some(begin), Some(find)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let numbers =
            |words: &[&str]| -> Vec<i32> { words.iter().filter_map(|w| w.parse().ok()).collect() };
        let begin_words: Vec<&str> = begin.split(' ').collect();
        let begin = match begin_words.as_slice() {
            ["index", at] => BeginSearch::Index(at.parse().unwrap_or(0)),
            ["keyword", keyword, from] => BeginSearch::Keyword {
                keyword: keyword.to_string(),
                start_from: from.parse().unwrap_or(1),
            },
            _ => BeginSearch::Unknown,
        };
        let find_words: Vec<&str> = find.split(' ').collect();
        let find = match (find_words[0], numbers(&find_words[1..]).as_slice()) {
            ("range", [last, step, limit]) => FindKeys::Range {
                last: *last,
                step: *step,
                limit: *limit,
            },
            ("keynum", [count_at, first, step]) => FindKeys::KeyNum {
                count_at: *count_at,
                first: *first,
                step: *step,
            },
            _ => FindKeys::Unknown,
        };
        specs.entry(name.to_string()).or_default().push(KeySpec {
            flags: KeyFlags::parse(flags),
            begin,
            find,
            notes: fields.next().unwrap_or("").to_string(),
        });
    }
    specs
}

/// The key specifications of a command (`get`) or subcommand (`object|encoding`).
pub(crate) fn specs_of(full_name: &str) -> &'static [KeySpec] {
    table().get(full_name).map_or(&[], Vec::as_slice)
}

/// The commands whose subcommands have specifications of their own (`object`, `xinfo`...).
fn containers() -> &'static std::collections::HashSet<&'static str> {
    static NAMES: OnceLock<std::collections::HashSet<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        table()
            .keys()
            .filter_map(|name| name.split_once('|').map(|(container, _)| container))
            .collect()
    })
}

/// The name the table knows a call by: `container|subcommand` where the table has it.
fn full_name(command: &str, args: &[Bytes]) -> String {
    if let Some(sub) = args.get(1).filter(|_| containers().contains(command)) {
        let sub = String::from_utf8_lossy(sub).to_ascii_lowercase();
        let full = format!("{command}|{sub}");
        if table().contains_key(&full) {
            return full;
        }
    }
    command.to_string()
}

/// The positions of a call's keys in `args`, each with what the command does to it, as
/// Redis's `getKeysFromCommandWithSpecs` finds them. `command` is the lowercase name.
pub(crate) fn keys_and_flags(command: &str, args: &[Bytes]) -> Vec<(usize, KeyFlags)> {
    let name = full_name(command, args);
    let specs = specs_of(&name);
    let any_key = specs.iter().any(|s| !s.flags.contains(KeyFlags::NOT_KEY));
    let variable = specs
        .iter()
        .any(|s| s.flags.contains(KeyFlags::VARIABLE_FLAGS));
    if any_key
        && !variable
        && let Some(keys) = from_specs(specs, args)
    {
        return keys;
    }
    let mut keys = own_rule(&name, args);
    // Arity is checked before keys are asked for; a short call still gets no position past
    // its arguments.
    keys.retain(|(at, _)| *at < args.len());
    keys
}

/// Whether a command has keys at all (a specification that is not `not_key`), as Redis's
/// `doesCommandHaveKeys`; a container's subcommand is looked up by `args[1]`.
pub(crate) fn has_keys(command: &str, args: &[Bytes]) -> bool {
    specs_of(&full_name(command, args))
        .iter()
        .any(|s| !s.flags.contains(KeyFlags::NOT_KEY))
}

/// Applies the specifications; `None` where one cannot answer (Redis's invalid spec).
fn from_specs(specs: &[KeySpec], args: &[Bytes]) -> Option<Vec<(usize, KeyFlags)>> {
    let argc = args.len() as i64;
    let mut keys = Vec::new();
    for spec in specs {
        if spec.flags.contains(KeyFlags::NOT_KEY) {
            continue;
        }
        let first = match &spec.begin {
            BeginSearch::Index(at) => i64::from(*at),
            BeginSearch::Keyword {
                keyword,
                start_from,
            } => match find_keyword(args, keyword, i64::from(*start_from)) {
                Some(at) => at + 1,
                None => continue,
            },
            BeginSearch::Unknown => return None,
        };
        let (first, last, step) = match spec.find {
            FindKeys::Range { last, step, limit } => {
                let (last, limit) = (i64::from(last), i64::from(limit));
                let end = if last >= 0 {
                    first + last
                } else if limit == 0 {
                    argc + last
                } else {
                    first + ((argc - first) / limit + last)
                };
                (first, end, i64::from(step))
            }
            FindKeys::KeyNum {
                count_at,
                first: first_key,
                step,
            } => {
                let count = args
                    .get(usize::try_from(first + i64::from(count_at)).ok()?)
                    .and_then(|n| amber_protocol::parse_i64(n))
                    .filter(|&n| n >= 0)?;
                let start = first + i64::from(first_key);
                (start, start.saturating_add(count) - 1, i64::from(step))
            }
            FindKeys::Unknown => return None,
        };
        if last >= argc || last < first || first >= argc {
            return None;
        }
        let mut at = first;
        while at <= last {
            keys.push((at as usize, spec.flags));
            at += step.max(1);
        }
        if spec.flags.contains(KeyFlags::INCOMPLETE) {
            return None;
        }
    }
    Some(keys)
}

/// The argument index of `keyword`, searched from `start_from` towards the end (or, when
/// negative, from that far from the end towards the start).
fn find_keyword(args: &[Bytes], keyword: &str, start_from: i64) -> Option<i64> {
    let argc = args.len() as i64;
    let start = if start_from > 0 {
        start_from
    } else {
        argc + start_from
    };
    let end = if start_from > 0 { argc - 1 } else { 1 };
    let mut at = start;
    while at != end {
        if at >= argc || at < 1 {
            return None;
        }
        if is(&args[at as usize], keyword) {
            return Some(at);
        }
        at += if start <= end { 1 } else { -1 };
    }
    None
}

/// Redis's `getkeys_proc` of a command whose specifications cannot answer.
fn own_rule(name: &str, args: &[Bytes]) -> Vec<(usize, KeyFlags)> {
    let none = KeyFlags::default();
    match name {
        "set" => {
            let get = args.iter().skip(3).any(|a| is(a, "get"));
            let flags = if get {
                KeyFlags::RW | KeyFlags::ACCESS | KeyFlags::UPDATE
            } else {
                KeyFlags::OW | KeyFlags::UPDATE
            };
            vec![(1, flags)]
        }
        "bitfield" => vec![(1, bitfield_flags(args))],
        "sort_ro" => vec![(1, KeyFlags::RO | KeyFlags::ACCESS)],
        "sort" => sort_keys(args),
        "migrate" => migrate_keys(args),
        "georadius" | "georadiusbymember" => {
            let mut keys = vec![(1, none)];
            let mut stored = None;
            let mut at = 5;
            while at < args.len() {
                if (is(&args[at], "store") || is(&args[at], "storedist")) && at + 1 < args.len() {
                    stored = Some(at + 1);
                    at += 1;
                }
                at += 1;
            }
            keys.extend(stored.map(|at| (at, none)));
            keys
        }
        "xread" | "xreadgroup" => xread_keys(args),
        "zunionstore" | "zinterstore" | "zdiffstore" => counted_keys(args, Some(1), 2, 3),
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => {
            counted_keys(args, None, 1, 2)
        }
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" | "blmpop"
        | "bzmpop" => counted_keys(args, None, 2, 3),
        _ => Vec::new(),
    }
}

/// BITFIELD reads only when every operation is a GET (or OVERFLOW), as Redis decides.
fn bitfield_flags(args: &[Bytes]) -> KeyFlags {
    let mut read_only = true;
    let mut at = 2;
    while at < args.len() {
        let left = args.len() - at - 1;
        let word = &args[at];
        if is(word, "get") && left >= 2 {
            at += 2;
        } else if (is(word, "set") || is(word, "incrby")) && left >= 3 {
            read_only = false;
            break;
        } else if is(word, "overflow") && left >= 1 {
            at += 1;
        } else {
            read_only = false;
            break;
        }
        at += 1;
    }
    if read_only {
        KeyFlags::RO | KeyFlags::ACCESS
    } else {
        KeyFlags::RW | KeyFlags::ACCESS | KeyFlags::UPDATE
    }
}

/// SORT's key and its last `STORE` destination, skipping `LIMIT`, `GET` and `BY` arguments.
fn sort_keys(args: &[Bytes]) -> Vec<(usize, KeyFlags)> {
    let mut keys = vec![(1, KeyFlags::RO | KeyFlags::ACCESS)];
    let mut store = None;
    let mut at = 2;
    while at < args.len() {
        let word = &args[at];
        if is(word, "limit") {
            at += 2;
        } else if is(word, "get") || is(word, "by") {
            at += 1;
        } else if is(word, "store") && at + 1 < args.len() {
            store = Some(at + 1);
        }
        at += 1;
    }
    keys.extend(store.map(|at| (at, KeyFlags::OW | KeyFlags::UPDATE)));
    keys
}

/// MIGRATE's key, or the keys after `KEYS` when the key argument is empty.
fn migrate_keys(args: &[Bytes]) -> Vec<(usize, KeyFlags)> {
    let flags = KeyFlags::RW | KeyFlags::ACCESS | KeyFlags::DELETE;
    let (mut first, mut count) = (3, 1);
    let mut at = 6;
    while at < args.len() {
        let word = &args[at];
        if is(word, "keys") {
            if args[3].is_empty() {
                first = at + 1;
                count = args.len() - first;
            } else {
                count = 0;
            }
            break;
        }
        if is(word, "auth") {
            at += 1;
        } else if is(word, "auth2") {
            at += 2;
        }
        at += 1;
    }
    (first..first + count).map(|at| (at, flags)).collect()
}

/// XREAD's and XREADGROUP's streams: half the arguments after `STREAMS`.
fn xread_keys(args: &[Bytes]) -> Vec<(usize, KeyFlags)> {
    let mut streams = None;
    let mut at = 1;
    while at < args.len() {
        let word = &args[at];
        if is(word, "block") || is(word, "count") {
            at += 1;
        } else if is(word, "group") {
            at += 2;
        } else if is(word, "streams") {
            streams = Some(at);
            break;
        } else if !is(word, "noack") {
            break;
        }
        at += 1;
    }
    let Some(streams) = streams else {
        return Vec::new();
    };
    let count = args.len() - streams - 1;
    if count == 0 || !count.is_multiple_of(2) {
        return Vec::new();
    }
    (streams + 1..streams + 1 + count / 2)
        .map(|at| (at, KeyFlags::default()))
        .collect()
}

/// Keys counted by a number argument (Redis's `genericGetKeys`, which reads it as `atoi`).
fn counted_keys(
    args: &[Bytes],
    store: Option<usize>,
    count_at: usize,
    first: usize,
) -> Vec<(usize, KeyFlags)> {
    let count = args.get(count_at).map_or(0, |n| amber_protocol::atoi(n));
    let available = args.len().saturating_sub(first) as i64;
    if count < 1 || count > available {
        return Vec::new();
    }
    let mut keys: Vec<(usize, KeyFlags)> = (first..first + count as usize)
        .map(|at| (at, KeyFlags::default()))
        .collect();
    keys.extend(store.map(|at| (at, KeyFlags::default())));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn keys(words: &[&str]) -> Vec<(usize, Vec<&'static str>)> {
        let args = args(words);
        keys_and_flags(&words[0].to_ascii_lowercase(), &args)
            .into_iter()
            .map(|(at, flags)| (at, flags.names()))
            .collect()
    }

    #[test]
    fn the_table_holds_every_redis_command_with_keys() {
        assert!(table().len() > 180, "{}", table().len());
        assert_eq!(specs_of("get")[0].flags, KeyFlags::RO | KeyFlags::ACCESS);
        assert_eq!(specs_of("object|encoding")[0].begin, BeginSearch::Index(2));
        assert!(specs_of("ping").is_empty());
    }

    #[test]
    fn specifications_place_and_flag_each_key() {
        assert_eq!(
            keys(&["COPY", "a", "b"]),
            vec![(1, vec!["RO", "access"]), (2, vec!["OW", "update"])]
        );
        assert_eq!(
            keys(&["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"]),
            vec![
                (1, vec!["OW", "update"]),
                (3, vec!["RO", "access"]),
                (4, vec!["RO", "access"])
            ]
        );
        assert_eq!(
            keys(&["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"]),
            vec![(4, vec!["RO", "access"]), (5, vec!["RO", "access"])]
        );
        assert_eq!(keys(&["OBJECT", "ENCODING", "k"]), vec![(2, vec!["RO"])]);
        assert_eq!(
            keys(&["MSET", "a", "1", "b", "2"]),
            vec![(1, vec!["OW", "update"]), (3, vec!["OW", "update"])]
        );
        assert_eq!(
            keys(&["GEORADIUS", "g", "0", "0", "1", "km", "STORE", "d"]),
            vec![(1, vec!["RO", "access"]), (7, vec!["OW", "update"])]
        );
    }

    #[test]
    fn commands_with_variable_flags_use_their_own_rule() {
        assert_eq!(keys(&["SET", "k", "v"]), vec![(1, vec!["OW", "update"])]);
        assert_eq!(
            keys(&["SET", "k", "v", "get"]),
            vec![(1, vec!["RW", "access", "update"])]
        );
        assert_eq!(
            keys(&["BITFIELD", "k", "GET", "u8", "0"]),
            vec![(1, vec!["RO", "access"])]
        );
        assert_eq!(
            keys(&["BITFIELD", "k", "GET", "u8", "0", "SET", "u8", "0", "1"]),
            vec![(1, vec!["RW", "access", "update"])]
        );
        assert_eq!(
            keys(&["SORT", "l", "BY", "w_*", "STORE", "d1", "STORE", "d2"]),
            vec![(1, vec!["RO", "access"]), (7, vec!["OW", "update"])]
        );
        assert_eq!(
            keys(&["MIGRATE", "h", "1", "", "0", "5", "KEYS", "a", "b"]),
            vec![
                (7, vec!["RW", "access", "delete"]),
                (8, vec!["RW", "access", "delete"])
            ]
        );
    }

    #[test]
    fn arguments_a_specification_cannot_place_fall_back_as_redis() {
        // A count past the arguments: Redis's fallback finds no key.
        assert_eq!(keys(&["ZUNIONSTORE", "d", "5", "a"]), vec![]);
        assert_eq!(keys(&["EVAL", "return 1", "x"]), vec![]);
        // A count at the top of the range neither overflows nor finds keys.
        assert_eq!(
            keys(&["EVAL", "return 1", "9223372036854775807", "k"]),
            vec![]
        );
        assert_eq!(
            keys(&["ZUNIONSTORE", "d", "9223372036854775807", "a"]),
            vec![]
        );
        // A keyword as the last argument is not searched for (nothing can follow it).
        assert_eq!(
            keys(&["GEORADIUS", "g", "0", "0", "1", "km", "STORE"]),
            vec![(1, vec!["RO", "access"])]
        );
        // XREAD's range takes half of what follows STREAMS, rounded down.
        assert_eq!(
            keys(&["XREAD", "STREAMS", "a", "b", "0"]),
            vec![(2, vec!["RO", "access"])]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_arguments_give_positions_inside_them(
            name in proptest::sample::select(vec![
                "zunionstore", "eval", "xread", "migrate", "sort", "georadius", "lmpop",
                "bitop", "blpop", "set", "bitfield", "object", "xreadgroup", "lcs",
            ]),
            rest in proptest::collection::vec("[a-z0-9 -]{0,6}", 0..10),
        ) {
            let mut words = vec![name.to_string()];
            words.extend(rest);
            let args: Vec<Bytes> = words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
            for (at, _) in keys_and_flags(name, &args) {
                proptest::prop_assert!(at >= 1 && at < args.len());
            }
        }
    }
}
