//! Paused clients: `CLIENT PAUSE timeout [WRITE|ALL]` and the write pause a `FAILOVER` holds
//! while its replica catches up. A paused command waits like a blocked client and is checked
//! again from the start once the pause ends (after a failover it meets `-READONLY`).

use std::rc::Rc;
use std::time::Instant;

/// Who pauses what.
#[derive(Default)]
pub(crate) struct Pauses {
    /// `CLIENT PAUSE`: until when, and whether every command (`ALL`) or only writes.
    client: Option<(Instant, bool)>,
    /// A `FAILOVER` pauses writes until it completes or is aborted.
    failover: bool,
    /// Clients waiting for the pause to end, with what wakes them.
    waiting: Vec<(u64, Rc<crate::signal::Signal>)>,
}

impl Pauses {
    /// Whether a command with these properties must wait now. The clock is read only while a
    /// `CLIENT PAUSE` is set (every command asks).
    pub(crate) fn holds(&self, write: bool) -> bool {
        let by_client = self
            .client
            .is_some_and(|(until, all)| (all || write) && Instant::now() < until);
        by_client || (self.failover && write)
    }

    /// `CLIENT PAUSE`: pauses until `until`; `all` pauses every command, else only writes. A
    /// second pause extends the first and keeps the stricter mode, as Redis does.
    pub(crate) fn pause_clients(&mut self, until: Instant, all: bool) {
        self.client = Some(match self.client {
            Some((previous, was_all)) if previous > Instant::now() => {
                (previous.max(until), was_all || all)
            }
            _ => (until, all),
        });
    }

    /// `CLIENT UNPAUSE`.
    pub(crate) fn unpause_clients(&mut self) {
        self.client = None;
        self.release();
    }

    /// A failover starts or ends its write pause.
    pub(crate) fn set_failover(&mut self, paused: bool) {
        self.failover = paused;
        if !paused {
            self.release();
        }
    }

    /// Records a client waiting for the pause to end.
    pub(crate) fn wait(&mut self, id: u64, wake: Rc<crate::signal::Signal>) {
        if !self.waiting.iter().any(|(waiting, _)| *waiting == id) {
            self.waiting.push((id, wake));
        }
    }

    /// Forgets a client (it left).
    pub(crate) fn forget(&mut self, id: u64) {
        self.waiting.retain(|(waiting, _)| *waiting != id);
    }

    /// From the cron: ends a `CLIENT PAUSE` whose time passed.
    pub(crate) fn cron(&mut self, now: Instant) {
        if self.client.is_some_and(|(until, _)| now >= until) {
            self.client = None;
            self.release();
        }
    }

    /// Wakes the waiting clients; each checks its command again (one still paused waits on).
    fn release(&mut self) {
        for (_, wake) in self.waiting.drain(..) {
            wake.notify_one();
        }
    }
}
