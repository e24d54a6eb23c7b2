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
use std::time::Duration;

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

/// Shares read-index rounds among concurrent reads of one node.
pub(crate) struct ReadIndex {
    raft: Raft<TypeConfig>,
    queue: Mutex<Queue>,
    /// Rounds run (for the metric of reads per round).
    rounds: tessera_common::metrics::Counter,
}

impl ReadIndex {
    pub(crate) fn new(raft: Raft<TypeConfig>, rounds: tessera_common::metrics::Counter) -> Arc<Self> {
        Arc::new(ReadIndex { raft, queue: Mutex::new(Queue::default()), rounds })
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
