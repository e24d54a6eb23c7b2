//! The HTTP connection as clients use it: a kept-alive connection stays in
//! step after a 0-byte PUT that expected `100 Continue`, connections beyond
//! the cap wait for a free one, and oversized request heads are refused.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::{Cluster, presign, raw_http, target};

/// Reads one HTTP/1.1 response with a Content-Length body off `s`,
/// skipping interim `100 Continue`s; leaves the connection after it.
async fn read_response(s: &mut tokio::net::TcpStream, pending: &mut Vec<u8>) -> (u16, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    loop {
        let end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "connection closed mid-response: {:?}", String::from_utf8_lossy(pending));
            pending.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        pending.drain(..end);
        if status == 100 {
            continue;
        }
        let len: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0);
        while pending.len() < len {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0);
            pending.extend_from_slice(&buf[..n]);
        }
        return (status, pending.drain(..len).collect());
    }
}

/// `aws s3 sync` of an empty file: a 0-byte PUT sent with `Expect:
/// 100-continue` on a kept-alive connection is answered (with or without
/// an interim 100), and the next request on that connection reads its own
/// answer, not a stray one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_empty_put_expecting_continue_keeps_the_connection_in_step() {
    use tokio::io::AsyncWriteExt;
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    let addr = cluster.gateway_addrs[0];
    c.create_bucket().bucket("empty").send().await.unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..3 {
        let put = c.put_object().bucket("empty").key(format!("e{i}")).presigned(presign()).await.unwrap();
        let head = format!(
            "PUT {} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\nexpect: 100-continue\r\n\r\n",
            target(put.uri())
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let (status, body) = read_response(&mut s, &mut pending).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let get = c.get_object().bucket("empty").key(format!("e{i}")).presigned(presign()).await.unwrap();
        let head = format!("GET {} HTTP/1.1\r\nhost: {addr}\r\n\r\n", target(get.uri()));
        s.write_all(head.as_bytes()).await.unwrap();
        let (status, body) = read_response(&mut s, &mut pending).await;
        assert_eq!((status, body.len()), (200, 0), "the GET on the same connection got its own answer");
    }
    assert!(pending.is_empty(), "nothing stray on the connection: {:?}", String::from_utf8_lossy(&pending));
    cluster.shutdown().await;
}

/// Past `max_connections`, a new connection waits (in the listen backlog)
/// until a served one closes; then it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cluster = Cluster::start_with(support::Options {
        gateways: 1,
        gateway: Box::new(|g| g.max_connections = 2),
        ..Default::default()
    })
    .await;
    let addr = cluster.gateway_addrs[0];
    let ask = b"GET /tessera/health/live HTTP/1.1\r\nhost: x\r\n\r\n";
    // Two kept-alive connections take the two slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(ask).await.unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0 && buf.starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    // A third connects (the kernel accepts it) but is not served...
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    third.write_all(ask).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the cap");
    // ...until one of the two closes.
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf)).await.unwrap().unwrap();
    assert!(n > 0 && buf.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    cluster.shutdown().await;
}

/// A request head larger than the HTTP layer buffers (hyper's ~400 KiB
/// read buffer) is refused before it is buffered further; a normal one on
/// a new connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_request_heads_are_refused() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let addr = cluster.gateway_addrs[0];
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET /tessera/health/live HTTP/1.1\r\nhost: x\r\nx-padding: {}\r\n\r\n", "x".repeat(600 * 1024));
    // The gateway may stop reading (and close) before the whole head is sent.
    let _ = s.write_all(head.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let answer = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || answer.starts_with("HTTP/1.1 431"), "a 600 KiB head got {answer:.80}");
    let (status, _, _) = raw_http(addr, "GET", "/tessera/health/live", &[("x-padding", "small")], b"").await;
    assert_eq!(status, 200);
    cluster.shutdown().await;
}
