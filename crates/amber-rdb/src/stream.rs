//! Streams: listpack nodes keyed by a master id, the stream's metadata and its consumer groups.

use std::io::Read;

use crate::encodings::{self, Element, IntText};
use crate::error::ErrorKind;
use crate::model::{
    Consumer, ConsumerGroup, PendingEntry, Stream, StreamEntry, StreamId, StreamNode, types,
};
use crate::reader::{Input, Stored};
use crate::writer::{write_length, write_string};

/// Entry flag: the entry was deleted.
pub(crate) const FLAG_DELETED: i64 = 1;
/// Entry flag: the entry has exactly the master entry's fields.
pub(crate) const FLAG_SAME_FIELDS: i64 = 2;

fn raw_id(bytes: &[u8]) -> Result<StreamId, ErrorKind> {
    if bytes.len() != 16 {
        return Err(ErrorKind::corrupt(
            "stream",
            format!("node key of {} bytes instead of 16", bytes.len()),
        ));
    }
    let ms = u64::from_be_bytes(bytes[..8].try_into().unwrap_or_default());
    let seq = u64::from_be_bytes(bytes[8..].try_into().unwrap_or_default());
    Ok(StreamId { ms, seq })
}

fn id_pair<R: Read>(input: &mut Input<R>) -> Result<StreamId, ErrorKind> {
    Ok(StreamId {
        ms: input.length()?,
        seq: input.length()?,
    })
}

/// A stream as the file stores it: its nodes still LZF-compressed where the file compressed
/// them, and not yet checked. [`PackedStream::unpack`] decompresses and checks them, so that
/// a loader can leave that work to whichever thread has time for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackedStream {
    /// Everything but the nodes.
    stream: Stream,
    /// Each node's master id and listpack, as stored.
    nodes: Vec<(StreamId, Stored)>,
}

impl PackedStream {
    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The stream, its nodes decompressed and each checked as Redis's deep sanitization
    /// checks them (see [`Stream::check`]). Takes the nodes out: a second call finds none.
    pub fn unpack(&mut self) -> Result<Stream, ErrorKind> {
        let mut stream = std::mem::take(&mut self.stream);
        stream.nodes.reserve_exact(self.nodes.len());
        let mut live = 0u64;
        for (master, stored) in self.nodes.drain(..) {
            // Checked right after it is decompressed, while it is still in the cache.
            let listpack = stored.into_bytes()?;
            live += check_node(&listpack)?;
            stream.nodes.push(StreamNode { master, listpack });
        }
        check_length(live, stream.length)?;
        Ok(stream)
    }
}

/// Reads a stream value of type `type_byte` (15, 19 or 21) with its nodes as stored:
/// [`PackedStream::unpack`] decompresses and checks them.
pub(crate) fn read_stream_packed<R: Read>(
    input: &mut Input<R>,
    type_byte: u8,
) -> Result<PackedStream, ErrorKind> {
    let mut packed = PackedStream::default();
    let nodes = input.count()?;
    for _ in 0..nodes {
        let master = raw_id(&input.string()?)?;
        let listpack = input.stored_string()?;
        if packed.nodes.last().is_some_and(|(last, _)| *last >= master) {
            return Err(ErrorKind::corrupt(
                "stream",
                "node keys are not in increasing order",
            ));
        }
        packed.nodes.push((master, listpack));
    }
    read_stream_rest(input, type_byte, &mut packed.stream)?;
    Ok(packed)
}

/// Reads what follows a stream's nodes: its metadata and consumer groups.
fn read_stream_rest<R: Read>(
    input: &mut Input<R>,
    type_byte: u8,
    stream: &mut Stream,
) -> Result<(), ErrorKind> {
    stream.length = input.length()?;
    stream.last_id = id_pair(input)?;
    if type_byte >= types::STREAM_LISTPACKS_2 {
        stream.first_id = Some(id_pair(input)?);
        stream.max_deleted_id = Some(id_pair(input)?);
        stream.entries_added = Some(input.length()?);
    }
    let groups = input.count()?;
    for _ in 0..groups {
        let group = read_group(input, type_byte)?;
        if stream.groups.iter().any(|g| g.name == group.name) {
            return Err(ErrorKind::corrupt(
                "stream",
                "Duplicated consumer group name",
            ));
        }
        stream.groups.push(group);
    }
    Ok(())
}

/// Checks every node of `stream` element by element, and that their live entries add up to
/// the stream's length.
pub(crate) fn check_nodes(stream: &Stream) -> Result<(), ErrorKind> {
    let mut live = 0u64;
    for node in &stream.nodes {
        live += check_node(&node.listpack)?;
    }
    check_length(live, stream.length)
}

/// Checks that the nodes' live entries add up to the stream's declared length.
fn check_length(live: u64, length: u64) -> Result<(), ErrorKind> {
    if live != length {
        return Err(ErrorKind::corrupt(
            "stream",
            format!("{live} live entries but the length says {length}"),
        ));
    }
    Ok(())
}

/// Checks a node's listpack as Redis's deep sanitization does (master entry, every entry's
/// element count, nothing after the last entry); returns its live entry count.
fn check_node(listpack: &[u8]) -> Result<u64, ErrorKind> {
    if let Some(live) = crate::node_check::live_entries(listpack) {
        return Ok(live);
    }
    // The fast walk only says "malformed": this one says what is wrong.
    check_node_in_detail(listpack)
}

/// [`check_node`] element by element through [`encodings::visit_listpack`], with the error
/// that says what is wrong.
pub(crate) fn check_node_in_detail(listpack: &[u8]) -> Result<u64, ErrorKind> {
    let mut check = NodeCheck::default();
    encodings::visit_listpack(listpack, |item| check.element(item))?;
    check.finish()
}

/// Where a node's check is: which element comes next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Expect {
    #[default]
    Live,
    Deleted,
    MasterCount,
    MasterFields(usize),
    MasterEnd,
    Flags,
    MsDelta,
    SeqDelta,
    FieldCount,
    Names(usize),
    Values(usize),
    LpCount,
    /// After the last entry: nothing may follow.
    End,
}

/// Checks a node element by element as the listpack is walked (no element is copied): the
/// structure Redis's deep sanitization checks.
#[derive(Debug, Default)]
struct NodeCheck {
    expect: Expect,
    broken: bool,
    live: u64,
    entries_left: u64,
    master_fields: usize,
    flags: i64,
    fields: usize,
    flagged_live: u64,
    elements: u64,
}

impl NodeCheck {
    fn element(&mut self, item: Element<'_>) {
        self.elements += 1;
        if self.broken {
            return;
        }
        let number = || element_int(Some(&item)).ok();
        let count = || number().and_then(|n| usize::try_from(n).ok());
        self.expect = match self.expect {
            Expect::Live => match number().and_then(|n| u64::try_from(n).ok()) {
                Some(live) => {
                    self.live = live;
                    Expect::Deleted
                }
                None => return self.fail(),
            },
            Expect::Deleted => match number()
                .and_then(|n| u64::try_from(n).ok())
                .and_then(|deleted| deleted.checked_add(self.live))
            {
                Some(total) => {
                    self.entries_left = total;
                    Expect::MasterCount
                }
                None => return self.fail(),
            },
            Expect::MasterCount => match count() {
                Some(0) => Expect::MasterEnd,
                Some(n) => {
                    self.master_fields = n;
                    Expect::MasterFields(n)
                }
                None => return self.fail(),
            },
            Expect::MasterFields(1) => Expect::MasterEnd,
            Expect::MasterFields(n) => Expect::MasterFields(n - 1),
            Expect::MasterEnd if number() == Some(0) => self.next_entry(),
            Expect::MasterEnd => return self.fail(),
            Expect::Flags => match number() {
                Some(flags) => {
                    self.flags = flags;
                    self.entries_left -= 1;
                    if flags & FLAG_DELETED == 0 {
                        self.flagged_live += 1;
                    }
                    Expect::MsDelta
                }
                None => return self.fail(),
            },
            Expect::MsDelta if number().is_some() => Expect::SeqDelta,
            Expect::SeqDelta if number().is_some() => {
                if self.flags & FLAG_SAME_FIELDS != 0 {
                    self.fields = self.master_fields;
                    self.values_or_count()
                } else {
                    Expect::FieldCount
                }
            }
            Expect::MsDelta | Expect::SeqDelta => return self.fail(),
            Expect::FieldCount => match count() {
                Some(0) => {
                    self.fields = 0;
                    Expect::LpCount
                }
                Some(n) => {
                    self.fields = n;
                    Expect::Names(n)
                }
                None => return self.fail(),
            },
            Expect::Names(1) => self.values_or_count(),
            Expect::Names(n) => Expect::Names(n - 1),
            Expect::Values(1) => Expect::LpCount,
            Expect::Values(n) => Expect::Values(n - 1),
            Expect::End => return self.fail(),
            Expect::LpCount => {
                let extra = if self.flags & FLAG_SAME_FIELDS != 0 {
                    3
                } else {
                    self.fields + 4
                };
                if count() != Some(self.fields + extra) {
                    return self.fail();
                }
                self.next_entry()
            }
        };
    }

    fn values_or_count(&self) -> Expect {
        if self.fields == 0 {
            Expect::LpCount
        } else {
            Expect::Values(self.fields)
        }
    }

    fn next_entry(&mut self) -> Expect {
        if self.entries_left == 0 {
            Expect::End
        } else {
            Expect::Flags
        }
    }

    fn fail(&mut self) {
        self.broken = true;
    }

    /// The live entry count, once every element was seen.
    fn finish(self) -> Result<u64, ErrorKind> {
        if self.elements == 0 {
            return Err(ErrorKind::corrupt("stream", "Empty listpack inside stream"));
        }
        let complete = self.entries_left == 0 && self.expect == Expect::End;
        if self.broken || !complete || self.flagged_live != self.live {
            return Err(ErrorKind::corrupt(
                "stream",
                "Stream listpack integrity check failed",
            ));
        }
        Ok(self.live)
    }
}

/// A node element that must be a number.
fn element_int(item: Option<&Element<'_>>) -> Result<i64, ErrorKind> {
    let number = match item {
        Some(Element::Int(number)) => Some(*number),
        Some(Element::Bytes(bytes)) => amber_protocol::parse_i64(bytes),
        None => None,
    };
    number.ok_or_else(|| ErrorKind::corrupt("stream", "a number was expected in a node"))
}

fn read_group<R: Read>(input: &mut Input<R>, type_byte: u8) -> Result<ConsumerGroup, ErrorKind> {
    let name = input.string()?;
    let last_id = id_pair(input)?;
    let entries_read = if type_byte >= types::STREAM_LISTPACKS_2 {
        Some(input.length()?)
    } else {
        None
    };
    let pending_count = input.count()?;
    let mut pending = Vec::with_capacity(pending_count.min(4096) as usize);
    for _ in 0..pending_count {
        let id = raw_id(&input.array::<16>("a pending entry id")?)?;
        let delivery_time = input.millis()?;
        let delivery_count = input.length()?;
        pending.push(PendingEntry {
            id,
            delivery_time,
            delivery_count,
        });
    }
    // Consumers' ids are looked up here: sorted, so a large PEL loads in n log n, not n².
    let mut known: Vec<StreamId> = pending.iter().map(|entry| entry.id).collect();
    known.sort_unstable();
    let consumer_count = input.count()?;
    let mut consumers = Vec::with_capacity(consumer_count.min(4096) as usize);
    for _ in 0..consumer_count {
        let name = input.string()?;
        let seen_time = input.millis()?;
        let active_time = if type_byte >= types::STREAM_LISTPACKS_3 {
            Some(input.millis()?)
        } else {
            None
        };
        let owned = input.count()?;
        let mut ids = Vec::with_capacity(owned.min(4096) as usize);
        for _ in 0..owned {
            let id = raw_id(&input.array::<16>("a consumer's pending id")?)?;
            if known.binary_search(&id).is_err() {
                return Err(ErrorKind::corrupt(
                    "stream",
                    "Consumer entry not found in group global PEL",
                ));
            }
            ids.push(id);
        }
        consumers.push(Consumer {
            name,
            seen_time,
            active_time,
            pending: ids,
        });
    }
    let mut names: Vec<&[u8]> = consumers.iter().map(|c| c.name.as_slice()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() != consumers.len() {
        return Err(ErrorKind::corrupt(
            "stream",
            "Duplicate stream consumer detected",
        ));
    }
    let owned: usize = consumers.iter().map(|c| c.pending.len()).sum();
    let mut ids: Vec<StreamId> = pending.iter().map(|p| p.id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != pending.len() {
        return Err(ErrorKind::corrupt(
            "stream",
            "Duplicated global PEL entry loading stream consumer group",
        ));
    }
    if owned != pending.len() {
        return Err(ErrorKind::corrupt(
            "stream",
            "a PEL entry has no consumer, or two",
        ));
    }
    Ok(ConsumerGroup {
        name,
        last_id,
        entries_read,
        pending,
        consumers,
    })
}

/// Decodes the live entries of a checked node into `out`.
pub(crate) fn decode_node(node: &StreamNode, out: &mut Vec<StreamEntry>) -> Result<(), ErrorKind> {
    let mut items: Vec<Element<'_>> = Vec::new();
    encodings::visit_listpack(&node.listpack, |item| items.push(item))?;
    let mut pos = items.iter();
    element_int(pos.next())?;
    element_int(pos.next())?;
    let master_count = usize::try_from(element_int(pos.next())?)
        .map_err(|_| ErrorKind::corrupt("stream", "negative field count"))?;
    let master_fields: Vec<Vec<u8>> = (0..master_count)
        .map(|_| owned(pos.next()))
        .collect::<Result<_, _>>()?;
    element_int(pos.next())?;
    while pos.len() > 0 {
        let flags = element_int(pos.next())?;
        let ms = node.master.ms.wrapping_add(element_int(pos.next())? as u64);
        let seq = node
            .master
            .seq
            .wrapping_add(element_int(pos.next())? as u64);
        let fields: Vec<(Vec<u8>, Vec<u8>)> = if flags & FLAG_SAME_FIELDS != 0 {
            master_fields
                .iter()
                .map(|field| Ok((field.clone(), owned(pos.next())?)))
                .collect::<Result<_, ErrorKind>>()?
        } else {
            let n = usize::try_from(element_int(pos.next())?)
                .map_err(|_| ErrorKind::corrupt("stream", "negative field count"))?;
            (0..n)
                .map(|_| Ok((owned(pos.next())?, owned(pos.next())?)))
                .collect::<Result<_, ErrorKind>>()?
        };
        element_int(pos.next())?;
        if flags & FLAG_DELETED == 0 {
            out.push(StreamEntry {
                id: StreamId { ms, seq },
                fields,
            });
        }
    }
    Ok(())
}

fn owned(item: Option<&Element<'_>>) -> Result<Vec<u8>, ErrorKind> {
    let mut text: IntText = [0; 20];
    item.map(|item| item.bytes(&mut text).to_vec())
        .ok_or_else(|| ErrorKind::corrupt("stream", "truncated entry"))
}

/// The stream type byte an RDB version uses.
pub(crate) fn stream_type(version: u32) -> u8 {
    match version {
        ..=9 => types::STREAM_LISTPACKS,
        10 => types::STREAM_LISTPACKS_2,
        _ => types::STREAM_LISTPACKS_3,
    }
}

fn raw_id_bytes(id: StreamId) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&id.ms.to_be_bytes());
    bytes[8..].copy_from_slice(&id.seq.to_be_bytes());
    bytes
}

/// Appends `stream` in the layout of `version` (15, 19 or 21 by version): its nodes as they
/// are, the metadata, then the consumer groups.
pub(crate) fn write_stream(out: &mut Vec<u8>, stream: &Stream, version: u32, compression: bool) {
    let nodes = stream
        .nodes
        .iter()
        .map(|node| (node.master, node.listpack.as_slice()));
    write_stream_nodes(out, nodes, compression);
    write_stream_rest(out, stream, version, compression);
}

/// Appends the node count and the nodes, each listpack as it is.
pub(crate) fn write_stream_nodes<'a>(
    out: &mut Vec<u8>,
    nodes: impl ExactSizeIterator<Item = (StreamId, &'a [u8])>,
    compression: bool,
) {
    write_length(out, nodes.len() as u64);
    for (master, listpack) in nodes {
        write_string(out, &raw_id_bytes(master), compression);
        write_string(out, listpack, compression);
    }
}

/// Appends what follows the nodes: the counters and the consumer groups of `stream` (whose
/// own nodes are not looked at).
pub(crate) fn write_stream_rest(
    out: &mut Vec<u8>,
    stream: &Stream,
    version: u32,
    compression: bool,
) {
    let string = |out: &mut Vec<u8>, bytes: &[u8]| write_string(out, bytes, compression);
    write_length(out, stream.length);
    write_id(out, stream.last_id);
    if version >= 10 {
        write_id(out, stream.first_id.unwrap_or_default());
        write_id(out, stream.max_deleted_id.unwrap_or_default());
        write_length(out, stream.entries_added.unwrap_or(stream.length));
    }
    write_length(out, stream.groups.len() as u64);
    for group in &stream.groups {
        string(out, &group.name);
        write_id(out, group.last_id);
        if version >= 10 {
            // Unknown (a file older than RDB 10) is Redis's -1.
            write_length(out, group.entries_read.unwrap_or(u64::MAX));
        }
        write_length(out, group.pending.len() as u64);
        for pending in &group.pending {
            out.extend_from_slice(&raw_id_bytes(pending.id));
            out.extend_from_slice(&pending.delivery_time.to_le_bytes());
            write_length(out, pending.delivery_count);
        }
        write_length(out, group.consumers.len() as u64);
        for consumer in &group.consumers {
            string(out, &consumer.name);
            out.extend_from_slice(&consumer.seen_time.to_le_bytes());
            if version >= 11 {
                let active = consumer.active_time.unwrap_or(consumer.seen_time);
                out.extend_from_slice(&active.to_le_bytes());
            }
            write_length(out, consumer.pending.len() as u64);
            for id in &consumer.pending {
                out.extend_from_slice(&raw_id_bytes(*id));
            }
        }
    }
}

fn write_id(out: &mut Vec<u8>, id: StreamId) {
    write_length(out, id.ms);
    write_length(out, id.seq);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{PackedStream, Stored, StreamId};

    /// A sound node of `count` entries with the master's two fields, as Redis packs it.
    fn node(count: i64) -> Vec<u8> {
        let int = |n: i64| n.to_string().into_bytes();
        let mut elements = vec![int(count), int(0), int(2), b"sensor".to_vec()];
        elements.extend([b"reading".to_vec(), int(0)]);
        for index in 0..count {
            elements.extend([int(super::FLAG_SAME_FIELDS), int(index * 100), int(0)]);
            elements.extend([format!("s{}", index % 7).into_bytes(), int(1000 + index)]);
            elements.push(int(5));
        }
        crate::encode::listpack(elements.iter().map(Vec::as_slice))
    }

    fn packed(nodes: Vec<Stored>, length: u64) -> PackedStream {
        let mut packed = PackedStream::default();
        packed.stream.length = length;
        packed.nodes = nodes
            .into_iter()
            .enumerate()
            .map(|(index, stored)| {
                (
                    StreamId {
                        ms: index as u64 * 1000,
                        seq: 0,
                    },
                    stored,
                )
            })
            .collect();
        packed
    }

    fn compressed(listpack: &[u8]) -> Stored {
        let compressed =
            crate::lzf::compress(listpack, listpack.len() * 2 + 64).expect("room enough");
        Stored::Lzf {
            compressed,
            len: listpack.len(),
        }
    }

    proptest! {
        /// Compressed and plain nodes unpack to the listpacks that were packed, in order.
        #[test]
        fn unpacks_to_the_nodes_as_written(counts in proptest::collection::vec(1i64..60, 1..6)) {
            let listpacks: Vec<Vec<u8>> = counts.iter().map(|&count| node(count)).collect();
            let stored = listpacks
                .iter()
                .enumerate()
                .map(|(index, listpack)| match index % 2 {
                    0 => compressed(listpack),
                    _ => Stored::Plain(listpack.clone()),
                })
                .collect();
            let total = counts.iter().sum::<i64>() as u64;
            let mut packed = packed(stored, total);
            let stream = packed.unpack().unwrap();
            let unpacked: Vec<Vec<u8>> = stream.nodes.into_iter().map(|node| node.listpack).collect();
            prop_assert_eq!(unpacked, listpacks);
            prop_assert_eq!(packed.node_count(), 0);
        }

        /// Damaged compressed bytes or a wrong declared length fail the unpack with an error,
        /// never a panic, unless they still decompress to a sound node of the declared size.
        #[test]
        fn damaged_compressed_nodes_fail_cleanly(
            count in 1i64..60,
            damage in (any::<prop::sample::Index>(), any::<u8>()),
            stretch in -3i64..4,
        ) {
            let Stored::Lzf { mut compressed, len } = compressed(&node(count)) else {
                unreachable!("compressed() makes an LZF node")
            };
            let at = damage.0.index(compressed.len());
            compressed[at] = damage.1;
            let len = len.saturating_add_signed(stretch as isize);
            let mut packed = packed(vec![Stored::Lzf { compressed, len }], count as u64);
            if let Ok(stream) = packed.unpack() {
                let unpacked = &stream.nodes[0].listpack;
                prop_assert_eq!(unpacked.len(), len);
                prop_assert_eq!(super::check_node_in_detail(unpacked).ok(), Some(count as u64));
            }
        }
    }

    #[test]
    fn a_length_that_the_nodes_do_not_add_up_to_is_corrupt() {
        let mut packed = packed(vec![compressed(&node(10))], 11);
        let error = packed.unpack().unwrap_err().to_string();
        assert!(
            error.contains("10 live entries but the length says 11"),
            "{error}"
        );
    }
}
