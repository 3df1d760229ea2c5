//! Keyspace notifications (`notify-keyspace-events`): Pub/Sub messages about changes to keys,
//! on `__keyspace@<db>__:<key>` (the message is the event) and `__keyevent@<db>__:<event>` (the
//! message is the key), as Redis 7.0 publishes them.
//!
//! Handlers report their events with `Ctx::notify`, right where Redis's code calls
//! `notifyKeyspaceEvent`. Two kinds of events happen inside the keyspace instead: keys deleted
//! by expiry (`expired`) and keys added (`new`). The keyspace records their names, and they are
//! published before the next event of the command and once it is done, so every subscriber
//! sees them in the order Redis publishes them.

use amber_protocol::ReplyWriter;

use crate::server::Server;

/// `K`: `__keyspace@<db>__:<key>` channels.
pub(crate) const KEYSPACE: u32 = 1 << 0;
/// `E`: `__keyevent@<db>__:<event>` channels.
pub(crate) const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME, ...).
pub(crate) const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub(crate) const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub(crate) const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub(crate) const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub(crate) const HASH: u32 = 1 << 6;
/// `z`: sorted set commands.
pub(crate) const ZSET: u32 = 1 << 7;
/// `x`: keys deleted by expiry.
pub(crate) const EXPIRED: u32 = 1 << 8;
/// `e`: keys evicted by `maxmemory`.
pub(crate) const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub(crate) const STREAM: u32 = 1 << 10;
/// `m`: key misses (not part of `A`).
pub(crate) const KEY_MISS: u32 = 1 << 11;
/// `d`: module events.
pub(crate) const MODULE: u32 = 1 << 13;
/// `n`: new keys (not part of `A`).
pub(crate) const NEW: u32 = 1 << 14;
/// `A`: every class but `m` and `n`.
pub(crate) const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The error `CONFIG SET notify-keyspace-events` replies for an unknown class character.
pub(crate) const INVALID_CLASS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// Parses the classes of `notify-keyspace-events`; `None` for an unknown character.
pub(crate) fn parse_flags(classes: &str) -> Option<u32> {
    classes.chars().try_fold(0, |flags, class| {
        let flag = match class {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => return None,
        };
        Some(flags | flag)
    })
}

/// The classes as the configuration keeps them: Redis's canonical order, with `n` kept after
/// `A` (where [`flags_to_string`], as Redis's `CONFIG GET`, leaves it out).
pub(crate) fn flags_to_stored_string(flags: u32) -> String {
    let mut text = flags_to_string(flags);
    if flags & ALL == ALL && flags & NEW != 0 {
        text.insert(1, 'n');
    }
    text
}

/// The classes in Redis's canonical order (`CONFIG GET` shows them so).
pub(crate) fn flags_to_string(flags: u32) -> String {
    let mut text = String::new();
    if flags & ALL == ALL {
        text.push('A');
    } else {
        for (flag, class) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & flag != 0 {
                text.push(class);
            }
        }
    }
    for (flag, class) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & flag != 0 {
            text.push(class);
        }
    }
    text
}

/// The client an event is published from: its id and its reply buffer (a subscribed RESP3
/// client gets its own messages there, ahead of the command's reply, as in Redis 7.0).
pub(crate) struct Origin<'a> {
    /// The client's id (0 for the server itself).
    pub(crate) client: u64,
    /// Its reply buffer.
    pub(crate) out: &'a mut ReplyWriter,
}

impl Server {
    /// Whether events of `class` are published at all.
    pub(crate) fn notifies(&self, class: u32) -> bool {
        let flags = self.settings.notify_flags;
        flags & class != 0 && flags & (KEYSPACE | KEYEVENT) != 0
    }

    /// Publishes one event about `key` of database `db`, after the pending `expired` and `new`
    /// events of the keyspace.
    pub(crate) fn notify(
        &mut self,
        origin: &mut Origin<'_>,
        class: u32,
        event: &str,
        key: &[u8],
        db: usize,
    ) {
        self.drain_keyspace_events(origin);
        self.publish_event(origin, class, event, key, db);
    }

    /// Publishes what the keyspace recorded since the last call: keys deleted by expiry
    /// (`expired`; their `DEL` goes to the AOF and replicas at the same moment) and keys added
    /// (`new`).
    pub(crate) fn drain_keyspace_events(&mut self, origin: &mut Origin<'_>) {
        if !self.keyspace.has_pending_events() {
            return;
        }
        for db in 0..self.keyspace.db_count() {
            if self.keyspace.db(db).has_expired_keys() {
                let propagating = self.propagating();
                for key in self.keyspace.db(db).take_expired_keys() {
                    if propagating {
                        self.propagate(db, &[b"DEL".as_slice(), &key]);
                    }
                    self.publish_event(origin, EXPIRED, "expired", &key, db);
                    if self.tracking.active() {
                        self.invalidate_tracked_key(&key);
                    }
                }
            }
            if self.keyspace.db(db).has_new_keys() {
                for key in self.keyspace.db(db).take_new_keys() {
                    self.publish_event(origin, NEW, "new", &key, db);
                }
            }
        }
    }

    fn publish_event(
        &mut self,
        origin: &mut Origin<'_>,
        class: u32,
        event: &str,
        key: &[u8],
        db: usize,
    ) {
        if !self.notifies(class) {
            return;
        }
        let flags = self.settings.notify_flags;
        if flags & KEYSPACE != 0 {
            let mut channel = format!("__keyspace@{db}__:").into_bytes();
            channel.extend_from_slice(key);
            crate::pubsub::publish(self, origin.client, origin.out, &channel, event.as_bytes());
        }
        if flags & KEYEVENT != 0 {
            let channel = format!("__keyevent@{db}__:{event}");
            crate::pubsub::publish(self, origin.client, origin.out, channel.as_bytes(), key);
        }
    }

    /// Keeps the names of expired and added keys whenever something needs them: the AOF or
    /// replicas (`DEL`s), or the `expired` and `new` events.
    pub(crate) fn refresh_recording(&mut self) {
        let record_expired = self.propagating() || self.notifies(EXPIRED) || self.tracking.active();
        self.keyspace.set_record_expired(record_expired);
        let record_new = self.notifies(NEW);
        self.keyspace.set_record_new(record_new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_trip_in_redis_order() {
        let cases = [
            ("", ""),
            ("KEA", "AKE"),
            ("Ex", "xE"),
            ("Kg$lshzxetd", "AK"),
            ("nmKE", "nKEm"),
            ("$gK", "g$K"),
            ("AnmKE", "AKEm"),
        ];
        for (given, canonical) in cases {
            let flags = parse_flags(given).unwrap();
            assert_eq!(flags_to_string(flags), canonical, "{given}");
        }
        assert_eq!(parse_flags("Kq"), None);
    }
}
