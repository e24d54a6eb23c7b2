//! Leadership transfer (`tessera admin meta transfer-leader`): the leader
//! hands its role to a voter an operator names, before it is stopped for
//! maintenance or to move the load. openraft 0.9 has no transfer; it is
//! built from its runtime switches (heartbeats, elections) and its election
//! trigger, run by the leader in four steps:
//!
//! ```text
//!  1. hand-over begins: new writes and reads wait (≤ HOLD); no heartbeats
//!  2. drained: no client write in flight, the target's log matches ours
//!  3. the other voters hold their elections (≤ the campaign's time)
//!  4. the target stands, again each round, until it leads: the voters
//!     grant it once the lease they gave us has run out
//!  end: heartbeats and elections back on; waiting requests go on — to
//!       the new leader (named in the answer), or here if it failed
//! ```
//!
//! Safety is Raft's own: the switches only decide who stands and when, and
//! a vote is granted by the usual rules (log at least as long, no leader
//! heard within a lease). Reads stay linearizable: from step 1 this node
//! confirms no new read, and a read confirmed before it returns what was
//! committed before any write of the new leader. A write in flight when the
//! leadership moves would have an unknown outcome; step 2 waits until none
//! is.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use openraft::Raft;
use tessera_rpc::proto::meta::ClusterStatusReply;
use tessera_rpc::proto::raft::raft_client::RaftClient;
use tessera_rpc::proto::raft::{CampaignReply, CampaignRequest, HoldElectionsRequest};
use tokio::sync::watch;
use tonic::{Code, Status};

use super::{MetaService, marked};
use crate::raft::TypeConfig;

/// Longest a request waits for a hand-over to end before it is answered
/// "not the leader" (nothing applied; the client tries again).
const HOLD: Duration = Duration::from_secs(2);
/// Longest the leader waits for its clients' writes in flight, and for the
/// target's log to reach its own.
const DRAIN: Duration = Duration::from_secs(1);

/// The hand-over state of one node: the target while a transfer is under
/// way, and the client writes in flight.
pub(crate) struct Handover {
    target: watch::Sender<Option<u64>>,
    in_flight: AtomicUsize,
}

/// A client write counted in flight until dropped.
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Handover {
    pub(crate) fn new() -> Self {
        Handover { target: watch::Sender::new(None), in_flight: AtomicUsize::new(0) }
    }

    /// Whether a transfer is under way.
    pub(crate) fn handing(&self) -> bool {
        self.target.borrow().is_some()
    }

    /// Waits (up to [`HOLD`]) while a transfer is under way.
    pub(crate) async fn wait(&self) -> Result<(), Status> {
        if !self.handing() {
            return Ok(());
        }
        let mut rx = self.target.subscribe();
        match tokio::time::timeout(HOLD, rx.wait_for(Option::is_none)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(marked(Status::unavailable("the metadata leadership is being handed over"), None)),
        }
    }

    /// Admits a client write: counted in flight, never while a transfer is
    /// under way (one that begins meanwhile sees it counted and waits).
    pub(crate) async fn admit(&self) -> Result<InFlight<'_>, Status> {
        loop {
            self.wait().await?;
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            let counted = InFlight(&self.in_flight);
            // The watch's lock orders this look after the count above, and
            // a transfer's count after its begin: one of them sees the other.
            if !self.handing() {
                return Ok(counted);
            }
        }
    }

    /// Starts a transfer to `target`; false when one is under way.
    fn begin(&self, target: u64) -> bool {
        self.target.send_if_modified(|t| {
            if t.is_some() {
                return false;
            }
            *t = Some(target);
            true
        })
    }

    fn end(&self) {
        self.target.send_replace(None);
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

/// How long the target may campaign: several leases of the slowest voter.
fn campaign_time(raft: &Raft<TypeConfig>) -> Duration {
    (Duration::from_millis(raft.config().election_timeout_max) * 3).max(Duration::from_secs(2))
}

impl MetaService {
    /// Hands the leadership to voter `target` (0: the most caught-up other
    /// voter) and answers the cluster's status as this node then sees it.
    pub(crate) async fn transfer_leader(&self, target: u64) -> Result<ClusterStatusReply, Status> {
        self.require_leader()?;
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let matched = |id: u64| matched_index(&m, id).unwrap_or(0);
        let target = match target {
            0 => voters
                .iter()
                .copied()
                .filter(|&v| v != self.node_id)
                .max_by_key(|&v| (matched(v), std::cmp::Reverse(v)))
                .ok_or_else(|| Status::failed_precondition("there is no other metadata voter to lead"))?,
            t => t,
        };
        if target == self.node_id {
            return Ok(self.status());
        }
        if !voters.contains(&target) {
            return Err(Status::not_found(format!("node {target} is not a metadata voter")));
        }
        let addr_of = |id: u64| membership.get_node(&id).map(|n| n.addr.clone()).unwrap_or_default();
        let others: Vec<(u64, String)> =
            voters.iter().filter(|&&v| v != self.node_id && v != target).map(|&v| (v, addr_of(v))).collect();
        if !self.handover.begin(target) {
            return Err(Status::failed_precondition("a leadership transfer is already under way"));
        }
        tracing::info!(target, "metadata leadership transfer begins");
        let started = Instant::now();
        self.raft.runtime_config().heartbeat(false);
        let result = self.hand_over(target, &addr_of(target), &others).await;
        self.raft.runtime_config().heartbeat(true);
        // The others stand again at once (they would after their hold).
        futures::future::join_all(others.iter().map(|(_, addr)| hold_elections(addr, Duration::ZERO))).await;
        if result.is_err() && self.raft.metrics().borrow().current_leader == Some(self.node_id) {
            // Leadership confirmed by a quorum at our term before anything
            // is served again (a read-index round; its failure sends the
            // waiting requests on as usual).
            let _ = self.reads().confirm().await;
        }
        self.handover.end();
        match &result {
            Ok(()) => tracing::info!(target, took = ?started.elapsed(), "metadata leadership handed over"),
            Err(e) => tracing::warn!(target, error = %e.message(), "metadata leadership transfer failed"),
        }
        result.map(|()| self.status())
    }

    async fn hand_over(&self, target: u64, target_addr: &str, others: &[(u64, String)]) -> Result<(), Status> {
        let waited = Instant::now();
        while self.handover.in_flight() > 0 {
            if waited.elapsed() > DRAIN {
                return Err(Status::unavailable(format!(
                    "{} writes were still in flight after {DRAIN:?}",
                    self.handover.in_flight()
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The target's log must match ours (internal writes of this node —
        // liveness, lifecycle — may still add entries; the campaign's
        // rounds wait for those).
        let mut rx = self.raft.metrics();
        let caught_up =
            |m: &openraft::RaftMetrics<u64, openraft::BasicNode>| matched_index(m, target) >= m.last_log_index;
        if tokio::time::timeout(DRAIN, rx.wait_for(caught_up)).await.is_err() {
            let m = rx.borrow().clone();
            let matched = matched_index(&m, target).unwrap_or(0);
            return Err(Status::failed_precondition(format!(
                "node {target} has not caught up (its log matches to index {matched} of {})",
                m.last_log_index.unwrap_or(0)
            )));
        }
        let time = campaign_time(&self.raft);
        for (id, addr) in others {
            match hold_elections(addr, time).await {
                Ok(()) => {}
                Err(e) if e.code() == Code::Unimplemented => return Err(older(*id)),
                // An unreachable voter cannot vote either: it does not stop
                // the transfer (if it comes back meanwhile and stands, the
                // transfer may fail, never the cluster).
                Err(e) => tracing::warn!(node = id, error = %e.message(), "voter not held during the transfer"),
            }
        }
        let reply = match campaign(target_addr, time).await {
            Ok(r) => r,
            Err(e) if e.code() == Code::Unimplemented => return Err(older(target)),
            Err(e) => {
                return Err(Status::unavailable(format!("node {target} could not be told to stand: {}", e.message())));
            }
        };
        // Our own view follows when the new leader's first message arrives.
        let seen = tokio::time::timeout(DRAIN, rx.wait_for(|m| m.current_leader.is_some_and(|l| l != self.node_id)));
        let leader = seen.await.ok().and_then(|r| r.ok().and_then(|m| m.current_leader));
        match leader {
            Some(l) if l == target => Ok(()),
            _ if reply.leads => Ok(()),
            Some(other) => Err(Status::aborted(format!("node {other} was elected instead of node {target}"))),
            None => Err(Status::deadline_exceeded(format!(
                "node {target} was not elected within {time:?}; node {} goes on leading",
                self.node_id
            ))),
        }
    }
}

/// How far voter `id`'s log matches the leader's, as the leader knows it.
fn matched_index(m: &openraft::RaftMetrics<u64, openraft::BasicNode>, id: u64) -> Option<u64> {
    m.replication.as_ref().and_then(|r| r.get(&id).cloned().flatten()).map(|l| l.index)
}

fn older(id: u64) -> Status {
    Status::failed_precondition(format!(
        "node {id} runs an earlier release without leadership transfer; upgrade it first"
    ))
}

async fn raft_client(addr: &str) -> Result<RaftClient<tonic::transport::Channel>, Status> {
    let ch = tessera_rpc::cluster_tls::connect_url(addr).await.map_err(Status::unavailable)?;
    Ok(RaftClient::new(ch))
}

/// Tells the voter at `addr` to stand for no election for `time` (zero:
/// to stand again now).
async fn hold_elections(addr: &str, time: Duration) -> Result<(), Status> {
    let call = async {
        let mut c = raft_client(addr).await?;
        c.hold_elections(HoldElectionsRequest { millis: time.as_millis() as u64 }).await.map(|_| ())
    };
    tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .unwrap_or_else(|_| Err(Status::unavailable(format!("{addr} did not answer within 2 s"))))
}

/// Tells the voter at `addr` to stand until it leads or `time` passes.
async fn campaign(addr: &str, time: Duration) -> Result<CampaignReply, Status> {
    let call = async {
        let mut c = raft_client(addr).await?;
        c.campaign(CampaignRequest { millis: time.as_millis() as u64 }).await.map(|r| r.into_inner())
    };
    tokio::time::timeout(time + Duration::from_secs(2), call)
        .await
        .unwrap_or_else(|_| Err(Status::unavailable(format!("{addr} did not answer within {time:?}"))))
}

/// The voter's side: its elections held for a while, or its campaign.
#[derive(Default)]
pub struct Standing {
    /// Bumped by every hold and campaign: a hold's timer only lifts the
    /// hold it set.
    generation: std::sync::Arc<AtomicU64>,
}

impl Standing {
    /// Stands for no election for `time` (zero: stands again now).
    pub(crate) fn hold(&self, raft: &Raft<TypeConfig>, time: Duration) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        if time.is_zero() {
            raft.runtime_config().elect(true);
            return;
        }
        raft.runtime_config().elect(false);
        let (raft, current) = (raft.clone(), self.generation.clone());
        tokio::spawn(async move {
            tokio::time::sleep(time).await;
            if current.load(Ordering::SeqCst) == generation {
                raft.runtime_config().elect(true);
            }
        });
    }

    /// Stands for election — again each round (a vote refused while the
    /// old leader's lease holds) — until this node leads or `time` passes.
    pub(crate) async fn campaign(&self, raft: &Raft<TypeConfig>, time: Duration) -> CampaignReply {
        self.generation.fetch_add(1, Ordering::SeqCst);
        raft.runtime_config().elect(true);
        let deadline = Instant::now() + time.min(Duration::from_secs(60));
        let round = Duration::from_millis(raft.config().heartbeat_interval.clamp(20, 200));
        let mut rx = raft.metrics();
        let id = rx.borrow().id;
        loop {
            let (leads, term) = {
                let m = rx.borrow_and_update();
                (m.current_leader == Some(id), m.current_term)
            };
            if leads || Instant::now() >= deadline {
                return CampaignReply { leads, term };
            }
            if raft.trigger().elect().await.is_err() {
                return CampaignReply { leads: false, term };
            }
            let _ = tokio::time::timeout(round, rx.wait_for(|m| m.current_leader == Some(id))).await;
        }
    }
}
