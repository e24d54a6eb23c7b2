//! `tessera meta`, `tessera datanode`, `tessera gateway`: one role per
//! process, for clusters. Each resolves its options (flags > env > file >
//! defaults), checks what it can before serving (ports, folders, the
//! metadata service), serves its gRPC or S3 port plus the `/tessera/`
//! health and metrics paths, and stops cleanly on Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tessera_common::{DiskId, MetricsRegistry};
use tessera_datanode::DatanodeConfig;
use tessera_gateway::{EcDefaults, GatewayConfig, Md5Mode, ShardTransport};
use tessera_metadata::MetaConfig;
use tessera_rpc::ops_http::{ReadyCheck, serve_ops};
use tessera_rpc::proto::meta::{AccessKeyRecord, Command, CreateAccessKey, DeleteAccessKey, command::Op};
use tessera_rpc::{MetaClient, MetaClientConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{DatanodeOptions, GatewayOptions, Md5Opt, MetaOptions, TransportOpt, required};

/// The certificates of the S3 port from `--tls-cert`/`--tls-key`, if given.
pub fn tls_store(
    certs: Option<&[std::path::PathBuf]>,
    keys: Option<&[std::path::PathBuf]>,
) -> anyhow::Result<Option<Arc<tessera_rpc::tls::CertStore>>> {
    use tessera_rpc::tls::{CertFiles, CertStore};
    match (certs, keys) {
        (None, None) => Ok(None),
        (c, k) => {
            let files = CertFiles::pair(c.unwrap_or_default(), k.unwrap_or_default())?;
            Ok(Some(CertStore::load(files)?))
        }
    }
}

/// Binds the plain-HTTP port beside an HTTPS one, if asked for.
pub async fn plain_port(addr: Option<SocketAddr>, tls: bool) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        None => Ok(None),
        Some(_) if !tls => {
            bail!("--plain-listen is a second, plain-HTTP port beside HTTPS: give --tls-cert and --tls-key too")
        }
        Some(a) => Ok(Some(bind(a, "plain-HTTP S3 endpoint").await?)),
    }
}

/// Sets up this process's identity inside the cluster: the node
/// certificate in `certs` (mutual TLS on every internal connection, the
/// files watched for renewals until `stop`), or plain text when the
/// operator said `--insecure-cluster`. Neither is refused.
///
/// A certificate folder without a certificate is filled first: by the
/// bootstrap metadata node with a new cluster CA and its own certificate
/// (the CA is returned, for the metadata service to keep), or by enrolling
/// with `join.token` at the metadata nodes `join.metas`.
pub async fn cluster_identity(
    role: tessera_rpc::cluster_tls::Role,
    certs: Option<&Path>,
    insecure: bool,
    join: Joining<'_>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<tessera_rpc::cluster_tls::ClusterCa>> {
    use tessera_rpc::cluster_tls::{self, ClusterCa, ClusterTls};
    let mut made = None;
    if let (Some(dir), false) = (certs, insecure)
        && !dir.join("node.pem").exists()
    {
        if join.bootstrap && !dir.join("ca.pem").exists() {
            let ca = ClusterCa::generate()?;
            ca.issue_into(dir, role, &join.name, tessera_rpc::enroll::CERT_VALIDITY)?;
            println!(
                "tessera {}: made a new cluster CA and this node's certificate in {}; the metadata service keeps                  the CA, and new nodes join with tokens from `tessera cert token` or the admin API",
                role.as_str(),
                dir.display()
            );
            made = Some(ca);
        } else if let Some(t) = join.token {
            let token = tessera_rpc::enroll::JoinToken::parse(t).map_err(|e| anyhow::anyhow!("--join-token: {e}"))?;
            enroll_with_retries(join.metas, &token, role, &join.name, dir).await?;
            println!("tessera {}: enrolled; certificate in {}", role.as_str(), dir.display());
        }
    }
    match (certs, insecure) {
        (Some(_), true) => bail!("--cluster-certs and --insecure-cluster contradict each other: give one"),
        (None, false) => bail!(
            "nodes of a cluster speak mutual TLS to each other: give --cluster-certs DIR (`tessera cert ca`, then \
             `tessera cert node --role {}`), or --insecure-cluster for plain text on a trusted test network",
            role.as_str()
        ),
        (None, true) => {
            eprintln!(
                "tessera {}: WARNING, INSECURE: --insecure-cluster: traffic to the other nodes is plain text and \
                 unauthenticated; anyone who reaches this node's ports can read and change the cluster's data",
                role.as_str()
            );
            Ok(None)
        }
        (Some(dir), false) => {
            let tls = ClusterTls::load(dir).with_context(|| format!("cluster certificates in {}", dir.display()))?;
            if tls.role() != role {
                bail!(
                    "the certificate in {} is a {} certificate; this node is a {}",
                    dir.display(),
                    tls.role().as_str(),
                    role.as_str()
                );
            }
            let store = tls.store().clone();
            cluster_tls::install(tls)?;
            tokio::spawn(store.watch(Duration::from_secs(5), stop.clone()));
            // Renewal before expiry, by the metadata service's CA.
            if !join.renew_via.is_empty() {
                let meta = MetaClient::new(MetaClientConfig::new(join.renew_via.to_vec()));
                tokio::spawn(tessera_rpc::enroll::renew_loop(dir.to_owned(), join.name.clone(), meta, stop));
            }
            Ok(made)
        }
    }
}

/// How a node without a certificate gets one.
pub struct Joining<'a> {
    /// `--join-token`.
    pub token: Option<&'a str>,
    /// The metadata nodes to enroll at.
    pub metas: &'a [String],
    /// The name in the certificate (for logs).
    pub name: String,
    /// The bootstrap metadata node: makes the cluster's CA.
    pub bootstrap: bool,
    /// The metadata nodes that renew the certificate before it expires.
    pub renew_via: Vec<String>,
}

/// Enrolls, retrying while no metadata node answers (they may be starting)
/// for up to a minute; a refused token is final.
async fn enroll_with_retries(
    metas: &[String],
    token: &tessera_rpc::enroll::JoinToken,
    role: tessera_rpc::cluster_tls::Role,
    name: &str,
    dir: &Path,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        use tessera_rpc::enroll::EnrollError;
        match tessera_rpc::enroll::enroll(metas, token, role, name, dir).await {
            Ok(()) => return Ok(()),
            Err(EnrollError::Refused(e)) => bail!("enrollment failed: {e}"),
            Err(e) if start.elapsed() > Duration::from_secs(60) => bail!("enrollment failed: {e}"),
            Err(e) => {
                eprintln!("tessera {}: enrollment: {e}; retrying", role.as_str());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Binds `addr`, naming `what` in the error.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for the {what}"))
}

/// Creates `dir` and checks that it is writable.
pub fn writable_dir(dir: &Path, what: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the {what} {}", dir.display()))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"ok").with_context(|| format!("the {what} {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// Waits for Ctrl-C / SIGTERM or for `task` to end by itself; on a signal
/// tells the task to stop (`stop`) and waits for it.
async fn until_signal<T>(
    role: &str,
    mut task: tokio::task::JoinHandle<T>,
    stop: watch::Sender<bool>,
) -> Result<T, tokio::task::JoinError> {
    let ended = tokio::select! {
        _ = shutdown_signal() => None,
        r = &mut task => Some(r),
    };
    eprintln!("tessera {role}: shutting down (finishing in-flight requests)");
    let _ = stop.send(true);
    match ended {
        Some(r) => r,
        None => task.await,
    }
}

/// Makes sure the root access key `access` exists with `secret` (replacing
/// a different secret) and is marked root.
pub async fn ensure_key(meta: &MetaClient, access: &str, secret: &str) -> anyhow::Result<()> {
    let existing = meta.get_access_key(access).await.context("metadata service")?;
    if let Some(k) = existing.key {
        if k.secret_key == secret && k.root {
            return Ok(());
        }
        // Another secret, or a key from before keys had a root flag: made again.
        let del =
            Command { now_ms: 0, op: Some(Op::DeleteAccessKey(DeleteAccessKey { access_key_id: access.into() })) };
        meta.write(del).await.context("replacing the root key")?;
    }
    let key = AccessKeyRecord {
        access_key_id: access.into(),
        secret_key: secret.into(),
        created_ms: 0,
        description: "root".into(),
        root: true,
        policies: Vec::new(),
        disabled: false,
        expires_ms: 0,
    };
    let r = meta
        .write(Command { now_ms: 0, op: Some(Op::CreateAccessKey(CreateAccessKey { key: Some(key) })) })
        .await
        .context("creating the root key")?;
    if let Some(tessera_rpc::proto::meta::command_result::Outcome::Failure(f)) = r.outcome {
        bail!("the root key was refused: {}", f.message);
    }
    Ok(())
}

/// Checks metadata endpoints are URLs and waits until one of them answers.
async fn reach_metadata(endpoints: &[String], timeout: Duration) -> anyhow::Result<MetaClient> {
    for e in endpoints {
        let rest = e.strip_prefix("http://").or_else(|| e.strip_prefix("https://"));
        let ok = rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace));
        if !ok {
            bail!("`{e}` is not a metadata address (expected a URL like http://10.0.0.1:9101)");
        }
    }
    // Each probe gives up within the start-up timeout; the role then uses a
    // client with the normal deadlines.
    let mut probe = MetaClientConfig::new(endpoints.to_vec());
    probe.deadline = probe.deadline.min(timeout);
    probe.call_timeout = probe.call_timeout.min(timeout);
    let meta = MetaClient::new(probe);
    let start = Instant::now();
    loop {
        match meta.cluster_status().await {
            Ok(s) if s.leader_id.is_some() => return Ok(MetaClient::new(MetaClientConfig::new(endpoints.to_vec()))),
            Ok(_) | Err(_) if start.elapsed() < timeout => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(_) => bail!("the metadata service at {} has no leader after {timeout:?}", endpoints.join(",")),
            Err(e) => bail!("cannot reach the metadata service at {} within {timeout:?}: {e}", endpoints.join(",")),
        }
    }
}

/// Serves `/tessera/...` on `listener` in the background.
fn spawn_ops(
    listener: TcpListener,
    registry: MetricsRegistry,
    ready: ReadyCheck,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::spawn(serve_ops(listener, registry, ready, stop))
}

/// `tessera meta`.
pub async fn run_meta(o: MetaOptions) -> anyhow::Result<()> {
    let node_id = required(o.node_id, "--node-id (TESSERA_NODE_ID)")?;
    if o.bootstrap == Some(true) && o.join.is_some() {
        bail!("--bootstrap starts a new cluster and --join joins one: give one of them");
    }
    let listen = o.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9001)));
    let http = o.http_listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9011)));
    let data = o.data.clone().unwrap_or_else(|| "./data/meta".into());
    writable_dir(&data, "metadata folder")?;
    let creds = match (&o.access_key, &o.secret_key) {
        (Some(a), Some(s)) => Some((a.clone(), s.clone())),
        (None, None) => None,
        _ => bail!("set both the root access key and secret key, or neither"),
    };
    let listener = bind(listen, "metadata service").await?;
    let ops = bind(http, "health and metrics").await?;
    let advertise = o.advertise.clone().unwrap_or_else(|| format!("http://{listen}"));

    let registry = MetricsRegistry::new();
    let mut mc = MetaConfig::new(node_id, listen, data);
    mc.advertise = Some(advertise.clone());
    mc.bootstrap = o.bootstrap.unwrap_or(false);
    mc.metrics = registry.clone();
    if let Some(d) = o.raft_heartbeat {
        mc.heartbeat = d.0;
    }
    if let Some(d) = o.election_timeout_min {
        mc.election_timeout.0 = d.0;
    }
    if let Some(d) = o.election_timeout_max {
        mc.election_timeout.1 = d.0;
    }
    if let Some(n) = o.snapshot_after_entries {
        mc.snapshot_after_entries = n;
    }
    if let Some(d) = o.disk_down_after {
        mc.disk_down_after = d.0;
    }
    if let Some(d) = o.disk_out_after {
        mc.disk_out_after = d.0;
    }
    if let Some(d) = o.lifecycle_interval {
        mc.lifecycle_interval = d.0;
    }
    if let Some(d) = o.lifecycle_throttle {
        mc.lifecycle_throttle = d.0;
    }
    if let Some(l) = o.command_level {
        mc.command_level = l;
    }
    mc.validate().map_err(|e| anyhow::anyhow!("{e}"))?;

    let (stop_tx, stop) = watch::channel(false);
    let peers = o.join.clone().unwrap_or_default();
    let joining = Joining {
        token: o.join_token.as_deref(),
        metas: &peers,
        name: format!("meta{node_id}"),
        bootstrap: mc.bootstrap,
        renew_via: vec![advertise.clone()],
    };
    if let Some(d) = o.cert_validity {
        mc.cert_validity = d.0;
    }
    let made_ca = cluster_identity(
        tessera_rpc::cluster_tls::Role::Meta,
        o.cluster_certs.as_deref(),
        o.insecure_cluster.unwrap_or(false),
        joining,
        stop.clone(),
    )
    .await?;
    let level = mc.command_level;
    let own = MetaClient::new(MetaClientConfig::new(vec![advertise.clone()]));
    if tessera_rpc::cluster_tls::current().is_some() {
        // TLS clients without a certificate may enroll here (join tokens).
        mc.enroll = Some(tessera_rpc::enroll::handler(own.clone(), mc.cert_validity));
    }
    let node = tokio::spawn(tessera_metadata::serve(mc, listener, stop.clone()));
    let ready: ReadyCheck = {
        let own = own.clone();
        Arc::new(move || {
            let own = own.clone();
            Box::pin(async move {
                match own.cluster_status().await {
                    Ok(s) => match s.leader_id {
                        Some(l) => Ok(format!("leader {l}, term {}, applied {}", s.term, s.last_applied)),
                        None => Err("no leader".into()),
                    },
                    Err(e) => Err(e.to_string()),
                }
            })
        })
    };
    let ops_task = spawn_ops(ops, registry, ready, stop.clone());
    println!("tessera meta: node {node_id} on {advertise}; health and metrics on http://{http}/tessera/");

    // Joining and the root key need the cluster; they run beside the node.
    let mut chores = tokio::task::JoinSet::new();
    if let Some(peers) = o.join.clone() {
        chores.spawn(join_cluster(peers, node_id, advertise.clone(), level));
    }
    if let Some(ca) = made_ca {
        // The new CA goes into the metadata service, where every metadata
        // node finds it to sign joining nodes' certificates.
        let own = own.clone();
        chores.spawn(async move {
            let set = tessera_rpc::proto::meta::SetClusterCa {
                ca: Some(tessera_rpc::proto::meta::ClusterCa {
                    cert_pem: ca.cert_pem.clone(),
                    key_pem: ca.key_pem().to_owned(),
                }),
            };
            let cmd = Command { now_ms: 0, op: Some(Op::SetClusterCa(set)) };
            let start = Instant::now();
            loop {
                match own.write(cmd.clone()).await {
                    Ok(r)
                        if !matches!(
                            r.outcome,
                            Some(tessera_rpc::proto::meta::command_result::Outcome::Failure(_))
                        ) =>
                    {
                        return Ok(());
                    }
                    Ok(r) => bail!("the metadata service refused the cluster CA: {:?}", r.outcome),
                    Err(e) if start.elapsed() > Duration::from_secs(300) => return Err(e.into()),
                    Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
                }
            }
        });
    }
    if let Some((a, s)) = creds {
        let own = own.clone();
        chores.spawn(async move {
            let start = Instant::now();
            loop {
                match ensure_key(&own, &a, &s).await {
                    Ok(()) => return Ok(()),
                    Err(e) if start.elapsed() > Duration::from_secs(300) => return Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        });
    }
    let mut node = node;
    let mut ended = None;
    let outcome = tokio::select! {
        _ = shutdown_signal() => Ok(()),
        r = async {
            while let Some(r) = chores.join_next().await {
                r.context("start-up task")??;
            }
            std::future::pending::<anyhow::Result<()>>().await
        } => r,
        // The node stopped by itself (Raft's storage failed, or the log
        // holds a command this release does not understand): exit with it.
        r = &mut node => {
            ended = Some(r);
            Ok(())
        }
    };
    eprintln!("tessera meta: shutting down");
    let _ = stop_tx.send(true);
    chores.shutdown().await;
    match ended {
        Some(r) => r.context("metadata task")?.map_err(|e| anyhow::anyhow!("{e}"))?,
        None => node.await.context("metadata task")?.map_err(|e| anyhow::anyhow!("{e}"))?,
    }
    let _ = ops_task.await;
    outcome
}

/// Adds this node to the cluster at `peers`: as a learner (which waits for
/// it to catch up), then as a voter. Nothing to do when it already votes.
/// Membership changes go one at a time, so a refusal (another node joining
/// at the same moment) is retried for up to two minutes.
async fn join_cluster(peers: Vec<String>, id: u64, advertise: String, level: u32) -> anyhow::Result<()> {
    let cluster = reach_metadata(&peers, Duration::from_secs(60)).await?;
    let start = Instant::now();
    loop {
        match try_join(&cluster, id, &advertise, level).await {
            Ok(voters) => {
                println!("tessera meta: node {id} is a voter; voters {voters:?}");
                return Ok(());
            }
            Err(e) if start.elapsed() > Duration::from_secs(120) => return Err(e),
            Err(e) => {
                if e.to_string().contains("pick an unused") {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

async fn try_join(cluster: &MetaClient, id: u64, advertise: &str, level: u32) -> anyhow::Result<Vec<u64>> {
    let status = cluster.cluster_status().await.context("cluster status")?;
    let voters = |s: &tessera_rpc::proto::meta::ClusterStatusReply| -> Vec<u64> {
        s.members.iter().filter(|m| m.voter).map(|m| m.id).collect()
    };
    if status.members.iter().any(|m| m.id == id && m.voter) {
        return Ok(voters(&status));
    }
    if let Some(other) = status.members.iter().find(|m| m.id == id && m.addr != advertise) {
        bail!("node id {id} is already a member at {}: pick an unused --node-id", other.addr);
    }
    cluster.add_learner(id, advertise, level).await.context("joining as a learner")?;
    let status = cluster.add_voters(vec![id]).await.context("becoming a voter")?;
    Ok(voters(&status))
}

/// `tessera datanode`.
pub async fn run_datanode(o: DatanodeOptions) -> anyhow::Result<()> {
    let node_id = required(o.node_id, "--node-id (TESSERA_NODE_ID)")?;
    let disks = required(o.disks.clone(), "at least one --disk ID:PATH (TESSERA_DISKS)")?;
    let meta = required(o.meta.clone(), "--meta with the metadata addresses (TESSERA_META)")?;
    let listen = o.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9002)));
    let http = o.http_listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9012)));
    for d in &disks {
        writable_dir(&d.path, &format!("disk {} folder", d.id))?;
    }
    let listener = bind(listen, "datanode service").await?;
    let ops = bind(http, "health and metrics").await?;
    let (stop_tx, stop) = watch::channel(false);
    let joining = Joining {
        token: o.join_token.as_deref(),
        metas: &meta,
        name: format!("datanode{}", o.node_id.unwrap_or_default()),
        bootstrap: false,
        renew_via: meta.clone(),
    };
    cluster_identity(
        tessera_rpc::cluster_tls::Role::Datanode,
        o.cluster_certs.as_deref(),
        o.insecure_cluster.unwrap_or(false),
        joining,
        stop.clone(),
    )
    .await?;
    let timeout = o.startup_timeout.map_or(Duration::from_secs(30), |d| d.0);
    reach_metadata(&meta, timeout).await?;
    let advertise = o.advertise.clone().unwrap_or_else(|| format!("http://{listen}"));
    let registry = MetricsRegistry::new();
    let cfg = DatanodeConfig {
        node_id,
        listen,
        advertise: Some(advertise.clone()),
        disks: disks.iter().map(|d| (DiskId(d.id), d.path.clone())).collect(),
        zone: o.zone.clone().unwrap_or_else(|| "default".into()),
        rack: o.rack.clone().unwrap_or_else(|| "default".into()),
        host: o.host.clone().unwrap_or_default(),
        meta_endpoints: meta,
        heartbeat_interval: o.heartbeat.map_or(Duration::from_secs(1), |d| d.0),
        scrub_rate_bytes_per_sec: o.scrub_rate.map_or(16 << 20, |s| s.0),
        scrub_interval: o.scrub_interval.map_or(Duration::from_secs(24 * 3600), |d| d.0),
        gc_grace: o.gc_grace.map_or(Duration::from_secs(3600), |d| d.0),
        gc_interval: o.gc_interval.map_or(Duration::from_secs(15 * 60), |d| d.0),
        format: o.format.clone().unwrap_or_default().into_iter().map(DiskId).collect(),
        heal_rate_bytes_per_sec: o.heal_rate.map_or(64 << 20, |s| s.0),
        heal_interval: o.heal_interval.map_or(Duration::from_secs(10 * 60), |d| d.0),
        rebalance_rate_bytes_per_sec: o.rebalance_rate.map_or(64 << 20, |s| s.0),
        rebalance_interval: o.rebalance_interval.map_or(Duration::from_secs(60), |d| d.0),
        disk_min_free: o.disk_min_free.map(|s| s.0),
        metrics: registry.clone(),
    };
    cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let node = tokio::spawn(tessera_datanode::serve(cfg, listener, stop.clone()));
    let ready: ReadyCheck = {
        let url = advertise.clone();
        Arc::new(move || {
            let url = url.clone();
            Box::pin(async move {
                use tessera_rpc::proto::health::health_client::HealthClient;
                use tessera_rpc::proto::health::{CheckRequest, check_response::Status};
                let mut c = HealthClient::new(tessera_rpc::cluster_tls::connect_url(&url).await?);
                let r = c.check(CheckRequest {}).await.map_err(|e| e.to_string())?.into_inner();
                if r.status == Status::Serving as i32 {
                    Ok("registered with metadata".into())
                } else {
                    Err("not registered with metadata yet".into())
                }
            })
        })
    };
    let ops_task = spawn_ops(ops, registry, ready, stop.clone());
    println!(
        "tessera datanode: node {node_id} on {advertise}, {} disk(s); health and metrics on http://{http}/tessera/",
        disks.len()
    );
    let r = until_signal("datanode", node, stop_tx).await;
    let _ = ops_task.await;
    r.context("datanode task")?.map_err(|e| anyhow::anyhow!("{e}"))
}

/// A write quorum must lie in K..=K+M, and may be K (a write acknowledged
/// with no redundancy: one lost disk before repair loses it) only when the
/// operator says so explicitly. A profile without parity (M = 0) has no
/// redundancy to lose and is the operator's choice already.
fn check_write_quorum(q: usize, k: usize, m: usize, allow_unsafe: bool) -> anyhow::Result<()> {
    if q < k || q > k + m {
        bail!("write quorum {q} is outside {k}..={} (K to K+M)", k + m);
    }
    if q == k && m > 0 && !allow_unsafe {
        bail!(
            "write quorum {q} = K acknowledges writes that have no redundancy until they are repaired; \
             set allow_unsafe_write_quorum (--allow-unsafe-write-quorum) to accept that"
        );
    }
    Ok(())
}

/// `tessera gateway`.
pub async fn run_gateway(o: GatewayOptions) -> anyhow::Result<()> {
    let meta = required(o.meta.clone(), "--meta with the metadata addresses (TESSERA_META)")?;
    let listen = o.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9000)));
    let tls = tls_store(o.tls_cert.as_deref(), o.tls_key.as_deref())?;
    let listener = bind(listen, "S3 endpoint").await?;
    let plain = plain_port(o.plain_listen, tls.is_some()).await?;
    let (stop_tx, stop) = watch::channel(false);
    let joining = Joining {
        token: o.join_token.as_deref(),
        metas: &meta,
        name: format!("gateway {listen}"),
        bootstrap: false,
        renew_via: meta.clone(),
    };
    cluster_identity(
        tessera_rpc::cluster_tls::Role::Gateway,
        o.cluster_certs.as_deref(),
        o.insecure_cluster.unwrap_or(false),
        joining,
        stop.clone(),
    )
    .await?;
    let timeout = o.startup_timeout.map_or(Duration::from_secs(30), |d| d.0);
    reach_metadata(&meta, timeout).await?;
    let mut gc = GatewayConfig::new(listen, meta);
    gc.tls = tls;
    if let Some(d) = o.tls_reload_interval {
        gc.tls_reload_interval = d.0;
    }
    if let Some(p) = &o.sse_keyring {
        gc.sse_keyring = Some(Arc::new(tessera_gateway::sse::KeyringFile::open(p)?));
    }
    let mut ec = EcDefaults::default();
    if let Some(spec) = o.ec {
        ec.k = spec.k;
        ec.m = spec.m;
    }
    if let Some(s) = o.stripe_size {
        ec.stripe_size = usize::try_from(s.0).context("stripe size")?;
    }
    tessera_ec::StripeLayout::new(ec.k, ec.m, ec.stripe_size).map_err(|e| anyhow::anyhow!("erasure code: {e}"))?;
    gc.ec = ec;
    if let Some(q) = o.write_quorum {
        check_write_quorum(q, ec.k, ec.m, o.allow_unsafe_write_quorum.unwrap_or(false))?;
        gc.write_quorum = Some(q);
    }
    gc.domains = o.domains.clone().unwrap_or_default();
    if let Some(r) = &o.region {
        gc.region = r.clone();
    }
    if let Some(t) = o.inline_threshold {
        gc.inline_threshold = t.0;
    }
    if let Some(d) = o.hedge_timeout {
        gc.hedge_timeout = d.0;
    }
    if let Some(d) = o.shard_write_timeout {
        gc.shard_write_timeout = d.0;
    }
    if let Some(d) = o.connect_timeout {
        gc.connect_timeout = d.0;
    }
    if let Some(d) = o.header_timeout {
        gc.header_timeout = d.0;
    }
    if let Some(d) = o.body_idle_timeout {
        gc.body_idle_timeout = d.0;
    }
    gc.audit_log = o.audit_log.clone();
    gc.rate_per_key = o.rate_per_key.unwrap_or(0.0);
    gc.max_connections = o.max_connections.unwrap_or(4096);
    gc.admin_listen = o.admin_listen;
    gc.rate_per_ip = o.rate_per_ip.unwrap_or(0.0);
    if !(gc.rate_per_key >= 0.0 && gc.rate_per_ip >= 0.0) {
        bail!("rate_per_key and rate_per_ip are requests per second, 0 or more");
    }
    if let Some(d) = &o.spool_dir {
        gc.spool_dir = d.clone();
    }
    if let Some(s) = o.post_max {
        gc.post_max_bytes = s.0;
    }
    if let Some(s) = o.spool_limit {
        gc.spool_bytes = s.0;
    }
    gc.shard_transport = match o.shard_transport.unwrap_or_default() {
        TransportOpt::Wire => ShardTransport::Wire,
        TransportOpt::Grpc => ShardTransport::Grpc,
    };
    gc.md5 = match o.md5.unwrap_or_default() {
        Md5Opt::Lanes => Md5Mode::Lanes,
        Md5Opt::Inline => Md5Mode::Inline,
    };
    let scheme = if gc.tls.is_some() { "https" } else { "http" };
    let also = plain.as_ref().and_then(|l| l.local_addr().ok()).map_or(String::new(), |a| format!(" and http://{a}"));
    let gw = tokio::spawn(tessera_gateway::serve_on(gc, listener, plain, stop));
    println!("tessera gateway: S3 on {scheme}://{listen}{also}, erasure code {}+{}", ec.k, ec.m);
    let r = until_signal("gateway", gw, stop_tx).await;
    r.context("gateway task")?.map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::check_write_quorum;

    #[test]
    fn a_write_quorum_of_k_needs_the_explicit_override() {
        assert!(check_write_quorum(5, 4, 2, false).is_ok());
        assert!(check_write_quorum(6, 4, 2, false).is_ok());
        let e = check_write_quorum(4, 4, 2, false).unwrap_err().to_string();
        assert!(e.contains("allow_unsafe_write_quorum"), "{e}");
        assert!(check_write_quorum(4, 4, 2, true).is_ok());
        assert!(check_write_quorum(3, 4, 2, true).is_err());
        assert!(check_write_quorum(7, 4, 2, true).is_err());
        assert!(check_write_quorum(1, 1, 0, false).is_ok(), "no parity: nothing to lose");
    }
}
