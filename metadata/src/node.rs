//! One metadata node: the composition root. Opens RocksDB, starts Raft,
//! serves the Raft, metadata and health services on one gRPC port, and
//! stops cleanly when `shutdown` flips.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Raft, SnapshotPolicy};
use tessera_common::{MetricsRegistry, NodeId};
use tessera_rpc::{HealthService, LocalMeta};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use tessera_common::worker::{WorkerConfig, spawn_worker};

use crate::lifecycle::LifecycleWorker;
use crate::liveness::{LivenessTable, LivenessWorker};
use crate::metrics::MetaMetrics;
use crate::notify::NotifyWorker;
use crate::raft::{LogStore, NetworkFactory, RaftService, StateMachineStore, TypeConfig};
use crate::service::MetaService;
use crate::version::Levels;
use crate::{MetaError, MetaState, open_db};

/// How to run one metadata node.
#[derive(Clone, Debug)]
pub struct MetaConfig {
    /// This node's Raft id: unique in the cluster, never reused.
    pub node_id: u64,
    /// Address of the gRPC port.
    pub listen: SocketAddr,
    /// URL peers and clients use to reach this node; `http://{listen}` if unset.
    pub advertise: Option<String>,
    /// Where the node's RocksDB lives.
    pub data_dir: PathBuf,
    /// Make this node the single voter of a new cluster if it has no Raft
    /// state yet. Other nodes join through `AddLearner` and `ChangeMembership`.
    pub bootstrap: bool,
    /// Leader heartbeat interval.
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time in this range starts an election.
    pub election_timeout: (Duration, Duration),
    /// Build a snapshot (and purge the log behind it) after this many entries.
    pub snapshot_after_entries: u64,
    /// A disk whose datanode has not reported it healthy for this long is marked down.
    pub disk_down_after: Duration,
    /// A disk down for this long is marked out: placement moves its data.
    pub disk_out_after: Duration,
    /// How often the leader's liveness worker looks.
    pub liveness_interval: Duration,
    /// How often the leader's lifecycle worker starts a pass over the
    /// buckets with lifecycle rules.
    pub lifecycle_interval: Duration,
    /// The lifecycle worker's pause after each page (1,000 versions): its
    /// throttle (0: full speed).
    pub lifecycle_throttle: Duration,
    /// Where the node's metrics are registered (`tessera_metadata_*`).
    pub metrics: MetricsRegistry,
    /// The highest command level the node understands: this release's
    /// ([`crate::version::LEVEL`]) unless it is told to behave as an older
    /// release (for upgrade tests).
    pub command_level: u32,
    /// Serve enrollments (join tokens) to TLS clients without a node
    /// certificate on the gRPC port; `None`: such clients are refused.
    pub enroll: Option<tessera_rpc::enroll::Handler>,
    /// Lifetime of the certificates this node signs for renewals.
    pub cert_validity: Duration,
}

impl MetaConfig {
    /// Defaults for node `node_id` listening on `listen` with data in `data_dir`.
    pub fn new(node_id: u64, listen: SocketAddr, data_dir: PathBuf) -> Self {
        MetaConfig {
            node_id,
            listen,
            advertise: None,
            data_dir,
            bootstrap: false,
            // Fail-over. openraft (0.9) has a follower that heard a leader
            // wait its lease (the longest election timeout) plus a random
            // election timeout before it stands, and refuse votes during
            // that lease: a killed leader is replaced 0.9–1.2 s after its
            // last heartbeat (plus openraft's tick, 1.5 heartbeats). When
            // the follower with the shorter log stands first it is refused
            // and the other wins on its own timer; a node refused so once
            // waits 2 × the longest timeout more in its next election
            // (openraft keeps that flag until it stands again), so some
            // fail-overs take longer. openraft gives every AppendEntries
            // (entries and the follower's fsync included) one heartbeat
            // interval to be answered and backs off 500 ms after a miss:
            // 50 ms was too short under load (elections followed), so the
            // heartbeat stays at 100 ms. Nine heartbeats must go missing
            // before a follower stands (the chaos suite checks the term
            // under load).
            heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(300), Duration::from_millis(600)),
            snapshot_after_entries: 10_000,
            disk_down_after: Duration::from_secs(15),
            disk_out_after: Duration::from_secs(600),
            liveness_interval: Duration::from_secs(1),
            lifecycle_interval: Duration::from_secs(10),
            lifecycle_throttle: Duration::ZERO,
            metrics: MetricsRegistry::default(),
            command_level: crate::version::LEVEL,
            enroll: None,
            cert_validity: tessera_rpc::enroll::CERT_VALIDITY,
        }
    }

    /// Refuses settings that cannot work.
    pub fn validate(&self) -> Result<(), MetaError> {
        let bad = |m: &str| Err(MetaError::InvalidArgument(format!("metadata config: {m}")));
        if self.node_id == 0 {
            return bad("node_id must be at least 1");
        }
        if self.election_timeout.0 <= self.heartbeat * 2 || self.election_timeout.1 <= self.election_timeout.0 {
            return bad("election timeout must exceed two heartbeats and max must exceed min");
        }
        if !(crate::version::BASE_LEVEL..=crate::version::LEVEL).contains(&self.command_level) {
            return bad(&format!(
                "command level must be between {} and {} (this release)",
                crate::version::BASE_LEVEL,
                crate::version::LEVEL
            ));
        }
        if self.snapshot_after_entries == 0 {
            return bad("snapshot_after_entries must be positive");
        }
        if self.lifecycle_interval.is_zero() {
            return bad("lifecycle_interval must be positive");
        }
        if self.disk_out_after <= self.disk_down_after || self.liveness_interval.is_zero() {
            return bad("disk_out_after must exceed disk_down_after, and liveness_interval be positive");
        }
        Ok(())
    }

    /// This node's election timeout: fixed, not drawn at random, and
    /// staggered by node id — `max + ((id − 1) mod 3) × (max − min) / 3`
    /// (600, 700 and 800 ms for nodes 1, 2 and 3 by default).
    ///
    /// openraft 0.9 draws a node's timeout once per process, so two
    /// followers whose draws fall within a vote's round trip of each other
    /// split the vote after a leader dies, and again after each retry until
    /// their gap has doubled enough: 3 of 9 leader kills took 2.3–3.3 s to
    /// the first write. With distinct fixed timeouts the survivor of the
    /// lowest slot stands alone. Each timeout is at least `max`, so every
    /// node still refuses votes for at least `max` after it heard a leader,
    /// which is what the leader lease relies on (read_index.rs).
    pub fn election_timeout_ms(&self) -> u64 {
        let (min, max) = (self.election_timeout.0.as_millis() as u64, self.election_timeout.1.as_millis() as u64);
        max + (self.node_id.saturating_sub(1) % 3) * ((max - min) / 3)
    }

    fn raft_config(&self) -> Result<openraft::Config, MetaError> {
        let timeout = self.election_timeout_ms();
        openraft::Config {
            cluster_name: "tessera-meta".into(),
            heartbeat_interval: self.heartbeat.as_millis() as u64,
            // openraft draws from [min, max): one value. Its leader lease
            // (how long a follower refuses votes) is `max`.
            election_timeout_min: timeout,
            election_timeout_max: timeout + 1,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries),
            max_in_snapshot_log_to_keep: self.snapshot_after_entries / 10,
            ..Default::default()
        }
        .validate()
        .map_err(|e| MetaError::InvalidArgument(format!("raft config: {e}")))
    }
}

/// How long open calls may run on after shutdown starts.
const DRAIN: Duration = Duration::from_secs(3);

/// Binds `config.listen` and serves until `shutdown` becomes true.
pub async fn run(config: MetaConfig, shutdown: watch::Receiver<bool>) -> Result<(), MetaError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| MetaError::InvalidArgument(format!("cannot listen on {}: {e}", config.listen)))?;
    serve(config, listener, shutdown).await
}

/// Serves on an already bound listener until `shutdown` becomes true.
pub async fn serve(
    config: MetaConfig,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<(), MetaError> {
    let (_local, node) = start(config, listener, shutdown).await?;
    node.await.map_err(|e| MetaError::Storage(format!("metadata node task: {e}")))?
}

/// Starts a node on an already bound listener: returns once Raft is up,
/// with the node's metadata service for calls from this process (see
/// [`LocalMeta`]) and the task that serves until `shutdown` becomes true.
pub async fn start(
    config: MetaConfig,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(LocalMeta, JoinHandle<Result<(), MetaError>>), MetaError> {
    config.validate()?;
    let enroll = config.enroll.clone();
    let local = listener.local_addr().map_err(|e| MetaError::InvalidArgument(e.to_string()))?;
    let advertise = config.advertise.clone().unwrap_or_else(|| format!("http://{local}"));
    let db = open_db(&config.data_dir)?;
    let state = MetaState::new(db.clone());
    let raft = Raft::new(
        config.node_id,
        Arc::new(config.raft_config()?),
        NetworkFactory::default(),
        LogStore::new(db.clone()),
        StateMachineStore::new(state.clone()).with_level(config.command_level),
    )
    .await
    .map_err(|e| MetaError::Storage(format!("raft start: {e}")))?;
    if config.bootstrap && !raft.is_initialized().await.map_err(|e| MetaError::Storage(e.to_string()))? {
        let members = BTreeMap::from([(config.node_id, BasicNode::new(advertise.clone()))]);
        raft.initialize(members).await.map_err(|e| MetaError::Storage(format!("bootstrap: {e}")))?;
        tracing::info!(node = config.node_id, %advertise, "bootstrapped a new metadata cluster");
    }
    let liveness = LivenessTable::default();
    let metrics = MetaMetrics::register(&config.metrics);
    let levels = Arc::new(Levels::new(config.command_level));
    if config.command_level < crate::version::LEVEL {
        tracing::warn!(
            node = config.node_id,
            level = config.command_level,
            "this metadata node behaves as an older release (command level {} of {})",
            config.command_level,
            crate::version::LEVEL
        );
    }
    let (workers_stop, workers_rx) = watch::channel(false);
    let lifecycle_rx = workers_rx.clone();
    let notify_rx = workers_rx.clone();
    let liveness_worker = spawn_worker(
        LivenessWorker::new(
            raft.clone(),
            state.clone(),
            liveness.clone(),
            config.node_id,
            config.disk_down_after,
            config.disk_out_after,
        )
        .with_metrics(metrics.clone())
        .with_levels(levels.clone()),
        WorkerConfig { idle_interval: config.liveness_interval, ..WorkerConfig::default() },
        workers_rx,
    );
    let lifecycle_worker = spawn_worker(
        LifecycleWorker::new(raft.clone(), state.clone(), config.node_id, config.lifecycle_interval)
            .with_metrics(metrics.clone()),
        WorkerConfig {
            idle_interval: Duration::from_millis(200).min(config.lifecycle_interval),
            throttle: config.lifecycle_throttle,
            ..WorkerConfig::default()
        },
        lifecycle_rx,
    );
    let notify_worker = spawn_worker(
        NotifyWorker::new(raft.clone(), state.clone(), config.node_id, "us-east-1".into())
            .with_metrics(metrics.clone()),
        WorkerConfig { idle_interval: Duration::from_millis(200), ..WorkerConfig::default() },
        notify_rx,
    );
    // Their status joins the datanodes' workers in WorkerStatus.
    let reporter = {
        let watches = [lifecycle_worker.watch(), notify_worker.watch()];
        let (liveness, node_id) = (liveness.clone(), config.node_id);
        tokio::spawn(async move {
            loop {
                for w in &watches {
                    liveness.record_local(node_id, tessera_rpc::proto::meta::WorkerReport::of(&w.status()));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let follower = tokio::spawn(metrics.clone().follow(raft.clone(), config.node_id));
    let poller = tokio::spawn(poll_levels(raft.clone(), levels.clone(), config.node_id));
    let health = HealthService::new("meta", NodeId(config.node_id));
    health.set_serving(true);
    tracing::info!(node = config.node_id, %local, "metadata node serving");
    let meta = MetaService::server_with_metrics(
        raft.clone(),
        state,
        config.node_id,
        liveness,
        metrics,
        levels,
        config.cert_validity,
        config.election_timeout.1,
    );
    let local_meta = LocalMeta::new(advertise, meta.clone());
    // The leader lease (read_index.rs) relies on every node that
    // acknowledged the leader refusing votes for a lease after it did. A
    // node that restarts forgets when it last heard the leader, so it hears
    // nothing (its peers' calls wait in the listen queue) for a lease first.
    let quiet = config.election_timeout.1;
    let node = tokio::spawn(async move {
        tokio::time::sleep(quiet).await;
        let mut drain_signal = shutdown.clone();
        let server = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .trace_fn(tessera_rpc::trace::server_span)
            .add_service(RaftService::server(raft.clone()))
            .add_service(meta)
            .add_service(health.into_server())
            .serve_with_incoming_shutdown(
                tessera_rpc::cluster_tls::Incoming::with_enroll(listener, enroll),
                async move {
                    while !*shutdown.borrow() {
                        if shutdown.changed().await.is_err() {
                            break;
                        }
                    }
                },
            );
        // Graceful shutdown waits for open streams (a gateway's cluster-map
        // watch never ends by itself): give them DRAIN, then close.
        let mut fatal = None;
        let served = tokio::select! {
            r = server => r,
            // Raft stopped by itself (a storage failure, or an entry this
            // release does not understand): the node ends with the error,
            // so the process exits and the operator sees why.
            e = raft_stopped(raft.clone()) => {
                tracing::error!(node = config.node_id, error = %e, "raft stopped; the metadata node stops");
                fatal = Some(e);
                Ok(())
            }
            _ = async {
                while !*drain_signal.borrow() {
                    if drain_signal.changed().await.is_err() {
                        break;
                    }
                }
                tokio::time::sleep(DRAIN).await;
            } => {
                tracing::info!(node = config.node_id, "streams still open after {DRAIN:?}; closing them");
                Ok(())
            }
        };
        workers_stop.send_replace(true);
        if let Err(e) = liveness_worker.join().await {
            tracing::warn!(error = %e, "liveness worker ended badly");
        }
        reporter.abort();
        if let Err(e) = lifecycle_worker.join().await {
            tracing::warn!(error = %e, "lifecycle worker ended badly");
        }
        if let Err(e) = notify_worker.join().await {
            tracing::warn!(error = %e, "notify worker ended badly");
        }
        let stopped = raft.shutdown().await;
        follower.abort();
        poller.abort();
        served.map_err(|e| MetaError::Storage(format!("grpc server: {e}")))?;
        if let Some(e) = fatal {
            return Err(MetaError::Storage(format!("raft stopped: {e}")));
        }
        stopped.map_err(|e| MetaError::Storage(format!("raft shutdown: {e}")))?;
        tracing::info!(node = config.node_id, "metadata node stopped");
        Ok(())
    });
    Ok((local_meta, node))
}

/// Asks every other member of the group for its command level once a
/// second (its `ClusterStatus`), so whichever node leads knows what the
/// whole group understands (crate::version). A member that does not answer
/// keeps the level last heard.
async fn poll_levels(raft: Raft<TypeConfig>, levels: Arc<Levels>, me: u64) {
    use tessera_rpc::proto::meta::ClusterStatusRequest;
    use tessera_rpc::proto::meta::meta_client::MetaClient as MetaGrpc;
    let mut clients: HashMap<String, MetaGrpc<tonic::transport::Channel>> = HashMap::new();
    loop {
        let members: Vec<(u64, String)> = {
            let m = raft.metrics();
            let m = m.borrow();
            m.membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != me)
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect()
        };
        for (id, addr) in members {
            let client = match clients.get(&addr) {
                Some(c) => c.clone(),
                None => match tonic::transport::Endpoint::from_shared(addr.clone()) {
                    Ok(e) => {
                        let c =
                            MetaGrpc::new(tessera_rpc::cluster_tls::channel(e.connect_timeout(Duration::from_secs(1))));
                        clients.insert(addr.clone(), c.clone());
                        c
                    }
                    Err(_) => continue,
                },
            };
            let mut client = client;
            if let Ok(Ok(r)) =
                tokio::time::timeout(Duration::from_secs(1), client.cluster_status(ClusterStatusRequest {})).await
            {
                levels.heard(id, r.into_inner().command_level);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Resolves with Raft's fatal error once it has stopped by itself.
async fn raft_stopped(raft: Raft<TypeConfig>) -> String {
    let mut rx = raft.metrics();
    let error = match rx.wait_for(|m| m.running_state.is_err()).await {
        Ok(m) => m.running_state.as_ref().err().map(|e| e.to_string()),
        Err(_) => None,
    };
    match error {
        Some(e) => e,
        // The metrics sender is gone only when Raft is dropped.
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes 1–3 wait distinct fixed times, none shorter than the
    /// configured maximum (what the leader lease relies on), and openraft's
    /// draw from [min, max) can only give that time.
    #[test]
    fn election_timeouts_are_staggered_and_never_below_the_maximum() {
        let at = |id: u64| {
            let mut c = MetaConfig::new(id, "127.0.0.1:1".parse().unwrap(), PathBuf::from("/nonexistent"));
            c.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
            let raft = c.raft_config().unwrap();
            assert_eq!(raft.election_timeout_max, raft.election_timeout_min + 1);
            assert_eq!(raft.new_rand_election_timeout::<openraft::TokioRuntime>(), raft.election_timeout_min);
            c.election_timeout_ms()
        };
        assert_eq!([at(1), at(2), at(3), at(4)], [600, 700, 800, 600]);
    }
}
