//! The multi-process cluster the fault-injection suite runs against: the
//! `tessera` binary as 3 metadata nodes, 6 datanodes (one disk each, each
//! its own host; disk id = datanode index + 1) and 2 gateways (EC 4+2), on
//! loopback ports below Linux's ephemeral range, with a folder per run that
//! is kept (and named) when the test fails.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use std::sync::OnceLock;

use tessera_rpc::cluster_tls::{self, ClusterCa, ClusterTls, Role};
use tessera_rpc::{MetaClient, MetaClientConfig};

pub const ACCESS_KEY: &str = "TSCHAOSTEST";
pub const SECRET_KEY: &str = "chaos-test-secret-key-000";

/// One process: how to start it, and the running child if any.
pub struct Slot {
    pub name: String,
    /// The network namespace it runs in (`ip netns exec`), if any.
    netns: Option<String>,
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
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_tessera")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_tessera")),
        };
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

/// The metadata nodes' networks when they run in namespaces: each node's
/// namespace has a `raft` link to a bridge shared with its peers (the
/// address it advertises) and a `cli` link to the host (the address clients
/// use), so cutting a node's raft link partitions it from its peers while
/// clients can still reach it.
pub struct Netns {
    tag: String,
    /// Third octet of the 10.213/16 (raft) and 10.214/16 (client) subnets.
    net: u32,
}

impl Netns {
    fn ip(args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("the `ip` command (iproute2) is needed");
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn ns(&self, i: usize) -> String {
        format!("tsc{}n{i}", self.tag)
    }

    fn raft_link(&self, i: usize) -> String {
        format!("tsr{}{i}", self.tag)
    }

    /// The address node `i` advertises to its peers.
    pub fn raft_ip(&self, i: usize) -> String {
        format!("10.213.{}.{}", self.net, 10 + i)
    }

    /// The address clients reach node `i` at.
    pub fn client_ip(&self, i: usize) -> String {
        format!("10.214.{}.{}", self.net, 4 * i + 2)
    }

    fn create(nodes: usize) -> Netns {
        let pid = std::process::id();
        let n = Netns { tag: format!("{:x}", pid & 0xfff), net: 20 + pid % 200 };
        let bridge = format!("tsb{}", n.tag);
        Self::ip(&["link", "add", &bridge, "type", "bridge"]);
        Self::ip(&["addr", "add", &format!("10.213.{}.1/24", n.net), "dev", &bridge]);
        Self::ip(&["link", "set", &bridge, "up"]);
        for i in 0..nodes {
            let ns = n.ns(i);
            Self::ip(&["netns", "add", &ns]);
            Self::ip(&["-n", &ns, "link", "set", "lo", "up"]);
            // Raft: a veth onto the bridge.
            let host = n.raft_link(i);
            Self::ip(&["link", "add", &host, "type", "veth", "peer", "name", "raft", "netns", &ns]);
            Self::ip(&["link", "set", &host, "master", &bridge]);
            Self::ip(&["link", "set", &host, "up"]);
            Self::ip(&["-n", &ns, "addr", "add", &format!("{}/24", n.raft_ip(i)), "dev", "raft"]);
            Self::ip(&["-n", &ns, "link", "set", "raft", "up"]);
            // Clients: a point-to-point veth to the host.
            let cli = format!("tsk{}{i}", n.tag);
            Self::ip(&["link", "add", &cli, "type", "veth", "peer", "name", "cli", "netns", &ns]);
            Self::ip(&["addr", "add", &format!("10.214.{}.{}/30", n.net, 4 * i + 1), "dev", &cli]);
            Self::ip(&["link", "set", &cli, "up"]);
            Self::ip(&["-n", &ns, "addr", "add", &format!("{}/30", n.client_ip(i)), "dev", "cli"]);
            Self::ip(&["-n", &ns, "link", "set", "cli", "up"]);
        }
        n
    }

    /// Cuts (or restores) node `i`'s link to its peers.
    pub fn partition(&self, i: usize, cut: bool) {
        Self::ip(&["link", "set", &self.raft_link(i), if cut { "down" } else { "up" }]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veths and their host ends.
        for i in 0..3 {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(i)]).output();
        }
        let _ = Command::new("ip").args(["link", "del", &format!("tsb{}", self.tag)]).output();
    }
}

pub struct ProcCluster {
    dir: Option<tempfile::TempDir>,
    /// Set when the metadata nodes run in network namespaces.
    pub netns: Option<Netns>,
    ports: Ports,
    pub metas: Vec<Slot>,
    pub datanodes: Vec<Slot>,
    pub gateways: Vec<Slot>,
    pub meta_urls: Vec<String>,
    pub gateway_addrs: Vec<String>,
}

impl ProcCluster {
    /// Starts the cluster and waits until every process is ready.
    pub async fn start(seed: u64) -> ProcCluster {
        Self::start_in(seed, false).await
    }

    /// [`ProcCluster::start`]; with `netns`, each metadata node runs in a
    /// network namespace of its own ([`Netns`]).
    pub async fn start_in(seed: u64, netns: bool) -> ProcCluster {
        let dir = tempfile::Builder::new().prefix("tessera-chaos-").tempdir().unwrap();
        let root = dir.path().to_owned();
        let mut ports = Ports(20_000 + ((seed ^ u64::from(std::process::id())) % 400) as u16 * 25);
        let net = netns.then(|| Netns::create(3));
        let grpc: Vec<String> = (0..3).map(|_| ports.next()).collect();
        // Clients' addresses of the metadata nodes, and what each advertises.
        let (meta_urls, advertised): (Vec<String>, Vec<String>) = match &net {
            None => (
                grpc.iter().map(|a| format!("http://{a}")).collect(),
                grpc.iter().map(|a| format!("http://{a}")).collect(),
            ),
            Some(n) => (0..3)
                .map(|i| {
                    let port = grpc[i].rsplit(':').next().unwrap().to_owned();
                    (format!("http://{}:{port}", n.client_ip(i)), format!("http://{}:{port}", n.raft_ip(i)))
                })
                .unzip(),
        };
        let mut metas = Vec::new();
        for (i, addr) in grpc.iter().enumerate() {
            let http_port = ports.next();
            let (listen, http, http_listen) = match &net {
                None => (addr.clone(), http_port.clone(), http_port),
                Some(n) => {
                    let port = |a: &str| a.rsplit(':').next().unwrap().to_owned();
                    (
                        format!("0.0.0.0:{}", port(addr)),
                        format!("{}:{}", n.client_ip(i), port(&http_port)),
                        format!("0.0.0.0:{}", port(&http_port)),
                    )
                }
            };
            let mut args: Vec<String> = vec!["meta".into(), "--node-id".into(), (i + 1).to_string()];
            args.extend(["--listen".into(), listen, "--http-listen".into(), http_listen]);
            args.extend(["--advertise".into(), advertised[i].clone()]);
            args.extend(["--data".into(), root.join(format!("meta{i}")).display().to_string()]);
            args.extend(["--cluster-certs".into(), node_certs(&root, Role::Meta, &format!("meta{i}"))]);
            // Raft heartbeat and election timeouts: the defaults, so the
            // fail-over measured here is the one users get.
            args.extend(["--disk-down-after", "2s", "--disk-out-after", "1h"].map(String::from));
            let mut env = Vec::new();
            if i == 0 {
                args.push("--bootstrap".into());
                env.push(("TESSERA_ROOT_ACCESS_KEY".into(), ACCESS_KEY.into()));
                env.push(("TESSERA_ROOT_SECRET_KEY".into(), SECRET_KEY.into()));
            } else {
                args.extend(["--join".into(), advertised[0].clone()]);
            }
            let log = root.join(format!("meta{i}.log"));
            let netns = net.as_ref().map(|n| n.ns(i));
            metas.push(Slot { name: format!("meta{}", i + 1), netns, args, env, http, log, child: None });
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
            args.extend(["--cluster-certs".into(), node_certs(&root, Role::Datanode, &format!("dn{i}"))]);
            args.extend(
                ["--heartbeat", "250ms", "--heal-interval", "2s", "--rebalance-interval", "2s"].map(String::from),
            );
            args.extend(["--gc-grace", "3s", "--gc-interval", "1s", "--scrub-interval", "2s"].map(String::from));
            let log = root.join(format!("dn{i}.log"));
            datanodes.push(Slot {
                name: format!("datanode{}", i + 1),
                netns: None,
                args,
                env: Vec::new(),
                http,
                log,
                child: None,
            });
        }
        let mut gateways = Vec::new();
        let mut gateway_addrs = Vec::new();
        for i in 0..2 {
            let addr = ports.next();
            gateways.push(gateway_slot(&root, i, &addr, &meta_urls.join(",")));
            gateway_addrs.push(addr);
        }
        let mut c =
            ProcCluster { dir: Some(dir), netns: net, ports, metas, datanodes, gateways, meta_urls, gateway_addrs };
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

    /// Starts one more gateway that knows only the metadata node at `meta`
    /// (objects of the default code); returns its index.
    pub async fn add_gateway(&mut self, meta: &str) -> usize {
        let addr = self.ports.next();
        let i = self.gateways.len();
        let mut slot = gateway_slot(self.dir(), i, &addr, meta);
        Self::restart(&mut slot).await;
        self.gateways.push(slot);
        self.gateway_addrs.push(addr);
        i
    }

    /// Restarts a killed process and waits until it is ready.
    pub async fn restart(slot: &mut Slot) {
        slot.start();
        wait_ready(&slot.http, &slot.name, Duration::from_secs(60)).await;
    }

    /// The metadata leader's index in `metas`, as the running nodes say.
    /// The Raft term and leader (index) as metadata node `i` sees them.
    pub async fn seen_by(&self, i: usize) -> Option<(u64, Option<usize>)> {
        let mut cfg = MetaClientConfig::new(vec![self.meta_urls[i].clone()]);
        cfg.call_timeout = Duration::from_millis(500);
        cfg.deadline = Duration::from_millis(500);
        let s = MetaClient::new(cfg).cluster_status().await.ok()?;
        Some((s.term, s.leader_id.map(|id| id as usize - 1)))
    }

    /// The highest Raft term any metadata node reports.
    pub async fn term(&self) -> u64 {
        let mut t = 0;
        for i in 0..self.metas.len() {
            t = t.max(self.seen_by(i).await.map_or(0, |s| s.0));
        }
        t
    }

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
        self.netns.take();
        if std::thread::panicking()
            && let Some(d) = self.dir.take()
        {
            eprintln!("chaos: data folders, logs and the history kept in {}", d.keep().display());
        }
    }
}

/// The CA of every cluster this test process starts. The process itself
/// talks to them too (status checks, membership changes), as a gateway
/// would: the first call installs a gateway certificate as its identity.
fn cluster_ca() -> &'static ClusterCa {
    static CA: OnceLock<ClusterCa> = OnceLock::new();
    CA.get_or_init(|| {
        let ca = ClusterCa::generate().expect("a cluster CA");
        let dir = tempfile::tempdir().expect("a temporary folder");
        ca.issue_into(dir.path(), Role::Gateway, "chaos-harness", Duration::from_secs(86400)).expect("a certificate");
        cluster_tls::install(ClusterTls::load(dir.path()).expect("the harness identity")).expect("one identity");
        ca
    })
}

/// A certificate for node `name` of `role`: every process speaks mutual
/// TLS, as a cluster set up by the README does. Returns the folder for
/// `--cluster-certs`.
fn node_certs(root: &Path, role: Role, name: &str) -> String {
    let dir = root.join("certs").join(name);
    cluster_ca().issue_into(&dir, role, name, Duration::from_secs(86400)).expect("a node certificate");
    dir.display().to_string()
}

/// Gateway `i` on `addr`, EC 4+2, talking to the metadata nodes `meta`.
fn gateway_slot(root: &Path, i: usize, addr: &str, meta: &str) -> Slot {
    let mut args: Vec<String> = vec!["gateway".into(), "--listen".into(), addr.to_owned()];
    args.extend(["--meta".into(), meta.to_owned(), "--ec".into(), "4+2".into()]);
    args.extend(["--hedge-timeout", "1s"].map(String::from));
    args.extend(["--cluster-certs".into(), node_certs(root, Role::Gateway, &format!("gw{i}"))]);
    Slot {
        name: format!("gateway{}", i + 1),
        netns: None,
        args,
        env: Vec::new(),
        http: addr.to_owned(),
        log: root.join(format!("gw{i}.log")),
        child: None,
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
