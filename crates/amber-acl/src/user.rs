//! A user: whether it is enabled, its passwords (SHA-256 digests), and its selectors.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::catalog::Catalog;
use crate::error::RuleError;
use crate::selector::{Denial, Request, Selector};

/// One ACL user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    name: String,
    enabled: bool,
    nopass: bool,
    /// `Some(true)` after `skip-sanitize-payload`, `Some(false)` after `sanitize-payload`.
    skip_sanitize: Option<bool>,
    /// Hex SHA-256 digests, in the order added.
    passwords: Vec<String>,
    /// The root selector first, then the `(...)` ones.
    selectors: Vec<Selector>,
}

impl User {
    /// A new user as Redis creates one: off, no password, no permission (channels as
    /// `acl-pubsub-default` says).
    pub fn new(name: &str, catalog: &Catalog, all_channels: bool) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            skip_sanitize: None,
            passwords: Vec::new(),
            selectors: vec![Selector::new(catalog, all_channels)],
        }
    }

    /// The `default` user as a fresh server has it: on, no password, everything allowed.
    pub fn default_user(catalog: &Catalog) -> User {
        let mut user = User::new("default", catalog, false);
        for rule in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = user.apply(rule, catalog, false);
        }
        user
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the user may authenticate (`on`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether any password authenticates it (`nopass`).
    pub fn nopass(&self) -> bool {
        self.nopass
    }

    /// Its password digests (hex SHA-256).
    pub fn password_hashes(&self) -> &[String] {
        &self.passwords
    }

    /// Its selectors, the root one first.
    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }

    /// Applies one rule (Redis's `ACLSetUser`); `all_channels` is what `acl-pubsub-default`
    /// gives a `reset` user and new selectors.
    pub fn apply(
        &mut self,
        rule: &str,
        catalog: &Catalog,
        all_channels: bool,
    ) -> Result<(), RuleError> {
        if rule.is_empty() {
            return Ok(());
        }
        let lower = rule.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "skip-sanitize-payload" => self.skip_sanitize = Some(true),
            "sanitize-payload" => self.skip_sanitize = Some(false),
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "clearselectors" => self.selectors.truncate(1),
            "reset" => {
                for step in ["resetpass", "resetkeys", "resetchannels"] {
                    self.apply(step, catalog, all_channels)?;
                }
                if all_channels {
                    self.apply("allchannels", catalog, all_channels)?;
                }
                for step in ["off", "sanitize-payload", "clearselectors", "-@all"] {
                    self.apply(step, catalog, all_channels)?;
                }
            }
            _ => return self.apply_other(rule, catalog, all_channels),
        }
        Ok(())
    }

    fn apply_other(
        &mut self,
        rule: &str,
        catalog: &Catalog,
        all_channels: bool,
    ) -> Result<(), RuleError> {
        // The first character may be any Unicode scalar (rules come from clients): split
        // after it, not after its first byte.
        let first_len = rule.chars().next().map_or(0, char::len_utf8);
        let (first, rest) = rule.split_at(first_len);
        match first {
            ">" | "#" => {
                let digest = if first == ">" {
                    hash_password(rest.as_bytes())
                } else {
                    valid_hash(rest)?
                };
                if !self.passwords.contains(&digest) {
                    self.passwords.push(digest);
                }
                self.nopass = false;
            }
            "<" | "!" => {
                let digest = if first == "<" {
                    hash_password(rest.as_bytes())
                } else {
                    valid_hash(rest)?
                };
                let before = self.passwords.len();
                self.passwords.retain(|known| *known != digest);
                if self.passwords.len() == before {
                    return Err(RuleError::NoSuchPassword);
                }
            }
            "(" if rule.ends_with(')') && rule.len() >= 2 => {
                let mut selector = Selector::new(catalog, all_channels);
                for part in rule[1..rule.len() - 1].split_whitespace() {
                    selector.apply(part, catalog)?;
                }
                self.selectors.push(selector);
            }
            _ => self.selectors[0].apply(rule, catalog)?,
        }
        Ok(())
    }

    /// Whether `password` authenticates this user (digests compared in constant time).
    pub fn accepts_password(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let digest = hash_password(password);
        self.passwords.iter().fold(false, |found, known| {
            found | bool::from(known.as_bytes().ct_eq(digest.as_bytes()))
        })
    }

    /// Checks a request against every selector; the most relevant denial when none allows
    /// it (Redis's `ACLCheckAllUserCommandPerm`).
    pub fn check(&self, request: &Request<'_>) -> Result<(), Denial> {
        let mut worst: Option<Denial> = None;
        for selector in &self.selectors {
            match selector.check(request) {
                Ok(()) => return Ok(()),
                Err(denial) => {
                    if worst.is_none_or(|known| denial > known) {
                        worst = Some(denial);
                    }
                }
            }
        }
        Err(worst.unwrap_or(Denial::Command))
    }

    /// The flags Redis lists for the user (`on`/`off`, `nopass`, payload sanitizing).
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        match self.skip_sanitize {
            Some(true) => flags.push("skip-sanitize-payload"),
            Some(false) => flags.push("sanitize-payload"),
            None => {}
        }
        flags
    }

    /// The user as `ACL LIST` shows it and an ACL file stores it (without `user <name>`).
    pub fn describe(&self, catalog: &Catalog) -> String {
        let mut text = String::new();
        for flag in self.flags() {
            text.push_str(flag);
            text.push(' ');
        }
        for digest in &self.passwords {
            text.push('#');
            text.push_str(digest);
            text.push(' ');
        }
        for (index, selector) in self.selectors.iter().enumerate() {
            if index == 0 {
                text.push_str(&selector.describe(catalog));
            } else {
                text.push_str(&format!(" ({})", selector.describe(catalog)));
            }
        }
        text
    }
}

/// The hex SHA-256 of a password, as Redis stores it.
pub fn hash_password(password: &[u8]) -> String {
    Sha256::digest(password)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn valid_hash(text: &str) -> Result<String, RuleError> {
    let valid = text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if valid {
        Ok(text.to_string())
    } else {
        Err(RuleError::BadHash)
    }
}
