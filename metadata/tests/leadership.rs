//! Leadership on a real in-process metadata cluster: reads served from the
//! leader lease (and refused once it lapses), and the leadership handed to
//! a named voter under writes and reads.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::*;
use tessera_metadata::{MetaConfig, serve};
use tessera_rpc::{MetaClient, MetaClientConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

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
