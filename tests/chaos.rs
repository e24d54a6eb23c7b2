//! Reliability under injected faults, on the multi-process cluster
//! (3 metadata nodes, 6 datanodes, 2 gateways, EC 4+2; see chaos/procs.rs).
//! A mixed workload of PUT, GET, DELETE and LIST from several clients runs
//! through both gateways while processes are killed with SIGKILL and
//! restarted; every operation is recorded and the history is checked
//! (chaos/history.rs): no acknowledged write lost, no stale or corrupt
//! read, every listing complete. Afterwards every key is read once more
//! and every object must be back at k + m shards.
//!
//! CI runs each scenario for 30 s of workload; `TESSERA_CHAOS_SECS` sets
//! another duration (a soak), `TESSERA_CHAOS_SEED` replays a seed. A
//! failing run prints its seed and keeps its folder (data, logs, history).

#![allow(clippy::unwrap_used)]

#[path = "chaos/history.rs"]
mod history;
#[path = "chaos/procs.rs"]
mod procs;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use history::{Kind, Outcome, Recorder, body, check, identify};
use procs::ProcCluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera_rpc::proto::meta::{Body, ListPartsRequest, ListUploadsRequest, body as body_kind};

const BUCKET: &str = "chaos";
/// Keys the workload writes, reads and deletes.
const KEYS: u64 = 40;
/// Keys written once before a workload and never again (data that must move
/// when the map changes, since no overwrite moves it).
const COLD: u64 = 30;

fn all_keys() -> Vec<String> {
    (0..KEYS).map(|k| format!("k{k:02}")).chain((0..COLD).map(|k| format!("cold{k:02}"))).collect()
}

/// Writes the cold keys (ids above any the workload uses), recorded.
async fn write_cold(s3: &aws_sdk_s3::Client, rec: &Recorder) {
    for k in 0..COLD {
        let key = format!("cold{k:02}");
        let id = 1 << 40 | k;
        let len = if k % 3 == 0 { (2 << 20) + 5 } else { 150 << 10 };
        let invoke = rec.now();
        s3.put_object().bucket(BUCKET).key(&key).body(ByteStream::from(body(id, len))).send().await.unwrap();
        rec.record(Kind::Put(id), &key, invoke, Outcome::Ok);
    }
}
/// A client gives up on an operation after this long (an unknown outcome).
const OP_TIMEOUT: Duration = Duration::from_secs(20);

/// The scenarios run one at a time: each is a cluster of 11 processes, and
/// several at once on a small machine measure its scheduler, not Tessera.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn seed() -> u64 {
    let s = std::env::var("TESSERA_CHAOS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("chaos seed {s} (TESSERA_CHAOS_SEED={s} replays it)");
    s
}

fn duration() -> Duration {
    Duration::from_secs(std::env::var("TESSERA_CHAOS_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(30))
}

/// How an SDK error ends an operation: a 4xx is a refusal, anything else
/// (5xx, timeout, a cut connection) leaves the outcome unknown.
fn failed<E: std::fmt::Debug>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Outcome {
    match e.raw_response().map(|r| r.status().as_u16()) {
        Some(s) if (400..500).contains(&s) => Outcome::Fail(format!("{s}")),
        Some(s) => Outcome::Unknown(format!("{s}")),
        None => Outcome::Unknown(format!("{e:?}").chars().take(200).collect()),
    }
}

async fn get(s3: &aws_sdk_s3::Client, key: &str) -> Outcome {
    let r = match s3.get_object().bucket(BUCKET).key(key).send().await {
        Ok(r) => r,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Outcome::Read(None),
        Err(e) => return failed(&e),
    };
    match r.body.collect().await {
        Ok(b) => match identify(&b.into_bytes()) {
            Ok(id) => Outcome::Read(Some(id)),
            Err(why) => Outcome::Corrupt(why),
        },
        Err(e) => Outcome::Unknown(format!("body: {e}")),
    }
}

async fn list(s3: &aws_sdk_s3::Client) -> Outcome {
    let mut keys = BTreeSet::new();
    let mut token = None;
    loop {
        let r = s3.list_objects_v2().bucket(BUCKET).max_keys(17).set_continuation_token(token).send().await;
        match r {
            Ok(r) => {
                keys.extend(r.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
                match r.next_continuation_token() {
                    Some(t) => token = Some(t.to_owned()),
                    None => return Outcome::Listed(keys),
                }
            }
            Err(e) => return failed(&e),
        }
    }
}

/// A PUT through a multipart upload of two parts (the first 5 MiB); an
/// upload that fails half way is aborted (best effort).
async fn multipart_put(s3: &aws_sdk_s3::Client, key: &str, data: Vec<u8>) -> Outcome {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let up = match s3.create_multipart_upload().bucket(BUCKET).key(key).send().await {
        Ok(r) => r.upload_id.unwrap(),
        Err(e) => return failed(&e),
    };
    let mut done = Vec::new();
    for (n, chunk) in [&data[..5 << 20], &data[5 << 20..]].into_iter().enumerate() {
        let n = n as i32 + 1;
        let r = s3
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&up)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await;
        match r {
            Ok(r) => done.push(CompletedPart::builder().part_number(n).e_tag(r.e_tag().unwrap()).build()),
            Err(e) => {
                let _ = s3.abort_multipart_upload().bucket(BUCKET).key(key).upload_id(&up).send().await;
                return match failed(&e) {
                    Outcome::Fail(f) => Outcome::Fail(f),
                    // The object is written only by the completion, which never ran.
                    Outcome::Unknown(u) => Outcome::Fail(format!("part: {u}")),
                    o => o,
                };
            }
        }
    }
    let r = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&up)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
        .send()
        .await;
    match r {
        Ok(_) => Outcome::Ok,
        Err(e) => failed(&e),
    }
}

/// An upload of one part that is then aborted: it leaves nothing visible,
/// only shards for the collector.
async fn aborted_upload(s3: &aws_sdk_s3::Client, key: &str, data: Vec<u8>) {
    let Ok(r) = s3.create_multipart_upload().bucket(BUCKET).key(key).send().await else { return };
    let up = r.upload_id.unwrap();
    let _ = s3
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&up)
        .part_number(1)
        .body(ByteStream::from(data))
        .send()
        .await;
    let _ = s3.abort_multipart_upload().bucket(BUCKET).key(key).upload_id(&up).send().await;
}

/// One client: random operations on `KEYS` keys until `stop`.
async fn client(
    s3: aws_sdk_s3::Client,
    rec: Recorder,
    ids: Arc<AtomicU64>,
    seed: u64,
    small: bool,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !*stop.borrow() {
        let key = format!("k{:02}", rng.random_range(0..KEYS));
        // `small`: single PUTs of objects that live in the metadata record.
        let roll = rng.random_range(0..if small { 95 } else { 100 });
        let invoke = rec.now();
        if roll >= 98 {
            let id = ids.fetch_add(1, Ordering::Relaxed);
            aborted_upload(&s3, &key, body(id, 300 << 10)).await;
            continue;
        }
        let (kind, work): (Kind, std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>) = if roll >= 95 {
            let id = ids.fetch_add(1, Ordering::Relaxed);
            let s3 = s3.clone();
            let k = key.clone();
            (Kind::Put(id), Box::pin(async move { multipart_put(&s3, &k, body(id, (5 << 20) + (100 << 10))).await }))
        } else if roll < 40 {
            let id = ids.fetch_add(1, Ordering::Relaxed);
            let len = if small {
                rng.random_range(1 << 10..100 << 10)
            } else if rng.random_range(0..10) == 0 {
                rng.random_range(1 << 20..3 << 20)
            } else {
                rng.random_range(1 << 10..200 << 10)
            };
            let s3 = s3.clone();
            let k = key.clone();
            (
                Kind::Put(id),
                Box::pin(async move {
                    match s3.put_object().bucket(BUCKET).key(&k).body(ByteStream::from(body(id, len))).send().await {
                        Ok(_) => Outcome::Ok,
                        Err(e) => failed(&e),
                    }
                }),
            )
        } else if roll < 80 {
            let s3 = s3.clone();
            let k = key.clone();
            (Kind::Get, Box::pin(async move { get(&s3, &k).await }))
        } else if roll < 90 {
            let s3 = s3.clone();
            let k = key.clone();
            (
                Kind::Delete,
                Box::pin(async move {
                    match s3.delete_object().bucket(BUCKET).key(&k).send().await {
                        Ok(_) => Outcome::Ok,
                        Err(e) => failed(&e),
                    }
                }),
            )
        } else {
            let s3 = s3.clone();
            (Kind::List, Box::pin(async move { list(&s3).await }))
        };
        // Small objects are quick: their clients give up sooner (so that a
        // client stuck on a cut-off node records several attempts), but not
        // before a metadata call to an unreachable leader has given up (5 s)
        // and the gateway has moved on.
        let limit = if small { Duration::from_secs(8) } else { OP_TIMEOUT };
        let outcome = tokio::time::timeout(limit, work).await.unwrap_or(Outcome::Unknown("client timeout".into()));
        let key = if kind == Kind::List { String::new() } else { key };
        rec.record(kind, &key, invoke, outcome);
    }
}

/// Four S3 clients, two per gateway.
fn clients(c: &ProcCluster) -> Vec<aws_sdk_s3::Client> {
    (0..4).map(|i| c.s3(i % 2)).collect()
}

/// Runs the workload (one task per client) while `faults` runs; returns
/// when both are done.
async fn workload<F: std::future::Future<Output = ()>>(
    s3: Vec<aws_sdk_s3::Client>,
    rec: &Recorder,
    seed: u64,
    faults: F,
) {
    let clients = s3.into_iter().map(|c| (c, rec.clone())).collect();
    run_clients(clients, false, seed, faults).await;
}

/// Runs each client, recording into its recorder, while `faults` runs.
async fn run_clients<F: std::future::Future<Output = ()>>(
    s3: Vec<(aws_sdk_s3::Client, Recorder)>,
    small: bool,
    seed: u64,
    faults: F,
) {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let ids = Arc::new(AtomicU64::new(1));
    let mut clients = Vec::new();
    for (i, (s3, rec)) in s3.into_iter().enumerate() {
        let seed = seed.wrapping_add(i as u64);
        clients.push(tokio::spawn(client(s3, rec, ids.clone(), seed, small, stop.clone())));
    }
    faults.await;
    stop_tx.send(true).unwrap();
    for t in clients {
        t.await.unwrap();
    }
}

/// Reads every key once more, with every process up, and checks the whole
/// history; on failure writes it to the run's folder.
async fn final_check(c: &ProcCluster, rec: &Recorder) {
    let s3 = c.s3(1);
    for key in all_keys() {
        let invoke = rec.now();
        let outcome = get(&s3, &key).await;
        assert!(matches!(outcome, Outcome::Read(_) | Outcome::Corrupt(_)), "final read of {key}: {outcome:?}");
        rec.record(Kind::Get, &key, invoke, outcome);
    }
    let invoke = rec.now();
    let listed = list(&s3).await;
    rec.record(Kind::List, "", invoke, listed);
    let ops = rec.ops();
    let count = |f: &dyn Fn(&history::Op) -> bool| ops.iter().filter(|o| f(o)).count();
    println!(
        "history: {} operations; PUT {} acknowledged, {} unknown, {} refused; GET {} answered; DELETE {} acknowledged; LIST {} answered",
        ops.len(),
        count(&|o| matches!(o.kind, Kind::Put(_)) && o.outcome == Outcome::Ok),
        count(&|o| matches!(o.kind, Kind::Put(_)) && matches!(o.outcome, Outcome::Unknown(_))),
        count(&|o| matches!(o.kind, Kind::Put(_)) && matches!(o.outcome, Outcome::Fail(_))),
        count(&|o| matches!(o.outcome, Outcome::Read(_))),
        count(&|o| o.kind == Kind::Delete && o.outcome == Outcome::Ok),
        count(&|o| matches!(o.outcome, Outcome::Listed(_))),
    );
    let bad = check(&ops);
    if !bad.is_empty() {
        let path = c.dir().join("history.txt");
        std::fs::write(&path, ops.iter().map(|o| format!("{o:?}\n")).collect::<String>()).unwrap();
        panic!("{} violations (history in {}):\n{}", bad.len(), path.display(), bad.join("\n"));
    }
}

/// Waits until every object's record counts no shard missing and every
/// shard file it names exists on its disk: back at k + m.
async fn wait_whole(c: &ProcCluster, limit: Duration) {
    let meta = c.meta_client();
    let start = std::time::Instant::now();
    loop {
        let mut lacking = Vec::new();
        for key in all_keys() {
            let Some(rec) = meta.get_object(BUCKET, &key).await.unwrap().object else { continue };
            let bodies = rec
                .body
                .iter()
                .map(|b| (0, b))
                .chain(rec.parts.iter().filter_map(|p| Some((p.number, p.body.as_ref()?))));
            for (part, b) in bodies {
                if let Body { kind: Some(body_kind::Kind::Shards(s)) } = b {
                    let id = tessera_common::DataId::from_bytes(s.data_id.clone().try_into().unwrap());
                    for (pos, disk) in s.disks.iter().enumerate() {
                        let file = format!("{id}.{part}.{pos}");
                        let on_disk = walk(&c.disk_dir(*disk as usize - 1)).iter().any(|p| p.ends_with(&file));
                        if !s.missing.is_empty() || !on_disk {
                            lacking.push(format!("{key} {file} on disk {disk} (missing {:?})", s.missing));
                        }
                    }
                }
            }
        }
        if lacking.is_empty() {
            println!("every object back at k + m shards {:?} after the last restart", start.elapsed());
            return;
        }
        assert!(start.elapsed() < limit, "not whole after {limit:?}: {lacking:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The shard files the records reference now (objects, and parts of
/// uploads in progress), as (datanode index, file name).
async fn referenced(c: &ProcCluster) -> BTreeSet<(usize, String)> {
    let meta = c.meta_client();
    let mut out = BTreeSet::new();
    let mut add = |part: u32, b: Option<&Body>| {
        if let Some(Body { kind: Some(body_kind::Kind::Shards(s)) }) = b {
            let id = tessera_common::DataId::from_bytes(s.data_id.clone().try_into().unwrap());
            for (pos, disk) in s.disks.iter().enumerate() {
                if !s.missing.contains(&(pos as u32)) {
                    out.insert((*disk as usize - 1, format!("{id}.{part}.{pos}")));
                }
            }
        }
    };
    for key in all_keys() {
        if let Some(rec) = meta.get_object(BUCKET, &key).await.unwrap().object {
            add(0, rec.body.as_ref());
            for p in &rec.parts {
                add(p.number, p.body.as_ref());
            }
        }
    }
    let req = ListUploadsRequest { bucket: BUCKET.into(), max_uploads: 1000, ..Default::default() };
    for u in meta.list_uploads(req).await.unwrap().uploads {
        let req = ListPartsRequest {
            bucket: BUCKET.into(),
            key: u.key.clone(),
            upload_id: u.upload_id.clone(),
            after_part: 0,
            max_parts: 10_000,
        };
        for p in meta.list_parts(req).await.unwrap().parts {
            add(p.number, p.body.as_ref());
        }
    }
    out
}

/// Every shard file on the datanodes' disks.
fn stored(c: &ProcCluster) -> BTreeSet<(usize, String)> {
    let mut out = BTreeSet::new();
    for i in 0..c.datanodes.len() {
        for p in walk(&c.disk_dir(i)) {
            out.insert((i, p.file_name().unwrap().to_string_lossy().into_owned()));
        }
    }
    out
}

/// Waits until the disks hold exactly the shards the records reference:
/// overwritten, deleted and aborted data collected, nothing referenced lost.
async fn wait_clean(c: &ProcCluster, limit: Duration) {
    let start = std::time::Instant::now();
    let garbage = stored(c).difference(&referenced(c).await).count();
    loop {
        let (want, have) = (referenced(c).await, stored(c));
        if want == have {
            println!(
                "{garbage} unreferenced shard files collected in {:?}; the disks hold the {} referenced ones",
                start.elapsed(),
                have.len()
            );
            return;
        }
        if start.elapsed() > limit {
            let workers = c.meta_client().worker_status().await.map(|r| r.workers).unwrap_or_default();
            let gc: Vec<String> = workers
                .iter()
                .filter(|w| w.name.starts_with("gc") || w.name.starts_with("scrub"))
                .map(|w| {
                    format!(
                        "{} {} {} after {} steps: {} {}",
                        w.node_id, w.name, w.state, w.steps, w.progress, w.last_error
                    )
                })
                .collect();
            panic!(
                "after {limit:?}: unreferenced {:?}; referenced but absent {:?}; collectors: {gc:#?}",
                have.difference(&want).take(5).collect::<Vec<_>>(),
                want.difference(&have).take(5).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("shards")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn datanodes_killed_mid_put_and_mid_get_lose_nothing() {
    let _one_at_a_time = SERIAL.lock().await;
    let seed = seed();
    let mut c = ProcCluster::start(seed).await;
    c.s3(0).create_bucket().bucket(BUCKET).send().await.unwrap();
    let rec = Recorder::new();
    let total = duration();
    let mut rng = StdRng::seed_from_u64(seed);
    let victims: Vec<usize> = {
        let a = rng.random_range(0..6);
        let b = (a + rng.random_range(1..6)) % 6;
        vec![a, b]
    };
    let s3 = clients(&c);
    let faults = async {
        tokio::time::sleep(total / 5).await;
        for &v in &victims {
            c.datanodes[v].kill9();
        }
        println!("killed datanodes {victims:?} at {:?}", Duration::from_micros(rec.now()));
        tokio::time::sleep(total * 2 / 5).await;
        for &v in &victims {
            ProcCluster::restart(&mut c.datanodes[v]).await;
        }
        println!("restarted them at {:?}", Duration::from_micros(rec.now()));
        tokio::time::sleep(total * 2 / 5).await;
    };
    workload(s3, &rec, seed, faults).await;
    final_check(&c, &rec).await;
    wait_whole(&c, Duration::from_secs(90)).await;
    wait_clean(&c, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_metadata_leader_killed_every_10_s_loses_nothing() {
    let _one_at_a_time = SERIAL.lock().await;
    let seed = seed();
    let mut c = ProcCluster::start(seed).await;
    c.s3(0).create_bucket().bucket(BUCKET).send().await.unwrap();
    let rec = Recorder::new();
    let total = duration();
    let s3 = clients(&c);
    let mut kills = Vec::new();
    let faults = async {
        let mut next = Duration::from_secs(3);
        while next + Duration::from_secs(5) < total {
            tokio::time::sleep(
                Duration::from_micros(next.as_micros() as u64).saturating_sub(Duration::from_micros(rec.now())),
            )
            .await;
            let Some(leader) = c.leader().await else { continue };
            c.metas[leader].kill9();
            kills.push((rec.now(), leader + 1));
            // Back before the next kill, so a majority stays up.
            tokio::time::sleep(Duration::from_secs(3)).await;
            ProcCluster::restart(&mut c.metas[leader]).await;
            next += Duration::from_secs(10);
        }
        tokio::time::sleep(total.saturating_sub(Duration::from_micros(rec.now()))).await;
    };
    workload(s3, &rec, seed, faults).await;
    assert!(!kills.is_empty(), "no leader was killed");
    // How soon writes were acknowledged again after each kill.
    let ops = rec.ops();
    for (at, node) in &kills {
        let resumed = ops
            .iter()
            .filter(|o| matches!(o.kind, Kind::Put(_)) && o.outcome == Outcome::Ok && o.invoke > *at)
            .map(|o| o.complete)
            .min();
        match resumed {
            Some(t) => println!(
                "leader meta{node} killed at {:.1} s: a PUT invoked after it was acknowledged {:.2} s later",
                *at as f64 / 1e6,
                (t - at) as f64 / 1e6
            ),
            None => panic!("no PUT was acknowledged after the kill of meta{node} at {at} µs"),
        }
    }
    final_check(&c, &rec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_datanode_is_healed_then_two_others_can_fail() {
    let _one_at_a_time = SERIAL.lock().await;
    let seed = seed();
    let mut c = ProcCluster::start(seed).await;
    c.s3(0).create_bucket().bucket(BUCKET).send().await.unwrap();
    let rec = Recorder::new();
    let total = duration();
    let mut rng = StdRng::seed_from_u64(seed);
    let wiped = rng.random_range(0..6);
    let s3 = clients(&c);
    let faults = async {
        tokio::time::sleep(total / 3).await;
        c.datanodes[wiped].kill9();
        let shards = c.disk_dir(wiped).join("shards");
        let files = walk(&c.disk_dir(wiped)).len();
        std::fs::remove_dir_all(&shards).unwrap();
        for f in ["heal.state", "scrub.state", "gc.state", "rebalance.state"] {
            let _ = std::fs::remove_file(c.disk_dir(wiped).join(f));
        }
        println!("wiped datanode {} ({files} shard files) at {:?}", wiped + 1, Duration::from_micros(rec.now()));
        ProcCluster::restart(&mut c.datanodes[wiped]).await;
        tokio::time::sleep(total * 2 / 3).await;
    };
    workload(s3, &rec, seed, faults).await;
    wait_whole(&c, Duration::from_secs(120)).await;
    // Two *other* datanodes down: every key still reads back exactly.
    let others: Vec<usize> = (1..6).map(|d| (wiped + d) % 6).take(2).collect();
    for &o in &others {
        c.datanodes[o].kill9();
    }
    println!("killed datanodes {:?} after the heal", others.iter().map(|o| o + 1).collect::<Vec<_>>());
    final_check(&c, &rec).await;
}

/// Each scrubber's pass number, from the workers' last reports.
async fn scrub_passes(c: &ProcCluster) -> Vec<(String, u64)> {
    let workers = c.meta_client().worker_status().await.unwrap().workers;
    workers
        .iter()
        .filter(|w| w.name.starts_with("scrub"))
        .map(|w| {
            let pass = w.progress.strip_prefix("pass ").and_then(|p| p.split(',').next()?.parse().ok()).unwrap_or(0);
            (format!("{}/{}", w.node_id, w.name), pass)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupted_shards_are_found_and_repaired_while_reads_stay_correct() {
    let _one_at_a_time = SERIAL.lock().await;
    let seed = seed();
    let c = ProcCluster::start(seed).await;
    let s3 = c.s3(0);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    // Every key once: one stripe, several stripes, multipart.
    let mut want = Vec::new();
    for k in 0..KEYS {
        let key = format!("k{k:02}");
        let id = 1 + k;
        let outcome = match k % 5 {
            0 => multipart_put(&s3, &key, body(id, (5 << 20) + 4321)).await,
            1 | 2 => {
                let data = body(id, (2 << 20) + 999);
                s3.put_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .body(ByteStream::from(data))
                    .send()
                    .await
                    .map(|_| Outcome::Ok)
                    .unwrap()
            }
            _ => {
                let data = body(id, 100 << 10);
                s3.put_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .body(ByteStream::from(data))
                    .send()
                    .await
                    .map(|_| Outcome::Ok)
                    .unwrap()
            }
        };
        assert_eq!(outcome, Outcome::Ok);
        want.push((key, id));
    }
    // Damage 1% of the shard files (at least 9): flipped bits, cut short, deleted.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut files: Vec<std::path::PathBuf> = (0..6).flat_map(|i| walk(&c.disk_dir(i))).collect();
    files.sort();
    let n = (files.len() / 100).max(9);
    let mut damaged = Vec::new();
    for i in 0..n {
        let f = files.remove(rng.random_range(0..files.len()));
        let original = std::fs::read(&f).unwrap();
        match i % 3 {
            0 => {
                let mut bad = original.clone();
                let at = rng.random_range(200..bad.len());
                bad[at] ^= 0x10;
                std::fs::write(&f, bad).unwrap();
            }
            1 => std::fs::write(&f, &original[..original.len() * 2 / 3]).unwrap(),
            _ => std::fs::remove_file(&f).unwrap(),
        }
        damaged.push((f, original));
    }
    println!("damaged {n} of {} shard files (bit flips, truncations, deletions)", files.len() + n);
    // Reads stay exact meanwhile, until every damaged file is whole again.
    let started = std::time::Instant::now();
    let mut reads = 0;
    loop {
        for (key, id) in &want {
            assert_eq!(get(&c.s3(reads % 2), key).await, Outcome::Read(Some(*id)), "{key}");
            reads += 1;
        }
        let left = damaged.iter().filter(|(f, original)| std::fs::read(f).ok().as_ref() != Some(original)).count();
        if left == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{left} of {n} damaged files not repaired in 120 s");
    }
    println!("all {n} repaired byte for byte in {:?}; {reads} GETs meanwhile, all exact", started.elapsed());
    // A later scrub pass over every disk finds nothing, and no report is left.
    let before = scrub_passes(&c).await;
    let started = std::time::Instant::now();
    loop {
        let now = scrub_passes(&c).await;
        if now.len() == before.len() && now.iter().zip(&before).all(|(a, b)| a.1 > b.1 + 1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "scrubbers did not make another pass: {before:?} -> {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let reports = c.meta_client().list_damage(100).await.unwrap().reports;
    assert!(reports.is_empty(), "damage found after the repair: {reports:?}");
}

/// The shard sets of the cold keys' records, by key and part.
async fn cold_sets(c: &ProcCluster) -> Sets {
    let meta = c.meta_client();
    let mut out = Vec::new();
    for k in 0..COLD {
        let key = format!("cold{k:02}");
        let rec = meta.get_object(BUCKET, &key).await.unwrap().object.unwrap();
        for b in rec.body.iter().chain(rec.parts.iter().filter_map(|p| p.body.as_ref())) {
            if let Body { kind: Some(body_kind::Kind::Shards(s)) } = b {
                out.push((key.clone(), s.clone()));
            }
        }
    }
    out
}

async fn current_map(c: &ProcCluster) -> tessera_placement::ClusterMap {
    tessera_placement::ClusterMap::from_bytes(&c.meta_client().get_cluster_map().await.unwrap().map).unwrap()
}

fn placer(map: &tessera_placement::ClusterMap) -> tessera_placement::Placer {
    let rule = tessera_placement::PlacementRule { shards: 6, failure_domain: tessera_placement::Level::Host };
    tessera_placement::Placer::new(map, rule).unwrap()
}

type Sets = Vec<(String, tessera_rpc::proto::meta::ShardSet)>;

/// Sets whose disks are not CRUSH's answer under `map` (as sets).
fn misplaced(map: &tessera_placement::ClusterMap, sets: &Sets) -> usize {
    let p = placer(map);
    sets.iter()
        .filter(|(_, s)| {
            let want: BTreeSet<u32> =
                p.place(tessera_common::PgId(s.pg)).unwrap().disks.iter().map(|d| d.get()).collect();
            want != s.disks.iter().copied().collect::<BTreeSet<u32>>()
        })
        .count()
}

/// Positions whose disk differs between two snapshots of the same sets.
fn positions_moved(a: &Sets, b: &Sets) -> usize {
    a.iter()
        .zip(b)
        .map(|((k, x), (_, y))| {
            assert_eq!(x.data_id, y.data_id, "{k} was rewritten");
            x.disks.iter().zip(&y.disks).filter(|(p, q)| p != q).count()
        })
        .sum()
}

/// The fewest positions that must move for `sets` to match CRUSH under `map`.
fn minimum_moves(map: &tessera_placement::ClusterMap, sets: &Sets) -> usize {
    let p = placer(map);
    sets.iter()
        .map(|(_, s)| {
            let want = p.place(tessera_common::PgId(s.pg)).unwrap().disks;
            want.iter().filter(|d| !s.disks.contains(&d.get())).count()
        })
        .sum()
}

/// Sums "N shards … moved" over the rebalancers' last reports.
async fn shards_moved(c: &ProcCluster) -> u64 {
    let workers = c.meta_client().worker_status().await.unwrap().workers;
    workers
        .iter()
        .filter(|w| w.name.starts_with("rebalance"))
        .filter_map(|w| w.progress.split("; ").nth(1)?.split(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_datanode_added_and_another_drained_and_removed_under_load() {
    use tessera_rpc::proto::meta::command_result::Outcome as Done;
    use tessera_rpc::proto::meta::{Command, MarkOut, RemoveDisks, command::Op};
    let _one_at_a_time = SERIAL.lock().await;
    let seed = seed();
    let mut c = ProcCluster::start(seed).await;
    c.s3(0).create_bucket().bucket(BUCKET).send().await.unwrap();
    let rec = Recorder::new();
    let total = duration().max(Duration::from_secs(20));
    let mut rng = StdRng::seed_from_u64(seed);
    let drained = rng.random_range(0..6);
    let meta = c.meta_client();
    write_cold(&c.s3(0), &rec).await;
    let before = (current_map(&c).await, cold_sets(&c).await);
    let mut mid = None;
    let s3 = clients(&c);
    let faults = async {
        tokio::time::sleep(total / 5).await;
        ProcCluster::restart(&mut c.datanodes[6]).await;
        println!("added datanode 7 at {:?}", Duration::from_micros(rec.now()));
        // The cold data settles on the new map before the next change.
        let started = std::time::Instant::now();
        loop {
            let map = current_map(&c).await;
            let sets = cold_sets(&c).await;
            if misplaced(&map, &sets) == 0 {
                mid = Some((map, sets));
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the cold data did not settle after the add");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        println!("cold data settled {:?} after the add", started.elapsed());
        let write = |op: Op| meta.write(Command { now_ms: 0, op: Some(op) });
        let node = drained as u64 + 1;
        let r = write(Op::MarkOut(MarkOut { disk: 0, node, out: true })).await.unwrap();
        assert!(matches!(r.outcome, Some(Done::Done(_))), "{r:?}");
        println!("marked datanode {node} out at {:?}", Duration::from_micros(rec.now()));
        // Empty when no record places a shard on it and its folder holds no file.
        let started = std::time::Instant::now();
        loop {
            let indexed = meta.list_disk_shards(node as u32, Vec::new(), 1).await.unwrap().len();
            let files = walk(&c.disk_dir(drained)).len();
            if indexed == 0 && files == 0 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "drain: {indexed} indexed, {files} files left");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let r = write(Op::RemoveDisks(RemoveDisks { disk: 0, node })).await.unwrap();
        assert!(matches!(r.outcome, Some(Done::Done(_))), "{r:?}");
        c.datanodes[drained].kill9();
        println!("drained, removed and stopped datanode {node} at {:?}", Duration::from_micros(rec.now()));
        tokio::time::sleep(total.saturating_sub(Duration::from_micros(rec.now()))).await;
    };
    workload(s3, &rec, seed, faults).await;
    let errors: Vec<_> =
        rec.ops().into_iter().filter(|o| matches!(o.outcome, Outcome::Fail(_) | Outcome::Unknown(_))).collect();
    assert!(errors.is_empty(), "operations failed during the add and the drain: {errors:?}");
    final_check(&c, &rec).await;
    wait_whole(&c, Duration::from_secs(90)).await;
    wait_clean(&c, Duration::from_secs(60)).await;
    // The cold data moved only as much as the two map changes require.
    let (map1, sets1) = mid.unwrap();
    let end = (current_map(&c).await, cold_sets(&c).await);
    let (moved, minimum) = (
        positions_moved(&before.1, &sets1) + positions_moved(&sets1, &end.1),
        minimum_moves(&map1, &before.1) + minimum_moves(&end.0, &sets1),
    );
    println!(
        "cold data: {moved} shard positions moved (of {}), minimum {minimum}; the rebalancers moved {} shards in all",
        before.1.len() * 6,
        shards_moved(&c).await
    );
    assert!(moved as f64 <= 1.1 * minimum as f64, "{moved} moves for a minimum of {minimum}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_metadata_leader_acknowledges_nothing_and_serves_no_stale_read() {
    let _one_at_a_time = SERIAL.lock().await;
    let seed = seed();
    // Each metadata node in a network namespace of its own.
    let mut c = ProcCluster::start_in(seed, true).await;
    c.s3(0).create_bucket().bucket(BUCKET).send().await.unwrap();
    let leader = c.leader().await.expect("a leader");
    // A gateway that knows only the leader: the minority side's client.
    let lonely = c.add_gateway(&c.meta_urls[leader].clone()).await;
    let rec = Recorder::new();
    let minority = rec.fork();
    let total = duration();
    let clients = vec![
        (c.s3(0), rec.clone()),
        (c.s3(1), rec.clone()),
        (c.s3(lonely), minority.clone()),
        (c.s3(lonely), minority.clone()),
    ];
    let (mut cut, mut healed) = (0, 0);
    let mut new_leader = None;
    let faults = async {
        tokio::time::sleep(total / 6).await;
        c.netns.as_ref().unwrap().partition(leader, true);
        cut = rec.now();
        println!("cut meta{} (the leader) off from its peers at {:?}", leader + 1, Duration::from_micros(cut));
        tokio::time::sleep(total * 2 / 3).await;
        // The majority elected another leader meanwhile.
        let majority: Vec<String> = (0..3).filter(|i| *i != leader).map(|i| c.meta_urls[i].clone()).collect();
        let status = tessera_rpc::MetaClient::new(tessera_rpc::MetaClientConfig::new(majority)).cluster_status().await;
        new_leader = status.ok().and_then(|s| s.leader_id);
        c.netns.as_ref().unwrap().partition(leader, false);
        healed = rec.now();
        println!("restored it at {:?}; the majority's leader meanwhile: {new_leader:?}", Duration::from_micros(healed));
        tokio::time::sleep(total.saturating_sub(Duration::from_micros(rec.now()))).await;
    };
    run_clients(clients, true, seed, faults).await;
    assert!(new_leader.is_some_and(|l| l != leader as u64 + 1), "the majority had no new leader: {new_leader:?}");
    // Nothing begun on the minority side while it was cut off was acknowledged.
    let acked = |o: &history::Op| matches!(o.outcome, Outcome::Ok | Outcome::Read(_) | Outcome::Listed(_));
    let lonely_ops = minority.ops();
    let during: Vec<_> = lonely_ops.iter().filter(|o| o.invoke > cut && o.complete < healed).collect();
    assert!(!during.is_empty(), "no operation tried the cut-off leader while it was cut off");
    let bad: Vec<_> = during.iter().filter(|o| acked(o)).collect();
    assert!(bad.is_empty(), "the cut-off leader acknowledged {} operations: {bad:?}", bad.len());
    let majority_acked = rec.ops().iter().filter(|o| o.invoke > cut && o.complete < healed && acked(o)).count();
    println!(
        "during the partition: {} operations through the cut-off leader, none acknowledged; {majority_acked} acknowledged by the majority",
        during.len()
    );
    assert!(majority_acked > 0, "the majority acknowledged nothing while the old leader was cut off");
    rec.absorb(&minority);
    final_check(&c, &rec).await;
}
