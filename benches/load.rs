//! `tessera-load`: an end-to-end S3 load tool.
//!
//! Runs PUT, GET and LIST scenarios (sizes, concurrency) against an S3
//! endpoint, through aws-sdk-s3 or (`--client http1`) a plain hyper HTTP/1.1
//! client, verifies every byte read back, and reports MB/s, ops/s, p50/p99
//! latency, and the server's CPU (per second and per operation) and peak RSS
//! (from `/proc/<pid>`; with `--server-pid a,b,c` a cluster's processes summed).
//! With `--spawn <tessera binary>` it starts a fresh `tessera server` on a
//! temporary data folder (and stops it at the end). In the same run it
//! measures the data folder's disk — sequential writes of 1 MiB with an
//! fsync at the end, and fsync'd 1 MiB writes — so results read as fractions
//! of what the disk can do.
//!
//! ```text
//! cargo build --release --bin tessera
//! cargo run --release -p tessera-benches --bin tessera-load -- --spawn target/release/tessera
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use clap::Parser;

#[path = "load_http1.rs"]
mod http1;

#[derive(Parser, Debug)]
#[command(name = "tessera-load", about = "End-to-end S3 load tool (PUT/GET, content-verified)")]
struct Args {
    /// Start this `tessera` binary as an all-in-one server for the run.
    #[arg(long)]
    spawn: Option<PathBuf>,
    /// Data folder for the spawned server (a temporary folder under it).
    #[arg(long, default_value = "/var/tmp")]
    data_root: PathBuf,
    /// Leave the spawned server's data folder in place (its path is printed)
    /// instead of deleting it. For runs back to back on an ext4 without a
    /// journal (this machine's root): there, for up to six minutes after
    /// thousands of files are deleted, creating a file costs ~0.15–0.35 ms
    /// more (ext4 skips recently deleted inodes one by one), which would
    /// charge one run's clean-up to the next run's shard writes.
    #[arg(long)]
    keep_data: bool,
    /// Disk folders of the spawned server (6 → EC 4+2).
    #[arg(long, default_value_t = 6)]
    disks: usize,
    /// Endpoint of an already running server (instead of --spawn).
    #[arg(long)]
    endpoint: Option<String>,
    /// Access key (with --endpoint).
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: Option<String>,
    /// Secret key (with --endpoint).
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY")]
    secret_key: Option<String>,
    /// Server processes to sample for CPU and RSS (with --endpoint;
    /// comma-separated: a cluster's processes are summed).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Data folder of the server (with --endpoint), for the disk baseline.
    #[arg(long)]
    server_data: Option<PathBuf>,
    /// Scale the number of operations (1.0 = the default run, ~1–2 minutes).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Run only these scenarios (comma-separated, e.g. `get-64MiB,put-1MiB`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Unmeasured operations per stream before each scenario's measured
    /// ones. They take the first wave (every stream starting at the same
    /// moment, new connections) out of the latency figures; 0 measures
    /// from the first request.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Run every scenario with this many streams instead of its own.
    #[arg(long)]
    streams: Option<usize>,
    /// A metadata node of the server (with --endpoint; --spawn knows its
    /// own): the LIST scenario fills its bucket through the metadata API,
    /// as 1,000,000 PUTs through S3 would take longer than the rest of the
    /// run together.
    #[arg(long)]
    meta: Option<String>,
    /// Objects in the LIST scenario's bucket.
    #[arg(long, default_value_t = 1_000_000)]
    list_objects: usize,
    /// The client of the PUT and GET scenarios: `sdk` (aws-sdk-s3, its
    /// connection pool) or `http1` (plain hyper HTTP/1.1, one keep-alive
    /// connection per stream, SigV4 with UNSIGNED-PAYLOAD).
    #[arg(long, default_value = "sdk")]
    client: ClientKind,
    /// PEM file of the CA to trust for an https:// --endpoint (`--client
    /// http1`; e.g. a `tessera server --tls-self-signed`'s data/tls/cert.pem).
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
    /// Make the load bucket's default encryption SSE-S3 (AES256): every
    /// PUT is sealed and every GET opened, to measure what SSE costs.
    #[arg(long)]
    sse_s3: bool,
    /// Enable versioning on the load bucket: every PUT makes a version
    /// (the older ones stay), to measure what versioning costs.
    #[arg(long)]
    versioning: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ClientKind {
    Sdk,
    Http1,
}

/// The client the PUT and GET scenarios drive.
#[derive(Clone)]
enum Client {
    Sdk(aws_sdk_s3::Client),
    Http1(http1::Http1),
}

/// A scenario's outcome.
struct Outcome {
    name: String,
    ops: usize,
    bytes: u64,
    wall: Duration,
    lat: Vec<Duration>,
    cpu_secs: f64,
    peak_rss: u64,
}

impl Outcome {
    fn pct(&self, p: f64) -> Duration {
        let mut l = self.lat.clone();
        l.sort();
        if l.is_empty() {
            return Duration::ZERO;
        }
        l[((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1]
    }

    fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.wall.as_secs_f64()
    }

    fn print(&self) {
        println!(
            "{:<28} {:>6} ops {:>9.1} MB/s {:>9.0} ops/s  p50 {:>8.2} ms  p99 {:>8.2} ms  server CPU {:>5.0}% {:>6.2} ms/op  peak RSS {:>6.0} MiB",
            self.name,
            self.ops,
            self.mbps(),
            self.ops as f64 / self.wall.as_secs_f64(),
            self.pct(0.50).as_secs_f64() * 1e3,
            self.pct(0.99).as_secs_f64() * 1e3,
            self.cpu_secs / self.wall.as_secs_f64() * 100.0,
            self.cpu_secs * 1e3 / self.ops.max(1) as f64,
            self.peak_rss as f64 / (1 << 20) as f64,
        );
    }
}

/// The server's processes whose CPU and RSS are sampled (none: not sampled).
type Pids = Arc<[u32]>;

/// CPU seconds (user + system) of the processes together.
fn cpu_secs(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| cpu_secs_of(p)).sum()
}

/// RSS of the processes together.
fn rss(pids: &[u32]) -> u64 {
    pids.iter().map(|&p| rss_of(p)).sum()
}

/// CPU seconds (user + system) of a process.
fn cpu_secs_of(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name (which may hold spaces) start after ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ is 100 on Linux
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Deterministic payload `i` of `len` bytes.
fn payload(len: usize, i: u64) -> Bytes {
    let mut x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

#[derive(Clone, Copy)]
enum Op {
    Put,
    Get,
}

struct Scenario {
    op: Op,
    size: usize,
    streams: usize,
    ops: usize,
    /// Unmeasured operations per stream first.
    warmup: usize,
}

/// Where the measured part of a run starts: the moment the first measured
/// operation is issued, and the server's CPU seconds then.
type Mark = Arc<std::sync::OnceLock<(Instant, f64)>>;

/// Runs scenario `s` over its streams: `warm` unmeasured operations, then
/// `s.ops` measured ones, issued without a pause between the two, so the
/// measured ones meet the steady state. The latency of each measured one,
/// and where the measured part started.
async fn drive(
    c: &Client,
    bucket: &str,
    s: &Scenario,
    payloads: &Arc<Vec<Bytes>>,
    prefix: &str,
    pid: Pids,
) -> anyhow::Result<(Vec<Duration>, Instant, f64)> {
    let warm = (s.warmup * s.streams) as u64;
    let mark: Mark = Arc::default();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..s.streams {
        let (c, bucket, payloads, next, prefix, mark) =
            (c.clone(), bucket.to_owned(), payloads.clone(), next.clone(), prefix.to_owned(), mark.clone());
        let (op, total) = (s.op, warm + s.ops as u64);
        let pid = pid.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            // The HTTP/1.1 client's own keep-alive connection.
            let mut conn = match &c {
                Client::Http1(h) => Some(h.conn()),
                Client::Sdk(_) => None,
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let which = (i % payloads.len() as u64) as usize;
                let start = Instant::now();
                if i == warm {
                    mark.get_or_init(|| (start, cpu_secs(&pid)));
                }
                match (op, &c, conn.as_mut()) {
                    (Op::Put, Client::Http1(_), Some(conn)) => {
                        conn.put(&bucket, &format!("{prefix}/put-{i}"), payloads[which].clone()).await?;
                    }
                    (Op::Get, Client::Http1(_), Some(conn)) => {
                        conn.get_compare(&bucket, &format!("{prefix}/{which}"), &payloads[which]).await?;
                    }
                    (_, Client::Http1(_), None) => unreachable!("an HTTP/1.1 stream has its connection"),
                    (Op::Put, Client::Sdk(c), _) => {
                        c.put_object()
                            .bucket(&bucket)
                            .key(format!("{prefix}/put-{i}"))
                            .body(ByteStream::from(payloads[which].clone()))
                            .customize()
                            // UNSIGNED-PAYLOAD, as SDKs send over TLS: a SHA-256 of
                            // every body (no SHA extensions here) would measure
                            // the hash, not the store.
                            .disable_payload_signing()
                            .send()
                            .await
                            .context("PUT")?;
                    }
                    (Op::Get, Client::Sdk(c), _) => {
                        let r = c
                            .get_object()
                            .bucket(&bucket)
                            .key(format!("{prefix}/{which}"))
                            .send()
                            .await
                            .context("GET")?;
                        // Every byte is compared as it arrives, as a client
                        // streaming to a file would handle it: gathering 64 MiB
                        // into one buffer first would cost this 2-core machine
                        // page faults and a copy the server then lacks.
                        let want = &payloads[which];
                        let mut body = r.body;
                        let mut at = 0usize;
                        while let Some(chunk) =
                            body.try_next().await.map_err(|e| anyhow::anyhow!("GET {prefix}/{which} body: {e:?}"))?
                        {
                            if want.get(at..at + chunk.len()) != Some(&chunk[..]) {
                                bail!("GET {prefix}/{which} returned different bytes at {at}");
                            }
                            at += chunk.len();
                        }
                        if at != want.len() {
                            bail!("GET {prefix}/{which} returned {at} of {} bytes", want.len());
                        }
                    }
                }
                if i >= warm {
                    lat.push(start.elapsed());
                }
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let (t0, cpu0) = *mark.get().context("no measured operation ran")?;
    Ok((lat, t0, cpu0))
}

async fn run(c: &Client, sdk: &aws_sdk_s3::Client, bucket: &str, s: &Scenario, pid: Pids) -> anyhow::Result<Outcome> {
    let payloads: Arc<Vec<Bytes>> = Arc::new((0..s.streams.max(4) as u64).map(|i| payload(s.size, i)).collect());
    let prefix = format!("{}-{}", s.size, s.streams);
    if let Op::Get = s.op {
        // The objects to read: one per payload.
        for (i, p) in payloads.iter().enumerate() {
            sdk.put_object()
                .bucket(bucket)
                .key(format!("{prefix}/{i}"))
                .body(ByteStream::from(p.clone()))
                .send()
                .await?;
        }
    }
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = (!pid.is_empty()).then(|| {
        let (peak, pid) = (peak.clone(), pid.clone());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(&pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    });
    let (lat, t0, cpu0) = drive(c, bucket, s, &payloads, &prefix, pid.clone()).await?;
    let wall = t0.elapsed();
    let cpu = cpu_secs(&pid) - cpu0;
    if let Some(s) = sampler {
        s.abort();
    }
    let name = format!(
        "{} {} x{}",
        match s.op {
            Op::Put => "PUT",
            Op::Get => "GET",
        },
        human(s.size),
        s.streams
    );
    Ok(Outcome {
        name,
        ops: lat.len(),
        bytes: (lat.len() * s.size) as u64,
        wall,
        lat,
        cpu_secs: cpu,
        peak_rss: peak.load(Ordering::Relaxed),
    })
}

fn human(n: usize) -> String {
    if n >= 1 << 20 { format!("{} MiB", n >> 20) } else { format!("{} KiB", n >> 10) }
}

/// Sequential 1 MiB writes of `total` bytes then one fsync; and 1 MiB writes
/// each followed by fsync (the shape of a shard write). MB/s of both.
fn disk_baseline(dir: &Path, total: usize) -> anyhow::Result<(f64, f64)> {
    let path = dir.join("disk-baseline.tmp");
    let block = payload(1 << 20, 99);
    let t = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    for _ in 0..total >> 20 {
        f.write_all(&block)?;
    }
    f.sync_all()?;
    let seq = total as f64 / 1e6 / t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    let t = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    let n = (total >> 20) / 4;
    for _ in 0..n {
        f.write_all(&block)?;
        f.sync_data()?;
    }
    let each = (n << 20) as f64 / 1e6 / t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok((seq, each))
}

struct Spawned {
    child: Child,
    /// Deleted when dropped, unless kept (`--keep-data`).
    dir: Option<tempfile::TempDir>,
    keep: bool,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        if let Some(dir) = self.dir.take().filter(|_| self.keep) {
            println!("data folder kept: {}", dir.keep().display());
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spawn(
    bin: &Path,
    root: &Path,
    disks: usize,
    keep: bool,
) -> anyhow::Result<(Spawned, String, String, String, PathBuf, String)> {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir_in(root).context("temporary data folder")?;
    let data = dir.path().join("data");
    let ports = [free_port()?, free_port()?, free_port()?];
    let mut child = Command::new(bin)
        .args(["server", "--data"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", ports[0])])
        .args(["--meta-listen", &format!("127.0.0.1:{}", ports[1])])
        .args(["--datanode-listen", &format!("127.0.0.1:{}", ports[2])])
        .args(["--disks", &disks.to_string()])
        .env_remove("TESSERA_ROOT_ACCESS_KEY")
        .env_remove("TESSERA_ROOT_SECRET_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let meta = format!("http://127.0.0.1:{}", ports[1]);
    let out = child.stdout.take().context("server stdout")?;
    let mut banner = Vec::new();
    for line in std::io::BufReader::new(out).lines() {
        let line = line?;
        let done = line.starts_with("Ready.");
        banner.push(line);
        if done {
            break;
        }
    }
    let creds = std::fs::read_to_string(data.join("root-credentials")).context("server credentials")?;
    let mut it = creds.lines();
    let (ak, sk) = (it.next().unwrap_or_default().to_owned(), it.next().unwrap_or_default().to_owned());
    println!(
        "server: {}",
        banner
            .iter()
            .map(|l| l.trim())
            .filter(|l| l.contains("erasure") || l.contains("endpoint"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    Ok((Spawned { child, dir: Some(dir), keep }, format!("http://127.0.0.1:{}", ports[0]), ak, sk, data, meta))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (_server, endpoint, ak, sk, pid, data, meta) = match (&args.spawn, &args.endpoint) {
        (Some(bin), None) => {
            let (s, e, ak, sk, data, meta) = spawn(bin, &args.data_root, args.disks, args.keep_data)?;
            let pid: Pids = Arc::new([s.child.id()]);
            (Some(s), e, ak, sk, pid, Some(data), Some(meta))
        }
        (None, Some(e)) => (
            None,
            e.clone(),
            args.access_key.clone().context("--access-key or AWS_ACCESS_KEY_ID")?,
            args.secret_key.clone().context("--secret-key or AWS_SECRET_ACCESS_KEY")?,
            args.server_pid.clone().into(),
            args.server_data.clone(),
            args.meta.clone(),
        ),
        _ => bail!("give either --spawn <tessera binary> or --endpoint <url>"),
    };
    if let Some(d) = &data {
        let (seq, each) = disk_baseline(d, 1 << 30)?;
        println!(
            "disk ({}): sequential write + fsync {seq:.0} MB/s; fsync after every 1 MiB {each:.0} MB/s",
            d.display()
        );
    }
    if args.warmup > 0 {
        println!("each scenario first runs {} unmeasured operations per stream (--warmup)", args.warmup);
    }
    let conf = aws_sdk_s3::Config::builder()
        .endpoint_url(&endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ak.clone(), sk.clone(), None, None, "load"))
        .force_path_style(true)
        // Measure the server, not the client's CRC32 of every body.
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build();
    let c = aws_sdk_s3::Client::from_conf(conf);
    let client = match args.client {
        ClientKind::Sdk => Client::Sdk(c.clone()),
        ClientKind::Http1 => Client::Http1(http1::Http1::new(&endpoint, &ak, &sk, args.ca_bundle.as_deref())?),
    };
    let bucket = format!("load-{}", std::process::id());
    c.create_bucket().bucket(&bucket).send().await?;
    if args.sse_s3 {
        use aws_sdk_s3::types::{
            ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
            ServerSideEncryptionRule,
        };
        let by_default =
            ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256).build()?;
        let rule = ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(by_default).build();
        let conf = ServerSideEncryptionConfiguration::builder().rules(rule).build()?;
        c.put_bucket_encryption().bucket(&bucket).server_side_encryption_configuration(conf).send().await?;
        println!("bucket {bucket}: default encryption SSE-S3 (AES256)");
    }
    if args.versioning {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        let conf = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
        c.put_bucket_versioning().bucket(&bucket).versioning_configuration(conf).send().await?;
        println!("bucket {bucket}: versioning enabled");
    }
    let n = |base: usize| ((base as f64 * args.scale).ceil() as usize).max(1);
    let streams = |own: usize| args.streams.unwrap_or(own).max(1);
    let scenario = |op, size, own, ops| Scenario { op, size, streams: streams(own), ops: n(ops), warmup: args.warmup };
    let scenarios = [
        scenario(Op::Put, 64 << 20, 4, 24),
        scenario(Op::Get, 64 << 20, 4, 40),
        scenario(Op::Put, 1 << 20, 16, 800),
        scenario(Op::Get, 1 << 20, 16, 1500),
        scenario(Op::Put, 4 << 10, 16, 4000),
        scenario(Op::Get, 4 << 10, 16, 30000),
    ];
    for s in &scenarios {
        let name =
            format!("{}-{}", if matches!(s.op, Op::Put) { "put" } else { "get" }, human(s.size).replace(' ', ""));
        if !args.only.is_empty() && !args.only.iter().any(|o| o.eq_ignore_ascii_case(&name)) {
            continue;
        }
        let o = run(&client, &c, &bucket, s, pid.clone()).await?;
        o.print();
    }
    let list = format!("list-{}", human_count(args.list_objects));
    if args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case(&list)) {
        match &meta {
            Some(meta) => {
                let (o, keys) =
                    list_scenario(&client, &c, &bucket, meta, args.list_objects, streams(4), n(2400), pid).await?;
                o.print();
                println!(
                    "LIST: {:.0} keys/s, server CPU {:.2} ms per page",
                    keys as f64 / o.wall.as_secs_f64(),
                    o.cpu_secs * 1e3 / o.ops as f64
                );
            }
            None => bail!("{list} needs --meta (a metadata node of the server), or leave it out with --only"),
        }
    }
    Ok(())
}

fn human_count(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// LIST: fills `bucket` with `objects` empty objects under `list/` through
/// the metadata API at `meta` (64 writers, group-committed), then lists
/// them through S3: each stream reads runs of 10 pages of 1,000 keys
/// (ListObjectsV2, continuation tokens) from random places. An operation
/// is a page; the keys listed come beside the outcome.
#[allow(clippy::too_many_arguments)]
async fn list_scenario(
    s3: &Client,
    c: &aws_sdk_s3::Client,
    bucket: &str,
    meta: &str,
    objects: usize,
    streams: usize,
    pages: usize,
    pid: Pids,
) -> anyhow::Result<(Outcome, u64)> {
    use tessera_rpc::proto::meta::{Body, Command, ObjectRecord, PutObject, body, command};
    let client = tessera_rpc::MetaClient::new(tessera_rpc::MetaClientConfig::new(vec![meta.to_owned()]));
    let key = |i: u64| format!("list/obj-{i:09}");
    let filled = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for _ in 0..64 {
        let (client, next, bucket) = (client.clone(), next.clone(), bucket.to_owned());
        writers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= objects as u64 {
                    return Ok::<_, anyhow::Error>(());
                }
                let record = ObjectRecord {
                    size: 0,
                    etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
                    body: Some(Body { kind: Some(body::Kind::InlineData(Vec::new())), ..Default::default() }),
                    ..Default::default()
                };
                let put = PutObject {
                    bucket: bucket.clone(),
                    key: key(i),
                    record: Some(record),
                    condition: None,
                    origin: String::new(),
                    bucket_digest: Vec::new(),
                };
                let r = client.write(Command { now_ms: 0, op: Some(command::Op::PutObject(put)) }).await?;
                if let Some(tessera_rpc::proto::meta::command_result::Outcome::Failure(f)) = r.outcome {
                    bail!("metadata refused a record: {f:?}");
                }
            }
        }));
    }
    for w in writers {
        w.await??;
    }
    println!("list: {objects} objects written through the metadata API in {:.1} s", filled.elapsed().as_secs_f64());

    let total = pages.div_ceil(10) * 10;
    let next = Arc::new(AtomicU64::new(0));
    let keys = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_secs(&pid);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..streams {
        let (c, bucket, next, keys) = (c.clone(), bucket.to_owned(), next.clone(), keys.clone());
        let mut conn = match s3 {
            Client::Http1(h) => Some(h.conn()),
            Client::Sdk(_) => None,
        };
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ s as u64;
            while next.fetch_add(10, Ordering::Relaxed) < total as u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let start = x % (objects.saturating_sub(10_000).max(1) as u64);
                let mut token: Option<String> = None;
                for _ in 0..10 {
                    let t = Instant::now();
                    let (n, next_token) = match conn.as_mut() {
                        Some(conn) => {
                            let from_key = key(start);
                            let from = match &token {
                                Some(tok) => http1::ListFrom::Token(tok),
                                None => http1::ListFrom::StartAfter(&from_key),
                            };
                            conn.list_page(&bucket, "list/", from).await?
                        }
                        None => {
                            let mut req = c.list_objects_v2().bucket(&bucket).prefix("list/").max_keys(1000);
                            req = match token.clone() {
                                Some(tok) => req.continuation_token(tok),
                                None => req.start_after(key(start)),
                            };
                            let r = req.send().await.context("LIST")?;
                            (r.contents().len() as u64, r.next_continuation_token().map(str::to_owned))
                        }
                    };
                    if n == 0 {
                        bail!("an empty page inside the bucket");
                    }
                    keys.fetch_add(n, Ordering::Relaxed);
                    lat.push(t.elapsed());
                    match next_token {
                        Some(tok) => token = Some(tok),
                        None => break,
                    }
                }
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let wall = t0.elapsed();
    let outcome = Outcome {
        name: format!("LIST 1,000-key pages x{streams}"),
        ops: lat.len(),
        bytes: 0,
        wall,
        lat,
        cpu_secs: cpu_secs(&pid) - cpu0,
        peak_rss: rss(&pid),
    };
    Ok((outcome, keys.load(Ordering::Relaxed)))
}
