//! Bucket notifications end to end on an in-process cluster: a webhook
//! target registered through the admin API, a queue configuration with
//! event, prefix and suffix filters set through aws-sdk-s3, and a receiver
//! on loopback that fails its first requests: after retries it holds every
//! event — Put, Copy, CompleteMultipartUpload, Delete — exactly once after
//! de-duplication by sequencer, and none that the filters leave out.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration,
    S3KeyFilter, TopicConfiguration,
};
use support::{Cluster, code};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROOT: (&str, &str) = ("ROOTKEY00000000000013", "root-secret-000000000000000013");

/// A webhook on loopback: records every body; answers 500 to the first
/// `fail` requests, then 200.
async fn receiver(fail: usize) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            n += 1;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let r = s.read(&mut chunk).await.unwrap_or(0);
                if r == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..r]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break Some(buf[end + 4..end + 4 + len].to_vec());
                }
            };
            let status = if n <= fail { "500 Internal Server Error" } else { "200 OK" };
            if n > fail
                && let Some(b) = body
            {
                seen.lock().unwrap().push(serde_json::from_slice(&b).unwrap());
            }
            let _ = s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await;
        }
    });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_reaches_the_webhook_once_after_retries() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    support::add_key(&cluster, ROOT.0, ROOT.1, true).await;
    let (url, got) = receiver(3).await;
    let body = serde_json::json!({ "url": url }).to_string();
    let (st, out) = support::admin_call(&cluster, "PUT", "notify-targets/hook", body.as_bytes(), ROOT).await;
    assert_eq!((st, out["arn"].as_str()), (200, Some("arn:tessera:sqs::hook:webhook")), "{out}");
    c.create_bucket().bucket("feed").send().await.unwrap();

    let filter = |prefix: &str, suffix: &str| {
        let rules = vec![
            FilterRule::builder().name(FilterRuleName::Prefix).value(prefix).build(),
            FilterRule::builder().name(FilterRuleName::Suffix).value(suffix).build(),
        ];
        NotificationConfigurationFilter::builder()
            .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
            .build()
    };
    let queue = |arn: &str| {
        QueueConfiguration::builder()
            .id("segments")
            .queue_arn(arn)
            .events(Event::S3ObjectCreated)
            .events(Event::S3ObjectRemoved)
            .filter(filter("live/", ".ts"))
            .build()
            .unwrap()
    };
    // An unknown target and a topic are refused.
    let cfg =
        NotificationConfiguration::builder().queue_configurations(queue("arn:tessera:sqs::nobody:webhook")).build();
    let e = c.put_bucket_notification_configuration().bucket("feed").notification_configuration(cfg).send().await;
    assert_eq!(code(&e.unwrap_err()), "InvalidArgument");
    let topic = TopicConfiguration::builder()
        .topic_arn("arn:aws:sns:us-east-1:1:t")
        .events(Event::S3ObjectCreated)
        .build()
        .unwrap();
    let cfg = NotificationConfiguration::builder().topic_configurations(topic).build();
    let e = c.put_bucket_notification_configuration().bucket("feed").notification_configuration(cfg).send().await;
    assert_eq!(code(&e.unwrap_err()), "NotImplemented");
    let cfg = NotificationConfiguration::builder().queue_configurations(queue("arn:tessera:sqs::hook:webhook")).build();
    c.put_bucket_notification_configuration()
        .bucket("feed")
        .notification_configuration(cfg.clone())
        .send()
        .await
        .unwrap();
    let back = c.get_bucket_notification_configuration().bucket("feed").send().await.unwrap();
    assert_eq!(back.queue_configurations(), cfg.queue_configurations());

    let put = |k: &'static str| c.put_object().bucket("feed").key(k).body(ByteStream::from_static(b"segment")).send();
    put("live/a.ts").await.unwrap();
    put("live/b.ts").await.unwrap();
    put("other/c.ts").await.unwrap(); // prefix filtered out
    put("live/d.m3u8").await.unwrap(); // suffix filtered out
    c.copy_object().bucket("feed").key("live/e.ts").copy_source("feed/live/a.ts").send().await.unwrap();
    support::multipart(&c, "feed", "live/f.ts", &[support::bytes(5 << 20, 1), support::bytes(10, 2)]).await;
    c.delete_object().bucket("feed").key("live/b.ts").send().await.unwrap();
    c.delete_object().bucket("feed").key("live/never.ts").send().await.unwrap(); // nothing removed: no event

    let want: BTreeSet<(String, String)> = [
        ("ObjectCreated:Put", "live/a.ts"),
        ("ObjectCreated:Put", "live/b.ts"),
        ("ObjectCreated:Copy", "live/e.ts"),
        ("ObjectCreated:CompleteMultipartUpload", "live/f.ts"),
        ("ObjectRemoved:Delete", "live/b.ts"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    let start = Instant::now();
    let events = loop {
        let records: Vec<serde_json::Value> =
            got.lock().unwrap().iter().flat_map(|v| v["Records"].as_array().cloned().unwrap_or_default()).collect();
        // De-duplicated by sequencer, as a receiver must (delivery is at least once).
        let mut by_seq = std::collections::BTreeMap::new();
        for r in &records {
            by_seq.insert(r["s3"]["object"]["sequencer"].as_str().unwrap().to_owned(), r.clone());
        }
        let seen: BTreeSet<(String, String)> = by_seq
            .values()
            .map(|r| {
                (r["eventName"].as_str().unwrap().to_owned(), r["s3"]["object"]["key"].as_str().unwrap().to_owned())
            })
            .collect();
        if seen.len() >= want.len() {
            assert_eq!(seen, want, "events after de-duplication");
            break by_seq;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "after 30 s the webhook holds {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let one = events.values().find(|r| r["eventName"] == "ObjectCreated:Put").unwrap();
    assert_eq!(one["s3"]["bucket"]["name"], "feed");
    assert_eq!(one["s3"]["configurationId"], "segments");
    assert_eq!(one["s3"]["object"]["size"], 7);
    // The outbox empties once everything is acknowledged.
    let start = Instant::now();
    loop {
        let (_, s) = support::admin_call(&cluster, "GET", "notify", b"", ROOT).await;
        let progress = s["progress"].as_str().unwrap_or_default().to_owned();
        if progress.starts_with("5 events delivered, 0 waiting") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{progress}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.shutdown().await;
}
