//! Streams between the keyspace and the RDB crate's form: nodes are copied as they are, the
//! counters and consumer groups field by field, with Redis's rules for files older than RDB
//! 10 (no first id, deleted id or read counters stored).

use amber_keyspace::{
    ConsumerGroup, ConsumerState, Nack, StreamId, StreamLog, StreamMeta, StreamValue,
};

fn to_rdb_id(id: StreamId) -> amber_rdb::StreamId {
    amber_rdb::StreamId {
        ms: id.ms,
        seq: id.seq,
    }
}

fn from_rdb_id(id: amber_rdb::StreamId) -> StreamId {
    StreamId::new(id.ms, id.seq)
}

/// The stream in the RDB crate's form (what `DUMP` writes).
pub(crate) fn to_rdb(stream: &StreamValue) -> amber_rdb::Stream {
    let mut converted = without_nodes(stream);
    converted.nodes = stream
        .log
        .nodes()
        .map(|(master, listpack)| amber_rdb::StreamNode {
            master: to_rdb_id(master),
            listpack: listpack.to_vec(),
        })
        .collect();
    converted
}

/// Writes a stream key with its nodes taken where they live (a snapshot copies no entry).
pub(crate) fn write<W: std::io::Write>(
    writer: &mut amber_rdb::RdbWriter<W>,
    key: &[u8],
    stream: &StreamValue,
    expire: Option<i64>,
) -> Result<(), amber_rdb::WriteError> {
    let nodes = stream
        .log
        .nodes()
        .map(|(master, listpack)| (to_rdb_id(master), listpack));
    writer.stream_entry(key, nodes, &without_nodes(stream), expire)
}

/// The counters and groups of a stream in the RDB crate's form, without its nodes.
fn without_nodes(stream: &StreamValue) -> amber_rdb::Stream {
    let meta = stream.log.meta();
    amber_rdb::Stream {
        nodes: Vec::new(),
        length: meta.length,
        last_id: to_rdb_id(meta.last_id),
        first_id: Some(to_rdb_id(meta.first_id)),
        max_deleted_id: Some(to_rdb_id(meta.max_deleted_id)),
        entries_added: Some(meta.entries_added),
        groups: stream
            .groups
            .iter()
            .map(|(name, group)| group_to_rdb(name, group))
            .collect(),
    }
}

fn group_to_rdb(name: &[u8], group: &ConsumerGroup) -> amber_rdb::ConsumerGroup {
    amber_rdb::ConsumerGroup {
        name: name.to_vec(),
        last_id: to_rdb_id(group.last_id),
        entries_read: Some(group.entries_read.unwrap_or(u64::MAX)),
        pending: group
            .pel
            .iter()
            .map(|(id, nack)| amber_rdb::PendingEntry {
                id: to_rdb_id(*id),
                delivery_time: nack.delivery_time as u64,
                delivery_count: nack.delivery_count,
            })
            .collect(),
        consumers: group
            .consumers
            .iter()
            .map(|(name, consumer)| amber_rdb::Consumer {
                name: name.clone(),
                seen_time: consumer.seen_time as u64,
                active_time: None,
                pending: consumer.pending.iter().map(|id| to_rdb_id(*id)).collect(),
            })
            .collect(),
    }
}

/// The stream in the keyspace's form. The RDB crate has checked the nodes and that every
/// pending entry has one consumer.
pub(crate) fn from_rdb(stream: &amber_rdb::Stream) -> StreamValue {
    from_rdb_owned(stream.clone())
}

/// [`from_rdb`] taking the stream, so its nodes move into the keyspace without a copy.
pub(crate) fn from_rdb_owned(stream: amber_rdb::Stream) -> StreamValue {
    let mut meta = StreamMeta {
        length: stream.length,
        last_id: from_rdb_id(stream.last_id),
        first_id: stream.first_id.map(from_rdb_id).unwrap_or_default(),
        max_deleted_id: stream.max_deleted_id.map(from_rdb_id).unwrap_or_default(),
        entries_added: stream.entries_added.unwrap_or(stream.length),
    };
    let nodes = stream
        .nodes
        .into_iter()
        .map(|node| (from_rdb_id(node.master), node.listpack));
    let mut log = StreamLog::from_parts(nodes, meta);
    if stream.first_id.is_none() {
        // Before RDB 10, Redis finds the first live entry (the largest id when there is none).
        meta.first_id = log.first_entry_id(false).unwrap_or(StreamId::MAX);
        log.set_meta(meta);
    }
    let groups = stream
        .groups
        .iter()
        .map(|group| (group.name.clone(), group_from_rdb(group, &log)))
        .collect();
    StreamValue { log, groups }
}

fn group_from_rdb(group: &amber_rdb::ConsumerGroup, log: &StreamLog) -> ConsumerGroup {
    let last_id = from_rdb_id(group.last_id);
    let entries_read = match group.entries_read {
        Some(u64::MAX) => None,
        Some(read) => Some(read),
        None => log.entries_read_at(last_id),
    };
    let mut loaded = ConsumerGroup::new(last_id, entries_read);
    let times: std::collections::HashMap<amber_rdb::StreamId, (u64, u64)> = group
        .pending
        .iter()
        .map(|p| (p.id, (p.delivery_time, p.delivery_count)))
        .collect();
    for consumer in &group.consumers {
        let mut state = ConsumerState {
            seen_time: consumer.seen_time as i64,
            pending: Default::default(),
        };
        for id in &consumer.pending {
            let (time, count) = times.get(id).copied().unwrap_or_default();
            state.pending.insert(from_rdb_id(*id));
            loaded.pel.insert(
                from_rdb_id(*id),
                Nack {
                    delivery_time: time as i64,
                    delivery_count: count,
                    consumer: consumer.name.clone(),
                },
            );
        }
        loaded.consumers.insert(consumer.name.clone(), state);
    }
    loaded
}
