//! Set values in Redis's two encodings: a sorted array of integers (`intset`) while every
//! member is an integer and the set is small, and a hash table (`hashtable`) otherwise.

use crate::dict::Dict;

/// Parses a member Redis would store in an intset (canonical decimal, as `string2ll`).
pub fn member_as_int(member: &[u8]) -> Option<i64> {
    amber_protocol::parse_i64(member)
}

/// A set.
#[derive(Clone)]
pub enum SetValue {
    /// Sorted integers (`OBJECT ENCODING` says `intset`).
    Ints(Vec<i64>),
    /// A hash table of members (`hashtable`).
    Table(Dict<(), ()>),
}

impl Default for SetValue {
    fn default() -> Self {
        SetValue::Ints(Vec::new())
    }
}

impl std::fmt::Debug for SetValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Set({} members, {})", self.len(), self.encoding())
    }
}

impl SetValue {
    /// Whether the members' table is resizing (INV-REHASH).
    pub(crate) fn is_rehashing(&self) -> bool {
        matches!(self, SetValue::Table(table) if table.is_rehashing())
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match self {
            SetValue::Ints(ints) => ints.len(),
            SetValue::Table(table) => table.len(),
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis's name for the encoding.
    pub fn encoding(&self) -> &'static str {
        match self {
            SetValue::Ints(_) => "intset",
            SetValue::Table(_) => "hashtable",
        }
    }

    /// Whether `member` is in the set.
    pub fn contains(&self, member: &[u8]) -> bool {
        match self {
            SetValue::Ints(ints) => {
                member_as_int(member).is_some_and(|n| ints.binary_search(&n).is_ok())
            }
            SetValue::Table(table) => table.contains_key(member),
        }
    }

    /// Adds `member`; true if it was new. Converts to a table past `max_intset` members or for
    /// a non-integer member.
    pub fn add(&mut self, member: &[u8], max_intset: usize) -> bool {
        if let SetValue::Ints(ints) = self {
            match member_as_int(member) {
                Some(n) => {
                    let Err(position) = ints.binary_search(&n) else {
                        return false;
                    };
                    ints.insert(position, n);
                    if ints.len() > max_intset {
                        self.convert();
                    }
                    return true;
                }
                None => self.convert(),
            }
        }
        match self {
            SetValue::Table(table) => table.insert(member, ()).is_none(),
            SetValue::Ints(_) => unreachable!("converted to a table above"),
        }
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            SetValue::Ints(ints) => match member_as_int(member).map(|n| ints.binary_search(&n)) {
                Some(Ok(position)) => {
                    ints.remove(position);
                    true
                }
                _ => false,
            },
            SetValue::Table(table) => table.remove(member).is_some(),
        }
    }

    /// Every member: ascending integers for an intset, table order otherwise.
    pub fn members(&self) -> Vec<Vec<u8>> {
        match self {
            SetValue::Ints(ints) => ints.iter().map(|n| n.to_string().into_bytes()).collect(),
            SetValue::Table(table) => table.iter().map(|(m, ())| m.to_vec()).collect(),
        }
    }

    /// Visits every member without allocating (intset members are formatted on the stack).
    pub fn for_each_member(&self, mut visit: impl FnMut(&[u8])) {
        match self {
            SetValue::Ints(ints) => {
                for n in ints {
                    let mut digits = [0u8; 20];
                    let text = amber_protocol::format_i64(*n, &mut digits);
                    visit(text);
                }
            }
            SetValue::Table(table) => table.iter().for_each(|(m, ())| visit(m)),
        }
    }

    /// One step of `SSCAN`: an intset is returned whole with cursor 0.
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&[u8])) -> u64 {
        match self {
            SetValue::Ints(ints) => {
                ints.iter().for_each(|n| visit(n.to_string().as_bytes()));
                0
            }
            SetValue::Table(table) => table.scan(cursor, |m, ()| visit(m)),
        }
    }

    /// A member picked at random.
    pub fn random_member(&self, mut random: impl FnMut() -> u64) -> Option<Vec<u8>> {
        match self {
            SetValue::Ints(ints) if ints.is_empty() => None,
            SetValue::Ints(ints) => Some(
                ints[(random() % ints.len() as u64) as usize]
                    .to_string()
                    .into_bytes(),
            ),
            SetValue::Table(table) => table.random_key(random).map(<[u8]>::to_vec),
        }
    }

    fn convert(&mut self) {
        if let SetValue::Ints(ints) = self {
            let mut table = Dict::new();
            table.reserve(ints.len());
            for n in ints.drain(..) {
                table.insert(n.to_string().as_bytes(), ());
            }
            *self = SetValue::Table(table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intsets_stay_sorted_and_convert_like_redis() {
        let mut set = SetValue::default();
        for member in ["5", "-3", "12", "5"] {
            set.add(member.as_bytes(), 4);
        }
        assert_eq!(
            set.members(),
            [b"-3".to_vec(), b"5".to_vec(), b"12".to_vec()]
        );
        assert_eq!(set.encoding(), "intset");
        assert!(set.contains(b"12") && !set.contains(b"012"));
        set.add(b"7", 4);
        assert_eq!(set.encoding(), "intset");
        set.add(b"8", 4);
        assert_eq!(set.encoding(), "hashtable", "past set-max-intset-entries");
        let mut words = SetValue::default();
        words.add(b"1", 512);
        words.add(b"x", 512);
        assert_eq!(words.encoding(), "hashtable");
        assert!(words.contains(b"1") && words.remove(b"x") && !words.contains(b"x"));
    }
}
