//! Redis 7.0's access control lists: users with passwords, and the commands, keys and
//! channels each may use, set by Redis's rule language (`on`, `>password`, `+@read`,
//! `-config|set`, `~cache:*`, `%R~log:*`, `&news.*`, `(...)` selectors, `reset`).
//!
//! The crate knows no command table: the server describes its commands and their categories
//! in a [`Catalog`], and asks [`Acl`] whether a user may run a [`Request`]. Rules and their
//! errors, descriptions (`ACL LIST`, ACL files) and password digests follow Redis.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod catalog;
mod error;
mod selector;
mod user;

use std::collections::BTreeMap;

pub use catalog::{CATEGORY_NAMES, Catalog, CatalogEntry, Categories};
pub use error::RuleError;
pub use selector::{Denial, KeyAccess, Request, Selector};
pub use user::{User, hash_password};

/// Why `ACL SETUSER` (or an ACL file line) failed: the rule and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetUserError {
    /// The rule as given.
    pub rule: String,
    /// Why it was refused.
    pub reason: RuleError,
}

/// Every user, with the command catalog rules are checked against.
#[derive(Debug, Clone)]
pub struct Acl {
    catalog: Catalog,
    users: BTreeMap<String, User>,
    /// Counts the changes to the users, so a caller may cache what it learnt of one.
    generation: u64,
    /// `acl-pubsub-default allchannels`: new users and selectors may use every channel.
    pub all_channels_by_default: bool,
}

impl Acl {
    /// A registry holding only the `default` user (everything allowed, no password).
    pub fn new(catalog: Catalog) -> Acl {
        let mut users = BTreeMap::new();
        users.insert("default".to_string(), User::default_user(&catalog));
        Acl {
            catalog,
            users,
            generation: 0,
            all_channels_by_default: false,
        }
    }

    /// A number that changes whenever any user is created, changed or removed: what a caller
    /// learnt of a user (that it may run anything) holds while it stays the same.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The commands rules may name.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The user named `name`.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Every user, by name.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Creates the user if needed and applies `rules` in order; all or nothing. A selector
    /// split over several arguments (`(+set`, `~tmp:*)`) is joined first, as Redis does.
    pub fn set_user(&mut self, name: &str, rules: &[&str]) -> Result<(), SetUserError> {
        let rules = merge_selectors(rules)?;
        let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
        let rules = rules.as_slice();
        let all_channels = self.all_channels_by_default;
        let mut user = self
            .users
            .get(name)
            .cloned()
            .unwrap_or_else(|| User::new(name, &self.catalog, all_channels));
        for rule in rules {
            user.apply(rule, &self.catalog, all_channels)
                .map_err(|reason| SetUserError {
                    rule: (*rule).to_string(),
                    reason,
                })?;
        }
        self.users.insert(name.to_string(), user);
        self.generation += 1;
        Ok(())
    }

    /// Removes a user; false if there was none.
    pub fn delete_user(&mut self, name: &str) -> bool {
        self.generation += 1;
        self.users.remove(name).is_some()
    }

    /// Replaces every user by those of `other` (ACL LOAD), keeping the catalog.
    pub fn replace_users(&mut self, other: Acl) {
        self.generation += 1;
        self.users = other.users;
    }

    /// Whether `password` authenticates `name` (an enabled user with that password, or
    /// `nopass`).
    pub fn authenticate(&self, name: &str, password: &[u8]) -> bool {
        self.users
            .get(name)
            .is_some_and(|user| user.accepts_password(password))
    }

    /// Parses an ACL file (`user <name> <rules...>` lines) into a new registry with this
    /// catalog; the `default` user is kept as it is when the file does not define it.
    pub fn parse_file(&self, text: &str) -> Result<Acl, (usize, String)> {
        let mut loaded = Acl::new(self.catalog.clone());
        loaded.all_channels_by_default = self.all_channels_by_default;
        if let Some(default) = self.users.get("default") {
            loaded.users.insert("default".into(), default.clone());
        }
        let mut seen = std::collections::HashSet::new();
        for (index, line) in text.lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.is_empty() {
                continue;
            }
            if words[0] != "user" || words.len() < 2 {
                return Err((index + 1, "should start with user keyword".into()));
            }
            let name = words[1];
            if !seen.insert(name.to_string()) {
                return Err((index + 1, format!("Duplicate user '{name}' found")));
            }
            // A file's line describes the whole user: start from a fresh one.
            loaded.users.remove(name);
            loaded
                .set_user(name, &words[2..])
                .map_err(|error| (index + 1, format!("{}. ", error.reason)))?;
        }
        Ok(loaded)
    }
}

/// Joins the arguments of a selector given over several words (`(+set` `~tmp:*)`) into one
/// rule (Redis's `ACLMergeSelectorArguments`).
fn merge_selectors(rules: &[&str]) -> Result<Vec<String>, SetUserError> {
    let mut merged = Vec::with_capacity(rules.len());
    let mut open: Option<String> = None;
    for rule in rules {
        match open.as_mut() {
            Some(selector) => {
                selector.push(' ');
                selector.push_str(rule);
                if rule.ends_with(')') {
                    merged.extend(open.take());
                }
            }
            None if rule.starts_with('(') && !rule.ends_with(')') => open = Some(rule.to_string()),
            None => merged.push(rule.to_string()),
        }
    }
    match open {
        Some(selector) => Err(SetUserError {
            rule: selector
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
            reason: RuleError::UnmatchedParenthesis,
        }),
        None => Ok(merged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let read = Categories::named("read").unwrap();
        let write = Categories::named("write").unwrap();
        let string = Categories::named("string").unwrap();
        let admin = Categories::named("admin").unwrap();
        let mut catalog = Catalog::new();
        catalog.add("get", read.with(string), None);
        catalog.add("set", write.with(string), None);
        catalog.add("select", Categories::default(), None);
        let config = catalog.add("config", Categories::default(), None);
        catalog.add("config|get", admin, Some(config));
        catalog.add("config|set", admin, Some(config));
        catalog
    }

    fn request(acl: &Acl, name: &str, keys: Vec<(&'static [u8], KeyAccess)>) -> Request<'static> {
        Request {
            command: acl.catalog().id(name).unwrap(),
            first_arg: None,
            no_auth: false,
            keys,
            channels: Vec::new(),
        }
    }

    #[test]
    fn new_users_are_off_and_allowed_nothing() {
        let mut acl = Acl::new(catalog());
        acl.set_user("alice", &[]).unwrap();
        let alice = acl.user("alice").unwrap();
        assert_eq!(alice.describe(acl.catalog()), "off resetchannels -@all");
        assert!(!acl.authenticate("alice", b"x"));
        assert_eq!(
            acl.user("default").unwrap().describe(acl.catalog()),
            "on nopass ~* &* +@all"
        );
    }

    #[test]
    fn passwords_and_categories_work() {
        let mut acl = Acl::new(catalog());
        acl.set_user("bob", &["on", ">secret", "+@read", "~cache:*"])
            .unwrap();
        assert!(acl.authenticate("bob", b"secret"));
        assert!(!acl.authenticate("bob", b"wrong"));
        let bob = acl.user("bob").unwrap();
        let get = request(&acl, "get", vec![(b"cache:1", KeyAccess::READ)]);
        assert_eq!(bob.check(&get), Ok(()));
        let other = request(&acl, "get", vec![(b"other", KeyAccess::READ)]);
        assert_eq!(bob.check(&other), Err(Denial::Key(0)));
        let set = request(&acl, "set", vec![(b"cache:1", KeyAccess::WRITE)]);
        assert_eq!(bob.check(&set), Err(Denial::Command));
        assert!(
            bob.describe(acl.catalog())
                .contains("~cache:* resetchannels -@all +@read")
        );
    }

    #[test]
    fn subcommands_and_first_args() {
        let mut acl = Acl::new(catalog());
        acl.set_user("ops", &["on", "nopass", "+config|get", "+select|0"])
            .unwrap();
        let ops = acl.user("ops").unwrap();
        assert_eq!(ops.check(&request(&acl, "config|get", vec![])), Ok(()));
        assert_eq!(
            ops.check(&request(&acl, "config|set", vec![])),
            Err(Denial::Command)
        );
        let mut select = request(&acl, "select", vec![]);
        select.first_arg = Some(b"0");
        assert_eq!(ops.check(&select), Ok(()));
        select.first_arg = Some(b"1");
        assert_eq!(ops.check(&select), Err(Denial::Command));
        assert_eq!(
            ops.describe(acl.catalog()),
            "on nopass resetchannels -@all +select|0 +config|get"
        );
        let error = acl.set_user("ops", &["+config|get|x"]).unwrap_err();
        assert_eq!(error.reason, RuleError::FirstArgOfSubcommand);
    }

    #[test]
    fn rule_errors_leave_the_user_unchanged() {
        let mut acl = Acl::new(catalog());
        acl.set_user("eve", &["on", "~*"]).unwrap();
        let before = acl.user("eve").unwrap().clone();
        let error = acl.set_user("eve", &["+get", "~more"]).unwrap_err();
        assert_eq!(error.reason, RuleError::AfterAllKeys);
        assert_eq!(acl.user("eve").unwrap(), &before);
        assert_eq!(
            acl.set_user("eve", &["+nosuch"]).unwrap_err().reason,
            RuleError::UnknownName
        );
        assert_eq!(
            acl.set_user("eve", &["#abc"]).unwrap_err().reason,
            RuleError::BadHash
        );
        assert_eq!(
            acl.set_user("eve", &["<nopass"]).unwrap_err().reason,
            RuleError::NoSuchPassword
        );
    }

    #[test]
    fn selectors_allow_what_the_root_does_not() {
        let mut acl = Acl::new(catalog());
        acl.set_user("sel", &["on", "nopass", "+get", "~a*", "(+set ~b*)"])
            .unwrap();
        let user = acl.user("sel").unwrap();
        assert_eq!(
            user.check(&request(&acl, "set", vec![(b"b1", KeyAccess::WRITE)])),
            Ok(())
        );
        assert_eq!(
            user.check(&request(&acl, "set", vec![(b"a1", KeyAccess::WRITE)])),
            Err(Denial::Key(0))
        );
        // In this small catalog SET is all of @write, so the category describes it.
        assert!(
            user.describe(acl.catalog())
                .ends_with(" (~b* resetchannels -@all +@write)")
        );
    }

    #[test]
    fn selectors_given_over_several_words_are_joined() {
        let mut acl = Acl::new(catalog());
        acl.set_user("w", &["on", "(+set", "~b*)"]).unwrap();
        assert_eq!(acl.user("w").unwrap().selectors().len(), 2);
        let error = acl.set_user("w", &["(+set", "~b*"]).unwrap_err();
        assert_eq!(error.reason, RuleError::UnmatchedParenthesis);
        assert_eq!(error.rule, "(+set");
    }

    #[test]
    fn non_ascii_rules_are_refused_not_panicked_on() {
        let mut acl = Acl::new(catalog());
        for rule in ["é", "ébc", "(é", "%é~x", "+é", "&é"] {
            let _ = acl.set_user("u", &[rule]);
        }
        assert_eq!(
            acl.set_user("u", &["éx"]).unwrap_err().reason,
            RuleError::Syntax
        );
        acl.set_user("u", &[">pässwörd", "on"]).unwrap();
        assert!(acl.authenticate("u", "pässwörd".as_bytes()));
    }

    #[test]
    fn read_and_write_key_patterns() {
        let mut acl = Acl::new(catalog());
        acl.set_user("rw", &["on", "nopass", "+@all", "%R~r*", "%W~w*"])
            .unwrap();
        let user = acl.user("rw").unwrap();
        let check =
            |key: &'static [u8], access| user.check(&request(&acl, "get", vec![(key, access)]));
        assert_eq!(check(b"r1", KeyAccess::READ), Ok(()));
        assert_eq!(check(b"r1", KeyAccess::WRITE), Err(Denial::Key(0)));
        assert_eq!(check(b"w1", KeyAccess::WRITE), Ok(()));
        assert_eq!(check(b"w1", KeyAccess::READ_WRITE), Err(Denial::Key(0)));
    }

    #[test]
    fn acl_files_parse_and_refuse_duplicates() {
        let acl = Acl::new(catalog());
        let loaded = acl
            .parse_file("user alice on >p1 +get ~*\nuser bob off\n")
            .unwrap();
        assert!(loaded.authenticate("alice", b"p1"));
        assert!(loaded.user("bob").is_some());
        assert!(loaded.user("default").is_some());
        assert_eq!(acl.parse_file("user a on\nuser a off\n").unwrap_err().0, 2);
        assert_eq!(acl.parse_file("nope\n").unwrap_err().0, 1);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a client sends as rules, applying them never panics, and a refused list
        /// leaves the registry as it was.
        #[test]
        fn any_rules_apply_or_are_refused(rules in proptest::collection::vec("\\PC{0,12}", 0..6)) {
            let mut catalog = Catalog::new();
            let container = catalog.add("config", Categories::default(), None);
            catalog.add("config|get", Categories::named("admin").unwrap_or_default(), Some(container));
            catalog.add("get", Categories::named("read").unwrap_or_default(), None);
            let mut acl = Acl::new(catalog);
            let before = acl.user("default").cloned();
            let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
            if acl.set_user("default", &rules).is_err() {
                prop_assert_eq!(acl.user("default").cloned(), before);
            }
            let user = acl.user("default").cloned().unwrap_or_else(|| User::new("x", acl.catalog(), false));
            let _ = user.describe(acl.catalog());
        }
    }
}
