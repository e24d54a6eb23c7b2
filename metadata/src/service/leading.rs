//! Which node answers a request, and when: a leader cut off from its
//! quorum or handing its leadership over sends clients on, a node that
//! knows no leader waits for one to be named, and reads are linearizable
//! (the leader lease, or a shared read-index round).

use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use tessera_rpc::{LEADER_HEADER, NOT_LEADER_HEADER};
use tonic::Status;
use tonic::metadata::MetadataValue;

use super::MetaService;
use crate::MetaState;
use crate::read_index::{Confirmed, ReadFail, ReadIndex};

impl MetaService {
    /// A leader that has heard no quorum for longer than an election
    /// could take (cut off from its peers, as by a network partition)
    /// answers as a node that does not lead, with no leader to name, so
    /// clients try the other nodes at once instead of waiting on it: its
    /// writes could not commit and its reads could not be confirmed. Raft
    /// itself keeps it leader until it hears the newer term.
    pub(super) fn cut_off(&self) -> Result<(), Status> {
        if self.handover.handing() {
            return Err(marked(Status::unavailable("the metadata leadership is being handed over"), None));
        }
        let m = self.raft.metrics();
        let m = m.borrow();
        let limit = self.raft.config().election_timeout_max.saturating_mul(3) / 2;
        match m.millis_since_quorum_ack {
            Some(ms) if m.current_leader == Some(self.node_id) && ms > limit => {
                Err(marked(Status::unavailable(format!("leader without a quorum for {ms} ms")), None))
            }
            _ => Ok(()),
        }
    }

    /// A node that knows no leader (an election under way) holds a
    /// not-leader answer until one is elected, up to an election timeout,
    /// and then names it: the client goes straight to the new leader
    /// instead of polling the nodes with back-off. Answers that already
    /// name a leader, or that come from a leader cut off from its quorum
    /// (which knows itself as leader), go back at once.
    pub(super) async fn name_the_leader(&self, status: Status) -> Status {
        if status.metadata().get(NOT_LEADER_HEADER).is_none() || status.metadata().get(LEADER_HEADER).is_some() {
            return status;
        }
        let mut rx = self.raft.metrics();
        if rx.borrow().current_leader.is_some() {
            return status;
        }
        let limit = Duration::from_millis(self.raft.config().election_timeout_max);
        let elected = tokio::time::timeout(limit, rx.wait_for(|m| m.current_leader.is_some())).await;
        let Ok(Ok(m)) = elected else { return status };
        let leader = m.current_leader.and_then(|id| m.membership_config.membership().get_node(&id).cloned());
        marked(Status::unavailable("not the leader"), leader.as_ref())
    }

    /// Fails unless this node currently leads (no read index: for calls
    /// whose answer does not depend on the latest state).
    pub(super) fn require_leader(&self) -> Result<(), Status> {
        self.cut_off()?;
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader == Some(self.node_id) {
            return Ok(());
        }
        let leader = m.current_leader.and_then(|id| m.membership_config.membership().get_node(&id).cloned());
        Err(marked(Status::unavailable("not the leader"), leader.as_ref()))
    }

    pub(super) fn reads(&self) -> &Arc<ReadIndex> {
        self.reads.get_or_init(|| {
            ReadIndex::new(
                self.raft.clone(),
                self.metrics.read_rounds.clone(),
                crate::read_index::lease_window(self.lease_base),
            )
        })
    }

    /// Confirms leadership — by the leader lease when `lease` allows it and
    /// it holds, otherwise through a read index — and waits until the state
    /// machine has applied up to the index: a read after this sees every
    /// write acknowledged before it began. Concurrent reads share one
    /// confirmation round; a read confirmed by the lease must check
    /// [`ReadIndex::lease_holds`] once done (read_index.rs).
    pub(super) async fn linearize(&self, lease: bool) -> Result<Confirmed, Status> {
        self.handover.wait().await?;
        self.cut_off()?;
        match self.reads().confirm_read(lease).await {
            Ok((Some(index), how)) => {
                // The state machine says when it gets there (openraft's own
                // wait follows its metrics, published only between batches
                // of its work).
                self.state.applied_at_least(index).await;
                Ok(how)
            }
            Ok((None, how)) => Ok(how),
            Err(ReadFail::NotLeader(leader)) => {
                Err(self.name_the_leader(marked(Status::unavailable("not the leader"), leader.as_ref())).await)
            }
            // A leader that cannot confirm its leadership within an election
            // timeout has probably lost its quorum: the client is sent on.
            Err(ReadFail::Timeout(limit)) => {
                Err(marked(Status::unavailable(format!("leadership not confirmed within {limit:?}")), None))
            }
            Err(ReadFail::NoQuorum(e)) => {
                Err(marked(Status::unavailable(format!("leadership not confirmed: {e}")), None))
            }
            Err(ReadFail::Fatal(e)) => Err(Status::internal(format!("raft stopped: {e}"))),
        }
    }

    /// Runs a blocking state read off the runtime threads, linearizable:
    /// confirmed by the leader lease, or by a read-index round when the
    /// lease does not hold or lapsed while the read ran.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl Fn(&MetaState) -> T + Send + Sync + 'static,
    ) -> Result<T, Status> {
        let f = Arc::new(f);
        let run = |f: Arc<dyn Fn(&MetaState) -> T + Send + Sync>| {
            let st = self.state.clone();
            let pool = self.read_pool.clone();
            async move { pool.run(move || f(&st)).await }
        };
        if self.linearize(true).await? == Confirmed::Round {
            return run(f).await;
        }
        let v = run(f.clone()).await?;
        if self.reads().lease_holds() {
            return Ok(v);
        }
        self.linearize(false).await?;
        run(f).await
    }
}

/// Marks a status as "not the leader, nothing applied", naming the leader.
pub(super) fn marked(mut s: Status, leader: Option<&BasicNode>) -> Status {
    s.metadata_mut().insert(NOT_LEADER_HEADER, MetadataValue::from_static("1"));
    if let Some(v) = leader.and_then(|n| MetadataValue::try_from(n.addr.as_str()).ok()) {
        s.metadata_mut().insert(LEADER_HEADER, v);
    }
    s
}

fn not_leader(f: &ForwardToLeader<u64, BasicNode>) -> Status {
    marked(Status::unavailable("not the leader"), f.leader_node.as_ref())
}

pub(super) fn write_error(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> Status {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => not_leader(&f),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => Status::failed_precondition(e.to_string()),
        RaftError::Fatal(e) => Status::unavailable(format!("raft stopped: {e}")),
    }
}
