//! Client-side caching (`CLIENT TRACKING`), as Redis 7.0 does it.
//!
//! - In the default mode the server remembers, per key, which clients read it (the tracking
//!   table). The first change to the key sends those clients one invalidation and forgets
//!   them, until they read the key again. `OPTIN`/`OPTOUT` with `CLIENT CACHING` choose which
//!   reads are remembered.
//! - In `BCAST` mode nothing is remembered per client: every change to a key under one of the
//!   client's prefixes is collected, and the keys changed are sent together once the
//!   connections ready now have run (Redis sends them before it sleeps).
//! - An invalidation is a RESP3 push `invalidate [keys]`, or, redirected to another
//!   connection (`REDIRECT id`) subscribed in RESP2, a message on `__redis__:invalidate`. A
//!   flush invalidates everything with a null.
//!
//! The table is bounded by `tracking-table-max-keys`: past it, keys are invalidated at random
//! until it fits again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::server::Server;

/// One connection's tracking mode (`CLIENT TRACKING ON ...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClientTracking {
    /// The client invalidations go to (0: this one).
    pub redirect: u64,
    /// `BCAST`: prefixes instead of reads.
    pub bcast: bool,
    /// `OPTIN`: only reads after `CLIENT CACHING yes` are remembered.
    pub optin: bool,
    /// `OPTOUT`: reads after `CLIENT CACHING no` are not remembered.
    pub optout: bool,
    /// `NOLOOP`: no invalidation for the connection's own changes.
    pub noloop: bool,
    /// `CLIENT CACHING` was given for the next command.
    pub caching: bool,
    /// The redirection target has gone.
    pub broken_redirect: bool,
    /// `BCAST` prefixes (the empty prefix when none was given).
    pub prefixes: BTreeSet<Vec<u8>>,
}

/// Keys changed since the last broadcast, each with the client that changed it last.
type ChangedKeys = BTreeMap<Vec<u8>, u64>;

/// Keys changed under one broadcast prefix, and who listens.
#[derive(Default)]
struct Prefix {
    /// Each key changed since the last broadcast, with the client that changed it last (0:
    /// the server itself), for `NOLOOP`.
    keys: ChangedKeys,
    clients: BTreeSet<u64>,
}

/// What an invalidation names.
enum Payload<'a> {
    /// These keys.
    Keys(&'a [Vec<u8>]),
    /// Everything (a flush).
    All,
}

/// The server-wide tracking state.
#[derive(Default)]
pub(crate) struct Tracking {
    /// Key → clients that read it. `None` until a client first enables tracking.
    table: Option<HashMap<Vec<u8>, HashSet<u64>>>,
    /// How many (key, client) pairs the table holds.
    items: u64,
    prefixes: BTreeMap<Vec<u8>, Prefix>,
    /// Connections with tracking on.
    clients: usize,
    /// Invalidations for the connection running the command, written after its reply.
    own: Vec<u8>,
    /// Rounds in a row the table was still over its limit after trimming.
    over_limit_rounds: u32,
    /// `tracking-table-max-keys` (0: unbounded).
    pub(crate) max_keys: usize,
}

impl Tracking {
    /// Whether any connection tracks keys now.
    pub(crate) fn active(&self) -> bool {
        self.clients > 0
    }

    /// `tracking_clients`, `tracking_total_keys`, `tracking_total_items` and
    /// `tracking_total_prefixes` of `INFO`.
    pub(crate) fn counts(&self) -> (usize, usize, u64, usize) {
        let keys = self.table.as_ref().map_or(0, HashMap::len);
        (self.clients, keys, self.items, self.prefixes.len())
    }

    /// Takes the invalidations queued for the connection that ran the last command.
    pub(crate) fn take_own(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.own)
    }
}

/// Why `CLIENT TRACKING BCAST PREFIX ...` was refused: the prefixes overlap.
pub(crate) fn prefix_overlap(existing: &BTreeSet<Vec<u8>>, new: &[&[u8]]) -> Option<String> {
    let overlaps = |a: &[u8], b: &[u8]| {
        let n = a.len().min(b.len());
        a[..n] == b[..n]
    };
    let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for (i, prefix) in new.iter().enumerate() {
        if let Some(old) = existing.iter().find(|old| overlaps(old, prefix)) {
            return Some(format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                show(prefix),
                show(old)
            ));
        }
        if let Some(other) = new[i + 1..].iter().find(|other| overlaps(prefix, other)) {
            return Some(format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                show(prefix),
                show(other)
            ));
        }
    }
    None
}

fn push_keys(out: &mut Vec<u8>, keys: &[Vec<u8>]) {
    out.extend_from_slice(format!("*{}\r\n", keys.len()).as_bytes());
    for key in keys {
        out.extend_from_slice(format!("${}\r\n", key.len()).as_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(b"\r\n");
    }
}

impl Server {
    /// `CLIENT TRACKING ON`: turns tracking on for `client` with `mode` (checked by the caller),
    /// subscribing it to its broadcast prefixes.
    pub(crate) fn enable_tracking(&mut self, client: u64, mut mode: ClientTracking) {
        let Some(info) = self.clients.get(&client).cloned() else {
            return;
        };
        let mut info = info.borrow_mut();
        let was_on = info.tracking.is_some();
        if !was_on {
            self.tracking.clients += 1;
        }
        self.tracking.table.get_or_insert_with(HashMap::new);
        // Prefixes add up across calls; flags are replaced (CACHING and a broken redirect
        // are reset, as Redis clears them).
        let mut prefixes = info
            .tracking
            .take()
            .map(|old| old.prefixes)
            .unwrap_or_default();
        if mode.bcast {
            if mode.prefixes.is_empty() {
                mode.prefixes.insert(Vec::new());
            }
            for prefix in &mode.prefixes {
                let entry = self.tracking.prefixes.entry(prefix.clone()).or_default();
                entry.clients.insert(client);
                prefixes.insert(prefix.clone());
            }
        }
        mode.prefixes = prefixes;
        info.tracking = Some(mode);
        drop(info);
        if !was_on {
            self.refresh_recording();
        }
    }

    /// `CLIENT TRACKING OFF`, `RESET` and a closed connection: forgets `client`'s mode and
    /// prefixes (its entries in the table are dropped lazily).
    pub(crate) fn disable_tracking(&mut self, client: u64) {
        let Some(info) = self.clients.get(&client).cloned() else {
            return;
        };
        let Some(mode) = info.borrow_mut().tracking.take() else {
            return;
        };
        for prefix in &mode.prefixes {
            if let Some(state) = self.tracking.prefixes.get_mut(prefix) {
                state.clients.remove(&client);
                if state.clients.is_empty() {
                    self.tracking.prefixes.remove(prefix);
                }
            }
        }
        self.tracking.clients = self.tracking.clients.saturating_sub(1);
        self.refresh_recording();
    }

    /// After a read-only command of `client`: remembers the keys it read, unless its mode
    /// says otherwise (`BCAST`, or `OPTIN`/`OPTOUT` with `CLIENT CACHING`).
    pub(crate) fn remember_tracked_keys<'k>(
        &mut self,
        client: u64,
        keys: impl Iterator<Item = &'k bytes::Bytes>,
    ) {
        let remember = self.clients.get(&client).is_some_and(|info| {
            info.borrow().tracking.as_ref().is_some_and(|mode| {
                let opted_out = (mode.optin && !mode.caching) || (mode.optout && mode.caching);
                !(mode.bcast || opted_out)
            })
        });
        let Some(table) = self.tracking.table.as_mut().filter(|_| remember) else {
            return;
        };
        for key in keys {
            if table.entry(key.to_vec()).or_default().insert(client) {
                self.tracking.items += 1;
            }
        }
    }

    /// A key changed (Redis's `signalModifiedKey` and expiry): the clients that read it get
    /// an invalidation, and broadcast prefixes note it with the connection that changed it
    /// (the one running the command; 0 for the server itself).
    pub(crate) fn invalidate_tracked_key(&mut self, key: &[u8]) {
        if self.tracking.table.is_none() {
            return;
        }
        let writer = self.command.client;
        for (prefix, state) in self.tracking.prefixes.iter_mut() {
            if key.starts_with(prefix) {
                state.keys.insert(key.to_vec(), writer);
                self.pubsub.request_flush();
            }
        }
        let Some(readers) = self
            .tracking
            .table
            .as_mut()
            .and_then(|table| table.remove(key))
        else {
            return;
        };
        self.tracking.items -= readers.len() as u64;
        let keys = [key.to_vec()];
        for id in readers {
            let Some(mode) = self.tracking_mode(id) else {
                continue;
            };
            if mode.bcast || (mode.noloop && id == writer && writer != 0) {
                continue;
            }
            self.send_invalidation(id, &mode, &Payload::Keys(&keys));
        }
    }

    /// A flush: every tracking connection is told to drop everything, and the table is
    /// emptied.
    pub(crate) fn invalidate_all_tracked(&mut self) {
        if self.tracking.clients > 0 {
            let tracking: Vec<(u64, ClientTracking)> = self
                .clients
                .iter()
                .filter_map(|(id, info)| info.borrow().tracking.clone().map(|mode| (*id, mode)))
                .collect();
            for (id, mode) in tracking {
                self.send_invalidation(id, &mode, &Payload::All);
            }
        }
        if let Some(table) = self.tracking.table.as_mut() {
            table.clear();
            self.tracking.items = 0;
        }
    }

    /// Sends the keys changed under each prefix to its listeners (Redis's
    /// `trackingBroadcastInvalidationMessages`, before it sleeps).
    pub(crate) fn broadcast_invalidations(&mut self) {
        if self.tracking.clients == 0 {
            return;
        }
        let batches: Vec<(ChangedKeys, Vec<u64>)> = self
            .tracking
            .prefixes
            .values_mut()
            .filter(|state| !state.keys.is_empty())
            .map(|state| {
                let clients = state.clients.iter().copied().collect();
                (std::mem::take(&mut state.keys), clients)
            })
            .collect();
        for (keys, clients) in batches {
            for id in clients {
                let Some(mode) = self.tracking_mode(id) else {
                    continue;
                };
                let named: Vec<Vec<u8>> = keys
                    .iter()
                    .filter(|&(_, &writer)| !(mode.noloop && writer == id))
                    .map(|(key, _)| key.clone())
                    .collect();
                if !named.is_empty() {
                    self.send_invalidation(id, &mode, &Payload::Keys(&named));
                }
            }
        }
    }

    /// Keeps the table within `tracking-table-max-keys`, invalidating keys at random, with
    /// more effort each round it stays over (Redis's `trackingLimitUsedSlots`).
    pub(crate) fn limit_tracking_table(&mut self) {
        let max = self.tracking.max_keys;
        let Some(table) = self.tracking.table.as_ref() else {
            return;
        };
        if max == 0 || table.len() <= max {
            self.tracking.over_limit_rounds = 0;
            return;
        }
        let effort = 100 * (self.tracking.over_limit_rounds as usize + 1);
        for _ in 0..effort {
            // A hash map's order is random: its first key is a random pick.
            let Some(key) = self
                .tracking
                .table
                .as_ref()
                .and_then(|table| table.keys().next().cloned())
            else {
                break;
            };
            let writer = std::mem::take(&mut self.command.client);
            self.invalidate_tracked_key(&key);
            self.command.client = writer;
            if table_len(&self.tracking) <= max {
                self.tracking.over_limit_rounds = 0;
                return;
            }
        }
        self.tracking.over_limit_rounds += 1;
    }

    /// The tracking mode of connection `id`, if it is connected and tracking.
    fn tracking_mode(&self, id: u64) -> Option<ClientTracking> {
        self.clients
            .get(&id)
            .and_then(|info| info.borrow().tracking.clone())
    }

    /// Delivers one invalidation for `client` (whose mode is `mode`): to it, or to its
    /// redirection target; the running command's own connection gets it after its reply.
    fn send_invalidation(&mut self, client: u64, mode: &ClientTracking, payload: &Payload<'_>) {
        let Some(info) = self.clients.get(&client) else {
            return;
        };
        let client_resp = info.borrow().resp;
        let (target, redirected) = if mode.redirect != 0 {
            if !self.clients.contains_key(&mode.redirect) {
                if let Some(tracking) = info.borrow_mut().tracking.as_mut() {
                    tracking.broken_redirect = true;
                }
                if client_resp == 3 {
                    let mut out = b">2\r\n$21\r\ntracking-redir-broken\r\n".to_vec();
                    out.extend_from_slice(format!(":{}\r\n", mode.redirect).as_bytes());
                    self.push_to_client(client, &out);
                }
                return;
            }
            (mode.redirect, true)
        } else {
            (client, false)
        };
        let Some(target_info) = self.clients.get(&target) else {
            return;
        };
        let (target_resp, subscribed) = {
            let target_info = target_info.borrow();
            let (channels, patterns, shard) = target_info.subscriptions;
            (target_info.resp, channels + patterns + shard > 0)
        };
        let mut out = Vec::new();
        if target_resp == 3 {
            out.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n");
        } else if redirected && subscribed {
            out.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n");
        } else {
            return;
        }
        match payload {
            Payload::Keys(keys) => push_keys(&mut out, keys),
            // The null of the tracking client's protocol, as Redis sends it.
            Payload::All if client_resp == 3 => out.extend_from_slice(b"_\r\n"),
            Payload::All => out.extend_from_slice(b"$-1\r\n"),
        }
        self.push_to_client(target, &out);
    }

    /// Queues bytes for another connection, or for the one running the command (after its
    /// reply).
    fn push_to_client(&mut self, id: u64, bytes: &[u8]) {
        if id == self.command.client && id != 0 {
            self.tracking.own.extend_from_slice(bytes);
        } else {
            crate::pubsub::push_raw(self, id, bytes);
        }
    }
}

fn table_len(tracking: &Tracking) -> usize {
    tracking.table.as_ref().map_or(0, HashMap::len)
}
