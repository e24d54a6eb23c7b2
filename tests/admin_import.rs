//! `tessera admin import` (the real binary) from one Tessera cluster into
//! another through their S3 APIs: every object byte-identical with its
//! ETag, headers, metadata and tags, a versioned bucket's history in order
//! with its delete markers, a run killed halfway (inside a multipart copy)
//! resumed without copying again what was done and without leaving its
//! upload behind, and a bad source refused with a clear message.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use support::{Cluster, add_key};

const ROOT: &str = "ROOTKEY00000000000001";
const ROOT_SECRET: &str = "root-secret-00000000000000000";
const SPECIAL: &str = "dir/ü ñ+%&=.txt";

fn import_cmd(from: &str, to: &str, home: &std::path::Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .args(["admin", "--endpoint", to, "--admin-access-key", ROOT, "--admin-secret-key", ROOT_SECRET])
        .args(["import", "s3://", "--from-endpoint", from, "--from-key", ROOT])
        .env("TESSERA_IMPORT_SECRET_KEY", ROOT_SECRET)
        .args(extra);
    cmd
}

async fn output(mut cmd: std::process::Command) -> (i32, String, String) {
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// (key, version's size, ETag, is a delete marker), oldest first per key.
async fn history(c: &Client, bucket: &str) -> Vec<(String, i64, String, bool)> {
    let v = c.list_object_versions().bucket(bucket).send().await.unwrap();
    let mut all: Vec<(String, i64, String, bool, i64, bool)> = Vec::new();
    for o in v.versions() {
        let t = o.last_modified().unwrap().as_nanos() as i64;
        let latest = o.is_latest().unwrap();
        all.push((o.key().unwrap().into(), o.size().unwrap(), o.e_tag().unwrap().into(), false, t, latest));
    }
    for m in v.delete_markers() {
        let t = m.last_modified().unwrap().as_nanos() as i64;
        all.push((m.key().unwrap().into(), 0, String::new(), true, t, m.is_latest().unwrap()));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0).then(a.4.cmp(&b.4)).then(a.5.cmp(&b.5)));
    all.into_iter().map(|(k, s, e, m, _, _)| (k, s, e, m)).collect()
}

async fn etag(c: &Client, bucket: &str, key: &str) -> String {
    c.head_object().bucket(bucket).key(key).send().await.unwrap().e_tag().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tessera_bucket_set_imported_killed_halfway_and_resumed() {
    let from = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let to = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let src = add_key(&from, ROOT, ROOT_SECRET, true).await;
    let dst = add_key(&to, ROOT, ROOT_SECRET, true).await;
    let home = tempfile::tempdir().unwrap();

    // The source: small objects, an empty one, one with headers, metadata
    // and tags, a multipart object of unequal parts, and a versioned bucket
    // with overwritten and deleted keys.
    src.create_bucket().bucket("media").send().await.unwrap();
    let mut small = Vec::new();
    for i in 0..8u64 {
        let key = format!("a-{i:03}.ts");
        let body = support::bytes(200_000 + 7_919 * i as usize, i);
        src.put_object().bucket("media").key(&key).body(ByteStream::from(body.clone())).send().await.unwrap();
        small.push((key, body));
    }
    let parts = [support::bytes(5 << 20, 100), support::bytes(6 << 20, 101), support::bytes(1 << 20, 102)];
    let big = support::multipart(&src, "media", "b-big.mp4", &parts).await;
    src.put_object().bucket("media").key("c-empty").body(ByteStream::from_static(b"")).send().await.unwrap();
    src.put_object()
        .bucket("media")
        .key(SPECIAL)
        .content_type("text/plain; charset=utf-8")
        .cache_control("max-age=60")
        .content_disposition("attachment")
        .metadata("owner", "ops")
        .tagging("team=video&tier=hot%20tier")
        .body(ByteStream::from_static(b"special"))
        .send()
        .await
        .unwrap();
    src.create_bucket().bucket("history").send().await.unwrap();
    src.put_bucket_versioning()
        .bucket("history")
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .unwrap();
    let put = |key: &'static str, body: &'static [u8]| {
        src.put_object().bucket("history").key(key).body(ByteStream::from_static(body)).send()
    };
    put("back.ts", b"back one").await.unwrap();
    src.delete_object().bucket("history").key("back.ts").send().await.unwrap();
    put("back.ts", b"back two!").await.unwrap();
    put("gone.ts", b"gone").await.unwrap();
    src.delete_object().bucket("history").key("gone.ts").send().await.unwrap();
    for body in [&b"#EXTM3U v1"[..], b"#EXTM3U v2 longer", b"#EXTM3U v3"] {
        put("playlist.m3u8", body).await.unwrap();
    }

    // A slow run (1 MiB/s, one object at a time), killed while it copies
    // the multipart object's first part.
    let mut first =
        import_cmd(&from.endpoint(0), &to.endpoint(0), home.path(), &["--limit-rate", "1MiB", "--parallel", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let start = Instant::now();
    loop {
        let uploads = match dst.list_multipart_uploads().bucket("media").send().await {
            Ok(u) => u.uploads().len(),
            Err(_) => 0,
        };
        if uploads > 0 {
            break;
        }
        assert!(first.try_wait().unwrap().is_none(), "the slow import ended before its multipart copy");
        assert!(start.elapsed() < Duration::from_secs(60), "the import never began the multipart copy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let copied_before = dst.list_objects_v2().bucket("media").send().await.unwrap().key_count().unwrap();
    assert_eq!(copied_before, 8, "the small objects (before b-big.mp4) were copied, nothing after");
    assert!(dst.head_object().bucket("media").key("b-big.mp4").send().await.is_err());

    // The resumed run copies the rest, verifies every body and exits 0.
    let (status, out, err) =
        output(import_cmd(&from.endpoint(0), &to.endpoint(0), home.path(), &["--json", "--verify-content"])).await;
    assert_eq!(status, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let media = report["buckets"].as_array().unwrap().iter().find(|b| b["source"] == "media").unwrap();
    assert_eq!(media["skipped"], 8, "{media}");
    assert_eq!(media["copied"], 3, "{media}");
    assert_eq!(media["verified"], 11, "{media}");
    assert_eq!(media["mismatched"].as_array().unwrap().len(), 0, "{media}");
    let hist = report["buckets"].as_array().unwrap().iter().find(|b| b["source"] == "history").unwrap();
    assert_eq!(hist["versions"], true, "{hist}");
    assert_eq!(hist["verified"], 8, "{hist}");
    let left = dst.list_multipart_uploads().bucket("media").send().await.unwrap();
    assert_eq!(left.uploads().len(), 0, "the killed run's upload is aborted: {left:?}");

    // Byte-identical, with the same ETags (the multipart one too).
    for (key, body) in &small {
        assert_eq!(&support::get_all(&dst, "media", key).await, body, "{key}");
        assert_eq!(etag(&dst, "media", key).await, etag(&src, "media", key).await);
    }
    assert_eq!(support::get_all(&dst, "media", "b-big.mp4").await, big);
    let big_etag = etag(&src, "media", "b-big.mp4").await;
    assert!(big_etag.ends_with("-3\""), "{big_etag}");
    assert_eq!(etag(&dst, "media", "b-big.mp4").await, big_etag);
    assert_eq!(support::get_all(&dst, "media", "c-empty").await, b"");
    let h = dst.get_object().bucket("media").key(SPECIAL).send().await.unwrap();
    assert_eq!(h.content_type(), Some("text/plain; charset=utf-8"));
    assert_eq!(h.cache_control(), Some("max-age=60"));
    assert_eq!(h.content_disposition(), Some("attachment"));
    assert_eq!(h.metadata().unwrap().get("owner").map(String::as_str), Some("ops"));
    assert_eq!(h.body.collect().await.unwrap().into_bytes().as_ref(), b"special");
    let tags = dst.get_object_tagging().bucket("media").key(SPECIAL).send().await.unwrap();
    let mut tags: Vec<(String, String)> =
        tags.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    tags.sort();
    assert_eq!(tags, [("team".to_owned(), "video".to_owned()), ("tier".to_owned(), "hot tier".to_owned())]);

    // The versioned bucket: the same history, delete markers in place.
    let v = dst.get_bucket_versioning().bucket("history").send().await.unwrap();
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
    let (a, b) = (history(&src, "history").await, history(&dst, "history").await);
    assert_eq!(a.len(), 8);
    assert_eq!(a, b);
    assert_eq!(support::get_all(&dst, "history", "playlist.m3u8").await, b"#EXTM3U v3");
    assert_eq!(support::get_all(&dst, "history", "back.ts").await, b"back two!");
    assert!(dst.head_object().bucket("history").key("gone.ts").send().await.is_err());

    // Once more: nothing left to copy.
    let (status, out, err) = output(import_cmd(&from.endpoint(0), &to.endpoint(0), home.path(), &["--json"])).await;
    assert_eq!(status, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    for b in report["buckets"].as_array().unwrap() {
        assert_eq!(b["copied"], 0, "{b}");
        assert_eq!(b["delete_markers"], 0, "{b}");
    }
    assert_eq!(history(&dst, "history").await, a, "no version was written twice");

    // A rate of nothing is a usage error, before anything is read.
    let (status, _, err) =
        output(import_cmd(&from.endpoint(0), &to.endpoint(0), home.path(), &["--limit-rate", "0"])).await;
    assert_eq!(status, 2, "{err}");
    assert!(err.contains("--limit-rate"), "{err}");

    // A wrong secret and a missing bucket: refused, with S3's code.
    let mut wrong = import_cmd(&from.endpoint(0), &to.endpoint(0), home.path(), &[]);
    wrong.env("TESSERA_IMPORT_SECRET_KEY", "not-the-secret");
    let (status, out, err) = output(wrong).await;
    assert_eq!(status, 1, "the source refused: {out}{err}");
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");
    let mut missing = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    missing
        .env_clear()
        .env("HOME", home.path())
        .args(["admin", "--endpoint", &to.endpoint(0), "--admin-access-key", ROOT, "--admin-secret-key", ROOT_SECRET])
        .args(["import", "s3://no-such-bucket", "--from-endpoint", &from.endpoint(0)])
        .args(["--from-key", ROOT, "--from-secret", ROOT_SECRET]);
    let (status, out, err) = output(missing).await;
    assert_eq!(status, 1, "{out}{err}");
    assert!(err.contains("NoSuchBucket"), "{err}");
    assert!(dst.head_bucket().bucket("no-such-bucket").send().await.is_err(), "nothing made for a missing source");

    from.shutdown().await;
    to.shutdown().await;
}
