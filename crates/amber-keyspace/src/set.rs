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
    Table(Dict<()>),
    /// A table's members, read-only, packed in one buffer in table order: what a capture
    /// hands out instead of a copied table (see [`SetValue::capture_copy`]). It reports the
    /// `hashtable` encoding and becomes a table again at the first change.
    Frozen(FrozenMembers),
}

/// Tables of at most this many buckets have their members loaded ahead of a capture's copy.
const TOUCH_BUCKETS: usize = 32;

/// Members packed one after the other, each after its length (4 bytes, little-endian).
#[derive(Clone, Default)]
pub struct FrozenMembers {
    bytes: Vec<u8>,
    count: usize,
}

impl FrozenMembers {
    /// Packs the members of `table`, in its order.
    fn of(table: &Dict<()>) -> FrozenMembers {
        // One pass over the members (each a node of its own, a cache miss): the buffer is
        // sized for short members and grows for long ones.
        let mut bytes = Vec::with_capacity(table.len() * 24);
        for (member, ()) in table.iter() {
            // A member is at most `proto-max-bulk-len` (512 MB by default, under 4 GiB).
            bytes.extend_from_slice(&(member.len() as u32).to_le_bytes());
            bytes.extend_from_slice(member);
        }
        FrozenMembers {
            bytes,
            count: table.len(),
        }
    }

    /// The members, in the order of the table they were packed from.
    pub fn iter(&self) -> FrozenIter<'_> {
        FrozenIter { rest: &self.bytes }
    }

    /// A table of the same members.
    fn thaw(&self) -> Dict<()> {
        let mut table = Dict::new();
        table.reserve(self.count);
        self.iter().for_each(|member| {
            table.insert(member, ());
        });
        table
    }
}

/// The members of a [`FrozenMembers`].
#[derive(Clone)]
pub struct FrozenIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for FrozenIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (length, rest) = self.rest.split_first_chunk::<4>()?;
        let length = (u32::from_le_bytes(*length) as usize).min(rest.len());
        let (member, rest) = rest.split_at(length);
        self.rest = rest;
        Some(member)
    }
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
    /// Number of members.
    pub fn len(&self) -> usize {
        match self {
            SetValue::Ints(ints) => ints.len(),
            SetValue::Table(table) => table.len(),
            SetValue::Frozen(frozen) => frozen.count,
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
            SetValue::Table(_) | SetValue::Frozen(_) => "hashtable",
        }
    }

    /// Whether `member` is in the set.
    pub fn contains(&self, member: &[u8]) -> bool {
        match self {
            SetValue::Ints(ints) => {
                member_as_int(member).is_some_and(|n| ints.binary_search(&n).is_ok())
            }
            SetValue::Table(table) => table.contains_key(member),
            SetValue::Frozen(frozen) => frozen.iter().any(|m| m == member),
        }
    }

    /// Adds `member`; true if it was new. Converts to a table past `max_intset` members or for
    /// a non-integer member.
    pub fn add(&mut self, member: &[u8], max_intset: usize) -> bool {
        self.thaw();
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
            SetValue::Ints(_) | SetValue::Frozen(_) => unreachable!("converted to a table above"),
        }
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.thaw();
        match self {
            SetValue::Ints(ints) => match member_as_int(member).map(|n| ints.binary_search(&n)) {
                Some(Ok(position)) => {
                    ints.remove(position);
                    true
                }
                _ => false,
            },
            SetValue::Table(table) => table.remove(member).is_some(),
            SetValue::Frozen(_) => unreachable!("thawed above"),
        }
    }

    /// Every member: ascending integers for an intset, table order otherwise.
    pub fn members(&self) -> Vec<Vec<u8>> {
        match self {
            SetValue::Ints(ints) => ints.iter().map(|n| n.to_string().into_bytes()).collect(),
            SetValue::Table(table) => table.iter().map(|(m, ())| m.to_vec()).collect(),
            SetValue::Frozen(frozen) => frozen.iter().map(<[u8]>::to_vec).collect(),
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
            SetValue::Frozen(frozen) => frozen.iter().for_each(visit),
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
            SetValue::Frozen(frozen) => {
                frozen.iter().for_each(visit);
                0
            }
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
            SetValue::Frozen(frozen) if frozen.count == 0 => None,
            SetValue::Frozen(frozen) => frozen
                .iter()
                .nth((random() % frozen.count as u64) as usize)
                .map(<[u8]>::to_vec),
        }
    }

    /// A copy for a capture (INV-CAPTURE): a table's members packed in one buffer
    /// ([`SetValue::Frozen`]) rather than a table of their own, one allocation in place of one
    /// per member. The event loop makes these copies while it serves, so they must be cheap.
    pub fn capture_copy(&self) -> SetValue {
        match self {
            SetValue::Table(table) => SetValue::Frozen(FrozenMembers::of(table)),
            other => other.clone(),
        }
    }

    /// As [`SetValue::len`], with the members of a small table loaded: what
    /// [`SetValue::capture_copy`] reads next.
    pub fn touch_for_copy(&self) -> u64 {
        match self {
            SetValue::Table(table) => table.touch_heads(TOUCH_BUCKETS),
            _ => self.len() as u64,
        }
    }

    /// Turns a frozen copy back into a table before it changes.
    fn thaw(&mut self) {
        if let SetValue::Frozen(frozen) = self {
            *self = SetValue::Table(frozen.thaw());
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
    fn a_capture_copy_holds_the_members_in_table_order_and_thaws_on_change() {
        let mut set = SetValue::default();
        for member in ["a", "", "ccc", "12", "b"] {
            set.add(member.as_bytes(), 512);
        }
        let mut copy = set.capture_copy();
        assert!(matches!(copy, SetValue::Frozen(_)));
        assert_eq!(copy.members(), set.members(), "same members, same order");
        assert_eq!((copy.len(), copy.encoding()), (5, "hashtable"));
        assert!(copy.contains(b"") && copy.contains(b"ccc") && !copy.contains(b"cc"));
        let mut seen = Vec::new();
        assert_eq!(copy.scan(0, |m| seen.push(m.to_vec())), 0);
        assert_eq!(seen, set.members());
        let picked = copy.random_member(|| 7).expect("a member");
        assert!(set.contains(&picked));
        assert!(copy.add(b"d", 512) && !copy.add(b"a", 512));
        assert!(matches!(copy, SetValue::Table(_)));
        assert!(copy.remove(b"a") && copy.len() == 5 && set.len() == 5);
        let mut copy = set.capture_copy();
        assert!(copy.remove(b"b") && !copy.contains(b"b") && set.contains(b"b"));
        let ints = SetValue::Ints(vec![1, 2]);
        assert!(matches!(ints.capture_copy(), SetValue::Ints(_)));
    }

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
