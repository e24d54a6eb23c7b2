//! A real metadata cluster in-process for the tests: nodes on loopback
//! ports with their own RocksDB directories, talking gRPC, and what the
//! tests write and check through them.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tessera_metadata::{MetaConfig, MetaError, serve};
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::*;
use tessera_rpc::{MetaClient, MetaClientConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Node {
    pub id: u64,
    pub addr: String,
    pub dir: PathBuf,
    pub stop: watch::Sender<bool>,
    pub task: JoinHandle<Result<(), MetaError>>,
}

pub async fn start(id: u64, root: &Path, bootstrap: bool, port: u16) -> Node {
    start_at(id, root, bootstrap, port, tessera_metadata::version::LEVEL).await
}

/// A node that understands metadata commands up to `level` (below this
/// release's: a node of an older release, as far as the version gate goes).
pub async fn start_at(id: u64, root: &Path, bootstrap: bool, port: u16, level: u32) -> Node {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let local = listener.local_addr().unwrap();
    let dir = root.join(format!("n{id}"));
    let mut cfg = MetaConfig::new(id, local, dir.clone());
    cfg.bootstrap = bootstrap;
    cfg.heartbeat = Duration::from_millis(50);
    cfg.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    cfg.snapshot_after_entries = 50;
    cfg.command_level = level;
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(serve(cfg, listener, rx));
    Node { id, addr: format!("http://{local}"), dir, stop, task }
}

impl Node {
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub async fn stop(self) -> (u64, u16) {
        let port = self.port();
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
        (self.id, port)
    }

    pub fn client(&self) -> MetaClient {
        client(vec![self.addr.clone()])
    }
}

pub fn client(endpoints: Vec<String>) -> MetaClient {
    let mut cfg = MetaClientConfig::new(endpoints);
    cfg.call_timeout = Duration::from_secs(3);
    cfg.deadline = Duration::from_secs(20);
    MetaClient::new(cfg)
}

pub fn put(bucket: &str, key: &str, tag: u64) -> Command {
    let record = ObjectRecord {
        size: 8,
        etag: format!("{tag:032x}"),
        body: Some(Body { kind: Some(body::Kind::InlineData(tag.to_le_bytes().to_vec())), ..Default::default() }),
        ..Default::default()
    };
    Command {
        now_ms: 0,
        op: Some(Op::PutObject(PutObject {
            bucket: bucket.into(),
            key: key.into(),
            record: Some(record),
            condition: None,
            origin: String::new(),
            bucket_digest: Vec::new(),
        })),
    }
}

pub async fn must_write(c: &MetaClient, cmd: Command) -> Outcome {
    let r = c.write(cmd).await.unwrap().outcome.unwrap();
    assert!(!matches!(r, Outcome::Failure(_)), "write refused: {r:?}");
    r
}

/// A bound listener, its address, and the config of a one-node cluster
/// bootstrapping on it with fast timings.
pub async fn single_node(root: &Path) -> (TcpListener, std::net::SocketAddr, MetaConfig) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let local = listener.local_addr().unwrap();
    let mut cfg = MetaConfig::new(1, local, root.join("n1"));
    cfg.bootstrap = true;
    cfg.heartbeat = Duration::from_millis(50);
    cfg.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    (listener, local, cfg)
}

/// Registers datanode `node` (at an address nobody calls) with one disk.
pub fn register_datanode(node: u64, disk: u32) -> Command {
    Command {
        now_ms: 0,
        op: Some(Op::RegisterDatanode(RegisterDatanode {
            node: Some(DatanodeRecord {
                node_id: node,
                addr: "http://127.0.0.1:1".into(),
                zone: "z".into(),
                rack: "r".into(),
                host: "h".into(),
                disks: vec![DiskInfo { id: disk, capacity_bytes: 1 << 40, ..Default::default() }],
                registered_ms: 0,
                version: String::new(),
            }),
            cluster_id: String::new(),
        })),
    }
}

pub async fn create_bucket(c: &MetaClient, name: &str) {
    must_write(
        c,
        Command {
            now_ms: 0,
            op: Some(Op::CreateBucket(CreateBucket {
                name: name.into(),
                owner: "root".into(),
                ec: None,
                ..Default::default()
            })),
        },
    )
    .await;
}

/// Asserts every acknowledged (key, tag) reads back through `c`.
pub async fn check_acked(c: &MetaClient, bucket: &str, acked: &[(String, u64)]) {
    for (key, tag) in acked {
        let r = c.get_object(bucket, key).await.unwrap();
        let o = r.object.unwrap_or_else(|| panic!("acked {key} is missing: {:?}", r.failure));
        assert_eq!(o.etag, format!("{tag:032x}"), "{key}");
    }
}

/// Waits until `node` reports a leader and has applied at least `index`.
pub async fn wait_applied(node: &Node, index: u64) -> ClusterStatusReply {
    let c = node.client();
    let start = Instant::now();
    loop {
        if let Ok(s) = c.cluster_status().await
            && s.leader_id.is_some()
            && s.last_applied >= index
        {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "node {} did not reach index {index}", node.id);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn three_node_cluster(root: &Path) -> (Vec<Node>, MetaClient) {
    let n1 = start(1, root, true, 0).await;
    let n2 = start(2, root, false, 0).await;
    let n3 = start(3, root, false, 0).await;
    let c = client(vec![n1.addr.clone(), n2.addr.clone(), n3.addr.clone()]);
    wait_applied(&n1, 1).await;
    c.add_learner(2, &n2.addr, tessera_metadata::version::LEVEL).await.unwrap();
    c.add_learner(3, &n3.addr, tessera_metadata::version::LEVEL).await.unwrap();
    // Regression: this change used to reach learner 2 before it knew of
    // learner 3, which refused it as invalid instead of redirecting.
    let status = c.change_membership(vec![1, 2, 3]).await.unwrap();
    assert_eq!(status.members.iter().filter(|m| m.voter).count(), 3);
    (vec![n1, n2, n3], c)
}

pub fn leader_of(nodes: &[Node], status: &ClusterStatusReply) -> usize {
    nodes.iter().position(|n| Some(n.id) == status.leader_id).unwrap()
}
