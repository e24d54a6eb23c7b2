//! The chaos suite's end-of-run checks: the history, k + m shards for
//! every object, and disks holding exactly the referenced shards.

use std::collections::BTreeSet;
use std::time::Duration;

use tessera_rpc::proto::meta::{Body, ListPartsRequest, ListUploadsRequest, body as body_kind};

use super::history::{self, Kind, Outcome, Recorder, check};
use super::procs::ProcCluster;
use super::workload::{get, list};
use super::{BUCKET, all_keys};

/// Reads every key once more, with every process up, and checks the whole
/// history; on failure writes it to the run's folder.
pub async fn final_check(c: &ProcCluster, rec: &Recorder) {
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
pub async fn wait_whole(c: &ProcCluster, limit: Duration) {
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
                if let Body { kind: Some(body_kind::Kind::Shards(s)), .. } = b {
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
        if let Some(Body { kind: Some(body_kind::Kind::Shards(s)), .. }) = b {
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
pub async fn wait_clean(c: &ProcCluster, limit: Duration) {
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

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
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
