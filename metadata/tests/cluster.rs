//! A real metadata cluster in-process: three (then four) nodes on loopback
//! ports with their own RocksDB directories, talking gRPC. Covers fail-over,
//! catch-up after restart (including by snapshot once the log was purged),
//! membership changes under writes, read-after-write across clients,
//! datanode liveness and the in-process client.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::*;
use tessera_metadata::serve;
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::*;
use tessera_rpc::{MetaClient, MetaClientConfig};
use tokio::sync::watch;

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

/// `GetObjects`: replies in the order asked, a missing key or version and
/// a malformed version id answered each on its own, a reply that would
/// grow past its budget cut to a prefix (the client reads the rest), and
/// more than the limit refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_objects_are_read_in_one_call() {
    let root = tempfile::tempdir().unwrap();
    let n1 = start(1, root.path(), true, 0).await;
    let c = n1.client();
    wait_applied(&n1, 1).await;
    create_bucket(&c, "videos").await;
    for i in 0..5u64 {
        must_write(&c, put("videos", &format!("seg-{i}"), i)).await;
    }
    let ask = |key: &str, version: &str| ObjectRequest {
        bucket: "videos".into(),
        key: key.into(),
        version_id: version.into(),
    };
    let asked =
        vec![ask("seg-3", ""), ask("nothing", ""), ask("seg-0", ""), ask("seg-1", "not a version"), ask("seg-4", "")];
    let got = c.get_objects(asked).await.unwrap().replies;
    assert_eq!(got.len(), 5);
    assert_eq!(got[0].object.as_ref().unwrap().etag, format!("{:032x}", 3));
    assert_eq!(got[1].failure.as_ref().unwrap().code(), failure::Code::NoSuchKey);
    assert_eq!(got[2].object.as_ref().unwrap().etag, format!("{:032x}", 0));
    assert!(got[3].object.is_none() && got[3].failure.is_some(), "{:?}", got[3]);
    assert_eq!(got[4].object.as_ref().unwrap().etag, format!("{:032x}", 4));
    // 40 records of 120 KiB inline bodies: more than a reply's 4 MiB.
    for i in 0..40u64 {
        let mut cmd = put("videos", &format!("big-{i:02}"), i);
        if let Some(Op::PutObject(p)) = cmd.op.as_mut() {
            let rec = p.record.as_mut().unwrap();
            rec.size = 120 << 10;
            rec.body =
                Some(Body { kind: Some(body::Kind::InlineData(vec![i as u8; 120 << 10])), ..Default::default() });
        }
        must_write(&c, cmd).await;
    }
    let asked: Vec<_> = (0..40).map(|i| ask(&format!("big-{i:02}"), "")).collect();
    let got = c.get_objects(asked).await.unwrap().replies;
    assert!((20..40).contains(&got.len()), "{} replies", got.len());
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.object.as_ref().unwrap().etag, format!("{i:032x}"));
    }
    let too_many: Vec<_> = (0..65).map(|i| ask(&format!("seg-{}", i % 5), "")).collect();
    let e = c.get_objects(too_many).await.unwrap_err();
    assert!(
        matches!(&e, tessera_rpc::MetaClientError::Refused(s) if s.code() == tonic::Code::InvalidArgument),
        "{e:?}"
    );
    n1.stop().await;
}
