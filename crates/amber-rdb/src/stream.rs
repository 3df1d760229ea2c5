//! Streams: listpack nodes keyed by a master id, the stream's metadata and its consumer groups.

use std::io::Read;

use crate::encode::listpack_into;
use crate::encodings;
use crate::error::ErrorKind;
use crate::model::{Consumer, ConsumerGroup, PendingEntry, Stream, StreamEntry, StreamId, types};
use crate::reader::Input;
use crate::writer::{write_length, write_string};

/// Entry flag: the entry was deleted.
const FLAG_DELETED: i64 = 1;
/// Entry flag: the entry has exactly the master entry's fields.
const FLAG_SAME_FIELDS: i64 = 2;

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

/// Reads a stream value of type `type_byte` (15, 19 or 21).
pub(crate) fn read_stream<R: Read>(
    input: &mut Input<R>,
    type_byte: u8,
) -> Result<Stream, ErrorKind> {
    let mut stream = Stream::default();
    let nodes = input.count()?;
    for _ in 0..nodes {
        let master = raw_id(&input.string()?)?;
        let items = encodings::listpack(&input.string()?)?;
        decode_node(master, &items, &mut stream.entries)?;
    }
    stream.length = input.length()?;
    stream.last_id = id_pair(input)?;
    if type_byte >= types::STREAM_LISTPACKS_2 {
        stream.first_id = Some(id_pair(input)?);
        stream.max_deleted_id = Some(id_pair(input)?);
        stream.entries_added = Some(input.length()?);
    }
    if stream.entries.len() as u64 != stream.length {
        return Err(ErrorKind::corrupt(
            "stream",
            format!(
                "{} live entries but the length says {}",
                stream.entries.len(),
                stream.length
            ),
        ));
    }
    let groups = input.count()?;
    for _ in 0..groups {
        stream.groups.push(read_group(input, type_byte)?);
    }
    Ok(stream)
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
            if !pending.iter().any(|p| p.id == id) {
                return Err(ErrorKind::corrupt(
                    "stream",
                    "consumer owns an id missing from the group's PEL",
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
    Ok(ConsumerGroup {
        name,
        last_id,
        entries_read,
        pending,
        consumers,
    })
}

fn int(item: Option<&Vec<u8>>) -> Result<i64, ErrorKind> {
    item.and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| ErrorKind::corrupt("stream", "a number was expected in a node"))
}

fn count(item: Option<&Vec<u8>>) -> Result<usize, ErrorKind> {
    usize::try_from(int(item)?)
        .map_err(|_| ErrorKind::corrupt("stream", "negative count in a node"))
}

/// Decodes one listpack node: the master entry, then entries as deltas from the master id.
fn decode_node(
    master: StreamId,
    items: &[Vec<u8>],
    out: &mut Vec<StreamEntry>,
) -> Result<(), ErrorKind> {
    let mut pos = items.iter();
    let live = count(pos.next())?;
    let deleted = count(pos.next())?;
    let master_field_count = count(pos.next())?;
    let mut master_fields = Vec::with_capacity(master_field_count.min(4096));
    for _ in 0..master_field_count {
        master_fields.push(
            pos.next()
                .ok_or_else(|| ErrorKind::corrupt("stream", "truncated master entry"))?
                .clone(),
        );
    }
    int(pos.next())?; // the master entry's terminating zero
    let mut seen = 0usize;
    while let Some(flags) = pos.next() {
        let flags = int(Some(flags))?;
        let ms = master.ms.wrapping_add(int(pos.next())? as u64);
        let seq = master.seq.wrapping_add(int(pos.next())? as u64);
        let fields: Vec<(Vec<u8>, Vec<u8>)> = if flags & FLAG_SAME_FIELDS != 0 {
            master_fields
                .iter()
                .map(|field| Ok((field.clone(), next_item(&mut pos)?)))
                .collect::<Result<_, ErrorKind>>()?
        } else {
            let n = count(pos.next())?;
            (0..n)
                .map(|_| Ok((next_item(&mut pos)?, next_item(&mut pos)?)))
                .collect::<Result<_, ErrorKind>>()?
        };
        int(pos.next())?; // lp-count, for backward iteration
        seen += 1;
        if flags & FLAG_DELETED == 0 {
            out.push(StreamEntry {
                id: StreamId { ms, seq },
                fields,
            });
        }
    }
    if seen != live + deleted {
        return Err(ErrorKind::corrupt(
            "stream",
            "node entry counts do not match its master entry",
        ));
    }
    Ok(())
}

fn next_item(pos: &mut std::slice::Iter<'_, Vec<u8>>) -> Result<Vec<u8>, ErrorKind> {
    pos.next()
        .cloned()
        .ok_or_else(|| ErrorKind::corrupt("stream", "truncated entry"))
}

/// Redis's default node limits (`stream-node-max-entries`, `stream-node-max-bytes`).
const NODE_MAX_ENTRIES: usize = 100;
const NODE_MAX_BYTES: usize = 4096;

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

/// Appends `stream` in the layout of `version` (15, 19 or 21 by version): listpack nodes of up
/// to 100 entries or 4 KiB keyed by their master id, the metadata, then the consumer groups.
pub(crate) fn write_stream(out: &mut Vec<u8>, stream: &Stream, version: u32, compression: bool) {
    let string = |out: &mut Vec<u8>, bytes: &[u8]| write_string(out, bytes, compression);
    let nodes = node_ranges(&stream.entries);
    write_length(out, nodes.len() as u64);
    let mut items: Vec<Vec<u8>> = Vec::new();
    let mut blob = Vec::new();
    for range in nodes {
        let entries = &stream.entries[range];
        let master = entries[0].id;
        string(out, &raw_id_bytes(master));
        node_items(master, entries, &mut items);
        listpack_into(&mut blob, items.iter().map(Vec::as_slice));
        string(out, &blob);
    }
    write_length(out, stream.entries.len() as u64);
    write_id(out, stream.last_id);
    if version >= 10 {
        let first = stream
            .first_id
            .or_else(|| stream.entries.first().map(|e| e.id))
            .unwrap_or_default();
        write_id(out, first);
        write_id(out, stream.max_deleted_id.unwrap_or_default());
        write_length(
            out,
            stream.entries_added.unwrap_or(stream.entries.len() as u64),
        );
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

/// Splits the entries into nodes: at most 100 entries and about 4 KiB each.
fn node_ranges(entries: &[StreamEntry]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, entry) in entries.iter().enumerate() {
        let size: usize = 16
            + entry
                .fields
                .iter()
                .map(|(f, v)| f.len() + v.len() + 4)
                .sum::<usize>();
        if index > start && (index - start >= NODE_MAX_ENTRIES || bytes + size > NODE_MAX_BYTES) {
            ranges.push(start..index);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < entries.len() {
        ranges.push(start..entries.len());
    }
    ranges
}

/// The listpack elements of one node: the master entry (the first entry's fields), then each
/// entry as flags, id deltas, fields or values only, and its element count.
fn node_items(master: StreamId, entries: &[StreamEntry], items: &mut Vec<Vec<u8>>) {
    let number = |n: i64| n.to_string().into_bytes();
    items.clear();
    let master_fields = &entries[0].fields;
    items.push(number(entries.len() as i64));
    items.push(number(0));
    items.push(number(master_fields.len() as i64));
    items.extend(master_fields.iter().map(|(field, _)| field.clone()));
    items.push(number(0));
    for entry in entries {
        let same = entry.fields.len() == master_fields.len()
            && entry
                .fields
                .iter()
                .zip(master_fields)
                .all(|((a, _), (b, _))| a == b);
        items.push(number(if same { FLAG_SAME_FIELDS } else { 0 }));
        items.push(number(entry.id.ms.wrapping_sub(master.ms) as i64));
        items.push(number(entry.id.seq.wrapping_sub(master.seq) as i64));
        let fields = entry.fields.len() as i64;
        if same {
            items.extend(entry.fields.iter().map(|(_, value)| value.clone()));
            items.push(number(fields + 3));
        } else {
            items.push(number(fields));
            for (field, value) in &entry.fields {
                items.push(field.clone());
                items.push(value.clone());
            }
            items.push(number(fields * 2 + 4));
        }
    }
}
