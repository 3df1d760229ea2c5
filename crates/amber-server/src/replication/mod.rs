//! The master side of replication: a replica attached with `SYNC` or `PSYNC` (a full resync)
//! gets a snapshot of the dataset, written by a BGSAVE and sent as one RDB bulk, then every
//! write as the commands the AOF records, in one stream with `SELECT`s and `MULTI`/`EXEC`.
//!
//! Each replica's connection task sends what [`Replication::take_output`] hands it; a replica
//! whose unsent output passes the `client-output-buffer-limit replica` hard limit is
//! disconnected, so memory stays bounded whatever the replica's speed.

use std::fs::File;
use std::rc::Rc;

use tokio::sync::Notify;

/// Where a replica is in its synchronization.
#[derive(Debug)]
enum State {
    /// Waiting for a BGSAVE to start (one was already running for another purpose).
    WaitBgsaveStart,
    /// The BGSAVE that will be sent is running; writes since its fork are buffered.
    WaitBgsaveEnd,
    /// The snapshot is ready to be sent: the open file and its length.
    SendRdb(File, u64),
    /// The snapshot was handed to the connection: only the stream remains.
    Online,
}

/// One attached replica.
struct Replica {
    id: u64,
    addr: String,
    /// The port the replica said it listens on (`REPLCONF listening-port`).
    listening_port: u16,
    state: State,
    /// Whether it asked with PSYNC (it is told `+FULLRESYNC <replid> <offset>` first).
    psync: bool,
    /// Bytes to send before the snapshot (the `+FULLRESYNC` line).
    preamble: Vec<u8>,
    /// Stream bytes not yet handed to the connection task.
    pending: Vec<u8>,
    wake: Rc<Notify>,
    kill: Rc<Notify>,
}

/// What a replica's connection task sends next.
pub(crate) enum Output {
    /// The snapshot: `$<len>\r\n` then the file's bytes.
    Rdb(File, u64),
    /// Stream bytes.
    Bytes(Vec<u8>),
}

/// All replicas and the replication stream's state.
pub(crate) struct Replication {
    replicas: Vec<Replica>,
    /// The replication id (`master_replid`).
    pub replid: String,
    /// Bytes of stream produced so far (`master_repl_offset`).
    pub offset: u64,
    /// The database the stream last selected (reset when a snapshot for replicas starts).
    selected_db: Option<usize>,
    /// Inside EXEC: `Some(false)` until the first write, which opens a `MULTI`.
    multi: Option<bool>,
    /// The hard output limit in bytes (0: none).
    hard_limit: u64,
}

impl Replication {
    /// No replica yet, with the given replication id.
    pub(crate) fn new(replid: String) -> Replication {
        Replication {
            replicas: Vec::new(),
            replid,
            offset: 0,
            selected_db: None,
            multi: None,
            hard_limit: 0,
        }
    }

    /// Whether any replica is attached (then every write is streamed).
    pub(crate) fn has_replicas(&self) -> bool {
        !self.replicas.is_empty()
    }

    /// Number of attached replicas (`connected_slaves`).
    pub(crate) fn count(&self) -> usize {
        self.replicas.len()
    }

    /// Reads the `replica` class of `client-output-buffer-limit`.
    pub(crate) fn configure(&mut self, output_limits: &str) {
        let words: Vec<&str> = output_limits.split_whitespace().collect();
        self.hard_limit = words
            .chunks(4)
            .find(|class| matches!(class.first(), Some(&"replica" | &"slave")))
            .and_then(|class| class.get(1))
            .and_then(|limit| crate::config::parse_memory(limit))
            .map_or(0, |limit| limit.max(0) as u64);
    }

    /// Attaches a replica that asked for a full synchronization.
    pub(crate) fn attach(
        &mut self,
        id: u64,
        addr: String,
        listening_port: u16,
        psync: bool,
        wake: Rc<Notify>,
        kill: Rc<Notify>,
    ) {
        self.replicas.retain(|replica| replica.id != id);
        self.replicas.push(Replica {
            id,
            addr,
            listening_port,
            state: State::WaitBgsaveStart,
            psync,
            preamble: Vec::new(),
            pending: Vec::new(),
            wake,
            kill,
        });
    }

    /// Forgets a replica (its connection closed).
    pub(crate) fn detach(&mut self, id: u64) {
        self.replicas.retain(|replica| replica.id != id);
    }

    /// Whether a replica waits for a snapshot to start.
    pub(crate) fn waiting_for_snapshot(&self) -> bool {
        self.replicas
            .iter()
            .any(|replica| matches!(replica.state, State::WaitBgsaveStart))
    }

    /// A BGSAVE just forked: replicas waiting for one are served by it, and the stream restarts
    /// with a `SELECT` for them.
    pub(crate) fn snapshot_started(&mut self) {
        let mut any = false;
        for replica in &mut self.replicas {
            if matches!(replica.state, State::WaitBgsaveStart) {
                replica.state = State::WaitBgsaveEnd;
                replica.pending.clear();
                if replica.psync {
                    // The stream this replica gets starts at this offset.
                    replica.preamble =
                        format!("+FULLRESYNC {} {}\r\n", self.replid, self.offset).into_bytes();
                    replica.wake.notify_one();
                }
                any = true;
            }
        }
        if any {
            self.selected_db = None;
        }
    }

    /// The BGSAVE ended: on success its file goes to the replicas that waited for it; on
    /// failure they are disconnected, as Redis does.
    pub(crate) fn snapshot_done(&mut self, success: bool, path: &std::path::Path) {
        for replica in &mut self.replicas {
            if !matches!(replica.state, State::WaitBgsaveEnd) {
                continue;
            }
            let opened = success
                .then(|| File::open(path).and_then(|file| Ok((file.metadata()?.len(), file))));
            match opened {
                Some(Ok((len, file))) => {
                    crate::notice!("Synchronization with replica {} succeeded", replica.addr);
                    replica.state = State::SendRdb(file, len);
                    replica.wake.notify_one();
                }
                Some(Err(error)) => {
                    crate::warning!("SYNC failed. Can't open/stat DB after BGSAVE: {error}");
                    replica.kill.notify_one();
                }
                None => {
                    crate::warning!(
                        "SYNC failed. BGSAVE child returned an error; closing the connection of replica {}",
                        replica.addr
                    );
                    replica.kill.notify_one();
                }
            }
        }
    }

    /// Appends one command executed in `db` to the stream.
    pub(crate) fn feed<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A]) {
        if self.replicas.is_empty() {
            return;
        }
        let mut chunk = Vec::new();
        if self.selected_db != Some(db) {
            amber_aof::encode_command(
                &[b"SELECT".as_slice(), db.to_string().as_bytes()],
                &mut chunk,
            );
            self.selected_db = Some(db);
        }
        if self.multi == Some(false) {
            amber_aof::encode_command(&[b"MULTI".as_slice()], &mut chunk);
            self.multi = Some(true);
        }
        amber_aof::encode_command(args, &mut chunk);
        self.push(&chunk);
    }

    /// Appends a command that belongs to no database (`PING`, `EXEC`).
    pub(crate) fn feed_global<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        if self.replicas.is_empty() {
            return;
        }
        let mut chunk = Vec::new();
        amber_aof::encode_command(args, &mut chunk);
        self.push(&chunk);
    }

    /// Marks the start of EXEC: its first write opens a `MULTI` in the stream.
    pub(crate) fn begin_exec(&mut self) {
        self.multi = Some(false);
    }

    /// Marks the end of EXEC: closes the `MULTI` block if one was opened.
    pub(crate) fn end_exec(&mut self) {
        if self.multi.take() == Some(true) {
            self.feed_global(&[b"EXEC".as_slice()]);
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.offset += chunk.len() as u64;
        let limit = self.hard_limit;
        for replica in &mut self.replicas {
            if matches!(replica.state, State::WaitBgsaveStart) {
                continue;
            }
            replica.pending.extend_from_slice(chunk);
            if limit > 0 && replica.pending.len() as u64 > limit {
                crate::warning!(
                    "Client id={} addr={} flags=S scheduled to be closed ASAP for overcoming of output buffer limits.",
                    replica.id,
                    replica.addr
                );
                replica.pending = Vec::new();
                replica.kill.notify_one();
            } else if matches!(replica.state, State::Online) {
                replica.wake.notify_one();
            }
        }
    }

    /// What the connection of replica `id` sends next, if anything.
    pub(crate) fn take_output(&mut self, id: u64) -> Option<Output> {
        let replica = self.replicas.iter_mut().find(|replica| replica.id == id)?;
        if !replica.preamble.is_empty() {
            return Some(Output::Bytes(std::mem::take(&mut replica.preamble)));
        }
        match std::mem::replace(&mut replica.state, State::Online) {
            State::SendRdb(file, len) => Some(Output::Rdb(file, len)),
            State::Online if !replica.pending.is_empty() => {
                Some(Output::Bytes(std::mem::take(&mut replica.pending)))
            }
            State::Online => None,
            waiting => {
                replica.state = waiting;
                None
            }
        }
    }

    /// The `slaveN:` lines of `INFO replication`.
    pub(crate) fn info_lines(&self) -> Vec<(String, String)> {
        self.replicas
            .iter()
            .enumerate()
            .map(|(index, replica)| {
                let state = match replica.state {
                    State::WaitBgsaveStart => "wait_bgsave",
                    State::WaitBgsaveEnd => "wait_bgsave",
                    State::SendRdb(..) => "send_bulk",
                    State::Online => "online",
                };
                let ip = replica
                    .addr
                    .rsplit_once(':')
                    .map_or(replica.addr.as_str(), |(ip, _)| ip);
                (
                    format!("slave{index}"),
                    format!(
                        "ip={ip},port={},state={state},offset={},lag=0",
                        replica.listening_port, self.offset
                    ),
                )
            })
            .collect()
    }
}
