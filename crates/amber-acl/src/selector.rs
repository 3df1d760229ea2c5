//! A selector: the commands, keys and channels one set of rules allows. A user has a root
//! selector and any number of extra ones (`(...)` rules); a command runs if one allows it.

use amber_keyspace::glob_match;

use crate::catalog::{CATEGORY_NAMES, Catalog, Categories};
use crate::error::RuleError;

/// What a command does to one of its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAccess {
    /// It reads the key's data.
    pub read: bool,
    /// It changes the key.
    pub write: bool,
}

impl KeyAccess {
    /// Reading only.
    pub const READ: KeyAccess = KeyAccess {
        read: true,
        write: false,
    };
    /// Writing only.
    pub const WRITE: KeyAccess = KeyAccess {
        read: false,
        write: true,
    };
    /// Both.
    pub const READ_WRITE: KeyAccess = KeyAccess {
        read: true,
        write: true,
    };
}

/// One call to check: the command (or subcommand) id, its first argument, its keys and
/// channels.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The catalog id of the command, or of the subcommand for a container.
    pub command: usize,
    /// The argument after the command name (for first-argument rules such as `+select|0`).
    pub first_arg: Option<&'a [u8]>,
    /// The command needs no authentication (AUTH, HELLO): always allowed.
    pub no_auth: bool,
    /// Keys with what the command does to them.
    pub keys: Vec<(&'a [u8], KeyAccess)>,
    /// Channels, each with whether it is a pattern (PSUBSCRIBE's, compared literally).
    pub channels: Vec<(&'a [u8], bool)>,
}

/// Why a selector refuses a request, ordered as Redis ranks them when several selectors
/// refuse (the highest is reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denial {
    /// The command is not allowed.
    Command,
    /// The key at this position of the request's keys is not allowed.
    Key(usize),
    /// The channel at this position is not allowed.
    Channel(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyPattern {
    pattern: Vec<u8>,
    access: KeyAccess,
}

/// The permissions of one selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// Allowed commands by catalog id.
    allowed: Vec<bool>,
    /// Every command allowed (`+@all` and no later denial).
    all_commands: bool,
    /// Set by `+@all`, cleared by `-@all` only: commands added later are allowed.
    future_commands: bool,
    /// First arguments allowed for otherwise denied commands, by command id.
    first_args: Vec<(usize, Vec<String>)>,
    all_keys: bool,
    keys: Vec<KeyPattern>,
    all_channels: bool,
    channels: Vec<Vec<u8>>,
}

impl Selector {
    /// A selector that allows nothing (channels too, unless `all_channels`, as
    /// `acl-pubsub-default` says).
    pub fn new(catalog: &Catalog, all_channels: bool) -> Selector {
        Selector {
            allowed: vec![false; catalog.len()],
            all_commands: false,
            future_commands: false,
            first_args: Vec::new(),
            all_keys: false,
            keys: Vec::new(),
            all_channels,
            channels: Vec::new(),
        }
    }

    /// Applies one rule (Redis's `ACLSetSelector`).
    pub fn apply(&mut self, rule: &str, catalog: &Catalog) -> Result<(), RuleError> {
        let lower = rule.to_ascii_lowercase();
        match lower.as_str() {
            "allkeys" | "~*" => {
                self.all_keys = true;
                self.keys.clear();
            }
            "resetkeys" => {
                self.all_keys = false;
                self.keys.clear();
            }
            "allchannels" | "&*" => {
                self.all_channels = true;
                self.channels.clear();
            }
            "resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            "allcommands" | "+@all" => {
                self.allowed.iter_mut().for_each(|bit| *bit = true);
                self.all_commands = true;
                self.future_commands = true;
                self.first_args.clear();
            }
            "nocommands" | "-@all" => {
                self.allowed.iter_mut().for_each(|bit| *bit = false);
                self.all_commands = false;
                self.future_commands = false;
                self.first_args.clear();
            }
            _ => return self.apply_pattern_or_command(rule, catalog),
        }
        Ok(())
    }

    fn apply_pattern_or_command(&mut self, rule: &str, catalog: &Catalog) -> Result<(), RuleError> {
        let bytes = rule.as_bytes();
        match bytes.first() {
            Some(b'~' | b'%') => self.add_key_pattern(rule),
            Some(b'&') => {
                if self.all_channels {
                    return Err(RuleError::AfterAllChannels);
                }
                let pattern = &bytes[1..];
                if has_spaces(pattern) {
                    return Err(RuleError::Syntax);
                }
                if !self.channels.iter().any(|known| known == pattern) {
                    self.channels.push(pattern.to_vec());
                }
                Ok(())
            }
            Some(sign @ (b'+' | b'-')) if bytes.get(1) == Some(&b'@') => {
                let category = Categories::named(&rule[2..]).ok_or(RuleError::UnknownName)?;
                self.set_category(category, *sign == b'+', catalog);
                Ok(())
            }
            Some(b'+') => self.allow_command(&rule[1..], catalog),
            Some(b'-') => {
                let id = catalog.id(&rule[1..]).ok_or(RuleError::UnknownName)?;
                self.change(id, false, catalog);
                Ok(())
            }
            _ => Err(RuleError::Syntax),
        }
    }

    fn add_key_pattern(&mut self, rule: &str) -> Result<(), RuleError> {
        if self.all_keys {
            return Err(RuleError::AfterAllKeys);
        }
        let bytes = rule.as_bytes();
        let (access, offset) = if bytes[0] == b'%' {
            let mut access = KeyAccess {
                read: false,
                write: false,
            };
            let mut offset = 1;
            loop {
                match bytes.get(offset).map(u8::to_ascii_uppercase) {
                    Some(b'R') if !access.read => access.read = true,
                    Some(b'W') if !access.write => access.write = true,
                    Some(b'~') => {
                        offset += 1;
                        break;
                    }
                    _ => return Err(RuleError::Syntax),
                }
                offset += 1;
            }
            (access, offset)
        } else {
            (KeyAccess::READ_WRITE, 1)
        };
        let pattern = &bytes[offset..];
        if has_spaces(pattern) {
            return Err(RuleError::Syntax);
        }
        match self.keys.iter_mut().find(|known| known.pattern == pattern) {
            Some(known) => {
                known.access.read |= access.read;
                known.access.write |= access.write;
            }
            None => self.keys.push(KeyPattern {
                pattern: pattern.to_vec(),
                access,
            }),
        }
        Ok(())
    }

    fn allow_command(&mut self, name: &str, catalog: &Catalog) -> Result<(), RuleError> {
        let Some((command, sub)) = name.rsplit_once('|') else {
            let id = catalog.id(name).ok_or(RuleError::UnknownName)?;
            self.change(id, true, catalog);
            return Ok(());
        };
        let id = catalog.id(command).ok_or(RuleError::UnknownName)?;
        if catalog.entry(id).parent.is_some() {
            return Err(RuleError::FirstArgOfSubcommand);
        }
        if sub.is_empty() {
            return Err(RuleError::Syntax);
        }
        if catalog.entry(id).subcommands.is_empty() {
            // Not a container: a first argument allowed (`+select|0`).
            let sub = sub.to_ascii_lowercase();
            match self.first_args.iter_mut().find(|(known, _)| *known == id) {
                Some((_, args)) if args.contains(&sub) => {}
                Some((_, args)) => args.push(sub),
                None => self.first_args.push((id, vec![sub])),
            }
        } else {
            let sub_id = catalog.id(name).ok_or(RuleError::UnknownName)?;
            self.change(sub_id, true, catalog);
        }
        Ok(())
    }

    /// Allows or denies one command (with its subcommands), dropping its first-arg rules.
    fn change(&mut self, id: usize, allow: bool, catalog: &Catalog) {
        self.set_bit(id, allow);
        self.first_args.retain(|(known, _)| *known != id);
        for &sub in &catalog.entry(id).subcommands {
            self.set_bit(sub, allow);
        }
    }

    fn set_bit(&mut self, id: usize, allow: bool) {
        if let Some(bit) = self.allowed.get_mut(id) {
            *bit = allow;
        }
        if !allow {
            self.all_commands = false;
        }
    }

    fn set_category(&mut self, category: Categories, allow: bool, catalog: &Catalog) {
        let ids: Vec<usize> = catalog
            .entries()
            .filter(|(_, entry)| entry.categories.contains(category))
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            self.change(id, allow, catalog);
        }
    }

    /// Checks `request` (Redis's `ACLSelectorCheckCmd`).
    pub fn check(&self, request: &Request<'_>) -> Result<(), Denial> {
        if !self.all_commands && !request.no_auth && !self.allowed_command(request) {
            return Err(Denial::Command);
        }
        if !self.all_keys {
            for (index, (key, access)) in request.keys.iter().enumerate() {
                if !self.key_allowed(key, *access) {
                    return Err(Denial::Key(index));
                }
            }
        }
        if !self.all_channels {
            for (index, (channel, pattern)) in request.channels.iter().enumerate() {
                if !self.channel_allowed(channel, *pattern) {
                    return Err(Denial::Channel(index));
                }
            }
        }
        Ok(())
    }

    fn allowed_command(&self, request: &Request<'_>) -> bool {
        if self.allowed.get(request.command).copied().unwrap_or(false) {
            return true;
        }
        let Some(first) = request.first_arg else {
            return false;
        };
        self.first_args
            .iter()
            .find(|(id, _)| *id == request.command)
            .is_some_and(|(_, args)| {
                args.iter()
                    .any(|arg| arg.as_bytes().eq_ignore_ascii_case(first))
            })
    }

    fn key_allowed(&self, key: &[u8], access: KeyAccess) -> bool {
        // One pattern matching the key must grant every permission needed, as Redis checks
        // (a key the command neither reads nor writes needs only a matching pattern).
        self.keys.iter().any(|pattern| {
            (pattern.access.read || !access.read)
                && (pattern.access.write || !access.write)
                && glob_match(&pattern.pattern, key, false)
        })
    }

    /// Whether the channel (a literal, or a pattern compared literally) is allowed.
    pub fn channel_allowed(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.all_channels
            || self.channels.iter().any(|allowed| {
                if is_pattern {
                    allowed == channel
                } else {
                    glob_match(allowed, channel, false)
                }
            })
    }

    /// Whether the selector allows every channel.
    pub fn allows_all_channels(&self) -> bool {
        self.all_channels
    }

    /// Whether the selector allows every command, key and channel (the check can be skipped).
    pub fn unrestricted(&self) -> bool {
        self.all_commands && self.all_keys && self.all_channels
    }

    /// The key patterns as `ACL GETUSER` shows them (`~*`, or `~a* %R~b*`).
    pub fn describe_keys(&self) -> String {
        if self.all_keys {
            return "~*".into();
        }
        self.keys
            .iter()
            .map(|pattern| {
                let prefix = match (pattern.access.read, pattern.access.write) {
                    (true, true) => "~",
                    (true, false) => "%R~",
                    _ => "%W~",
                };
                format!("{prefix}{}", String::from_utf8_lossy(&pattern.pattern))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The channel patterns as `ACL GETUSER` shows them (`&*`, or `&a &b`).
    pub fn describe_channels(&self) -> String {
        if self.all_channels {
            return "&*".into();
        }
        self.channels
            .iter()
            .map(|channel| format!("&{}", String::from_utf8_lossy(channel)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The selector as rules (Redis's `ACLDescribeSelector`): keys, channels, then commands.
    pub fn describe(&self, catalog: &Catalog) -> String {
        let mut text = String::new();
        if self.all_keys {
            text.push_str("~* ");
        } else {
            for pattern in &self.keys {
                let prefix = match (pattern.access.read, pattern.access.write) {
                    (true, true) => "~",
                    (true, false) => "%R~",
                    _ => "%W~",
                };
                text.push_str(prefix);
                text.push_str(&String::from_utf8_lossy(&pattern.pattern));
                text.push(' ');
            }
        }
        if self.all_channels {
            text.push_str("&* ");
        } else {
            text.push_str("resetchannels ");
            for channel in &self.channels {
                text.push('&');
                text.push_str(&String::from_utf8_lossy(channel));
                text.push(' ');
            }
        }
        text.push_str(&self.describe_commands(catalog));
        text
    }

    /// The command rules that rebuild this selector's permissions: `+@all` or `-@all`, the
    /// categories that fit best, then single commands (Redis's
    /// `ACLDescribeSelectorCommandRules`).
    pub fn describe_commands(&self, catalog: &Catalog) -> String {
        let additive = !self.future_commands;
        let mut rules: Vec<String> = vec![if additive { "-@all" } else { "+@all" }.into()];
        let mut fake = Selector::new(catalog, false);
        let _ = fake.apply(&rules[0], catalog);
        // The commands still to account for, and the categories used.
        let mut temp = self.clone();
        let mut applied = [false; CATEGORY_NAMES.len()];
        loop {
            let mut best: Option<(usize, usize, usize)> = None; // (index, diff, same)
            for (index, _) in CATEGORY_NAMES.iter().enumerate() {
                if applied[index] {
                    continue;
                }
                let (on, off) = temp.count_category(Categories(1 << index), catalog);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                let better = match best {
                    None => true,
                    Some((_, best_diff, best_same)) => {
                        diff < best_diff || (diff == best_diff && same > best_same)
                    }
                };
                if same > diff && better {
                    best = Some((index, diff, same));
                }
            }
            let Some((index, _, _)) = best else {
                break;
            };
            let category = Categories(1 << index);
            fake.set_category(category, additive, catalog);
            temp.set_category(category, !additive, catalog);
            rules.push(format!(
                "{}@{}",
                if additive { '+' } else { '-' },
                CATEGORY_NAMES[index]
            ));
            applied[index] = true;
        }
        for (id, entry) in catalog.commands() {
            self.describe_single(id, catalog, &mut fake, &mut rules);
            for &sub in &entry.subcommands {
                self.describe_single(sub, catalog, &mut fake, &mut rules);
            }
            if !self.allowed[id]
                && let Some((_, args)) = self.first_args.iter().find(|(known, _)| *known == id)
            {
                for arg in args {
                    rules.push(format!("+{}|{arg}", entry.name));
                }
            }
        }
        rules.join(" ")
    }

    fn describe_single(
        &self,
        id: usize,
        catalog: &Catalog,
        fake: &mut Selector,
        rules: &mut Vec<String>,
    ) {
        let wanted = self.allowed[id];
        if fake.allowed[id] != wanted {
            rules.push(format!(
                "{}{}",
                if wanted { '+' } else { '-' },
                catalog.entry(id).name
            ));
            fake.change(id, wanted, catalog);
        }
    }

    /// Commands of `category` allowed and denied here.
    fn count_category(&self, category: Categories, catalog: &Catalog) -> (usize, usize) {
        catalog
            .entries()
            .filter(|(_, entry)| entry.categories.contains(category))
            .fold((0, 0), |(on, off), (id, _)| {
                if self.allowed[id] {
                    (on + 1, off)
                } else {
                    (on, off + 1)
                }
            })
    }
}

fn has_spaces(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| b.is_ascii_whitespace() || *b == 0)
}
