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

#[path = "chaos/checks.rs"]
mod checks;
#[path = "chaos/history.rs"]
mod history;
#[path = "chaos/procs.rs"]
mod procs;
#[path = "chaos/workload.rs"]
mod workload;

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use checks::{final_check, wait_clean, wait_whole, walk};
use history::{Kind, Outcome, Recorder, body};
use procs::ProcCluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera_rpc::proto::meta::{Body, body as body_kind};
use workload::{clients, get, multipart_put, run_clients, workload};

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

/// No metadata election happened since the term was `term`: with only
/// datanodes failing, the leader must keep its followers under load (a
/// spurious election would stall every write for a fail-over).
async fn no_election(c: &ProcCluster, term: u64) {
    let now = c.term().await;
    println!("metadata term {term} -> {now}");
    assert_eq!(now, term, "a metadata election happened under load with every metadata node up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn datanodes_killed_mid_put_and_mid_get_lose_nothing() {
    let _one_at_a_time = SERIAL.lock().await;
    let seed = seed();
    let mut c = ProcCluster::start(seed).await;
    c.s3(0).create_bucket().bucket(BUCKET).send().await.unwrap();
    let rec = Recorder::new();
    let term = c.term().await;
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
    no_election(&c, term).await;
    wait_whole(&c, Duration::from_secs(90)).await;
    wait_clean(&c, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_metadata_leader_killed_every_10_s_loses_nothing() {
    let _one_at_a_time = SERIAL.lock().await;
    let seed = seed();
    let mut c = ProcCluster::start(seed).await;
    c.s3(0).create_bucket().bucket(BUCKET).send().await.unwrap();
    c.s3(0).create_bucket().bucket("probe").send().await.unwrap();
    let rec = Recorder::new();
    let total = duration();
    let s3 = clients(&c);
    let mut kills = Vec::new();
    // The fail-over probe: one PUT after another through gateway 2, the
    // SDK's retries off (so its back-off is not measured): (invoke,
    // complete) of each acknowledged one.
    let probe_s3 = aws_sdk_s3::Client::from_conf(
        c.s3(1).config().to_builder().retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()).build(),
    );
    let (probe_stop, probe_rx) = tokio::sync::watch::channel(false);
    let probe = {
        let rec = rec.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0u64.. {
                if *probe_rx.borrow() {
                    break;
                }
                let invoke = rec.now();
                let put =
                    probe_s3.put_object().bucket("probe").key(format!("p{}", n % 16)).body(vec![7u8; 1024].into());
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(10), put.send()).await {
                    acked.push((invoke, rec.now()));
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            acked
        })
    };
    let faults = async {
        let mut next = Duration::from_secs(3);
        while next + Duration::from_secs(5) < total {
            tokio::time::sleep(
                Duration::from_micros(next.as_micros() as u64).saturating_sub(Duration::from_micros(rec.now())),
            )
            .await;
            let Some(leader) = c.leader().await else { continue };
            let term = c.term().await;
            c.metas[leader].kill9();
            let at = rec.now();
            // When a survivor first names a new leader in a newer term.
            let survivors: Vec<usize> = (0..c.metas.len()).filter(|&i| i != leader).collect();
            let elected = async {
                loop {
                    for &i in &survivors {
                        if let Some((t, Some(l))) = c.seen_by(i).await
                            && t > term
                            && l != leader
                        {
                            return rec.now();
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            let elected = tokio::time::timeout(Duration::from_secs(10), elected).await;
            kills.push((at, leader + 1, elected.ok()));
            // Back before the next kill, so a majority stays up.
            tokio::time::sleep(Duration::from_secs(3).saturating_sub(Duration::from_micros(rec.now() - at))).await;
            ProcCluster::restart(&mut c.metas[leader]).await;
            next += Duration::from_secs(10);
        }
        tokio::time::sleep(total.saturating_sub(Duration::from_micros(rec.now()))).await;
    };
    workload(s3, &rec, seed, faults).await;
    probe_stop.send_replace(true);
    let probes = probe.await.unwrap();
    assert!(!kills.is_empty(), "no leader was killed");
    // How soon a leader was elected and writes were acknowledged again
    // after each kill: the fail-over figure (reported; the target, 2 s from
    // kill to the first acknowledged write, is checked by reading it, not
    // by a timed assertion).
    let ops = rec.ops();
    for (at, node, elected) in &kills {
        let elected = elected.unwrap_or_else(|| panic!("no new leader within 10 s of the kill of meta{node}"));
        let resumed = ops
            .iter()
            .filter(|o| matches!(o.kind, Kind::Put(_)) && o.outcome == Outcome::Ok && o.invoke > *at)
            .map(|o| o.complete)
            .min();
        match resumed {
            Some(t) => {
                let probe = probes.iter().filter(|(i, _)| i > at).map(|(_, c)| *c).min();
                let probe = probe.unwrap_or_else(|| panic!("no probe PUT acknowledged after the kill of meta{node}"));
                println!(
                    "fail-over: leader meta{node} killed at {:.1} s: new leader {:.2} s later; first write \
                     acknowledged {:.2} s after the kill (probe), {:.2} s for the workload's clients (SDK retries)",
                    *at as f64 / 1e6,
                    (elected - at) as f64 / 1e6,
                    (probe - at) as f64 / 1e6,
                    (t - at) as f64 / 1e6
                )
            }
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
    let term = c.term().await;
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
    no_election(&c, term).await;
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
    // Damage 1% of the shard files (at least 9): flipped bits, cut short,
    // deleted; at most m = 2 shards of one stripe set (file names are
    // `<data id>.<part>.<position>`), so every object stays readable.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut files: Vec<std::path::PathBuf> = (0..6).flat_map(|i| walk(&c.disk_dir(i))).collect();
    files.sort();
    let total = files.len();
    let n = (files.len() / 100).max(9);
    let mut damaged = Vec::new();
    let mut per_set: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut i = 0;
    while i < n {
        let f = files.remove(rng.random_range(0..files.len()));
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let set = name.rsplit_once('.').map_or(name.clone(), |(s, _)| s.to_owned());
        let hits = per_set.entry(set).or_default();
        if *hits == 2 {
            continue;
        }
        *hits += 1;
        i += 1;
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
    println!("damaged {n} of {total} shard files (bit flips, truncations, deletions)");
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
            if let Body { kind: Some(body_kind::Kind::Shards(s)), .. } = b {
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
    let term = c.term().await;
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
    no_election(&c, term).await;
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
    // Except reads its leader lease still covers: the leader relies on
    // half the election timeout's configured maximum (300 ms) from the
    // last quorum acknowledgement, which came before the cut, and no other
    // leader can exist in that time. The history check below finds a
    // stale one among them.
    let lease_end = cut + 300_000;
    let leased = |o: &history::Op| matches!(o.kind, Kind::Get | Kind::List) && o.complete < lease_end;
    let bad: Vec<_> = during.iter().filter(|o| acked(o) && !leased(o)).collect();
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
