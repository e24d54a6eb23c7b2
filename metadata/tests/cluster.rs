//! A real metadata cluster in-process: three (then four) nodes on loopback
//! ports with their own RocksDB directories, talking gRPC. Covers fail-over,
//! catch-up after restart (including by snapshot once the log was purged),
//! membership changes under writes, and read-after-write across clients.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

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

struct Node {
    id: u64,
    addr: String,
    dir: PathBuf,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), MetaError>>,
}

async fn start(id: u64, root: &Path, bootstrap: bool, port: u16) -> Node {
    start_at(id, root, bootstrap, port, tessera_metadata::version::LEVEL).await
}

/// A node that understands metadata commands up to `level` (below this
/// release's: a node of an older release, as far as the version gate goes).
async fn start_at(id: u64, root: &Path, bootstrap: bool, port: u16, level: u32) -> Node {
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
    fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    async fn stop(self) -> (u64, u16) {
        let port = self.port();
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
        (self.id, port)
    }

    fn client(&self) -> MetaClient {
        client(vec![self.addr.clone()])
    }
}

fn client(endpoints: Vec<String>) -> MetaClient {
    let mut cfg = MetaClientConfig::new(endpoints);
    cfg.call_timeout = Duration::from_secs(3);
    cfg.deadline = Duration::from_secs(20);
    MetaClient::new(cfg)
}

fn put(bucket: &str, key: &str, tag: u64) -> Command {
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
        })),
    }
}

async fn must_write(c: &MetaClient, cmd: Command) -> Outcome {
    let r = c.write(cmd).await.unwrap().outcome.unwrap();
    assert!(!matches!(r, Outcome::Failure(_)), "write refused: {r:?}");
    r
}

/// A bound listener, its address, and the config of a one-node cluster
/// bootstrapping on it with fast timings.
async fn single_node(root: &Path) -> (TcpListener, std::net::SocketAddr, MetaConfig) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let local = listener.local_addr().unwrap();
    let mut cfg = MetaConfig::new(1, local, root.join("n1"));
    cfg.bootstrap = true;
    cfg.heartbeat = Duration::from_millis(50);
    cfg.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    (listener, local, cfg)
}

/// Registers datanode `node` (at an address nobody calls) with one disk.
fn register_datanode(node: u64, disk: u32) -> Command {
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

async fn create_bucket(c: &MetaClient, name: &str) {
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
async fn check_acked(c: &MetaClient, bucket: &str, acked: &[(String, u64)]) {
    for (key, tag) in acked {
        let r = c.get_object(bucket, key).await.unwrap();
        let o = r.object.unwrap_or_else(|| panic!("acked {key} is missing: {:?}", r.failure));
        assert_eq!(o.etag, format!("{tag:032x}"), "{key}");
    }
}

/// Waits until `node` reports a leader and has applied at least `index`.
async fn wait_applied(node: &Node, index: u64) -> ClusterStatusReply {
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

async fn three_node_cluster(root: &Path) -> (Vec<Node>, MetaClient) {
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

fn leader_of(nodes: &[Node], status: &ClusterStatusReply) -> usize {
    nodes.iter().position(|n| Some(n.id) == status.leader_id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_over_restart_and_snapshot_catch_up() {
    let root = tempfile::tempdir().unwrap();
    let (mut nodes, c) = three_node_cluster(root.path()).await;
    create_bucket(&c, "videos").await;

    // Read-after-write across two clients that start from different nodes.
    let reader = client(nodes.iter().rev().map(|n| n.addr.clone()).collect());
    let mut acked = Vec::new();
    for i in 0..60u64 {
        let key = format!("seg-{i:04}.ts");
        must_write(&c, put("videos", &key, i)).await;
        acked.push((key.clone(), i));
        let seen = reader.get_object("videos", &key).await.unwrap().object.expect("read-after-write");
        assert_eq!(seen.etag, format!("{i:032x}"));
    }

    // Kill the leader: a new one takes over and writes continue.
    let status = c.cluster_status().await.unwrap();
    let old = nodes.remove(leader_of(&nodes, &status));
    let (old_id, old_port) = old.stop().await;
    let stopped_at = Instant::now();
    must_write(&c, put("videos", "after-failover", 1000)).await;
    let failover = stopped_at.elapsed();
    println!("first write after leader stop: {failover:?}");
    assert!(failover < Duration::from_secs(5), "fail-over took {failover:?}");
    acked.push(("after-failover".into(), 1000));
    for i in 60..200u64 {
        let key = format!("seg-{i:04}.ts");
        must_write(&c, put("videos", &key, i)).await;
        acked.push((key, i));
    }
    check_acked(&c, "videos", &acked).await;

    // The old leader restarts on the same port and data; the log it missed
    // was purged behind snapshots (every 50 entries), so it must catch up by
    // installing a snapshot.
    let leader_status = c.cluster_status().await.unwrap();
    let back = start(old_id, root.path(), false, old_port).await;
    let caught_up = wait_applied(&back, leader_status.last_applied).await;
    assert!(caught_up.snapshot_index.is_some(), "caught up without a snapshot: {caught_up:?}");
    nodes.push(back);

    // Stop the current leader again: whoever leads now (possibly the node
    // that caught up by snapshot) must serve every acknowledged write.
    let status = c.cluster_status().await.unwrap();
    let leader = nodes.remove(leader_of(&nodes, &status));
    leader.stop().await;
    check_acked(&c, "videos", &acked).await;
    let listed = c
        .list_objects(ListObjectsRequest {
            bucket: "videos".into(),
            prefix: "seg-".into(),
            max_keys: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.objects.len(), 200);
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_entries_and_survive_fail_over() {
    let root = tempfile::tempdir().unwrap();
    let (mut nodes, c) = three_node_cluster(root.path()).await;
    create_bucket(&c, "live").await;
    let before = c.cluster_status().await.unwrap().last_log_index;
    // 48 writers at once: each caller must get its own command's answer
    // (the record it wrote, or its own refusal) although they share entries.
    let mut writers = Vec::new();
    for w in 0..48u64 {
        let c = c.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..5u64 {
                let tag = w * 100 + i;
                let key = format!("w{w:02}-{i}");
                match must_write(&c, put("live", &key, tag)).await {
                    Outcome::Object(o) => assert_eq!(o.etag, format!("{tag:032x}"), "{key}: another command's answer"),
                    other => panic!("{key}: {other:?}"),
                }
                acked.push((key, tag));
                let refused = c.write(put("no-such-bucket", "k", tag)).await.unwrap();
                assert!(
                    matches!(&refused.outcome, Some(Outcome::Failure(f)) if f.code == failure::Code::NoSuchBucket as i32),
                    "{refused:?}"
                );
                // Overwrites of one shared key from every writer.
                must_write(&c, put("live", "shared", tag)).await;
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    let writes = 48 * 5 * 3;
    let entries = c.cluster_status().await.unwrap().last_log_index - before;
    println!("{writes} writes in {entries} log entries");
    assert!(entries < writes, "concurrent writes were not grouped: {entries} entries");
    check_acked(&c, "live", &acked).await;
    // The followers applied the same batches: the next leader has every
    // acknowledged write.
    let status = c.cluster_status().await.unwrap();
    let leader = nodes.remove(leader_of(&nodes, &status));
    leader.stop().await;
    check_acked(&c, "live", &acked).await;
    let shared = c.get_object("live", "shared").await.unwrap().object.unwrap();
    assert!(u64::from_str_radix(&shared.etag, 16).unwrap() % 100 == 4, "the last overwrite of some writer won");
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_under_writes() {
    let root = tempfile::tempdir().unwrap();
    let (mut nodes, c) = three_node_cluster(root.path()).await;
    create_bucket(&c, "media").await;

    let writer_client = c.clone();
    let (done_tx, mut done_rx) = watch::channel(false);
    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut i = 0u64;
        while !*done_rx.borrow_and_update() {
            let key = format!("obj-{i:05}");
            match writer_client.write(put("media", &key, i)).await {
                Ok(r) if !matches!(r.outcome, Some(Outcome::Failure(_))) => acked.push((key, i)),
                Ok(r) => panic!("write refused: {r:?}"),
                Err(e) => println!("write {i} not acknowledged: {e}"),
            }
            i += 1;
        }
        acked
    });

    // Add node 4 as a learner, promote it, then retire node 1.
    let n4 = start(4, root.path(), false, 0).await;
    c.add_learner(4, &n4.addr, tessera_metadata::version::LEVEL).await.unwrap();
    c.change_membership(vec![1, 2, 3, 4]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = c.change_membership(vec![2, 3, 4]).await.unwrap();
    let voters: Vec<u64> = status.members.iter().filter(|m| m.voter).map(|m| m.id).collect();
    assert_eq!(voters, [2, 3, 4]);
    nodes.push(n4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n1 = nodes.remove(0);
    n1.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    done_tx.send(true).unwrap();
    let acked = writer.await.unwrap();
    println!("{} writes acknowledged during the membership changes", acked.len());
    assert!(acked.len() > 20, "writes kept flowing: {}", acked.len());
    let fresh = client(nodes.iter().map(|n| n.addr.clone()).collect());
    check_acked(&fresh, "media", &acked).await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_redirect_and_refusals_are_typed() {
    let root = tempfile::tempdir().unwrap();
    let (nodes, c) = three_node_cluster(root.path()).await;
    // A client that only knows a follower still reaches the leader.
    let status = c.cluster_status().await.unwrap();
    let follower = nodes.iter().find(|n| Some(n.id) != status.leader_id).unwrap();
    let via_follower = follower.client();
    create_bucket(&via_follower, "bkt").await;
    let r = via_follower.get_bucket("bkt").await.unwrap();
    assert_eq!(r.bucket.unwrap().name, "bkt");
    assert_eq!(
        via_follower.leader_hint(),
        nodes.iter().find(|n| Some(n.id) == status.leader_id).map(|n| n.addr.clone())
    );
    // Domain refusals come back as typed failures, not transport errors.
    let again = c
        .write(Command {
            now_ms: 0,
            op: Some(Op::CreateBucket(CreateBucket {
                name: "bkt".into(),
                owner: "root".into(),
                ec: None,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
    match again.outcome {
        Some(Outcome::Failure(f)) => assert_eq!(f.code(), failure::Code::BucketAlreadyOwnedByYou),
        other => panic!("expected a failure, got {other:?}"),
    }
    let missing = c.get_object("bkt", "nope").await.unwrap();
    assert_eq!(missing.failure.unwrap().code(), failure::Code::NoSuchKey);
    let no_bucket = c.get_object("nobkt", "k").await.unwrap();
    assert_eq!(no_bucket.failure.unwrap().code(), failure::Code::NoSuchBucket);
    // With the majority gone, writes fail as unavailable or unknown, never succeed.
    let mut nodes = nodes;
    let keep = nodes.remove(0);
    for n in nodes {
        n.stop().await;
    }
    let lonely = {
        let mut cfg = MetaClientConfig::new(vec![keep.addr.clone()]);
        cfg.call_timeout = Duration::from_secs(1);
        cfg.deadline = Duration::from_secs(3);
        MetaClient::new(cfg)
    };
    let r = lonely.write(put("bkt", "k", 1)).await;
    assert!(r.is_err(), "a minority must not acknowledge a write: {r:?}");
    assert!(r.unwrap_err().is_retryable());
    let _ = keep.dir.exists();
    keep.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_to_the_named_voter_under_writes_and_reads() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let root = tempfile::tempdir().unwrap();
    let (nodes, c) = three_node_cluster(root.path()).await;
    create_bucket(&c, "hand").await;
    // Writers that each read their own write back at once through a client
    // that starts from another node: every write acknowledged, every read
    // after it sees it, across the transfers.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (c, stop, writes) = (c.clone(), stop.clone(), writes.clone());
        let reader = client(nodes.iter().rev().map(|n| n.addr.clone()).collect());
        writers.push(tokio::spawn(async move {
            let key = format!("w{w}");
            let mut tag = w * 1_000_000;
            while !stop.load(Ordering::SeqCst) {
                tag += 1;
                must_write(&c, put("hand", &key, tag)).await;
                writes.fetch_add(1, Ordering::SeqCst);
                let seen = reader.get_object("hand", &key).await.unwrap().object.expect("read-after-write");
                assert_eq!(seen.etag, format!("{tag:032x}"), "{key}: a read missed an acknowledged write");
            }
            (key, tag)
        }));
    }
    let leader_now = || async { c.cluster_status().await.unwrap().leader_id.unwrap() };
    // To each other voter in turn, then to "any other" (0).
    for round in 0..4u64 {
        let before = leader_now().await;
        let target = if round == 3 { 0 } else { before % 3 + 1 };
        let progress = writes.load(Ordering::SeqCst);
        let started = Instant::now();
        let status = c.transfer_leader(target).await.unwrap();
        let took = started.elapsed();
        println!("leadership {before} -> {:?} in {took:?}", status.leader_id);
        let new = status.leader_id.unwrap();
        assert_ne!(new, before, "round {round}: the leadership did not move");
        if target != 0 {
            assert_eq!(new, target, "round {round}");
        }
        // The new leader says so itself, and writes go on there.
        let node = nodes.iter().find(|n| n.id == new).unwrap();
        assert_eq!(node.client().cluster_status().await.unwrap().leader_id, Some(new));
        let resumed = Instant::now();
        while writes.load(Ordering::SeqCst) < progress + 20 {
            assert!(resumed.elapsed() < Duration::from_secs(10), "writes stopped after the transfer");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // A transfer to the leader itself changes nothing; to a node that is
    // not a voter it is refused.
    let leader = leader_now().await;
    let term = c.cluster_status().await.unwrap().term;
    let same = c.transfer_leader(leader).await.unwrap();
    assert_eq!((same.leader_id, same.term), (Some(leader), term));
    match c.transfer_leader(9).await {
        Err(tessera_rpc::MetaClientError::Refused(s)) => {
            assert_eq!(s.code(), tonic::Code::NotFound, "{s:?}");
        }
        other => panic!("a transfer to node 9 must be refused: {other:?}"),
    }
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for w in writers {
        acked.push(w.await.unwrap());
    }
    println!("{} writes during the transfers", writes.load(Ordering::SeqCst));
    check_acked(&c, "hand", &acked).await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_disks_go_down_then_out_and_come_back() {
    let root = tempfile::tempdir().unwrap();
    let (listener, local, mut cfg) = single_node(root.path()).await;
    cfg.disk_down_after = Duration::from_millis(600);
    cfg.disk_out_after = Duration::from_millis(1500);
    cfg.liveness_interval = Duration::from_millis(100);
    let registry = cfg.metrics.clone();
    // The leader's gauges of the disks' states, once the liveness worker has
    // seen the latest map (it reports every 100 ms).
    let gauges = |want: &'static str| {
        let registry = registry.clone();
        async move {
            let start = Instant::now();
            loop {
                let text = registry.render();
                let line = |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap_or("").to_owned();
                let got = format!(
                    "{} {} {} {}",
                    line("tessera_metadata_cluster_degraded "),
                    line("tessera_metadata_disks{state=\"out\"}"),
                    line("tessera_metadata_disks{state=\"drained\"}"),
                    line("tessera_metadata_disks{state=\"full\"}")
                );
                if got.contains(want) {
                    return;
                }
                assert!(start.elapsed() < Duration::from_secs(5), "metrics `{got}` lack `{want}`");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(serve(cfg, listener, rx));
    let c = client(vec![format!("http://{local}")]);

    must_write(&c, register_datanode(7, 70)).await;
    let mut watch = c.watch_cluster_map(0).await.unwrap();
    let state_of = |reply: &ClusterMapReply| {
        let map = tessera_placement::ClusterMap::from_bytes(&reply.map).unwrap();
        let d = map.disk(tessera_common::DiskId(70)).unwrap().state;
        (d.up, d.is_in)
    };
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(state_of(&first), (true, true));
    assert_eq!(first.datanodes.len(), 1);

    // Heartbeats keep it up.
    let hb = HeartbeatRequest {
        node_id: 7,
        disks: vec![DiskUsage { disk: 70, used_bytes: 1, capacity_bytes: 1 << 40, healthy: true, full: false }],
        workers: vec![WorkerReport {
            name: "heal:d70".into(),
            state: "busy".into(),
            progress: "pass 1".into(),
            ..Default::default()
        }],
    };
    let mut silent_since = Instant::now();
    for _ in 0..10 {
        c.heartbeat(hb.clone()).await.unwrap();
        silent_since = Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = c.get_cluster_map().await.unwrap();
    assert_eq!(state_of(&reply), (true, true));
    assert_eq!(reply.usage, hb.disks, "the leader shows the last reported usage");
    let workers = c.worker_status().await.unwrap().workers;
    let names: Vec<(u64, &str)> = workers.iter().map(|w| (w.node_id, w.name.as_str())).collect();
    assert_eq!(names, [(1, "lifecycle"), (1, "notify"), (7, "heal:d70")], "the leader's own workers, the datanode's");
    assert_eq!((workers[2].node_id, workers[2].name.as_str(), workers[2].state.as_str()), (7, "heal:d70", "busy"));
    assert!(workers[2].reported_ms > 0);

    // Silence: down, then out, each seen on the watch stream.
    let mut seen = vec![];
    while seen.last() != Some(&(false, false)) {
        let reply = tokio::time::timeout(Duration::from_secs(10), watch.message()).await.unwrap().unwrap().unwrap();
        seen.push(state_of(&reply));
    }
    assert_eq!(seen, [(false, true), (false, false)]);
    assert!(silent_since.elapsed() >= Duration::from_millis(1500));
    gauges("tessera_metadata_cluster_degraded 1 tessera_metadata_disks{state=\"out\"} 1").await;

    // An unhealthy report does not count as alive.
    let sick = HeartbeatRequest {
        node_id: 7,
        disks: vec![DiskUsage { disk: 70, used_bytes: 1, capacity_bytes: 1 << 40, healthy: false, full: false }],
        workers: vec![],
    };
    c.heartbeat(sick).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(state_of(&c.get_cluster_map().await.unwrap()), (false, false));

    // Healthy again: back up and in.
    c.heartbeat(hb.clone()).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), watch.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(state_of(&reply), (true, true));

    // An operator marks it out (a drain): it stays out while it heartbeats,
    // until marked in again; the watch sees both changes.
    let mark = |out: bool| Command { now_ms: 0, op: Some(Op::MarkOut(MarkOut { disk: 70, node: 0, out })) };
    gauges("tessera_metadata_cluster_degraded 0").await;
    must_write(&c, mark(true)).await;
    let reply = tokio::time::timeout(Duration::from_secs(10), watch.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(state_of(&reply), (true, false));
    // A drain is not a loss: not degraded.
    gauges("tessera_metadata_cluster_degraded 0 tessera_metadata_disks{state=\"out\"} 0 tessera_metadata_disks{state=\"drained\"} 1").await;
    for _ in 0..8 {
        c.heartbeat(hb.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state_of(&c.get_cluster_map().await.unwrap()), (true, false), "liveness brought a drained disk back in");
    must_write(&c, mark(false)).await;
    let reply = tokio::time::timeout(Duration::from_secs(10), watch.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(state_of(&reply), (true, true));

    // The datanode reports the disk full: the map says so (writes go
    // around it), it counts as degraded; roomy again, it is cleared.
    let full_of = |reply: &ClusterMapReply| {
        tessera_placement::ClusterMap::from_bytes(&reply.map).unwrap().disk(tessera_common::DiskId(70)).unwrap().full
    };
    let mut hb_full = hb.clone();
    hb_full.disks[0].full = true;
    c.heartbeat(hb_full).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), watch.message()).await.unwrap().unwrap().unwrap();
    assert!(full_of(&reply));
    assert_eq!(state_of(&reply), (true, true), "a full disk stays up and in");
    gauges("tessera_metadata_disks{state=\"full\"} 1").await;
    gauges("tessera_metadata_cluster_degraded 1").await;
    c.heartbeat(hb.clone()).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), watch.message()).await.unwrap().unwrap().unwrap();
    assert!(!full_of(&reply));
    gauges("tessera_metadata_cluster_degraded 0 tessera_metadata_disks{state=\"out\"} 0 tessera_metadata_disks{state=\"drained\"} 0 tessera_metadata_disks{state=\"full\"} 0").await;

    // Access keys over the wire.
    let key = AccessKeyRecord {
        access_key_id: "TESSERAKEY1".into(),
        secret_key: "s3cr3t-s3cr3t".into(),
        created_ms: 0,
        description: String::new(),
        root: false,
        policies: Vec::new(),
        disabled: false,
        expires_ms: 0,
    };
    must_write(&c, Command { now_ms: 0, op: Some(Op::CreateAccessKey(CreateAccessKey { key: Some(key) })) }).await;
    assert_eq!(c.get_access_key("TESSERAKEY1").await.unwrap().key.unwrap().secret_key, "s3cr3t-s3cr3t");
    assert_eq!(c.get_access_key("NOPE").await.unwrap().failure.unwrap().code(), failure::Code::NoSuchAccessKey);

    drop(watch);
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_client_skips_the_network() {
    let root = tempfile::tempdir().unwrap();
    let (listener, _, mut cfg) = single_node(root.path()).await;
    // Other processes are told an address where nothing listens: only the
    // in-process path can answer calls sent there.
    cfg.advertise = Some("http://127.0.0.1:9".into());
    let (stop, rx) = watch::channel(false);
    let (local_meta, task) = tessera_metadata::start(cfg, listener, rx).await.unwrap();
    assert_eq!(local_meta.url(), "http://127.0.0.1:9");
    let mut ccfg = MetaClientConfig::new(vec![local_meta.url().to_owned()]);
    ccfg.call_timeout = Duration::from_secs(3);
    ccfg.deadline = Duration::from_secs(20);
    let c = MetaClient::with_local(ccfg.clone(), local_meta);

    // Writes (through Raft) and linearizable reads, unary and streaming.
    create_bucket(&c, "local").await;
    must_write(&c, put("local", "k", 7)).await;
    let got = c.get_object("local", "k").await.unwrap();
    assert_eq!(got.object.unwrap().etag, format!("{:032x}", 7));
    must_write(&c, register_datanode(3, 30)).await;
    let mut watch = c.watch_cluster_map(0).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), watch.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.datanodes.len(), 1);
    assert_eq!(first.epoch, c.get_cluster_map().await.unwrap().epoch);
    drop(watch);

    // The same call without the in-process node has nowhere to go.
    ccfg.deadline = Duration::from_millis(500);
    let net = MetaClient::new(ccfg);
    assert!(net.get_object("local", "k").await.unwrap_err().is_retryable());

    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
}

fn set_bucket_acl(bucket: &str) -> Command {
    let grant = AclGrant { grantee: acl_grant::Grantee::AllUsers as i32, id: String::new(), permission: "READ".into() };
    Command { now_ms: 0, op: Some(Op::SetBucketAcl(SetBucketAcl { bucket: bucket.into(), acl: vec![grant] })) }
}

fn failure_code(o: &Outcome) -> Option<failure::Code> {
    match o {
        Outcome::Failure(f) => Some(f.code()),
        _ => None,
    }
}

/// Rolling upgrade: a cluster with one node of the previous release (ACLs
/// unknown to it) keeps serving what that release knows, refuses the new
/// commands with NotYetEnabled (nothing applied), and enables them once
/// the node runs this release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_version_cluster_serves_and_enables_new_commands_once_every_node_is_upgraded() {
    use tessera_metadata::version::{BASE_LEVEL, LEVEL};
    let root = tempfile::tempdir().unwrap();
    let n1 = start(1, root.path(), true, 0).await;
    let n2 = start(2, root.path(), false, 0).await;
    let n3 = start_at(3, root.path(), false, 0, BASE_LEVEL).await;
    let c = client(vec![n1.addr.clone(), n2.addr.clone(), n3.addr.clone()]);
    wait_applied(&n1, 1).await;
    c.add_learner(2, &n2.addr, LEVEL).await.unwrap();
    c.add_learner(3, &n3.addr, BASE_LEVEL).await.unwrap();
    c.change_membership(vec![1, 2, 3]).await.unwrap();
    let status = n3.client().cluster_status().await.unwrap();
    assert_eq!(status.command_level, BASE_LEVEL, "the old node says what it understands");

    // Everything the previous release knows works.
    create_bucket(&c, "videos").await;
    must_write(&c, put("videos", "a", 1)).await;
    check_acked(&c, "videos", &[("a".into(), 1)]).await;
    let page = c
        .list_objects(ListObjectsRequest { bucket: "videos".into(), max_keys: 100, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 1);

    // The new commands are refused, and nothing is applied.
    let r = c.write(set_bucket_acl("videos")).await.unwrap().outcome.unwrap();
    assert_eq!(failure_code(&r), Some(failure::Code::NotYetEnabled), "{r:?}");
    let mut public = put("videos", "b", 2);
    if let Some(Op::PutObject(p)) = public.op.as_mut() {
        p.record.as_mut().unwrap().acl = vec![AclGrant {
            grantee: acl_grant::Grantee::AllUsers as i32,
            id: String::new(),
            permission: "READ".into(),
        }];
    }
    let r = c.write(public.clone()).await.unwrap().outcome.unwrap();
    assert_eq!(failure_code(&r), Some(failure::Code::NotYetEnabled), "{r:?}");
    let versioning = Command {
        now_ms: 0,
        op: Some(Op::SetBucketVersioning(SetBucketVersioning {
            bucket: "videos".into(),
            versioning: Versioning::Enabled as i32,
        })),
    };
    let r = c.write(versioning.clone()).await.unwrap().outcome.unwrap();
    assert_eq!(failure_code(&r), Some(failure::Code::NotYetEnabled), "{r:?}");
    assert!(c.get_bucket("videos").await.unwrap().bucket.unwrap().acl.is_empty());
    assert_eq!(c.get_bucket("videos").await.unwrap().bucket.unwrap().versioning, 0);
    assert!(c.get_object("videos", "b").await.unwrap().object.is_none());

    // Upgrade the old node: same data, this release.
    let (id, port) = n3.stop().await;
    let n3 = start(id, root.path(), false, port).await;
    let start_at = Instant::now();
    loop {
        let r = c.write(set_bucket_acl("videos")).await.unwrap().outcome.unwrap();
        match failure_code(&r) {
            None => break,
            Some(failure::Code::NotYetEnabled) => {
                assert!(start_at.elapsed() < Duration::from_secs(15), "still not enabled after the upgrade");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Some(other) => panic!("refused: {other:?} {r:?}"),
        }
    }
    must_write(&c, public).await;
    must_write(&c, versioning).await;
    assert_eq!(c.get_bucket("videos").await.unwrap().bucket.unwrap().acl.len(), 1);
    assert_eq!(c.get_bucket("videos").await.unwrap().bucket.unwrap().versioning, Versioning::Enabled as i32);
    // The upgraded node applied the new commands too.
    let leader = n1.client().cluster_status().await.unwrap().last_applied;
    wait_applied(&n3, leader).await;
    assert!(!n3.task.is_finished());
    for n in [n1, n2, n3] {
        n.stop().await;
    }
}

/// A node of an older release that meets a log entry it does not
/// understand (it joined a cluster that already uses newer commands) stops
/// applying there instead of skipping it; this release's binary, started
/// on the same data, applies it and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_node_stops_at_an_entry_it_does_not_understand_and_an_upgrade_goes_on() {
    use tessera_metadata::version::BASE_LEVEL;
    let root = tempfile::tempdir().unwrap();
    let n1 = start(1, root.path(), true, 0).await;
    let c = client(vec![n1.addr.clone()]);
    wait_applied(&n1, 1).await;
    create_bucket(&c, "videos").await;
    must_write(&c, set_bucket_acl("videos")).await;
    must_write(&c, put("videos", "a", 1)).await;
    let acl_index = n1.client().cluster_status().await.unwrap().last_applied - 1;

    let old = start_at(2, root.path(), false, 0, BASE_LEVEL).await;
    // The leader adds it (and replicates to it); it never catches up.
    let (addr, c2) = (old.addr.clone(), c.clone());
    let adding = tokio::spawn(async move { c2.add_learner(2, &addr, BASE_LEVEL).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = old.client().cluster_status().await.map(|s| s.last_applied).unwrap_or(0);
    assert!(seen < acl_index, "the old node applied entry {acl_index}, which it cannot understand (at {seen})");
    // It stopped by itself, with the reason.
    let port = old.port();
    let stopped = tokio::time::timeout(Duration::from_secs(10), old.task).await;
    let err = stopped.expect("the old node is still running").unwrap().unwrap_err();
    assert!(err.to_string().contains("command level"), "{err}");
    drop(old.stop);

    // This release's binary on the same data applies the entry and goes on.
    let new = start(2, root.path(), false, port).await;
    adding.abort();
    c.add_learner(2, &new.addr, tessera_metadata::version::LEVEL).await.unwrap();
    let target = n1.client().cluster_status().await.unwrap().last_applied;
    let s = wait_applied(&new, target).await;
    assert!(s.last_applied >= target);
    for n in [n1, new] {
        n.stop().await;
    }
}

/// The `tessera_metadata_read_rounds` counter of a rendered registry.
fn read_rounds(registry: &tessera_common::MetricsRegistry) -> u64 {
    registry
        .render()
        .lines()
        .find_map(|l| {
            l.strip_prefix("tessera_metadata_read_rounds_total ").or(l.strip_prefix("tessera_metadata_read_rounds "))
        })
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Reads on a leader whose quorum keeps acknowledging it are answered from
/// its lease, without a read-index round each; once its followers are gone
/// the lease lapses within its window and reads are refused, never
/// answered from what the leader alone holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_use_the_leader_lease_and_stop_when_it_lapses() {
    let root = tempfile::tempdir().unwrap();
    let registry = tessera_common::MetricsRegistry::new();
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let local = listener.local_addr().unwrap();
    let mut cfg = MetaConfig::new(1, local, root.path().join("n1"));
    cfg.bootstrap = true;
    cfg.heartbeat = Duration::from_millis(50);
    cfg.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    cfg.metrics = registry.clone();
    let (stop1, rx) = watch::channel(false);
    let task1 = tokio::spawn(serve(cfg, listener, rx));
    let n1 = Node { id: 1, addr: format!("http://{local}"), dir: root.path().join("n1"), stop: stop1, task: task1 };
    let n2 = start(2, root.path(), false, 0).await;
    let n3 = start(3, root.path(), false, 0).await;
    let c = client(vec![n1.addr.clone()]);
    wait_applied(&n1, 1).await;
    c.add_learner(2, &n2.addr, tessera_metadata::version::LEVEL).await.unwrap();
    c.add_learner(3, &n3.addr, tessera_metadata::version::LEVEL).await.unwrap();
    c.change_membership(vec![1, 2, 3]).await.unwrap();
    create_bucket(&c, "videos").await;
    must_write(&c, put("videos", "a", 1)).await;

    let before = read_rounds(&registry);
    for i in 0..200u64 {
        must_write(&c, put("videos", "a", i + 2)).await;
        // Read-after-write through the lease: the write just acknowledged
        // is seen.
        check_acked(&c, "videos", &[("a".into(), i + 2)]).await;
    }
    let rounds = read_rounds(&registry) - before;
    println!("200 reads took {rounds} read-index rounds");
    assert!(rounds < 50, "reads did not use the lease: {rounds} rounds for 200 reads");

    // Followers gone: after the window (half the longest election timeout)
    // no read is answered.
    n2.stop().await;
    n3.stop().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut cfg = MetaClientConfig::new(vec![n1.addr.clone()]);
    cfg.call_timeout = Duration::from_secs(1);
    cfg.deadline = Duration::from_secs(2);
    let alone = MetaClient::new(cfg);
    assert!(alone.get_object("videos", "a").await.is_err(), "a leader without its quorum answered a read");
    n1.stop().await;
}
