//! Read-index batching. A linearizable read needs the leader to confirm,
//! after the read arrived, that it still leads (openraft's
//! `get_read_log_id`: one heartbeat round to a quorum), then to wait until
//! its state machine has applied up to the commit index it had. Reads that
//! arrive together share one round:
//!
//! ```text
//!  read ─► waiting list ─► round task: take the whole list, ONE get_read_log_id,
//!                                      the answer to every read taken
//!                          (reads arriving during a round wait for the next)
//! ```
//!
//! Linearizable still: a read is answered by a round that began after it
//! joined the list (the list is taken when a round begins), so the
//! leadership it relies on was confirmed after the read arrived, and the
//! index it waits for covers every write acknowledged before that. With one
//! voter a round needs no network at all; with three or five, concurrent
//! reads cost one heartbeat round between them instead of one each.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::{BasicNode, Raft};
use tokio::sync::oneshot;

use crate::raft::TypeConfig;

/// Why a read could not be confirmed.
#[derive(Clone, Debug)]
pub(crate) enum ReadFail {
    /// Another node leads (named when known).
    NotLeader(Option<BasicNode>),
    /// Leadership was not confirmed by a quorum.
    NoQuorum(String),
    /// No answer within an election timeout.
    Timeout(Duration),
    /// Raft has stopped.
    Fatal(String),
}

/// The log index a read must see applied (`None`: already applied).
type Answer = Result<Option<u64>, ReadFail>;

#[derive(Default)]
struct Queue {
    running: bool,
    waiting: Vec<oneshot::Sender<Answer>>,
}

/// Shares read-index rounds among concurrent reads of one node, and
/// answers reads from the leader lease when it holds.
pub(crate) struct ReadIndex {
    raft: Raft<TypeConfig>,
    queue: Mutex<Queue>,
    /// Rounds run (for the metric of reads per round).
    rounds: tessera_common::metrics::Counter,
    /// When a quorum last acknowledged this node as leader (the sending time
    /// of the acknowledged message, as openraft reports it), in which term.
    acked: Arc<Mutex<Option<(Instant, u64)>>>,
    /// How long after `acked` reads may rely on the lease.
    window: Duration,
}

/// How a read was confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Confirmed {
    /// By the leader lease: valid only if the lease still holds once the
    /// read is done ([`ReadIndex::lease_holds`]).
    Lease,
    /// By a read-index round: valid as it is.
    Round,
}

impl ReadIndex {
    /// Read-index rounds for `raft`, counted in `rounds`, and its lease:
    /// a task (in the current runtime) follows openraft's metrics to learn
    /// when a quorum last acknowledged this node as leader.
    pub(crate) fn new(raft: Raft<TypeConfig>, rounds: tessera_common::metrics::Counter, window: Duration) -> Arc<Self> {
        let acked = Arc::new(Mutex::new(None));
        tokio::spawn(follow_acks(raft.clone(), Arc::downgrade(&acked)));
        Arc::new(ReadIndex { raft, queue: Mutex::new(Queue::default()), rounds, acked, window })
    }

    /// The index a read must see applied, if the leader lease holds now:
    /// this node leads in the term a quorum acknowledged it in, less than
    /// the window ago. `None`: a round is needed.
    fn leased(&self) -> Option<Option<u64>> {
        let (at, term) = (*self.acked.lock().unwrap_or_else(|p| p.into_inner()))?;
        if at.elapsed() >= self.window {
            return None;
        }
        let m = self.raft.metrics();
        let m = m.borrow();
        if m.current_leader != Some(m.id) || m.current_term != term {
            return None;
        }
        // Every write acknowledged before this read is in the log up to
        // here (this leader's own first entry included): waiting until it
        // is applied covers them all.
        let applied = m.last_applied.map_or(0, |l| l.index);
        Some(m.last_log_index.filter(|&i| i > applied))
    }

    /// Whether a read confirmed by the lease may be answered: the lease
    /// still holds now that it is done (a node paused in between, whose
    /// followers may have elected another leader meanwhile, must not
    /// answer from what it read).
    pub(crate) fn lease_holds(&self) -> bool {
        self.leased().is_some()
    }

    /// Confirms a read: by the leader lease when `lease` allows it and it
    /// holds, otherwise by a read-index round.
    pub(crate) async fn confirm_read(self: &Arc<Self>, lease: bool) -> Result<(Option<u64>, Confirmed), ReadFail> {
        if lease && let Some(index) = self.leased() {
            return Ok((index, Confirmed::Lease));
        }
        Ok((self.confirm().await?, Confirmed::Round))
    }

    /// Confirms a read: the index it must see applied.
    pub(crate) async fn confirm(self: &Arc<Self>) -> Answer {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.waiting.push(tx);
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            // A task of its own: a caller that gives up must not stop the
            // rounds the others wait on.
            tokio::spawn(self.clone().rounds());
        }
        rx.await.unwrap_or_else(|_| Err(ReadFail::Fatal("the read-index task ended".into())))
    }

    async fn rounds(self: Arc<Self>) {
        let limit = Duration::from_millis(self.raft.config().election_timeout_max);
        loop {
            let batch = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                if q.waiting.is_empty() {
                    q.running = false;
                    return;
                }
                std::mem::take(&mut q.waiting)
            };
            self.rounds.inc();
            let answer = match tokio::time::timeout(limit, self.raft.get_read_log_id()).await {
                Err(_) => Err(ReadFail::Timeout(limit)),
                Ok(Ok((Some(read), applied))) if applied.is_none_or(|a| a.index < read.index) => Ok(Some(read.index)),
                Ok(Ok(_)) => Ok(None),
                Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                    Err(ReadFail::NotLeader(f.leader_node))
                }
                Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
                    Err(ReadFail::NoQuorum(e.to_string()))
                }
                Ok(Err(RaftError::Fatal(e))) => Err(ReadFail::Fatal(e.to_string())),
            };
            for w in batch {
                let _ = w.send(answer.clone());
            }
        }
    }
}

/// The part of the followers' lease a leader relies on. openraft 0.9 has
/// a follower that heard the leader refuse every vote for the longest
/// election timeout after it heard it (and stand only after that plus its
/// own timeout), and counts a quorum's acknowledgement from the time the
/// acknowledged message was *sent*; so no other leader can exist until
/// that time plus the longest election timeout. The leader relies on half
/// of it: the other half covers clocks running at different rates, the
/// time between openraft publishing an acknowledgement and this node
/// seeing it, and scheduling delays.
///
/// Nodes' election timeouts are staggered (`MetaConfig::election_timeout_ms`),
/// all at least the configured `election_timeout.1`: `base` is that, the
/// shortest refusal of any member.
pub(crate) fn lease_window(base: Duration) -> Duration {
    base / 2
}

/// Follows openraft's metrics: each time they change, the moment a quorum
/// last acknowledged this node as leader (now less the milliseconds since
/// then that openraft computed when it published them: late by the delay
/// between publishing and seeing, which the window's margin covers), or
/// none when it does not lead. Metrics not republished leave the moment
/// where it was: it never moves forward without a new acknowledgement.
async fn follow_acks(raft: Raft<TypeConfig>, acked: std::sync::Weak<Mutex<Option<(Instant, u64)>>>) {
    let mut rx = raft.metrics();
    loop {
        let now = Instant::now();
        let seen = {
            let m = rx.borrow_and_update();
            match m.millis_since_quorum_ack {
                Some(ms) if m.current_leader == Some(m.id) => {
                    now.checked_sub(Duration::from_millis(ms)).map(|at| (at, m.current_term))
                }
                _ => None,
            }
        };
        let Some(acked) = acked.upgrade() else { return };
        *acked.lock().unwrap_or_else(|p| p.into_inner()) = seen;
        drop(acked);
        if rx.changed().await.is_err() {
            return;
        }
    }
}
