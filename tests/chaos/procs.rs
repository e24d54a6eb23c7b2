//! The multi-process cluster the fault-injection suite runs against: the
//! `tessera` binary as 3 metadata nodes, 6 datanodes (one disk each, each
//! its own host; disk id = datanode index + 1) and 2 gateways (EC 4+2), on
//! loopback ports below Linux's ephemeral range, with a folder per run that
//! is kept (and named) when the test fails.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tessera_rpc::{MetaClient, MetaClientConfig};

pub const ACCESS_KEY: &str = "TSCHAOSTEST";
pub const SECRET_KEY: &str = "chaos-test-secret-key-000";

/// One process: how to start it, and the running child if any.
pub struct Slot {
    pub name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Health and metrics address.
    pub http: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Slot {
    fn start(&mut self) {
        assert!(self.child.is_none(), "{} already runs", self.name);
        let log = OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
        for (k, _) in std::env::vars() {
            if k.starts_with("TESSERA_") {
                c.env_remove(k);
            }
        }
        c.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        self.child = Some(c.stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap());
    }

    /// SIGKILL: no shutdown, no flush; reaped at once.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Finds free loopback ports from a base below the ephemeral range, so a
/// restarted process gets its port back.
struct Ports(u16);

impl Ports {
    fn next(&mut self) -> String {
        loop {
            self.0 += 1;
            assert!(self.0 < 32_000, "no free port below the ephemeral range");
            if std::net::TcpListener::bind(("127.0.0.1", self.0)).is_ok() {
                return format!("127.0.0.1:{}", self.0);
            }
        }
    }
}

pub struct ProcCluster {
    dir: Option<tempfile::TempDir>,
    pub metas: Vec<Slot>,
    pub datanodes: Vec<Slot>,
    pub gateways: Vec<Slot>,
    pub meta_urls: Vec<String>,
    pub gateway_addrs: Vec<String>,
}

impl ProcCluster {
    /// Starts the cluster and waits until every process is ready.
    pub async fn start(seed: u64) -> ProcCluster {
        let dir = tempfile::Builder::new().prefix("tessera-chaos-").tempdir().unwrap();
        let root = dir.path().to_owned();
        let mut ports = Ports(20_000 + ((seed ^ u64::from(std::process::id())) % 400) as u16 * 25);
        let grpc: Vec<String> = (0..3).map(|_| ports.next()).collect();
        let meta_urls: Vec<String> = grpc.iter().map(|a| format!("http://{a}")).collect();
        let mut metas = Vec::new();
        for (i, addr) in grpc.iter().enumerate() {
            let http = ports.next();
            let mut args: Vec<String> = vec!["meta".into(), "--node-id".into(), (i + 1).to_string()];
            args.extend(["--listen".into(), addr.clone(), "--http-listen".into(), http.clone()]);
            args.extend(["--data".into(), root.join(format!("meta{i}")).display().to_string()]);
            args.extend(
                ["--raft-heartbeat", "100ms", "--election-timeout-min", "500ms", "--election-timeout-max", "1s"]
                    .map(String::from),
            );
            args.extend(["--disk-down-after", "2s", "--disk-out-after", "1h"].map(String::from));
            let mut env = Vec::new();
            if i == 0 {
                args.push("--bootstrap".into());
                env.push(("TESSERA_ROOT_ACCESS_KEY".into(), ACCESS_KEY.into()));
                env.push(("TESSERA_ROOT_SECRET_KEY".into(), SECRET_KEY.into()));
            } else {
                args.extend(["--join".into(), meta_urls[0].clone()]);
            }
            let log = root.join(format!("meta{i}.log"));
            metas.push(Slot { name: format!("meta{}", i + 1), args, env, http, log, child: None });
        }
        let mut datanodes = Vec::new();
        // Six datanodes, and a seventh that tests may add.
        for i in 0..7 {
            let http = ports.next();
            let mut args: Vec<String> = vec!["datanode".into(), "--node-id".into(), (i + 1).to_string()];
            args.extend(["--listen".into(), ports.next(), "--http-listen".into(), http.clone()]);
            args.extend(["--meta".into(), meta_urls.join(",")]);
            args.extend(["--disk".into(), format!("{}:{}", i + 1, root.join(format!("dn{i}")).display())]);
            args.extend(["--host".into(), format!("host{i}"), "--rack".into(), format!("r{}", i % 3)]);
            args.extend(
                ["--heartbeat", "250ms", "--heal-interval", "2s", "--rebalance-interval", "2s"].map(String::from),
            );
            args.extend(["--gc-grace", "3s", "--gc-interval", "1s", "--scrub-interval", "2s"].map(String::from));
            let log = root.join(format!("dn{i}.log"));
            datanodes.push(Slot { name: format!("datanode{}", i + 1), args, env: Vec::new(), http, log, child: None });
        }
        let mut gateways = Vec::new();
        let mut gateway_addrs = Vec::new();
        for i in 0..2 {
            let addr = ports.next();
            let mut args: Vec<String> = vec!["gateway".into(), "--listen".into(), addr.clone()];
            args.extend(["--meta".into(), meta_urls.join(","), "--ec".into(), "4+2".into()]);
            args.extend(["--hedge-timeout", "1s"].map(String::from));
            let log = root.join(format!("gw{i}.log"));
            gateways.push(Slot {
                name: format!("gateway{}", i + 1),
                args,
                env: Vec::new(),
                http: addr.clone(),
                log,
                child: None,
            });
            gateway_addrs.push(addr);
        }
        let mut c = ProcCluster { dir: Some(dir), metas, datanodes, gateways, meta_urls, gateway_addrs };
        for m in &mut c.metas {
            m.start();
        }
        for m in &c.metas {
            wait_ready(&m.http, &m.name, Duration::from_secs(60)).await;
        }
        for d in &mut c.datanodes[..6] {
            d.start();
        }
        for d in &c.datanodes[..6] {
            wait_ready(&d.http, &d.name, Duration::from_secs(60)).await;
        }
        for g in &mut c.gateways {
            g.start();
        }
        for g in &c.gateways {
            wait_ready(&g.http, &g.name, Duration::from_secs(60)).await;
        }
        c
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// The folder of datanode `i`'s disk.
    pub fn disk_dir(&self, i: usize) -> PathBuf {
        self.dir().join(format!("dn{i}"))
    }

    pub fn meta_client(&self) -> MetaClient {
        MetaClient::new(MetaClientConfig::new(self.meta_urls.clone()))
    }

    /// An S3 client for gateway `i` with the root key.
    pub fn s3(&self, i: usize) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::{Credentials, Region};
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .endpoint_url(format!("http://{}", self.gateway_addrs[i]))
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "chaos"))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Restarts a killed process and waits until it is ready.
    pub async fn restart(slot: &mut Slot) {
        slot.start();
        wait_ready(&slot.http, &slot.name, Duration::from_secs(60)).await;
    }

    /// The metadata leader's index in `metas`, as the running nodes say.
    pub async fn leader(&self) -> Option<usize> {
        let s = self.meta_client().cluster_status().await.ok()?;
        s.leader_id.map(|id| id as usize - 1)
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        // Children first (each slot kills its own), then the folder — kept on failure.
        self.gateways.clear();
        self.datanodes.clear();
        self.metas.clear();
        if std::thread::panicking()
            && let Some(d) = self.dir.take()
        {
            eprintln!("chaos: data folders, logs and the history kept in {}", d.keep().display());
        }
    }
}

fn http_status(addr: &str, path: &str) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

async fn wait_ready(addr: &str, what: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let a = addr.to_owned();
        let st = tokio::task::spawn_blocking(move || http_status(&a, "/tessera/health/ready")).await.unwrap();
        if st == Some(200) {
            return;
        }
        assert!(start.elapsed() < limit, "{what} not ready on {addr} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
