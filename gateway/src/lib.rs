//! Tessera's gateway: the S3 API (s3s) on the erasure-coded object pipeline.
//!
//! A gateway is stateless: it authenticates a request (SigV4 with access
//! keys kept by the metadata service), reads and commits records through the
//! metadata service, and moves object bytes to and from the datanodes as
//! erasure-coded shards (`write`, `read`). Run any number of them; every one
//! gives read-after-write and list-after-write because every metadata read is
//! linearizable and a PUT is answered only after its record is committed.

mod access;
mod acl;
mod admin;
pub mod audit;
mod auth;
mod console;
mod cors;
mod http_server;
pub mod limits;
pub mod metrics;
pub mod policy;
mod post;
mod s3;
pub(crate) use s3::is_extension;
mod sigv2;
pub mod spool;
pub mod sse;
mod unenforced;
pub mod write;

pub use tessera_pipeline::{Codecs, cluster, read};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tessera_common::MetricsRegistry;
use tessera_ec::CodecId;
use tessera_rpc::{MetaClient, MetaClientConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use access::{BUCKET_TTL, KEY_TTL};
pub use cluster::ShardTransport;
pub use http_server::REQUEST_ID_HEADER;

/// The erasure-coding profile new objects get when their bucket names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcDefaults {
    /// Codec of new objects.
    pub codec: CodecId,
    /// Data shards.
    pub k: usize,
    /// Parity shards.
    pub m: usize,
    /// Object bytes per stripe (k blocks).
    pub stripe_size: usize,
}

impl Default for EcDefaults {
    fn default() -> Self {
        EcDefaults { codec: CodecId::DEFAULT, k: 4, m: 2, stripe_size: tessera_ec::DEFAULT_STRIPE_SIZE }
    }
}

/// How a gateway runs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address of the S3 endpoint.
    pub listen: SocketAddr,
    /// Metadata service endpoints (`http://host:port`).
    pub meta_endpoints: Vec<String>,
    /// Domains for virtual-hosted-style addressing (`bucket.<domain>`);
    /// empty: path style only.
    pub domains: Vec<String>,
    /// Region reported by GetBucketLocation and expected in signatures.
    pub region: String,
    /// Profile of new objects.
    pub ec: EcDefaults,
    /// Shards that must be stored for a write to succeed; `None` = k + 1
    /// (capped at k + m). Never below k.
    pub write_quorum: Option<usize>,
    /// Bodies up to this size are stored inside the metadata record.
    pub inline_threshold: u64,
    /// A shard read slower than this is replaced by a parity shard.
    pub hedge_timeout: Duration,
    /// A shard write that stalls this long is given up (the write may still
    /// succeed with the quorum).
    pub shard_write_timeout: Duration,
    /// Connect timeout to datanodes.
    pub connect_timeout: Duration,
    /// A client connection that does not deliver a whole request head (the
    /// request line and headers) this long after it opens, or after its
    /// previous response, is closed: slow-header clients and idle
    /// keep-alive connections hold no socket for longer.
    pub header_timeout: Duration,
    /// An upload whose client sends no body byte for this long while the
    /// gateway waits fails with 400 RequestTimeout; nothing is committed.
    pub body_idle_timeout: Duration,
    /// Where PUT bodies sent without a Content-Length (chunked) wait until
    /// their length is known ([`spool`]); unlinked files.
    pub spool_dir: std::path::PathBuf,
    /// Serve the admin API and the web console only on this address (with
    /// the S3 API, for the console's object browser), not on the S3 ports;
    /// `None`: everywhere.
    pub admin_listen: Option<SocketAddr>,
    /// At most this many bytes of such bodies wait at once (503 SlowDown
    /// beyond).
    pub spool_bytes: u64,
    /// The largest browser-form (POST) upload: s3s holds its file in
    /// memory, so this bounds memory per form upload (EntityTooLarge above).
    pub post_max_bytes: u64,
    /// Client connections served at once (more wait until one closes).
    pub max_connections: usize,
    /// Requests per second allowed to each access key (bursts of twice as
    /// many); beyond, 503 SlowDown. 0: no limit.
    pub rate_per_key: f64,
    /// Requests per second allowed to each client IP address (bursts of
    /// twice as many); 0: no limit.
    pub rate_per_ip: f64,
    /// The audit log: a JSON line per S3 request appended to this file
    /// (`-`: standard output); `None`: off.
    pub audit_log: Option<std::path::PathBuf>,
    /// How shard bytes travel to and from datanodes.
    pub shard_transport: ShardTransport,
    /// How body MD5s (ETags) are computed.
    pub md5: Md5Mode,
    /// The datanode of this process, if any (`tessera server`): shards on
    /// its disks are handed to it directly, not over the network.
    pub local_datanode: Option<tessera_rpc::local::LocalDatanode>,
    /// The metadata node of this process, if any (`tessera server`): calls
    /// to it skip loopback gRPC.
    pub local_meta: Option<tessera_rpc::LocalMeta>,
    /// TLS on the S3 port: the certificates it presents, reloaded when
    /// their files change or on SIGHUP. `None`: plain HTTP.
    pub tls: Option<Arc<tessera_rpc::tls::CertStore>>,
    /// How often the certificate files (and the SSE keyring) are looked at for a change.
    pub tls_reload_interval: Duration,
    /// The SSE-S3 master keys (re-read when the file changes); `None`:
    /// SSE-S3 is refused (SSE-C needs no keyring).
    pub sse_keyring: Option<Arc<sse::KeyringFile>>,
    /// Where the gateway's metrics are registered (`tessera_gateway_*`) and
    /// what `/tessera/metrics` renders: in one process, every role's.
    pub metrics: MetricsRegistry,
}

impl GatewayConfig {
    /// Defaults for a gateway on `listen` talking to `meta_endpoints`.
    pub fn new(listen: SocketAddr, meta_endpoints: Vec<String>) -> Self {
        GatewayConfig {
            listen,
            meta_endpoints,
            domains: Vec::new(),
            region: "us-east-1".into(),
            ec: EcDefaults::default(),
            write_quorum: None,
            inline_threshold: 128 * 1024,
            hedge_timeout: Duration::from_secs(2),
            shard_write_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(30),
            spool_dir: std::env::temp_dir(),
            admin_listen: None,
            spool_bytes: 5 << 30,
            audit_log: None,
            max_connections: 4096,
            post_max_bytes: 64 << 20,
            rate_per_key: 0.0,
            rate_per_ip: 0.0,
            shard_transport: ShardTransport::default(),
            md5: Md5Mode::default(),
            local_datanode: None,
            local_meta: None,
            tls: None,
            tls_reload_interval: Duration::from_secs(2),
            sse_keyring: None,
            metrics: MetricsRegistry::default(),
        }
    }

    /// The write quorum for a (k, m) profile.
    pub fn quorum(&self, k: usize, m: usize) -> usize {
        self.write_quorum.unwrap_or(k + 1).clamp(k, k + m)
    }
}

/// Up disks a write of k + m shards needs: with fewer, writes around down
/// disks would put more than m shards on one disk (and are refused).
pub fn min_disks(k: usize, m: usize) -> usize {
    (k + m).div_ceil(m.max(1))
}

/// How the gateway computes the MD5 of request bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Md5Mode {
    /// Bodies of 64 KiB and more are hashed by one engine thread, sixteen
    /// at a time in AVX-512 lanes; when the CPU lacks AVX-512F, as `Inline`.
    #[default]
    Lanes,
    /// Each body on its own request's task, one block after another.
    Inline,
}

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is unusable.
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    /// Binding or serving failed.
    #[error("gateway I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs a gateway on `config.listen` until `shutdown` turns true.
pub async fn run(config: GatewayConfig, shutdown: watch::Receiver<bool>) -> Result<(), GatewayError> {
    let listener = TcpListener::bind(config.listen).await?;
    serve(config, listener, shutdown).await
}

/// Serves the S3 API on `listener` until `shutdown` turns true (HTTPS when
/// `config.tls` is set).
pub async fn serve(
    config: GatewayConfig,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<(), GatewayError> {
    serve_on(config, listener, None, shutdown).await
}

/// As [`serve`], with a second, plain-HTTP port beside an HTTPS one.
pub async fn serve_on(
    config: GatewayConfig,
    listener: TcpListener,
    plain: Option<TcpListener>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), GatewayError> {
    if plain.is_some() && config.tls.is_none() {
        return Err(GatewayError::Config("a second plain-HTTP port needs TLS on the main one".into()));
    }
    if config.meta_endpoints.is_empty() {
        return Err(GatewayError::Config("no metadata endpoint".into()));
    }
    let ec = config.ec;
    tessera_ec::StripeLayout::new(ec.k, ec.m, ec.stripe_size).map_err(|e| GatewayError::Config(e.to_string()))?;
    let meta_config = MetaClientConfig::new(config.meta_endpoints.clone());
    let meta = match config.local_meta.clone() {
        Some(local) => MetaClient::with_local(meta_config, local),
        None => MetaClient::new(meta_config),
    };
    let metrics = Arc::new(metrics::GatewayMetrics::register(&config.metrics));
    let cluster = cluster::Cluster::with_metrics(meta, config.connect_timeout, Arc::new(metrics.pipeline.clone()))
        .with_transport(config.shard_transport)
        .with_local(config.local_datanode.clone());
    let watcher = tokio::spawn(cluster.clone().watch(shutdown.clone()));
    let dir = Arc::new(access::Directory::new(cluster.meta().clone()));
    let audit = match &config.audit_log {
        Some(p) => Some(Arc::new(
            audit::AuditSink::open(p).map_err(|e| GatewayError::Config(format!("audit log {}: {e}", p.display())))?,
        )),
        None => None,
    };
    let limiter = |rate: f64| (rate > 0.0).then(|| Arc::new(limits::RateLimiter::new(rate, rate * 2.0)));
    let front = http_server::FrontConfig {
        per_ip: limiter(config.rate_per_ip),
        max_connections: config.max_connections,
        audit,
        registry: config.metrics.clone(),
        metrics,
        domains: config.domains.clone(),
        min_disks: min_disks(ec.k, ec.m),
        header_timeout: config.header_timeout,
        dir: dir.clone(),
        spool: spool::Spool::new(
            config.spool_dir.clone(),
            config.spool_bytes,
            config.body_idle_timeout,
            s3::MAX_PUT_BYTES,
        ),
    };
    let md5 = match config.md5 {
        Md5Mode::Lanes if tessera_md5::Kernel::detect() == tessera_md5::Kernel::Avx512 => {
            Some(tessera_md5::Md5Engine::start()?)
        }
        _ => None,
    };
    let per_key = limiter(config.rate_per_key);
    let tls = config.tls.clone();
    let reloader = tls.clone().map(|store| tokio::spawn(store.watch(config.tls_reload_interval, shutdown.clone())));
    let keyring_watch =
        config.sse_keyring.clone().map(|k| tokio::spawn(k.watch(config.tls_reload_interval, shutdown.clone())));
    let admin_listen = config.admin_listen;
    let service = s3::build_service(Arc::new(config), cluster.clone(), md5, dir, per_key);
    let admin = match admin_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| GatewayError::Config(format!("the admin port {addr} cannot be bound: {e}")))?,
        ),
        None => None,
    };
    let listeners = http_server::Listeners { main: listener, tls, plain, admin };
    let served = http_server::serve(listeners, service, cluster, front, shutdown).await;
    watcher.abort();
    for r in [reloader, keyring_watch].into_iter().flatten() {
        r.abort();
    }
    served
}
