//! Streaming: a 2 GiB PUT and GET through a gateway keep the process's RSS
//! growth under 256 MiB. The whole cluster runs in this process, so the
//! figure bounds the gateway and the datanodes together.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use md5::Digest as _;
use support::{Cluster, bytes, parse_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 =
        s.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

const CHUNK: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gib_put_and_get_stream_in_bounded_memory() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    c.create_bucket().bucket("mem").send().await.unwrap();
    // Warm up allocators and connections with a 64 MiB object.
    let warm = bytes(64 << 20, 1);
    c.put_object().bucket("mem").key("warm").body(ByteStream::from(warm)).send().await.unwrap();
    let r = c.get_object().bucket("mem").key("warm").send().await.unwrap();
    r.body.collect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let base = rss_bytes();
    let peak = Arc::new(AtomicU64::new(base));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // PUT 2 GiB, generated on the fly, over a presigned URL.
    let total: u64 = 2 << 30;
    let pre = c
        .put_object()
        .bucket("mem")
        .key("big")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(3600)).unwrap())
        .await
        .unwrap();
    let target = format!("/{}", pre.uri().split_once("://").unwrap().1.split_once('/').unwrap().1);
    let addr = cluster.gateway_addrs[0];
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("PUT {target} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {total}\r\nconnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut want = md5::Md5::new();
    for i in 0..total / CHUNK as u64 {
        let chunk = bytes(CHUNK, 77 + i);
        want.update(&chunk);
        s.write_all(&chunk).await.unwrap();
    }
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let (status, _, body) = parse_response(&resp);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let want = hex::encode(want.finalize());
    let put_peak = peak.load(Ordering::Relaxed);

    // GET it back, streaming, and check every byte through the MD5.
    let mut r = c.get_object().bucket("mem").key("big").send().await.unwrap();
    assert_eq!(r.e_tag(), Some(format!("\"{want}\"").as_str()));
    let mut got = md5::Md5::new();
    let mut n = 0u64;
    while let Some(chunk) = r.body.try_next().await.unwrap() {
        n += chunk.len() as u64;
        got.update(&chunk);
    }
    assert_eq!(n, total);
    assert_eq!(hex::encode(got.finalize()), want);
    sampler.abort();
    let peak = peak.load(Ordering::Relaxed);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "RSS before {:.0} MiB; peak growth during the 2 GiB PUT {:.0} MiB, during PUT+GET {:.0} MiB",
        mib(base),
        mib(put_peak - base),
        mib(peak - base)
    );
    assert!(peak - base < 256 << 20, "RSS grew by {:.0} MiB", mib(peak - base));
    cluster.shutdown().await;
}
