//! The chaos suite's clients: random PUT (some multipart), GET, DELETE,
//! LIST and aborted uploads on the workload's keys, each recorded.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::history::{Kind, Outcome, Recorder, body, identify};
use super::procs::ProcCluster;
use super::{BUCKET, KEYS, OP_TIMEOUT};

/// How an SDK error ends an operation: a 4xx is a refusal, anything else
/// (5xx, timeout, a cut connection) leaves the outcome unknown.
pub fn failed<E: std::fmt::Debug>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Outcome {
    match e.raw_response().map(|r| r.status().as_u16()) {
        Some(s) if (400..500).contains(&s) => Outcome::Fail(format!("{s}")),
        Some(s) => Outcome::Unknown(format!("{s}")),
        None => Outcome::Unknown(format!("{e:?}").chars().take(200).collect()),
    }
}

pub async fn get(s3: &aws_sdk_s3::Client, key: &str) -> Outcome {
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

pub async fn list(s3: &aws_sdk_s3::Client) -> Outcome {
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
pub async fn multipart_put(s3: &aws_sdk_s3::Client, key: &str, data: Vec<u8>) -> Outcome {
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
pub fn clients(c: &ProcCluster) -> Vec<aws_sdk_s3::Client> {
    (0..4).map(|i| c.s3(i % 2)).collect()
}

/// Runs the workload (one task per client) while `faults` runs; returns
/// when both are done.
pub async fn workload<F: std::future::Future<Output = ()>>(
    s3: Vec<aws_sdk_s3::Client>,
    rec: &Recorder,
    seed: u64,
    faults: F,
) {
    let clients = s3.into_iter().map(|c| (c, rec.clone())).collect();
    run_clients(clients, false, seed, faults).await;
}

/// Runs each client, recording into its recorder, while `faults` runs.
pub async fn run_clients<F: std::future::Future<Output = ()>>(
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
