//! Reads and writes with datanodes stopped and shards damaged: the right
//! bytes or a 503, never wrong data; damage is reported for repair.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use support::{Cluster, bytes, code, get_all, walk};

/// The shard files on datanode `n`'s disk.
fn shard_files(cluster: &Cluster, n: usize) -> Vec<std::path::PathBuf> {
    walk(&cluster.disk_dir(n).join("shards"))
}

/// Which datanode holds shard `shard` of the only object in the cluster.
fn holder_of(cluster: &Cluster, shard: u32) -> (usize, std::path::PathBuf) {
    for n in 0..cluster.datanodes.len() {
        for f in shard_files(cluster, n) {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if name.rsplit('.').next() == Some(&shard.to_string()) {
                return (n, f);
            }
        }
    }
    panic!("no datanode holds shard {shard}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn degraded_reads_corruption_and_write_quorum() {
    let mut cluster = Cluster::start().await;
    let c = cluster.client(0);
    c.create_bucket().bucket("deg").send().await.unwrap();
    let data = bytes((3 << 20) + 777, 11);
    c.put_object().bucket("deg").key("seg.ts").body(ByteStream::from(data.clone())).send().await.unwrap();
    for n in 0..6 {
        assert_eq!(shard_files(&cluster, n).len(), 1, "datanode {n} holds one shard");
    }

    // Corrupt a data shard's block on disk: the read decodes around it and reports it.
    let (_, file) = holder_of(&cluster, 0);
    let mut raw = std::fs::read(&file).unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 0x40;
    std::fs::write(&file, raw).unwrap();
    assert_eq!(get_all(&c, "deg", "seg.ts").await, data);
    let r = c.get_object().bucket("deg").key("seg.ts").range("bytes=100-2000000").send().await.unwrap();
    assert_eq!(&r.body.collect().await.unwrap().into_bytes()[..], &data[100..=2_000_000]);
    let start = Instant::now();
    loop {
        let reports = cluster.meta_client.list_damage(100).await.unwrap().reports;
        if reports.iter().any(|r| r.shard == 0 && r.reason.contains("corrupt")) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "corruption was not reported: {reports:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Two datanodes down (data shards 1 and 2): every read still returns the right bytes.
    let (a, _) = holder_of(&cluster, 1);
    let (b, _) = holder_of(&cluster, 2);
    cluster.stop_datanode(a).await;
    cluster.stop_datanode(b).await;
    // With shard 0 corrupt too, three shards are gone for that stripe: 503, never wrong bytes.
    let e = c.get_object().bucket("deg").key("seg.ts").send().await.unwrap_err();
    assert_eq!(code(&e), "ServiceUnavailable");
    // The client learns what happened, not the cluster's insides.
    let message = e.as_service_error().and_then(|s| s.meta().message()).unwrap_or("").to_owned();
    assert!(message.contains("cannot be read now"), "{message}");
    for inside in ["127.0.0.1", "http://", "shard wire", "disk", "Unavailable:"] {
        assert!(!message.contains(inside), "`{inside}` reached the client: {message}");
    }
    // Rewrite the object with all six datanodes up, then read with two down.
    cluster.restart_datanode(a).await;
    cluster.restart_datanode(b).await;
    wait_up(&cluster).await;
    c.put_object().bucket("deg").key("seg.ts").body(ByteStream::from(data.clone())).send().await.unwrap();
    let mut stopped = Vec::new();
    for s in [0u32, 3] {
        let (n, _) = holder_of_latest(&cluster, s);
        cluster.stop_datanode(n).await;
        stopped.push(n);
    }
    for _ in 0..3 {
        assert_eq!(get_all(&c, "deg", "seg.ts").await, data);
    }
    let r = c.get_object().bucket("deg").key("seg.ts").range("bytes=1048570-1048600").send().await.unwrap();
    assert_eq!(&r.body.collect().await.unwrap().into_bytes()[..], &data[1048570..=1048600]);

    // Writes need k + 1 = 5 shards: with two datanodes down they are refused (503)
    // and nothing is committed.
    let e = c.put_object().bucket("deg").key("new").body(ByteStream::from(bytes(1 << 20, 5))).send().await;
    assert_eq!(code(&e.unwrap_err()), "ServiceUnavailable");
    let e = c.head_object().bucket("deg").key("new").send().await.unwrap_err();
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 404);
    // Small objects live in the record and need no datanode.
    c.put_object().bucket("deg").key("playlist.m3u8").body(ByteStream::from(b"#EXTM3U".to_vec())).send().await.unwrap();

    // A third datanode down: the object cannot be rebuilt, and the answer is 503, not wrong bytes.
    let third = (0..6).find(|n| !stopped.contains(n)).unwrap();
    cluster.stop_datanode(third).await;
    let e = c.get_object().bucket("deg").key("seg.ts").send().await.unwrap_err();
    assert_eq!(code(&e), "ServiceUnavailable");

    // With one datanode back (5 of 6 up) writes succeed and record the missing shard.
    cluster.restart_datanode(third).await;
    cluster.restart_datanode(stopped[0]).await;
    let fresh = bytes(2 << 20, 6);
    c.put_object().bucket("deg").key("new").body(ByteStream::from(fresh.clone())).send().await.unwrap();
    let rec = cluster.meta_client.get_object("deg", "new").await.unwrap().object.unwrap();
    let Some(tessera_rpc::proto::meta::body::Kind::Shards(set)) = rec.body.unwrap().kind else { panic!("sharded") };
    assert_eq!(set.missing.len(), 1, "the stopped datanode's shard is recorded missing");
    assert_eq!(get_all(&c, "deg", "new").await, fresh);

    cluster.shutdown().await;
}

/// Datanode and shard file of shard `shard` of the newest object.
fn holder_of_latest(cluster: &Cluster, shard: u32) -> (usize, std::path::PathBuf) {
    let mut best: Option<(std::time::SystemTime, usize, std::path::PathBuf)> = None;
    for n in 0..cluster.datanodes.len() {
        for f in shard_files(cluster, n) {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if name.rsplit('.').next() == Some(&shard.to_string()) {
                let t = std::fs::metadata(&f).unwrap().modified().unwrap();
                if best.as_ref().is_none_or(|(bt, _, _)| t > *bt) {
                    best = Some((t, n, f));
                }
            }
        }
    }
    let (_, n, f) = best.unwrap();
    (n, f)
}

async fn wait_up(cluster: &Cluster) {
    let start = Instant::now();
    loop {
        let r = cluster.meta_client.get_cluster_map().await.unwrap();
        let map = tessera_placement::ClusterMap::from_bytes(&r.map).unwrap();
        if map.disks().all(|(_, _, _, d)| d.state.up) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hung_datanodes_are_hedged_on_reads_and_given_up_on_writes() {
    let cluster = Cluster::start_with(support::Options {
        gateways: 1,
        proxied: true,
        gateway: Box::new(|g| {
            g.hedge_timeout = Duration::from_millis(300);
            g.shard_write_timeout = Duration::from_secs(2);
        }),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    c.create_bucket().bucket("hedge").send().await.unwrap();
    let data = bytes(6 << 20, 21);
    c.put_object().bucket("hedge").key("a").body(ByteStream::from(data.clone())).send().await.unwrap();
    // Warm the gateway's connections to every datanode.
    assert_eq!(get_all(&c, "hedge", "a").await, data);

    // The datanode holding data shard 0 hangs: reads switch to parity after the hedge timeout.
    let (n, _) = holder_of(&cluster, 0);
    cluster.datanodes[n].proxy.as_ref().unwrap().pause(true);
    let t = Instant::now();
    assert_eq!(get_all(&c, "hedge", "a").await, data);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "a hung shard cost {took:?}");

    // Writes give the hung shard up after the shard timeout, succeed with the
    // quorum (5 of 6), and record the position missing.
    let fresh = bytes(3 << 20, 22);
    c.put_object().bucket("hedge").key("b").body(ByteStream::from(fresh.clone())).send().await.unwrap();
    let rec = cluster.meta_client.get_object("hedge", "b").await.unwrap().object.unwrap();
    let Some(tessera_rpc::proto::meta::body::Kind::Shards(set)) = rec.body.unwrap().kind else { panic!("sharded") };
    assert_eq!(set.missing.len(), 1, "{set:?}");
    assert_eq!(get_all(&c, "hedge", "b").await, fresh);

    cluster.datanodes[n].proxy.as_ref().unwrap().pause(false);
    assert_eq!(get_all(&c, "hedge", "a").await, data);

    // Every datanode stalls for longer than all six hedge timeouts together
    // (a disk or a machine busy for everyone): the read waits for the first
    // k shards to answer instead of giving up on each in turn.
    let proxies = || cluster.datanodes.iter().map(|d| d.proxy.as_ref().unwrap());
    proxies().for_each(|p| p.pause(true));
    // No SDK retries: the one GET must wait out the stall.
    let once = aws_sdk_s3::Client::from_conf(
        c.config().to_builder().retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()).build(),
    );
    let get = tokio::spawn(async move { get_all(&once, "hedge", "a").await });
    tokio::time::sleep(Duration::from_millis(2400)).await;
    proxies().for_each(|p| p.pause(false));
    assert_eq!(get.await.unwrap(), data, "a stall shared by every datanode fails no read");

    // A stall that does not end: the read gives up (503) once every shard
    // has been asked and none answered for 10 hedge timeouts.
    proxies().for_each(|p| p.pause(true));
    let once = aws_sdk_s3::Client::from_conf(
        c.config().to_builder().retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()).build(),
    );
    let t = Instant::now();
    let err = once.get_object().bucket("hedge").key("a").send().await.map(|_| ()).unwrap_err();
    let took = t.elapsed();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503), "{err:?}");
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(15), "gave up after {took:?}");
    proxies().for_each(|p| p.pause(false));
    cluster.shutdown().await;
}

/// Gateway 0 moves shard bytes over the shard wire, gateway 1 over gRPC:
/// each reads what the other wrote, also with a shard corrupted on disk and
/// a datanode stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_shard_transports_read_each_others_objects() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tessera_gateway::ShardTransport;
    let started = AtomicUsize::new(0);
    let opts = support::Options {
        gateway: Box::new(move |cfg| {
            if started.fetch_add(1, Ordering::SeqCst) == 1 {
                cfg.shard_transport = ShardTransport::Grpc;
            }
        }),
        ..support::Options::default()
    };
    let mut cluster = Cluster::start_with(opts).await;
    let (wire, grpc) = (cluster.client(0), cluster.client(1));
    wire.create_bucket().bucket("both").send().await.unwrap();
    let a = bytes((5 << 20) + 3, 21);
    let b = bytes((2 << 20) + 9, 22);
    grpc.put_object().bucket("both").key("a").body(ByteStream::from(a.clone())).send().await.unwrap();
    wire.put_object().bucket("both").key("b").body(ByteStream::from(b.clone())).send().await.unwrap();
    for c in [&wire, &grpc] {
        assert_eq!(get_all(c, "both", "a").await, a);
        assert_eq!(get_all(c, "both", "b").await, b);
        let r = c.get_object().bucket("both").key("a").range("bytes=1048000-3000000").send().await.unwrap();
        assert_eq!(&r.body.collect().await.unwrap().into_bytes()[..], &a[1048000..=3000000]);
    }
    // Corrupt one shard file of every object on datanode 0, then stop datanode 1.
    for f in shard_files(&cluster, 0) {
        let mut raw = std::fs::read(&f).unwrap();
        let at = raw.len() - 10;
        raw[at] ^= 0x01;
        std::fs::write(&f, raw).unwrap();
    }
    cluster.stop_datanode(1).await;
    for c in [&grpc, &wire] {
        assert_eq!(get_all(c, "both", "a").await, a);
        assert_eq!(get_all(c, "both", "b").await, b);
    }
    cluster.shutdown().await;
}

/// With two of six datanodes down (marked so by the metadata service),
/// sharded PUTs keep succeeding at full width: each record names the up
/// disks that took the down positions, no shard goes to a down disk, and
/// every object reads back, also after the datanodes return.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_place_around_down_datanodes() {
    let mut cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    c.create_bucket().bucket("around").send().await.unwrap();
    cluster.stop_datanode(0).await;
    cluster.stop_datanode(1).await;
    // Disk ids are datanode index + 1; wait until both are down in the map.
    let start = Instant::now();
    loop {
        let r = cluster.meta_client.get_cluster_map().await.unwrap();
        let map = tessera_placement::ClusterMap::from_bytes(&r.map).unwrap();
        if map.disks().filter(|(_, _, _, d)| !d.state.up).count() == 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the stopped datanodes were never marked down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Readiness says so (still ready: writes go around the down disks).
    let start = Instant::now();
    loop {
        let (status, _, body) =
            support::raw_http(cluster.gateway_addrs[0], "GET", "/tessera/health/ready", &[], b"").await;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status == 200 && text.contains("degraded (d1 down, d2 down)") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "readiness: {status} {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The gateway follows the map through its watch: the first PUTs may
    // still see the old map and answer 503.
    let first = bytes(600 << 10, 1);
    let start = Instant::now();
    while c.put_object().bucket("around").key("o0").body(ByteStream::from(first.clone())).send().await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "PUTs still fail with two datanodes down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut objects = vec![("o0".to_owned(), first)];
    for i in 1..16u64 {
        let data = bytes(300 << 10, i + 1);
        let key = format!("o{i}");
        c.put_object().bucket("around").key(&key).body(ByteStream::from(data.clone())).send().await.unwrap();
        objects.push((key, data));
    }
    for (key, data) in &objects {
        let rec = cluster.meta_client.get_object("around", key).await.unwrap().object.unwrap();
        let Some(tessera_rpc::proto::meta::body::Kind::Shards(s)) = rec.body.unwrap().kind else {
            panic!("{key} is not sharded");
        };
        assert_eq!(s.disks.len(), 6, "{key}");
        assert!(s.disks.iter().all(|d| *d > 2), "{key} placed a shard on a down disk: {:?}", s.disks);
        assert!(s.missing.is_empty(), "{key} stored only {:?} of its shards", s.disks.len() - s.missing.len());
        assert_eq!(&get_all(&c, "around", key).await, data, "{key}");
    }
    // Two more down: 2 disks left for 6 shards would put 3 (> m) on one
    // disk; writes are refused, and readiness says why.
    cluster.stop_datanode(2).await;
    cluster.stop_datanode(3).await;
    let start = Instant::now();
    loop {
        let (status, _, body) =
            support::raw_http(cluster.gateway_addrs[0], "GET", "/tessera/health/ready", &[], b"").await;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status == 503 && text.contains("2 disks writable, 3 needed") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "readiness with 2 disks: {status} {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = c
        .put_object()
        .bucket("around")
        .key("nope")
        .body(ByteStream::from(bytes(300 << 10, 99)))
        .send()
        .await
        .unwrap_err();
    assert_eq!((support::status(&e), support::code(&e).as_str()), (503, "ServiceUnavailable"));
    for n in 0..4 {
        cluster.restart_datanode(n).await;
    }
    wait_up(&cluster).await;
    for (key, data) in &objects {
        assert_eq!(&get_all(&c, "around", key).await, data, "{key}");
    }
    let (status, _, body) = support::raw_http(cluster.gateway_addrs[0], "GET", "/tessera/health/ready", &[], b"").await;
    assert_eq!((status, String::from_utf8_lossy(&body).contains("degraded")), (200, false));
    cluster.shutdown().await;
}
