//! One datanode: the composition root. Opens its disks, serves the shard
//! service and health on one gRPC port, registers with the metadata cluster
//! and keeps heartbeating until `shutdown` flips.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tessera_common::worker::{StepResult, Worker, WorkerConfig, WorkerWatch, spawn_worker};
use tessera_common::{DiskId, MetricsRegistry, NodeId};
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::{
    Command, DatanodeRecord, DiskInfo, DiskUsage as ReportedUsage, HeartbeatRequest, RegisterDatanode, WorkerReport,
};
use tessera_rpc::{HealthService, MetaClient, MetaClientConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::{DatanodeMetrics, disk_labels, result_labels};
use crate::{DataService, FsDisk, GcWorker, HealWorker, Rate, RebalanceWorker, ScrubWorker, ShardError, serve_data};
use tessera_pipeline::cluster::Cluster;

/// How to run one datanode.
#[derive(Clone, Debug)]
pub struct DatanodeConfig {
    /// This node's id: unique in the cluster.
    pub node_id: u64,
    /// Address of the gRPC port.
    pub listen: SocketAddr,
    /// URL gateways and peers use to reach this node; `http://{listen}` if unset.
    pub advertise: Option<String>,
    /// The disks: a cluster-unique id and a directory each.
    pub disks: Vec<(DiskId, PathBuf)>,
    /// Failure-domain labels.
    pub zone: String,
    /// Rack label.
    pub rack: String,
    /// Host label (defaults to the node id if empty).
    pub host: String,
    /// Metadata nodes to talk to.
    pub meta_endpoints: Vec<String>,
    /// How often to report disk usage and health to the metadata leader.
    pub heartbeat_interval: Duration,
    /// Scrub read rate per disk, bytes per second.
    pub scrub_rate_bytes_per_sec: u64,
    /// Pause between two scrub passes over a disk.
    pub scrub_interval: Duration,
    /// How long a shard file stays unreferenced before the garbage
    /// collector removes it (counted from when it first saw it so).
    pub gc_grace: Duration,
    /// Pause between two garbage collector passes over a disk.
    pub gc_interval: Duration,
    /// Disks whose folder may be accepted as a new, empty disk although the
    /// cluster knows their id with another incarnation (a replaced disk).
    pub format: Vec<DiskId>,
    /// Rebuild rate of the heal worker per disk, bytes per second.
    pub heal_rate_bytes_per_sec: u64,
    /// Pause between two heal passes over a disk's index.
    pub heal_interval: Duration,
    /// Copy rate of the rebalancer per disk, bytes per second.
    pub rebalance_rate_bytes_per_sec: u64,
    /// How often an idle rebalancer looks for a new cluster map (and
    /// retries moves that could not be made).
    pub rebalance_interval: Duration,
    /// Free bytes below which a disk counts as full and takes no new
    /// shards (writes go around it, heal and rebalance wait); `None`: 1%
    /// of each disk's capacity.
    pub disk_min_free: Option<u64>,
    /// Where the node's metrics are registered (`tessera_datanode_*`).
    pub metrics: MetricsRegistry,
}

impl DatanodeConfig {
    /// Refuses settings that cannot work.
    pub fn validate(&self) -> Result<(), ShardError> {
        let bad = |m: &str| Err(ShardError::BadRequest(format!("datanode config: {m}")));
        if self.node_id == 0 {
            return bad("node_id must be at least 1");
        }
        if self.disks.is_empty() {
            return bad("at least one disk is needed");
        }
        let mut ids: Vec<u32> = self.disks.iter().map(|(d, _)| d.get()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return bad("disk ids must be distinct");
        }
        if self.meta_endpoints.is_empty() {
            return bad("at least one metadata endpoint is needed");
        }
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat_interval must be positive");
        }
        if self.scrub_rate_bytes_per_sec == 0 || self.scrub_interval.is_zero() {
            return bad("scrub rate and interval must be positive");
        }
        if self.gc_interval.is_zero() {
            return bad("gc_interval must be positive");
        }
        if self.heal_rate_bytes_per_sec == 0 || self.heal_interval.is_zero() {
            return bad("heal rate and interval must be positive");
        }
        if self.rebalance_rate_bytes_per_sec == 0 || self.rebalance_interval.is_zero() {
            return bad("rebalance rate and interval must be positive");
        }
        Ok(())
    }
}

/// The worker that reports this node's disks to the metadata leader.
struct HeartbeatWorker {
    node_id: u64,
    disks: Vec<FsDisk>,
    meta: MetaClient,
    sent: u64,
    metrics: DatanodeMetrics,
    /// The node's other workers, reported with each heartbeat.
    workers: Vec<WorkerWatch>,
    /// The workers' live rates, and this node's own settings (used while
    /// the operator's rate is 0).
    rates: Rates,
}

/// The rates of the heal, rebalance and scrub workers, shared with them.
#[derive(Clone)]
struct Rates {
    heal: (Rate, u64),
    rebalance: (Rate, u64),
    scrub: (Rate, u64),
    /// Shard files examined per second on each disk (`u64::MAX`: no
    /// limit), and the pause.
    gc: Rate,
}

impl Rates {
    fn of(config: &DatanodeConfig) -> Self {
        let r = |b: u64| (Rate::new(b), b);
        Rates {
            heal: r(config.heal_rate_bytes_per_sec),
            rebalance: r(config.rebalance_rate_bytes_per_sec),
            scrub: r(config.scrub_rate_bytes_per_sec),
            gc: Rate::new(u64::MAX),
        }
    }

    /// The operator's rates, where set; this node's own elsewhere; and
    /// the pauses. Returns the kinds of workers paused or resumed: they are
    /// woken, to take the step that stops or starts them and to say so at
    /// once (an idle worker might not step again for its whole interval).
    fn apply(&self, set: &tessera_rpc::proto::meta::SetWorkerRates) -> Vec<&'static str> {
        let mut changed = Vec::new();
        for (kind, (rate, own), asked, paused) in [
            ("heal", &self.heal, set.heal_bytes_per_sec, set.heal_paused),
            ("rebalance", &self.rebalance, set.rebalance_bytes_per_sec, set.rebalance_paused),
            ("scrub", &self.scrub, set.scrub_bytes_per_sec, set.scrub_paused),
        ] {
            let want = if asked > 0 { asked } else { *own };
            if rate.get() != want {
                tracing::info!(kind, bytes_per_sec = want, "worker rate changed");
                rate.set(want);
            }
            if rate.set_paused(paused) {
                tracing::info!(kind, paused, "workers paused or resumed by the operator");
                changed.push(kind);
            }
        }
        let gc = if set.gc_files_per_sec > 0 { set.gc_files_per_sec } else { u64::MAX };
        if self.gc.get() != gc {
            tracing::info!(kind = "gc", files_per_sec = gc, "worker rate changed");
            self.gc.set(gc);
        }
        if self.gc.set_paused(set.gc_paused) {
            tracing::info!(kind = "gc", paused = set.gc_paused, "workers paused or resumed by the operator");
            changed.push("gc");
        }
        changed
    }
}

impl Worker for HeartbeatWorker {
    fn name(&self) -> String {
        format!("datanode-heartbeat:{}", NodeId(self.node_id))
    }

    async fn step(&mut self) -> Result<StepResult, String> {
        let disks = self.disks.clone();
        let metrics = self.metrics.clone();
        let usage = tokio::task::spawn_blocking(move || {
            disks
                .iter()
                .map(|d| {
                    let u = d.check_full();
                    let labels = disk_labels(d.id());
                    if let Ok(u) = &u {
                        metrics.disk_used_bytes.get_or_create(&labels).set(u.used_bytes as i64);
                        metrics.disk_capacity_bytes.get_or_create(&labels).set(u.capacity_bytes as i64);
                    }
                    metrics.disk_failed.get_or_create(&labels).set(i64::from(d.is_failed()));
                    metrics.disk_full.get_or_create(&labels).set(i64::from(d.is_full()));
                    ReportedUsage {
                        disk: d.id().get(),
                        used_bytes: u.as_ref().map_or(0, |u| u.used_bytes),
                        capacity_bytes: u.as_ref().map_or(0, |u| u.capacity_bytes),
                        healthy: u.is_ok() && !d.is_failed(),
                        full: d.is_full(),
                    }
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| e.to_string())?;
        let workers = self.workers.iter().map(|w| WorkerReport::of(&w.status())).collect();
        let sent = self.meta.heartbeat(HeartbeatRequest { node_id: self.node_id, disks: usage, workers }).await;
        self.metrics.heartbeats.get_or_create(&result_labels(if sent.is_ok() { "ok" } else { "error" })).inc();
        let reply = sent.map_err(|e| e.to_string())?;
        if let Some(rates) = &reply.rates {
            for kind in self.rates.apply(rates) {
                let of_kind = |w: &&WorkerWatch| w.status().name.split(':').next() == Some(kind);
                self.workers.iter().filter(of_kind).for_each(WorkerWatch::wake);
            }
        }
        self.sent += 1;
        Ok(StepResult::Idle)
    }

    fn progress(&self) -> Option<String> {
        Some(format!("{} heartbeats sent", self.sent))
    }
}

/// Registers this node's disks with the metadata cluster, retrying until it
/// is accepted or `shutdown` flips. A refusal (a disk id owned by another
/// node, say) is fatal: it needs an operator.
async fn register(
    meta: &MetaClient,
    record: DatanodeRecord,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ShardError> {
    // The id this node proposes for the cluster, should it be the first to register.
    let proposed = uuid::Uuid::now_v7().simple().to_string();
    let cmd = Command {
        now_ms: 0,
        op: Some(Op::RegisterDatanode(RegisterDatanode { node: Some(record), cluster_id: proposed })),
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match meta.write(cmd.clone()).await {
            Ok(r) => {
                return match r.outcome {
                    Some(Outcome::Failure(f)) => {
                        Err(ShardError::BadRequest(format!("metadata refused the registration: {}", f.message)))
                    }
                    _ => Ok(()),
                };
            }
            Err(e) => tracing::warn!(error = %e, "registration with metadata failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Writes the cluster's id into each disk's DISK_ID that lacks one, so that
/// a disk later offered to another cluster is recognised as foreign. A
/// metadata service that does not answer now only delays this to the next
/// start.
async fn adopt_cluster_id(meta: &MetaClient, disks: &[FsDisk]) -> Result<(), ShardError> {
    if disks.iter().all(|d| !d.cluster_id().is_empty()) {
        return Ok(());
    }
    let mut id = None;
    for _ in 0..20 {
        match meta.get_cluster_map().await {
            Ok(r) if !r.cluster_id.is_empty() => {
                id = Some(r.cluster_id);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let Some(id) = id else {
        tracing::warn!("the cluster's id is not known yet; the disks will record it at the next start");
        return Ok(());
    };
    for d in disks {
        let (d, id) = (d.clone(), id.clone());
        tokio::task::spawn_blocking(move || d.adopt_cluster_id(&id))
            .await
            .map_err(|e| ShardError::io("record the cluster id", std::io::Error::other(e)))??;
    }
    Ok(())
}

/// How long in-flight calls may run on after shutdown starts.
const DRAIN: Duration = Duration::from_secs(30);

/// Binds `config.listen` and serves until `shutdown` becomes true.
pub async fn run(config: DatanodeConfig, shutdown: watch::Receiver<bool>) -> Result<(), ShardError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| ShardError::io(format!("listen on {}", config.listen), e))?;
    serve(config, listener, shutdown).await
}

/// Serves on an already bound listener until `shutdown` becomes true.
pub async fn serve(
    config: DatanodeConfig,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ShardError> {
    let (_, node) = start(config, listener, shutdown)?;
    node.await.map_err(|e| ShardError::io("datanode task", std::io::Error::other(e)))?
}

/// Opens the disks and starts serving on `listener` until `shutdown`
/// becomes true, like [`serve`]; also returns the shard service, for a
/// gateway in the same process to call directly
/// (`tessera_rpc::local::LocalShards`).
pub fn start(
    config: DatanodeConfig,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<(DataService, tokio::task::JoinHandle<Result<(), ShardError>>), ShardError> {
    config.validate()?;
    let mut disks = Vec::with_capacity(config.disks.len());
    let mut infos = Vec::with_capacity(config.disks.len());
    for (id, path) in &config.disks {
        let d = FsDisk::open(*id, path)?;
        d.set_min_free(config.disk_min_free);
        let u = d.check_full()?;
        infos.push(DiskInfo {
            id: id.get(),
            capacity_bytes: u.capacity_bytes,
            incarnation: d.incarnation().to_owned(),
            format: config.format.contains(id),
            cluster_id: d.cluster_id().to_owned(),
        });
        disks.push(d);
    }
    let metrics = DatanodeMetrics::register(&config.metrics);
    let service = DataService::new(disks.clone(), metrics.clone());
    let node = tokio::spawn(run_node(config, listener, shutdown, disks, infos, service.clone(), metrics));
    Ok((service, node))
}

async fn run_node(
    config: DatanodeConfig,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    disks: Vec<FsDisk>,
    infos: Vec<DiskInfo>,
    service: DataService,
    metrics: DatanodeMetrics,
) -> Result<(), ShardError> {
    let local = listener.local_addr().map_err(|e| ShardError::io("local address", e))?;
    let advertise = config.advertise.clone().unwrap_or_else(|| format!("http://{local}"));
    let health = HealthService::new("datanode", NodeId(config.node_id));
    // gRPC and the shard wire on one port.
    let server = tokio::spawn(serve_data(listener, service, Some(health.clone()), shutdown.clone()));
    let meta = MetaClient::new(MetaClientConfig::new(config.meta_endpoints.clone()));
    let host = if config.host.is_empty() { NodeId(config.node_id).to_string() } else { config.host.clone() };
    let record = DatanodeRecord {
        node_id: config.node_id,
        addr: advertise.clone(),
        zone: config.zone.clone(),
        rack: config.rack.clone(),
        host,
        disks: infos,
        registered_ms: 0,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let registered = match register(&meta, record, &mut shutdown).await {
        Ok(()) => adopt_cluster_id(&meta, &disks).await,
        refused => refused,
    };
    let heartbeat = match &registered {
        Ok(()) if !*shutdown.borrow() => {
            health.set_serving(true);
            tracing::info!(node = config.node_id, %advertise, "datanode registered and serving");
            let rates = Rates::of(&config);
            let scrubbers: Vec<_> = disks
                .iter()
                .map(|d| {
                    spawn_worker(
                        ScrubWorker::new(d.clone(), meta.clone(), config.scrub_rate_bytes_per_sec)
                            .with_metrics(metrics.clone())
                            .with_rate(rates.scrub.0.clone()),
                        WorkerConfig { idle_interval: config.scrub_interval, ..WorkerConfig::default() },
                        shutdown.clone(),
                    )
                })
                .collect();
            let collectors: Vec<_> = disks
                .iter()
                .map(|d| {
                    spawn_worker(
                        GcWorker::new(d.clone(), meta.clone(), config.gc_grace)
                            .with_metrics(metrics.clone())
                            .with_pause(rates.gc.clone()),
                        WorkerConfig { idle_interval: config.gc_interval, ..WorkerConfig::default() },
                        shutdown.clone(),
                    )
                })
                .collect();
            // The pipeline's view of the cluster, for reading peers' shards.
            let cluster = Cluster::new(meta.clone(), Duration::from_secs(2));
            let watch = tokio::spawn(cluster.clone().watch(shutdown.clone()));
            let healers: Vec<_> = disks
                .iter()
                .map(|d| {
                    spawn_worker(
                        HealWorker::new(d.clone(), cluster.clone(), config.heal_rate_bytes_per_sec)
                            .with_metrics(metrics.clone())
                            .with_rate(rates.heal.0.clone()),
                        WorkerConfig { idle_interval: config.heal_interval, ..WorkerConfig::default() },
                        shutdown.clone(),
                    )
                })
                .collect();
            let movers: Vec<_> = disks
                .iter()
                .map(|d| {
                    spawn_worker(
                        RebalanceWorker::new(d.clone(), cluster.clone(), config.rebalance_rate_bytes_per_sec)
                            .with_metrics(metrics.clone())
                            .with_rate(rates.rebalance.0.clone()),
                        WorkerConfig { idle_interval: config.rebalance_interval, ..WorkerConfig::default() },
                        shutdown.clone(),
                    )
                })
                .collect();
            // A new map (a drain, a disk added, out or back) wakes the
            // rebalancers at once rather than after their idle interval.
            let wakers: Vec<_> = movers.iter().map(|m| m.watch()).collect();
            let mut epochs = cluster.epochs();
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        changed = epochs.changed() => if changed.is_err() { return },
                        _ = stop.changed() => return,
                    }
                    wakers.iter().for_each(WorkerWatch::wake);
                }
            });
            let workers: Vec<_> =
                scrubbers.into_iter().chain(collectors).chain(healers).chain(movers).collect::<Vec<_>>();
            let hb = spawn_worker(
                HeartbeatWorker {
                    node_id: config.node_id,
                    disks,
                    meta,
                    sent: 0,
                    metrics,
                    workers: workers.iter().map(|w| w.watch()).collect(),
                    rates,
                },
                WorkerConfig { idle_interval: config.heartbeat_interval, ..WorkerConfig::default() },
                shutdown.clone(),
            );
            Some((hb, workers, watch))
        }
        _ => None,
    };
    if registered.is_ok() {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    }
    health.set_serving(false);
    if let Some((hb, workers, watch)) = heartbeat {
        for w in std::iter::once(hb).chain(workers) {
            if let Err(e) = w.join().await {
                tracing::warn!(error = %e, "a datanode worker ended badly");
            }
        }
        // The map watch ends on shutdown; a call stuck on an unreachable
        // metadata service is cut.
        watch.abort();
        let _ = watch.await;
    }
    if registered.is_err() {
        // Stop serving too: the node cannot do its job.
        server.abort();
    }
    // In-flight shard transfers may finish; streams still open after the
    // drain time are cut (their writers store nothing).
    let mut server = server;
    let joined = match tokio::time::timeout(DRAIN, &mut server).await {
        Ok(j) => j,
        Err(_) => {
            tracing::info!(node = config.node_id, "calls still open after {DRAIN:?}; closing them");
            server.abort();
            server.await
        }
    };
    match joined {
        Ok(r) => r.map_err(|e| ShardError::io("grpc server", std::io::Error::other(e)))?,
        Err(e) if e.is_cancelled() => {}
        Err(e) => return Err(ShardError::io("grpc server task", std::io::Error::other(e))),
    }
    registered
}
