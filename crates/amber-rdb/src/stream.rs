//! Streams: listpack nodes keyed by a master id, the stream's metadata and its consumer groups.

use std::io::Read;

use crate::encodings::{self, Element, IntText};
use crate::error::ErrorKind;
use crate::model::{
    Consumer, ConsumerGroup, PendingEntry, Stream, StreamEntry, StreamId, StreamNode, types,
};
use crate::reader::Input;
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

/// Reads a stream value of type `type_byte` (15, 19 or 21) with its nodes as stored, not yet
/// checked: [`check_nodes`] does that when the value is decoded, or the loader does it on
/// another thread than the one reading the file.
pub(crate) fn read_stream_unchecked<R: Read>(
    input: &mut Input<R>,
    type_byte: u8,
) -> Result<Stream, ErrorKind> {
    let mut stream = Stream::default();
    let nodes = input.count()?;
    for _ in 0..nodes {
        let master = raw_id(&input.string()?)?;
        let listpack = input.string()?;
        if stream
            .nodes
            .last()
            .is_some_and(|last| last.master >= master)
        {
            return Err(ErrorKind::corrupt(
                "stream",
                "node keys are not in increasing order",
            ));
        }
        stream.nodes.push(StreamNode { master, listpack });
    }
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
    Ok(stream)
}

/// Checks every node of `stream` element by element, and that their live entries add up to
/// the stream's length.
pub(crate) fn check_nodes(stream: &Stream) -> Result<(), ErrorKind> {
    let mut live = 0u64;
    for node in &stream.nodes {
        live += check_node(&node.listpack)?;
    }
    if live != stream.length {
        return Err(ErrorKind::corrupt(
            "stream",
            format!("{live} live entries but the length says {}", stream.length),
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
