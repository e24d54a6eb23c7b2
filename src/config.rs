//! Configuration of every role: one options struct per role that is both
//! the command line (flags, each with a `TESSERA_*` environment variable)
//! and the TOML file (`--config FILE`, unknown keys rejected). Precedence:
//! flags > environment > file > defaults — clap resolves the first two, and
//! [`Options::over`] lays the result over the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::bail;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tessera_common::{ByteSize, HumanDuration};

/// Options that can be laid over a file's.
pub trait Options: DeserializeOwned + Default {
    /// `self` (flags and environment) where set, else `file`'s.
    fn over(self, file: Self) -> Self;
}

/// Declares an options struct: every field optional, parsed by clap and by
/// serde (deny_unknown_fields), with an `over` that merges field by field.
macro_rules! options {
    ($(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* pub $f:ident : Option<$t:ty>, )* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, clap::Args, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name { $( $(#[$fm])* pub $f: Option<$t>, )* }

        impl Options for $name {
            fn over(self, file: Self) -> Self {
                $name { $( $f: self.$f.or(file.$f), )* }
            }
        }
    };
}

/// Reads `path` (if any) as TOML into `T`; errors are one line.
pub fn load_file<T: Options>(path: Option<&Path>) -> anyhow::Result<T> {
    let Some(path) = path else { return Ok(T::default()) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the config file {}: {e}", path.display()))?;
    parse_toml(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
}

/// Parses TOML into `T`, with a one-line error naming the line.
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().replace('\n', " ");
        match line {
            Some(l) => anyhow::anyhow!("line {l}: {msg}"),
            None => anyhow::anyhow!("{msg}"),
        }
    })
}

/// Resolves flags/environment over the file named by `config`.
pub fn resolve<T: Options>(cli: T, config: Option<&Path>) -> anyhow::Result<T> {
    Ok(cli.over(load_file(config)?))
}

/// One disk of a datanode: `ID:PATH` (e.g. `3:/srv/tessera/disk3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// Cluster-unique disk id (1 or more).
    pub id: u32,
    /// The disk's directory.
    pub path: PathBuf,
}

impl FromStr for DiskSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (id, path) = s.split_once(':').ok_or_else(|| format!("`{s}` is not a disk (ID:PATH, e.g. 1:/srv/d1)"))?;
        let id: u32 = id.trim().parse().map_err(|_| format!("`{id}` is not a disk id (a number from 1)"))?;
        if id == 0 || path.is_empty() {
            return Err(format!("`{s}`: disk ids start at 1 and the path must not be empty"));
        }
        Ok(DiskSpec { id, path: PathBuf::from(path) })
    }
}

impl<'de> Deserialize<'de> for DiskSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// An erasure code `K+M` (e.g. `4+2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcSpec {
    /// Data shards.
    pub k: usize,
    /// Parity shards.
    pub m: usize,
}

impl FromStr for EcSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not an erasure code (K+M, e.g. 4+2)");
        let (k, m) = s.split_once('+').ok_or_else(bad)?;
        let k: usize = k.trim().parse().map_err(|_| bad())?;
        let m: usize = m.trim().parse().map_err(|_| bad())?;
        if k == 0 {
            return Err(bad());
        }
        Ok(EcSpec { k, m })
    }
}

impl<'de> Deserialize<'de> for EcSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// How a gateway moves shard bytes to and from datanodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportOpt {
    /// The shard wire, on the datanode's port beside gRPC.
    #[default]
    Wire,
    /// gRPC streams.
    Grpc,
}

/// How a gateway computes body MD5s (ETags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Md5Opt {
    /// Up to 16 concurrent bodies in AVX-512 lanes of one engine thread
    /// (each body on its own when the CPU lacks AVX-512F).
    #[default]
    Lanes,
    /// Each body on its own request's task.
    Inline,
}

options! {
    /// Settings of `tessera server` (all roles in one process).
    pub struct ServerOptions {
        /// Data folder: metadata and disk folders live under it [default: ./data].
        #[arg(long, env = "TESSERA_DATA")]
        pub data: Option<PathBuf>,
        /// S3 endpoint address [default: 127.0.0.1:9000].
        #[arg(long, env = "TESSERA_LISTEN")]
        pub listen: Option<SocketAddr>,
        /// Metadata service (gRPC) address [default: 127.0.0.1:9001].
        #[arg(long, env = "TESSERA_META_LISTEN")]
        pub meta_listen: Option<SocketAddr>,
        /// Datanode service (gRPC) address [default: 127.0.0.1:9002].
        #[arg(long, env = "TESSERA_DATANODE_LISTEN")]
        pub datanode_listen: Option<SocketAddr>,
        /// Number of disk folders (`<data>/disk1` …); the erasure code follows from it [default: 6].
        #[arg(long, env = "TESSERA_DISKS")]
        pub disks: Option<usize>,
        /// Root access key id (generated on first start when unset).
        #[arg(long, env = "TESSERA_ROOT_ACCESS_KEY")]
        pub access_key: Option<String>,
        /// Root secret key (generated on first start when unset).
        #[arg(long, env = "TESSERA_ROOT_SECRET_KEY", hide_env_values = true)]
        pub secret_key: Option<String>,
        /// Domain for virtual-hosted-style requests (`bucket.<domain>`).
        #[arg(long, env = "TESSERA_DOMAIN")]
        pub domain: Option<String>,
        /// TLS certificate chain files (PEM, leaf first), one per name served; comma-separated or repeated. With them the S3 port speaks HTTPS [default: none, plain HTTP].
        #[arg(long = "tls-cert", env = "TESSERA_TLS_CERT", value_delimiter = ',')]
        pub tls_cert: Option<Vec<PathBuf>>,
        /// The private key files (PEM) of --tls-cert, in the same order.
        #[arg(long = "tls-key", env = "TESSERA_TLS_KEY", value_delimiter = ',')]
        pub tls_key: Option<Vec<PathBuf>>,
        /// With TLS on the S3 port, also serve plain HTTP on this address [default: none].
        #[arg(long, env = "TESSERA_PLAIN_LISTEN")]
        pub plain_listen: Option<SocketAddr>,
        /// Serve the admin API and the web console only on this address (with the S3 API), not on the S3 ports [default: on every port].
        #[arg(long, env = "TESSERA_ADMIN_LISTEN")]
        pub admin_listen: Option<SocketAddr>,
        /// How often the certificate files are checked for a change (SIGHUP reloads at once) [default: 2s].
        #[arg(long, env = "TESSERA_TLS_RELOAD_INTERVAL", hide = true)]
        pub tls_reload_interval: Option<HumanDuration>,
        /// SSE-S3 master keyring [default: `<data>/sse.keyring`, made on first start].
        #[arg(long, env = "TESSERA_SSE_KEYRING")]
        pub sse_keyring: Option<PathBuf>,
        /// Serve HTTPS with a development certificate made for this host (kept in `<data>/tls/cert.pem`, the CA bundle for clients) [default: false].
        #[arg(long, env = "TESSERA_TLS_SELF_SIGNED", num_args = 0..=1, default_missing_value = "true")]
        pub tls_self_signed: Option<bool>,
        /// Audit log: a JSON line per S3 request appended to this file (`-`: standard output) [default: off].
        #[arg(long, env = "TESSERA_AUDIT_LOG")]
        pub audit_log: Option<PathBuf>,
        /// Log format: text or json [default: text].
        #[arg(long, env = "TESSERA_LOG_FORMAT")]
        pub log_format: Option<LogFormat>,
        /// Send request traces to this OTLP/HTTP collector (e.g. http://127.0.0.1:4318) [default: off].
        #[arg(long, env = "TESSERA_OTLP_ENDPOINT")]
        pub otlp_endpoint: Option<String>,
    }
}

options! {
    /// Settings of `tessera meta` (one metadata / Raft node).
    pub struct MetaOptions {
        /// This node's Raft id: unique in the cluster, never reused (required).
        #[arg(long, env = "TESSERA_NODE_ID")]
        pub node_id: Option<u64>,
        /// gRPC address (Raft, metadata API) [default: 127.0.0.1:9001].
        #[arg(long, env = "TESSERA_LISTEN")]
        pub listen: Option<SocketAddr>,
        /// URL peers and clients use to reach this node [default: http://LISTEN].
        #[arg(long, env = "TESSERA_ADVERTISE")]
        pub advertise: Option<String>,
        /// Health and metrics HTTP address (`/tessera/...`) [default: 127.0.0.1:9011].
        #[arg(long, env = "TESSERA_HTTP_LISTEN")]
        pub http_listen: Option<SocketAddr>,
        /// Where the node's RocksDB lives [default: ./data/meta].
        #[arg(long, env = "TESSERA_DATA")]
        pub data: Option<PathBuf>,
        /// Make this node the single voter of a new cluster (first node only) [default: false].
        #[arg(long, env = "TESSERA_BOOTSTRAP", num_args = 0..=1, default_missing_value = "true")]
        pub bootstrap: Option<bool>,
        /// Join the cluster at these metadata addresses as a voter (comma-separated URLs).
        #[arg(long, env = "TESSERA_JOIN", value_delimiter = ',')]
        pub join: Option<Vec<String>>,
        /// Root access key created once the cluster has a leader (optional).
        #[arg(long, env = "TESSERA_ROOT_ACCESS_KEY")]
        pub access_key: Option<String>,
        /// Root secret key (with --access-key).
        #[arg(long, env = "TESSERA_ROOT_SECRET_KEY", hide_env_values = true)]
        pub secret_key: Option<String>,
        /// Leader heartbeat interval [default: 100ms].
        #[arg(long, env = "TESSERA_RAFT_HEARTBEAT")]
        pub raft_heartbeat: Option<HumanDuration>,
        /// Shortest election timeout [default: 300ms].
        #[arg(long, env = "TESSERA_ELECTION_TIMEOUT_MIN")]
        pub election_timeout_min: Option<HumanDuration>,
        /// Longest election timeout [default: 600ms].
        #[arg(long, env = "TESSERA_ELECTION_TIMEOUT_MAX")]
        pub election_timeout_max: Option<HumanDuration>,
        /// Snapshot (and purge the log) after this many entries [default: 10000].
        #[arg(long, env = "TESSERA_SNAPSHOT_AFTER_ENTRIES")]
        pub snapshot_after_entries: Option<u64>,
        /// A disk unreported this long is marked down [default: 15s].
        #[arg(long, env = "TESSERA_DISK_DOWN_AFTER")]
        pub disk_down_after: Option<HumanDuration>,
        /// A disk down this long is marked out and its data moves [default: 10m].
        #[arg(long, env = "TESSERA_DISK_OUT_AFTER")]
        pub disk_out_after: Option<HumanDuration>,
        /// The leader's lifecycle worker starts a pass this often [default: 10s].
        #[arg(long, env = "TESSERA_LIFECYCLE_INTERVAL")]
        pub lifecycle_interval: Option<HumanDuration>,
        /// The lifecycle worker's pause after each page of 1,000 versions [default: 0s].
        #[arg(long, env = "TESSERA_LIFECYCLE_THROTTLE")]
        pub lifecycle_throttle: Option<HumanDuration>,
        /// Lifetime of the node certificates this node signs (enrollments, renewals) [default: 365d].
        #[arg(long, env = "TESSERA_CERT_VALIDITY", hide = true)]
        pub cert_validity: Option<HumanDuration>,
        /// Behave as an older release: understand metadata commands up to this level only
        /// (upgrade tests; see docs/operations.md, rolling upgrades) [default: this release's].
        #[arg(long, env = "TESSERA_COMMAND_LEVEL", hide = true)]
        pub command_level: Option<u32>,
        /// Folder with this node's cluster certificates (`ca.pem`, `node.pem`, `node.key`; `tessera cert node` makes them): mutual TLS on every internal connection [required unless --insecure-cluster].
        #[arg(long, env = "TESSERA_CLUSTER_CERTS")]
        pub cluster_certs: Option<PathBuf>,
        /// A join token (`tessera cert token`, or the admin API): when --cluster-certs holds no certificate yet,
        /// the node enrolls with it at the metadata nodes and keeps the certificate it receives there.
        #[arg(long, env = "TESSERA_JOIN_TOKEN", hide_env_values = true)]
        pub join_token: Option<String>,
        /// Speak plain text, unauthenticated, to the other nodes (a trusted test network only; logged loudly) [default: false].
        #[arg(long, env = "TESSERA_INSECURE_CLUSTER", num_args = 0..=1, default_missing_value = "true")]
        pub insecure_cluster: Option<bool>,
        /// Log format: text or json [default: text].
        #[arg(long, env = "TESSERA_LOG_FORMAT")]
        pub log_format: Option<LogFormat>,
        /// Send request traces to this OTLP/HTTP collector (e.g. http://127.0.0.1:4318) [default: off].
        #[arg(long, env = "TESSERA_OTLP_ENDPOINT")]
        pub otlp_endpoint: Option<String>,
    }
}

options! {
    /// Settings of `tessera datanode`.
    pub struct DatanodeOptions {
        /// This node's id: unique among datanodes (required).
        #[arg(long, env = "TESSERA_NODE_ID")]
        pub node_id: Option<u64>,
        /// gRPC address (shard service) [default: 127.0.0.1:9002].
        #[arg(long, env = "TESSERA_LISTEN")]
        pub listen: Option<SocketAddr>,
        /// URL gateways and peers use to reach this node [default: http://LISTEN].
        #[arg(long, env = "TESSERA_ADVERTISE")]
        pub advertise: Option<String>,
        /// Health and metrics HTTP address (`/tessera/...`) [default: 127.0.0.1:9012].
        #[arg(long, env = "TESSERA_HTTP_LISTEN")]
        pub http_listen: Option<SocketAddr>,
        /// Disks as ID:PATH, comma-separated or repeated; ids unique in the cluster (required).
        #[arg(long = "disk", env = "TESSERA_DISKS", value_delimiter = ',')]
        pub disks: Option<Vec<DiskSpec>>,
        /// Metadata node addresses (comma-separated URLs) (required).
        #[arg(long, env = "TESSERA_META", value_delimiter = ',')]
        pub meta: Option<Vec<String>>,
        /// Zone label for placement [default: default].
        #[arg(long, env = "TESSERA_ZONE")]
        pub zone: Option<String>,
        /// Rack label [default: default].
        #[arg(long, env = "TESSERA_RACK")]
        pub rack: Option<String>,
        /// Host label [default: the node id].
        #[arg(long, env = "TESSERA_HOST")]
        pub host: Option<String>,
        /// Heartbeat interval to metadata [default: 1s].
        #[arg(long, env = "TESSERA_HEARTBEAT")]
        pub heartbeat: Option<HumanDuration>,
        /// Scrub read rate per disk, per second [default: 16MiB].
        #[arg(long, env = "TESSERA_SCRUB_RATE")]
        pub scrub_rate: Option<ByteSize>,
        /// Pause between two scrub passes over a disk [default: 24h].
        #[arg(long, env = "TESSERA_SCRUB_INTERVAL")]
        pub scrub_interval: Option<HumanDuration>,
        /// How long a shard file no record references is kept before the garbage collector removes it [default: 1h].
        #[arg(long, env = "TESSERA_GC_GRACE")]
        pub gc_grace: Option<HumanDuration>,
        /// Pause between two garbage collector passes over a disk [default: 15m].
        #[arg(long, env = "TESSERA_GC_INTERVAL")]
        pub gc_interval: Option<HumanDuration>,
        /// Accept this disk's folder as a new, empty disk although the cluster knows its id (a replaced disk); repeatable [default: none].
        #[arg(long, env = "TESSERA_FORMAT", value_delimiter = ',')]
        pub format: Option<Vec<u32>>,
        /// Rebuild rate of the heal worker per disk, per second [default: 64MiB].
        #[arg(long, env = "TESSERA_HEAL_RATE")]
        pub heal_rate: Option<ByteSize>,
        /// Pause between two heal passes over a disk's index [default: 10m].
        #[arg(long, env = "TESSERA_HEAL_INTERVAL")]
        pub heal_interval: Option<HumanDuration>,
        /// Copy rate of the rebalancer per disk, per second [default: 64MiB].
        #[arg(long, env = "TESSERA_REBALANCE_RATE")]
        pub rebalance_rate: Option<ByteSize>,
        /// How often an idle rebalancer looks for a new cluster map and retries moves it could not make [default: 1m].
        #[arg(long, env = "TESSERA_REBALANCE_INTERVAL")]
        pub rebalance_interval: Option<HumanDuration>,
        /// Free space below which a disk counts as full: it takes no new shards (writes go around it, heal and rebalance wait) until twice as much is free [default: 1% of each disk].
        #[arg(long, env = "TESSERA_DISK_MIN_FREE")]
        pub disk_min_free: Option<ByteSize>,
        /// How long to wait for the metadata service at start-up [default: 30s].
        #[arg(long, env = "TESSERA_STARTUP_TIMEOUT")]
        pub startup_timeout: Option<HumanDuration>,
        /// Folder with this node's cluster certificates (`ca.pem`, `node.pem`, `node.key`; `tessera cert node` makes them): mutual TLS on every internal connection [required unless --insecure-cluster].
        #[arg(long, env = "TESSERA_CLUSTER_CERTS")]
        pub cluster_certs: Option<PathBuf>,
        /// A join token (`tessera cert token`, or the admin API): when --cluster-certs holds no certificate yet,
        /// the node enrolls with it at the metadata nodes and keeps the certificate it receives there.
        #[arg(long, env = "TESSERA_JOIN_TOKEN", hide_env_values = true)]
        pub join_token: Option<String>,
        /// Speak plain text, unauthenticated, to the other nodes (a trusted test network only; logged loudly) [default: false].
        #[arg(long, env = "TESSERA_INSECURE_CLUSTER", num_args = 0..=1, default_missing_value = "true")]
        pub insecure_cluster: Option<bool>,
        /// Log format: text or json [default: text].
        #[arg(long, env = "TESSERA_LOG_FORMAT")]
        pub log_format: Option<LogFormat>,
        /// Send request traces to this OTLP/HTTP collector (e.g. http://127.0.0.1:4318) [default: off].
        #[arg(long, env = "TESSERA_OTLP_ENDPOINT")]
        pub otlp_endpoint: Option<String>,
    }
}

options! {
    /// Settings of `tessera gateway` (the S3 endpoint).
    pub struct GatewayOptions {
        /// S3 endpoint address (also serves `/tessera/...`) [default: 127.0.0.1:9000].
        #[arg(long, env = "TESSERA_LISTEN")]
        pub listen: Option<SocketAddr>,
        /// Metadata node addresses (comma-separated URLs) (required).
        #[arg(long, env = "TESSERA_META", value_delimiter = ',')]
        pub meta: Option<Vec<String>>,
        /// Domains for virtual-hosted-style requests (comma-separated).
        #[arg(long = "domain", env = "TESSERA_DOMAINS", value_delimiter = ',')]
        pub domains: Option<Vec<String>>,
        /// TLS certificate chain files (PEM, leaf first), one per name served; comma-separated or repeated. With them the S3 port speaks HTTPS [default: none, plain HTTP].
        #[arg(long = "tls-cert", env = "TESSERA_TLS_CERT", value_delimiter = ',')]
        pub tls_cert: Option<Vec<PathBuf>>,
        /// The private key files (PEM) of --tls-cert, in the same order.
        #[arg(long = "tls-key", env = "TESSERA_TLS_KEY", value_delimiter = ',')]
        pub tls_key: Option<Vec<PathBuf>>,
        /// With TLS on the S3 port, also serve plain HTTP on this address [default: none].
        #[arg(long, env = "TESSERA_PLAIN_LISTEN")]
        pub plain_listen: Option<SocketAddr>,
        /// Serve the admin API and the web console only on this address (with the S3 API), not on the S3 ports [default: on every port].
        #[arg(long, env = "TESSERA_ADMIN_LISTEN")]
        pub admin_listen: Option<SocketAddr>,
        /// How often the certificate files are checked for a change (SIGHUP reloads at once) [default: 2s].
        #[arg(long, env = "TESSERA_TLS_RELOAD_INTERVAL", hide = true)]
        pub tls_reload_interval: Option<HumanDuration>,
        /// SSE-S3 master keyring (`tessera keyring new FILE` makes one; the same file on every gateway).
        /// Without it SSE-S3 is refused; SSE-C needs none [default: none].
        #[arg(long, env = "TESSERA_SSE_KEYRING")]
        pub sse_keyring: Option<PathBuf>,
        /// Region reported and expected in signatures [default: us-east-1].
        #[arg(long, env = "TESSERA_REGION")]
        pub region: Option<String>,
        /// Erasure code of new objects, K+M [default: 4+2].
        #[arg(long, env = "TESSERA_EC")]
        pub ec: Option<EcSpec>,
        /// Object bytes per stripe [default: 1MiB].
        #[arg(long, env = "TESSERA_STRIPE_SIZE")]
        pub stripe_size: Option<ByteSize>,
        /// Shards that must be stored for a write to succeed, K to K+M [default: K+1].
        #[arg(long, env = "TESSERA_WRITE_QUORUM")]
        pub write_quorum: Option<usize>,
        /// Accept a write quorum of K, which acknowledges writes that have no redundancy yet [default: false].
        #[arg(long, env = "TESSERA_ALLOW_UNSAFE_WRITE_QUORUM", num_args = 0..=1, default_missing_value = "true")]
        pub allow_unsafe_write_quorum: Option<bool>,
        /// Objects up to this size live in the metadata record [default: 128KiB].
        #[arg(long, env = "TESSERA_INLINE_THRESHOLD")]
        pub inline_threshold: Option<ByteSize>,
        /// A shard read slower than this is replaced by parity [default: 2s].
        #[arg(long, env = "TESSERA_HEDGE_TIMEOUT")]
        pub hedge_timeout: Option<HumanDuration>,
        /// A stalled shard write is given up after this [default: 30s].
        #[arg(long, env = "TESSERA_SHARD_WRITE_TIMEOUT")]
        pub shard_write_timeout: Option<HumanDuration>,
        /// Connect timeout to datanodes [default: 2s].
        #[arg(long, env = "TESSERA_CONNECT_TIMEOUT")]
        pub connect_timeout: Option<HumanDuration>,
        /// A client connection must deliver each request head within this; also the keep-alive idle limit [default: 30s].
        #[arg(long, env = "TESSERA_HEADER_TIMEOUT")]
        pub header_timeout: Option<HumanDuration>,
        /// An upload whose client sends nothing for this long fails with RequestTimeout [default: 30s].
        #[arg(long, env = "TESSERA_BODY_IDLE_TIMEOUT")]
        pub body_idle_timeout: Option<HumanDuration>,
        /// Audit log: a JSON line per S3 request appended to this file (`-`: standard output) [default: off].
        #[arg(long, env = "TESSERA_AUDIT_LOG")]
        pub audit_log: Option<PathBuf>,
        /// Requests per second allowed to each access key, bursts of twice as many; beyond, 503 SlowDown [default: 0, no limit].
        #[arg(long, env = "TESSERA_RATE_PER_KEY")]
        pub rate_per_key: Option<f64>,
        /// Client connections served at once; more wait until one closes [default: 4096].
        #[arg(long, env = "TESSERA_MAX_CONNECTIONS")]
        pub max_connections: Option<usize>,
        /// Requests per second allowed to each client IP address, bursts of twice as many [default: 0, no limit].
        #[arg(long, env = "TESSERA_RATE_PER_IP")]
        pub rate_per_ip: Option<f64>,
        /// Where PUT bodies sent without a Content-Length (chunked) wait until their length is known [default: the system's temporary folder].
        #[arg(long, env = "TESSERA_SPOOL_DIR")]
        pub spool_dir: Option<PathBuf>,
        /// At most this much of such bodies waits at once; beyond, 503 SlowDown [default: 5GiB].
        #[arg(long, env = "TESSERA_SPOOL_LIMIT")]
        pub spool_limit: Option<ByteSize>,
        /// The largest browser-form (POST) upload, held in memory while it is checked [default: 64MiB].
        #[arg(long, env = "TESSERA_POST_MAX")]
        pub post_max: Option<ByteSize>,
        /// How shard bytes travel to datanodes: wire or grpc [default: wire].
        #[arg(long, env = "TESSERA_SHARD_TRANSPORT")]
        pub shard_transport: Option<TransportOpt>,
        /// How body MD5s (ETags) are computed: lanes or inline [default: lanes].
        #[arg(long, env = "TESSERA_MD5")]
        pub md5: Option<Md5Opt>,
        /// How long to wait for the metadata service at start-up [default: 30s].
        #[arg(long, env = "TESSERA_STARTUP_TIMEOUT")]
        pub startup_timeout: Option<HumanDuration>,
        /// Folder with this node's cluster certificates (`ca.pem`, `node.pem`, `node.key`; `tessera cert node` makes them): mutual TLS on every internal connection [required unless --insecure-cluster].
        #[arg(long, env = "TESSERA_CLUSTER_CERTS")]
        pub cluster_certs: Option<PathBuf>,
        /// A join token (`tessera cert token`, or the admin API): when --cluster-certs holds no certificate yet,
        /// the node enrolls with it at the metadata nodes and keeps the certificate it receives there.
        #[arg(long, env = "TESSERA_JOIN_TOKEN", hide_env_values = true)]
        pub join_token: Option<String>,
        /// Speak plain text, unauthenticated, to the other nodes (a trusted test network only; logged loudly) [default: false].
        #[arg(long, env = "TESSERA_INSECURE_CLUSTER", num_args = 0..=1, default_missing_value = "true")]
        pub insecure_cluster: Option<bool>,
        /// Log format: text or json [default: text].
        #[arg(long, env = "TESSERA_LOG_FORMAT")]
        pub log_format: Option<LogFormat>,
        /// Send request traces to this OTLP/HTTP collector (e.g. http://127.0.0.1:4318) [default: off].
        #[arg(long, env = "TESSERA_OTLP_ENDPOINT")]
        pub otlp_endpoint: Option<String>,
    }
}

/// The `--config` flag every role takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigFile {
    /// TOML file with the same settings (keys as the long flags, `-` → `_`).
    #[arg(long, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Fails with `what` unless `v` is set.
pub fn required<T>(v: Option<T>, what: &str) -> anyhow::Result<T> {
    match v {
        Some(v) => Ok(v),
        None => bail!("{what} is required"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file: MetaOptions =
            parse_toml("node_id = 3\nlisten = \"127.0.0.1:7001\"\nraft_heartbeat = \"100ms\"\n").unwrap();
        let cli = MetaOptions { node_id: Some(5), ..MetaOptions::default() };
        let merged = cli.over(file);
        assert_eq!(merged.node_id, Some(5));
        assert_eq!(merged.listen, Some("127.0.0.1:7001".parse().unwrap()));
        assert_eq!(merged.raft_heartbeat, Some("100ms".parse().unwrap()));
        assert_eq!(merged.data, None);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_one_line_errors_naming_the_line() {
        let e = parse_toml::<GatewayOptions>("listen = \"127.0.0.1:9000\"\nlisen = 3\n").unwrap_err().to_string();
        assert!(e.starts_with("line 2: unknown field `lisen`"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = parse_toml::<GatewayOptions>("ec = \"4-2\"\n").unwrap_err().to_string();
        assert!(e.contains("not an erasure code"), "{e}");
        let e = parse_toml::<DatanodeOptions>("disks = [\"x\"]\n").unwrap_err().to_string();
        assert!(e.contains("not a disk"), "{e}");
    }

    #[test]
    fn example_configs_in_deploy_parse() {
        let s: ServerOptions = parse_toml(include_str!("../deploy/server.toml")).unwrap();
        assert!(s.data.is_some());
        let m: MetaOptions = parse_toml(include_str!("../deploy/meta.toml")).unwrap();
        assert!(m.node_id.is_some());
        let d: DatanodeOptions = parse_toml(include_str!("../deploy/datanode.toml")).unwrap();
        assert_eq!(d.disks.unwrap().len(), 2);
        assert_eq!(d.gc_grace, Some("1h".parse().unwrap()));
        let g: GatewayOptions = parse_toml(include_str!("../deploy/gateway.toml")).unwrap();
        assert_eq!(g.ec, Some(EcSpec { k: 4, m: 2 }));
        assert!(m.cluster_certs.is_some() && g.cluster_certs.is_some() && d.cluster_certs.is_some());
    }

    #[test]
    fn disk_and_ec_specs_parse() {
        assert_eq!("2:/srv/d2".parse::<DiskSpec>(), Ok(DiskSpec { id: 2, path: "/srv/d2".into() }));
        assert!("0:/x".parse::<DiskSpec>().is_err());
        assert!("/x".parse::<DiskSpec>().is_err());
        assert_eq!("10+4".parse::<EcSpec>(), Ok(EcSpec { k: 10, m: 4 }));
        assert!("0+2".parse::<EcSpec>().is_err());
    }
}
