//! The commands ACL rules name: each command and subcommand with its ACL categories, as the
//! server that owns the command table describes them.

use std::collections::HashMap;

/// A set of ACL categories (`@read`, `@write`, ...), one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Categories(pub u32);

/// Redis's ACL categories, in the order Redis lists them (`ACL CAT`, rule descriptions).
pub const CATEGORY_NAMES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

impl Categories {
    /// The category named `name` (without `@`), case-insensitive.
    pub fn named(name: &str) -> Option<Categories> {
        CATEGORY_NAMES
            .iter()
            .position(|known| known.eq_ignore_ascii_case(name))
            .map(|bit| Categories(1 << bit))
    }

    /// Whether every category of `other` is in this set.
    pub fn contains(self, other: Categories) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// The union of two sets.
    pub fn with(self, other: Categories) -> Categories {
        Categories(self.0 | other.0)
    }

    /// The names of the categories in the set, in Redis's order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        CATEGORY_NAMES
            .iter()
            .enumerate()
            .filter(move |(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, name)| *name)
    }
}

/// One command or subcommand of the catalog.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// `get`, or `config|get` for a subcommand.
    pub name: String,
    /// Its ACL categories.
    pub categories: Categories,
    /// For a subcommand, its container's id.
    pub parent: Option<usize>,
    /// For a container, its subcommands' ids.
    pub subcommands: Vec<usize>,
}

/// Every command ACL rules may name, with ids that index permission bitmaps.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Adds a command (`parent` `None`) or a subcommand of an added container; its id.
    /// Names are kept lowercase.
    pub fn add(&mut self, name: &str, categories: Categories, parent: Option<usize>) -> usize {
        let id = self.entries.len();
        let name = name.to_ascii_lowercase();
        self.by_name.insert(name.clone(), id);
        self.entries.push(CatalogEntry {
            name,
            categories,
            parent,
            subcommands: Vec::new(),
        });
        if let Some(parent) = parent
            && let Some(container) = self.entries.get_mut(parent)
        {
            container.subcommands.push(id);
        }
        id
    }

    /// The id of `name` (`get`, `config|get`), case-insensitive.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// The entry of `id`.
    pub fn entry(&self, id: usize) -> &CatalogEntry {
        &self.entries[id]
    }

    /// How many commands and subcommands there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry with its id, commands before their subcommands.
    pub fn entries(&self) -> impl Iterator<Item = (usize, &CatalogEntry)> {
        self.entries.iter().enumerate()
    }

    /// The top-level commands (not subcommands), with their ids.
    pub fn commands(&self) -> impl Iterator<Item = (usize, &CatalogEntry)> {
        self.entries().filter(|(_, entry)| entry.parent.is_none())
    }
}
