use super::*;

fn id(ms: u64, seq: u64) -> StreamId {
    StreamId::new(ms, seq)
}

fn ids(log: &StreamLog, rev: bool) -> Vec<StreamId> {
    log.range(StreamId::MIN, StreamId::MAX, rev)
        .map(|entry| entry.id)
        .collect()
}

fn filled(count: u64, limits: StreamLimits) -> StreamLog {
    let mut log = StreamLog::default();
    for n in 1..=count {
        let value = n.to_string();
        log.append(id(n, 0), &[b"f", value.as_bytes()], limits)
            .unwrap();
    }
    log
}

#[test]
fn entries_come_back_in_both_directions_across_nodes() {
    let limits = StreamLimits {
        node_max_bytes: 4096,
        node_max_entries: 10,
    };
    let log = filled(35, limits);
    assert_eq!(log.node_count(), 4);
    let forward = ids(&log, false);
    assert_eq!(forward, (1..=35).map(|n| id(n, 0)).collect::<Vec<_>>());
    let mut backward = ids(&log, true);
    backward.reverse();
    assert_eq!(forward, backward);
    let middle: Vec<StreamId> = log
        .range(id(9, 0), id(12, 0), false)
        .map(|e| e.id)
        .collect();
    assert_eq!(middle, vec![id(9, 0), id(10, 0), id(11, 0), id(12, 0)]);
    let entry = log.range(id(7, 0), id(7, 0), false).next().unwrap();
    let pairs: Vec<_> = entry.pairs().collect();
    assert_eq!(pairs, vec![(StreamItem::Bytes(b"f"), StreamItem::Int(7))]);
}

#[test]
fn entries_with_other_fields_keep_their_own_names() {
    let mut log = StreamLog::default();
    let limits = StreamLimits::default();
    log.append(id(1, 0), &[b"a", b"1", b"b", b"2"], limits)
        .unwrap();
    log.append(id(2, 0), &[b"x", b"long value"], limits)
        .unwrap();
    let second = log.range(id(2, 0), id(2, 0), false).next().unwrap();
    let pairs: Vec<_> = second.pairs().collect();
    assert_eq!(
        pairs,
        vec![(StreamItem::Bytes(b"x"), StreamItem::Bytes(b"long value"))]
    );
    assert_eq!(
        log.append(id(2, 0), &[b"a", b"1"], limits),
        Err(AppendError::IdTooSmall)
    );
}

#[test]
fn deleting_updates_counts_first_id_and_drops_empty_nodes() {
    let limits = StreamLimits {
        node_max_bytes: 4096,
        node_max_entries: 2,
    };
    let mut log = filled(4, limits);
    assert!(log.delete(id(1, 0)));
    assert!(!log.delete(id(1, 0)));
    assert_eq!(log.meta().first_id, id(2, 0));
    assert_eq!(log.meta().max_deleted_id, id(1, 0));
    assert!(log.delete(id(2, 0)));
    assert_eq!(log.node_count(), 1);
    assert_eq!(ids(&log, false), vec![id(3, 0), id(4, 0)]);
    assert_eq!(log.len(), 2);
}

#[test]
fn exact_trimming_marks_entries_inside_a_node_and_approximate_only_drops_nodes() {
    let limits = StreamLimits {
        node_max_bytes: 4096,
        node_max_entries: 10,
    };
    let mut log = filled(25, limits);
    assert_eq!(log.trim(Trim::MaxLen(12), true, 0), 10);
    assert_eq!(log.len(), 15);
    assert_eq!(log.trim(Trim::MaxLen(12), false, 0), 3);
    assert_eq!(ids(&log, false).first(), Some(&id(14, 0)));
    assert_eq!(log.trim(Trim::MinId(id(20, 0)), false, 0), 6);
    assert_eq!(log.len(), 6);
    assert_eq!(log.meta().first_id, id(20, 0));
}

#[test]
fn lag_follows_deliveries_until_a_tombstone_hides_it() {
    let mut log = filled(5, StreamLimits::default());
    let mut group = ConsumerGroup::new(StreamId::MIN, Some(0));
    log.advance_group(&mut group, id(1, 0));
    log.advance_group(&mut group, id(2, 0));
    assert_eq!(group.entries_read, Some(2));
    assert_eq!(log.lag(&group), Some(3));
    log.delete(id(4, 0));
    assert_eq!(log.lag(&group), None);
}
