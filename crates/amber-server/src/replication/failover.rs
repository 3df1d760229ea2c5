//! `FAILOVER`, Redis 7.0's coordinated failover: the master pauses writes, waits until a
//! replica acknowledged its whole stream, then becomes that replica's replica with
//! `PSYNC <replid> <offset> FAILOVER`, which tells the replica to promote itself first. The
//! old master then continues the new master's history with `+CONTINUE`: no write is lost and
//! no snapshot is sent.

use std::time::Instant;

use crate::server::Server;

/// Where a failover is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailoverState {
    /// Writes are paused; waiting for a replica to reach the master's offset.
    WaitingForSync,
    /// This server follows the target and sends it `PSYNC ... FAILOVER`.
    InProgress,
}

/// A running failover.
#[derive(Debug)]
pub(crate) struct Failover {
    /// The replica to fail over to (`TO host port`), or the one chosen once caught up.
    pub target: Option<(String, u16)>,
    /// `FORCE`: fail over to the target at the timeout even if it has not caught up.
    pub force: bool,
    /// `TIMEOUT`: when to give up (or force).
    pub deadline: Option<Instant>,
    /// Where it is.
    pub state: FailoverState,
}

impl FailoverState {
    /// `master_failover_state` in `INFO replication`.
    pub(crate) fn info_name(state: Option<FailoverState>) -> &'static str {
        match state {
            None => "no-failover",
            Some(FailoverState::WaitingForSync) => "waiting-for-sync",
            Some(FailoverState::InProgress) => "failover-in-progress",
        }
    }
}

impl Server {
    /// From the cron: a waiting failover starts once its replica caught up, or at its timeout
    /// is forced or aborted.
    pub(crate) fn update_failover(&mut self) {
        let Some(failover) = self.replication.failover.as_ref() else {
            return;
        };
        if failover.state != FailoverState::WaitingForSync {
            return;
        }
        if failover.deadline.is_some_and(|at| Instant::now() >= at) {
            match (failover.force, failover.target.clone()) {
                (true, Some((host, port))) => {
                    crate::notice!("FAILOVER to {host}:{port} time out exceeded, failing over.");
                    self.start_failing_over(host, port);
                }
                _ => self.abort_failover("Replica never caught up before timeout"),
            }
            return;
        }
        let offset = self.replication.offset;
        let caught_up = self
            .replication
            .replicas
            .views()
            .into_iter()
            .filter(|replica| replica.state == "online" && replica.ack_offset == offset)
            .find(|replica| {
                failover
                    .target
                    .as_ref()
                    .is_none_or(|(host, port)| *host == replica.ip && *port == replica.port)
            });
        if let Some(replica) = caught_up {
            crate::notice!(
                "Failover target {}:{} is synced, failing over.",
                replica.ip,
                replica.port
            );
            self.start_failing_over(replica.ip, replica.port);
        }
    }

    fn start_failing_over(&mut self, host: String, port: u16) {
        if let Some(failover) = self.replication.failover.as_mut() {
            failover.state = FailoverState::InProgress;
            failover.target = Some((host.clone(), port));
        }
        crate::commands::follow(self, host, port);
    }

    /// The target accepted our `PSYNC ... FAILOVER`: writes resume (and meet `-READONLY`).
    pub(crate) fn finish_failover(&mut self) {
        if self.replication.failover.take().is_some() {
            self.pauses.set_failover(false);
        }
    }

    /// Gives up a failover; one in progress makes this server a master again.
    pub(crate) fn abort_failover(&mut self, reason: &str) {
        let Some(failover) = self.replication.failover.take() else {
            return;
        };
        match &failover.target {
            Some((host, port)) => {
                crate::notice!("FAILOVER to {host}:{port} aborted: {reason}");
            }
            None => crate::notice!("FAILOVER to any replica aborted: {reason}"),
        }
        if failover.state == FailoverState::InProgress {
            crate::commands::promote(self);
        }
        self.pauses.set_failover(false);
    }
}
