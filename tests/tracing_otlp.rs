//! Request tracing end to end: `tessera server --otlp-endpoint` sends its
//! spans to a small OTLP/HTTP receiver run by this test; the span of one S3
//! PUT (named by its `x-amz-request-id`) and the metadata and datanode calls
//! it made over gRPC share one trace, children of the S3 span.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::operation::RequestId as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Accepts OTLP/HTTP posts (one per connection) and keeps their JSON bodies.
async fn receiver(listener: tokio::net::TcpListener, bodies: Arc<Mutex<Vec<serde_json::Value>>>) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else { return };
        let bodies = bodies.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            let (head_end, len) = loop {
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..at]).to_lowercase();
                    assert!(head.starts_with("post /v1/traces "), "{head}");
                    assert!(head.contains("content-type: application/json"), "{head}");
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap();
                    break (at + 4, len);
                }
            };
            while buf.len() < head_end + len {
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "body cut short");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body: serde_json::Value = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap();
            bodies.lock().unwrap().push(body);
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await.unwrap();
        });
    }
}

#[derive(Debug, Clone)]
struct Span {
    trace: String,
    id: String,
    parent: String,
    name: String,
    attrs: HashMap<String, String>,
}

fn spans(bodies: &[serde_json::Value]) -> Vec<Span> {
    let mut out = Vec::new();
    for b in bodies {
        for rs in b["resourceSpans"].as_array().unwrap() {
            let service = &rs["resource"]["attributes"][0];
            assert_eq!(service["key"], "service.name");
            assert_eq!(service["value"]["stringValue"], "tessera-server");
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for s in ss["spans"].as_array().unwrap() {
                    let attrs = s["attributes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| {
                            (
                                a["key"].as_str().unwrap().to_owned(),
                                a["value"]["stringValue"].as_str().unwrap().to_owned(),
                            )
                        })
                        .collect();
                    out.push(Span {
                        trace: s["traceId"].as_str().unwrap().to_owned(),
                        id: s["spanId"].as_str().unwrap().to_owned(),
                        parent: s["parentSpanId"].as_str().unwrap().to_owned(),
                        name: s["name"].as_str().unwrap().to_owned(),
                        attrs,
                    });
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_is_one_trace_across_gateway_metadata_and_datanode() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let rx = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", rx.local_addr().unwrap());
    let receiver = tokio::spawn(receiver(rx, bodies.clone()));

    let dir = tempfile::tempdir().unwrap();
    let s3_addr = format!("127.0.0.1:{}", free_port());
    let (ak, sk) = ("TSTRACETEST", "trace-test-secret");
    let server = Proc(
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["server", "--data"])
            .arg(dir.path())
            .args(["--listen", &s3_addr])
            .args(["--meta-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--datanode-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--otlp-endpoint", &collector])
            .env("TESSERA_ROOT_ACCESS_KEY", ak)
            .env("TESSERA_ROOT_SECRET_KEY", sk)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .endpoint_url(format!("http://{s3_addr}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ak, sk, None, None, "test"))
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    let start = Instant::now();
    while s3.create_bucket().bucket("traced").send().await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(60), "server never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A sharded object: the PUT writes shards to the datanode and commits through metadata.
    let put = s3.put_object().bucket("traced").key("obj").body(vec![7u8; 1 << 20].into()).send().await.unwrap();
    let request_id = put.request_id().unwrap().to_owned();

    // Wait for the exporter (it sends every second).
    let start = Instant::now();
    let (root, children) = loop {
        let all = spans(&bodies.lock().unwrap());
        if let Some(root) = all.iter().find(|s| s.name == "s3" && s.attrs.get("request_id") == Some(&request_id)) {
            let children: Vec<Span> =
                all.iter().filter(|s| s.trace == root.trace && s.id != root.id).cloned().collect();
            let has = |m: &str| children.iter().any(|c| c.attrs.get("rpc.method").is_some_and(|v| v.ends_with(m)));
            if has("/PutShard") && has("/Write") {
                break (root.clone(), children);
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20), "spans of request {request_id} never all arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(root.attrs.get("op").map(String::as_str), Some("PutObject"));
    assert_eq!(root.attrs.get("http.status").map(String::as_str), Some("200"));
    assert!(root.parent.is_empty(), "the S3 span is the root: {root:?}");
    let puts = children.iter().filter(|c| c.attrs.get("rpc.method").is_some_and(|m| m.ends_with("/PutShard"))).count();
    assert_eq!(puts, 6, "one datanode span per shard of EC 4+2: {children:#?}");
    for c in &children {
        // Metadata calls are gRPC; shard bytes go over the shard wire.
        let shard = c.attrs.get("rpc.method").is_some_and(|m| m.ends_with("/PutShard"));
        assert_eq!(c.name, if shard { "shard" } else { "grpc" }, "{c:?}");
        if shard {
            // `tessera server` hands shards to its own datanode directly.
            assert_eq!(c.attrs.get("transport").map(String::as_str), Some("local"), "{c:?}");
        }
        assert_eq!(c.parent, root.id, "every call is a child of the S3 span: {c:?}");
    }

    let pid = server.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut server = server;
    let start = Instant::now();
    while server.0.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(40), "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiver.abort();
}
