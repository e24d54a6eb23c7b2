//! The S3 protocol edges: SigV4 failures, presigned URLs, clock skew,
//! anonymous access, request ids, `Expect: 100-continue`, size and name
//! limits, truncated bodies, virtual-hosted-style addressing.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::operation::RequestId as _;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use support::{ACCESS_KEY, Cluster, SECRET_KEY, bytes, code, header, presign, raw_http, target};

#[derive(Debug)]
struct Skewed(Duration);

impl aws_smithy_async::time::TimeSource for Skewed {
    fn now(&self) -> SystemTime {
        SystemTime::now() + self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authentication_presigning_and_limits() {
    let cluster = Cluster::start_with(support::Options {
        datanodes: 6,
        gateways: 1,
        gateway: Box::new(|g| g.domains = vec!["s3.tessera.test".into()]),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    let addr = cluster.gateway_addrs[0];
    c.create_bucket().bucket("proto").send().await.unwrap();
    c.put_object().bucket("proto").key("hello").body(ByteStream::from(b"hello".to_vec())).send().await.unwrap();

    // Wrong secret, unknown key, skewed clock.
    let e = cluster.client_with(0, ACCESS_KEY, "wrong-secret").get_object().bucket("proto").key("hello").send().await;
    assert_eq!(code(&e.unwrap_err()), "SignatureDoesNotMatch");
    let e = cluster.client_with(0, "AKIAUNKNOWN", SECRET_KEY).list_buckets().send().await;
    assert_eq!(code(&e.unwrap_err()), "InvalidAccessKeyId");
    let skewed = aws_sdk_s3::Config::builder()
        .endpoint_url(cluster.endpoint(0))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "t"))
        .force_path_style(true)
        .time_source(Skewed(Duration::from_secs(3600)))
        // The SDK corrects its clock from the error and retries; the first answer is what counts.
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    let e = aws_sdk_s3::Client::from_conf(skewed).list_buckets().send().await;
    assert_eq!(code(&e.unwrap_err()), "RequestTimeTooSkewed");

    // Anonymous requests are refused, and every response has a request id.
    let (status, headers, body) = raw_http(addr, "GET", "/proto/hello", &[], b"").await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("AccessDenied"));
    assert!(header(&headers, "x-amz-request-id").is_some_and(|v| !v.is_empty()));
    let ok = c.get_object().bucket("proto").key("hello").send().await.unwrap();
    assert!(ok.request_id().is_some_and(|v| !v.is_empty()));
    let (status, _, _) = raw_http(addr, "GET", "/tessera/health/live", &[], b"").await;
    assert_eq!(status, 200);
    let (status, _, _) = raw_http(addr, "GET", "/tessera/health/ready", &[], b"").await;
    assert_eq!(status, 200);
    // Metrics count requests by operation and status, and bytes both ways.
    let (status, _, body) = raw_http(addr, "GET", "/tessera/metrics", &[], b"").await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    for want in [
        "tessera_gateway_requests_total{op=\"PutObject\",status=\"200\"}",
        "tessera_gateway_requests_total{op=\"GetObject\",status=\"200\"}",
        "tessera_gateway_request_seconds_count{op=\"GetObject\"}",
        "tessera_gateway_requests_total{op=\"GetObject\",status=\"403\"}",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    let bytes_out = text.lines().find_map(|l| l.strip_prefix("tessera_gateway_bytes_out_total ")).unwrap();
    assert!(bytes_out.trim().parse::<u64>().unwrap() >= 5, "{bytes_out}");

    // Presigned GET and PUT; an expired URL is refused.
    let pre = c
        .get_object()
        .bucket("proto")
        .key("hello")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let (status, _, body) = raw_http(addr, "GET", &target(pre.uri()), &[], b"").await;
    assert_eq!((status, body.as_slice()), (200, b"hello".as_slice()));
    let old = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(7200))
        .expires_in(Duration::from_secs(60))
        .build()
        .unwrap();
    let pre_old = c.get_object().bucket("proto").key("hello").presigned(old).await.unwrap();
    let (status, _, body) = raw_http(addr, "GET", &target(pre_old.uri()), &[], b"").await;
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("AccessDenied"));
    let put = c
        .put_object()
        .bucket("proto")
        .key("presigned-put")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let data = bytes(200_000, 3);
    let len = data.len().to_string();
    let (status, _, body) =
        raw_http(addr, "PUT", &target(put.uri()), &[("content-length", &len), ("expect", "100-continue")], &data).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let got = c.get_object().bucket("proto").key("presigned-put").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), data);

    // A declared body above 5 GiB is refused before any byte is read.
    let huge = c
        .put_object()
        .bucket("proto")
        .key("huge")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let (status, _, body) = raw_http(
        addr,
        "PUT",
        &target(huge.uri()),
        &[("content-length", "6442450944"), ("expect", "100-continue")],
        b"",
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("EntityTooLarge"));

    // A body that ends before its Content-Length stores nothing (inline and sharded sizes).
    for n in [50_000usize, 3_000_000] {
        let key = format!("truncated-{n}");
        let pre = c
            .put_object()
            .bucket("proto")
            .key(&key)
            .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
            .await
            .unwrap();
        let data = bytes(n / 2, 9);
        let len = n.to_string();
        let (status, _, _) = raw_http(addr, "PUT", &target(pre.uri()), &[("content-length", &len)], &data).await;
        assert!(status == 400 || status == 0 || status >= 500 || status == 408, "status {status}");
        let e = c.head_object().bucket("proto").key(&key).send().await.unwrap_err();
        assert_eq!(e.raw_response().unwrap().status().as_u16(), 404);
    }

    // Names: a key over 1024 bytes; a malformed DeleteObjects.
    let long = "k".repeat(1025);
    let e = c.put_object().bucket("proto").key(&long).body(ByteStream::from(b"x".to_vec())).send().await;
    assert_eq!(code(&e.unwrap_err()), "KeyTooLongError");
    let ids: Vec<_> = (0..1001)
        .map(|i| aws_sdk_s3::types::ObjectIdentifier::builder().key(format!("k{i}")).build().unwrap())
        .collect();
    let del = aws_sdk_s3::types::Delete::builder().set_objects(Some(ids)).build().unwrap();
    let e = c.delete_objects().bucket("proto").delete(del).send().await;
    assert_eq!(code(&e.unwrap_err()), "MalformedXML");

    // Virtual-hosted style: the bucket comes from the Host header.
    let vh = aws_sdk_s3::Config::builder()
        .endpoint_url(format!("http://s3.tessera.test:{}", addr.port()))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "t"))
        .build();
    let pre = aws_sdk_s3::Client::from_conf(vh)
        .get_object()
        .bucket("proto")
        .key("hello")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    assert!(pre.uri().starts_with("http://proto.s3.tessera.test:"), "{}", pre.uri());
    let host = format!("proto.s3.tessera.test:{}", addr.port());
    let (status, _, body) = raw_http(addr, "GET", &target(pre.uri()), &[("host", &host)], b"").await;
    assert_eq!((status, body.as_slice()), (200, b"hello".as_slice()), "{}", String::from_utf8_lossy(&body));

    cluster.shutdown().await;
}

/// SigV4 by hand, for what current SDKs will not send: streaming uploads
/// signed chunk by chunk (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, as minio-go
/// and the older SDKs send them) and presigned URLs with any lifetime.
mod sigv4 {
    pub use crate::support::sig::amz_date;
    use crate::support::sig::hmac;
    use sha2::{Digest, Sha256};

    pub fn sha_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    /// A SigV4 presigned GET of `path` (query string and host), signed at
    /// `now + skew_secs` to live `expires` seconds.
    pub fn presigned_get(host: &str, path: &str, access: &str, secret: &str, expires: u64, skew_secs: i64) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let date = amz_date(now.saturating_add_signed(skew_secs));
        let day = &date[..8];
        let scope = format!("{day}/us-east-1/s3/aws4_request");
        let credential = format!("{access}/{scope}").replace('/', "%2F");
        let query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}&X-Amz-Date={date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host"
        );
        let canonical = format!("GET\n{path}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
        let to_sign = format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{}", sha_hex(canonical.as_bytes()));
        let key = ["us-east-1", "s3", "aws4_request"]
            .iter()
            .fold(hmac(format!("AWS4{secret}").as_bytes(), day), |k, part| hmac(&k, part));
        format!("{path}?{query}&X-Amz-Signature={}", hex::encode(hmac(&key, &to_sign)))
    }

    /// Headers and the chunk-signed body of a PUT of `data` to `path` in
    /// chunks of `chunk` bytes; `tamper` corrupts the signature of chunk 1.
    #[allow(clippy::too_many_arguments)]
    pub fn signed_put(
        encoding: &str,
        host: &str,
        path: &str,
        data: &[u8],
        chunk: usize,
        access: &str,
        secret: &str,
        tamper: bool,
    ) -> (Vec<(String, String)>, Vec<u8>) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let date = amz_date(now);
        let day = &date[..8];
        let scope = format!("{day}/us-east-1/s3/aws4_request");
        let mut body = Vec::new();
        let pieces: Vec<&[u8]> = data.chunks(chunk).chain(std::iter::once(&[][..])).collect();
        let encoded_len: usize =
            pieces.iter().map(|p| format!("{:x};chunk-signature=", p.len()).len() + 64 + 4 + p.len()).sum();
        let mut headers = vec![
            ("content-encoding".to_owned(), encoding.to_owned()),
            ("content-length".to_owned(), encoded_len.to_string()),
            ("host".to_owned(), host.to_owned()),
            ("x-amz-content-sha256".to_owned(), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_owned()),
            ("x-amz-date".to_owned(), date.clone()),
            ("x-amz-decoded-content-length".to_owned(), data.len().to_string()),
        ];
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let canonical = format!("PUT\n{path}\n\n{canonical_headers}\n{signed}\nSTREAMING-AWS4-HMAC-SHA256-PAYLOAD");
        let to_sign = format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{}", sha_hex(canonical.as_bytes()));
        let key = ["us-east-1", "s3", "aws4_request"]
            .iter()
            .fold(hmac(format!("AWS4{secret}").as_bytes(), day), |k, part| hmac(&k, part));
        let seed = hex::encode(hmac(&key, &to_sign));
        headers.push((
            "authorization".to_owned(),
            format!("AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, Signature={seed}"),
        ));
        let mut prev = seed;
        for (i, p) in pieces.iter().enumerate() {
            let s = format!("AWS4-HMAC-SHA256-PAYLOAD\n{date}\n{scope}\n{prev}\n{}\n{}", sha_hex(b""), sha_hex(p));
            let mut sig = hex::encode(hmac(&key, &s));
            if tamper && i == 1 {
                let last = sig.pop().unwrap();
                sig.push(if last == '0' { '1' } else { '0' });
            }
            body.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", p.len()).as_bytes());
            body.extend_from_slice(p);
            body.extend_from_slice(b"\r\n");
            prev = sig;
        }
        assert_eq!(body.len(), encoded_len);
        (headers, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chunk_signed_streaming_uploads() {
    let cluster = Cluster::start().await;
    let c = cluster.client(0);
    let addr = cluster.gateway_addrs[0];
    c.create_bucket().bucket("chunked").send().await.unwrap();
    let host = addr.to_string();
    let put_as = |encoding: &str, key: &str, data: &[u8], chunk: usize, tamper: bool| {
        sigv4::signed_put(encoding, &host, &format!("/chunked/{key}"), data, chunk, ACCESS_KEY, SECRET_KEY, tamper)
    };
    let put = |key: &str, data: &[u8], chunk: usize, tamper: bool| put_as("aws-chunked", key, data, chunk, tamper);
    // Inline and sharded sizes, several chunks each. `aws-chunked` is how
    // the body crossed the wire, not how it is stored: dropped from the
    // stored Content-Encoding, as S3 does.
    for (key, len, encoding, stored) in [
        ("small", 100_000usize, "aws-chunked", None),
        ("large", 3 * 1024 * 1024 + 11, "gzip, aws-chunked", Some("gzip")),
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let (headers, body) = put_as(encoding, key, &data, 64 * 1024, false);
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, _, resp) = raw_http(addr, "PUT", &format!("/chunked/{key}"), &h, &body).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
        let head = c.head_object().bucket("chunked").key(key).send().await.unwrap();
        assert_eq!(head.content_length(), Some(len as i64));
        assert_eq!(head.content_encoding(), stored, "{key}: stored Content-Encoding");
        let got = support::get_all(&c, "chunked", key).await;
        assert!(got == data, "{key}: the decoded body is stored, not the chunk framing");
    }
    // A chunk whose signature does not match: refused, and nothing stored.
    let data = vec![5u8; 300_000];
    let (headers, body) = put("tampered", &data, 64 * 1024, true);
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, _, resp) = raw_http(addr, "PUT", "/chunked/tampered", &h, &body).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&resp));
    assert!(String::from_utf8_lossy(&resp).contains("SignatureDoesNotMatch"));
    let e = c.head_object().bucket("chunked").key("tampered").send().await.unwrap_err();
    assert!(e.into_service_error().is_not_found());
}

/// Opens a raw connection and sends the head of a presigned PUT of `len`
/// bytes with `Expect: 100-continue`. Returns the connection and what the
/// gateway answered first: `100` once its handler asks for the body (after
/// it has checked any write condition), or a final status.
async fn put_head(
    addr: std::net::SocketAddr,
    pre: &aws_sdk_s3::presigning::PresignedRequest,
    len: usize,
) -> (tokio::net::TcpStream, u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "PUT {} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {len}\r\nexpect: 100-continue\r\nconnection: close\r\n",
        target(pre.uri())
    );
    for (h, v) in pre.headers() {
        if !h.eq_ignore_ascii_case("host") {
            head.push_str(&format!("{h}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a response");
        got.extend_from_slice(&buf[..n]);
    }
    let status = std::str::from_utf8(&got).unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    (s, status)
}

/// Sends the rest of a request and reads the response to the end.
async fn finish(mut s: tokio::net::TcpStream, body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(body).await.unwrap();
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut resp)).await;
    support::parse_response(&resp)
}

/// A conditional PUT whose condition held when it started but not when its
/// upload finished (another write or a delete of the key landed between)
/// is 409 ConditionalRequestConflict, and the other write stands; a
/// condition that fails from the start is 412 before any body byte moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_write_races() {
    let cluster = Cluster::start().await;
    let (c, c2) = (cluster.client(0), cluster.client(1));
    let addr = cluster.gateway_addrs[0];
    c.create_bucket().bucket("race").send().await.unwrap();
    let ours = bytes(300_000, 41);
    let conflict = |(status, _, body): (u16, Vec<(String, String)>, Vec<u8>)| {
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 409, "{text}");
        assert!(text.contains("<Code>ConditionalRequestConflict</Code>"), "{text}");
    };

    // If-None-Match: * while another client creates the key.
    let pre = c.put_object().bucket("race").key("new").if_none_match("*").presigned(presign()).await.unwrap();
    let (s, first) = put_head(addr, &pre, ours.len()).await;
    assert_eq!(first, 100);
    c2.put_object().bucket("race").key("new").body(ByteStream::from_static(b"winner")).send().await.unwrap();
    conflict(finish(s, &ours).await);
    assert_eq!(support::get_all(&c, "race", "new").await, b"winner");

    // The same request once the key exists: 412 at once, no 100, no upload.
    let (s, first) = put_head(addr, &pre, ours.len()).await;
    assert_eq!(first, 412);
    drop(s);

    // If-Match while another client overwrites the key, then deletes it.
    let v1 = c.put_object().bucket("race").key("old").body(ByteStream::from_static(b"v1")).send().await.unwrap();
    let et = v1.e_tag().unwrap().to_owned();
    let pre = c.put_object().bucket("race").key("old").if_match(&et).presigned(presign()).await.unwrap();
    let (s, first) = put_head(addr, &pre, ours.len()).await;
    assert_eq!(first, 100);
    c2.put_object().bucket("race").key("old").body(ByteStream::from_static(b"v2")).send().await.unwrap();
    conflict(finish(s, &ours).await);
    assert_eq!(support::get_all(&c, "race", "old").await, b"v2");
    let v3 = c.put_object().bucket("race").key("old").body(ByteStream::from_static(b"v3")).send().await.unwrap();
    let pre =
        c.put_object().bucket("race").key("old").if_match(v3.e_tag().unwrap()).presigned(presign()).await.unwrap();
    let (s, first) = put_head(addr, &pre, 10).await;
    assert_eq!(first, 100);
    c2.delete_object().bucket("race").key("old").send().await.unwrap();
    conflict(finish(s, b"0123456789").await);
    let e = c.head_object().bucket("race").key("old").send().await.unwrap_err();
    assert!(e.into_service_error().is_not_found());

    // If-Match on a missing key is 404 NoSuchKey, as S3 answers.
    let (s, first) = put_head(addr, &pre, 10).await;
    assert_eq!(first, 404);
    drop(s);

    // Uncontested, both conditions succeed through the same path.
    let pre = c.put_object().bucket("race").key("calm").if_none_match("*").presigned(presign()).await.unwrap();
    let (s, first) = put_head(addr, &pre, ours.len()).await;
    assert_eq!(first, 100);
    let (status, headers, body) = finish(s, &ours).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let et = header(&headers, "etag").unwrap().to_owned();
    let pre = c.put_object().bucket("race").key("calm").if_match(&et).presigned(presign()).await.unwrap();
    let (s, first) = put_head(addr, &pre, 5).await;
    assert_eq!(first, 100);
    let (status, _, body) = finish(s, b"fresh").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(support::get_all(&c2, "race", "calm").await, b"fresh");
    cluster.shutdown().await;
}

/// Slow clients: a connection that sends no request head within the header
/// timeout is closed (at connect, mid-head, and idle after a response); an
/// upload whose body stops for the idle timeout is 400 RequestTimeout and
/// stores nothing; a body that trickles in with shorter gaps succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_time_out() {
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limit = Duration::from_secs(1);
    let cluster = Cluster::start_with(support::Options {
        gateway: Box::new(move |g| {
            g.header_timeout = limit;
            g.body_idle_timeout = limit;
        }),
        ..support::Options::default()
    })
    .await;
    let c = cluster.client(0);
    let addr = cluster.gateway_addrs[0];
    c.create_bucket().bucket("slow").send().await.unwrap();

    // Reads until the gateway closes; returns what it sent and when.
    async fn until_closed(s: &mut tokio::net::TcpStream, what: &str) -> (Vec<u8>, Duration) {
        let t = Instant::now();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got))
            .await
            .unwrap_or_else(|_| panic!("{what}: the gateway kept the stalled connection open"))
            .unwrap();
        (got, t.elapsed())
    }
    // Nothing at all.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (got, took) = until_closed(&mut s, "no bytes").await;
    assert!(got.is_empty() && took >= limit * 9 / 10, "{took:?} {got:?}");
    // Half a request head.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /slow HTTP/1.1\r\nhost: {addr}\r\n").as_bytes()).await.unwrap();
    let (got, took) = until_closed(&mut s, "half a head").await;
    assert!(got.is_empty() && took >= limit * 9 / 10, "{took:?} {got:?}");
    // A keep-alive connection, idle after its response.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /tessera/health/live HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    let (got, took) = until_closed(&mut s, "idle keep-alive").await;
    let (status, _, body) = support::parse_response(&got);
    assert_eq!((status, body.as_slice()), (200, b"live\n".as_slice()));
    assert!(took >= limit * 9 / 10, "{took:?}");

    // A body that stops: sharded and inline sizes.
    for (key, len, sent) in [("big", 1_000_000usize, 300_000usize), ("small", 1000, 10)] {
        let pre = c.put_object().bucket("slow").key(key).presigned(presign()).await.unwrap();
        let (mut s, first) = put_head(addr, &pre, len).await;
        assert_eq!(first, 100);
        s.write_all(&bytes(sent, 5)).await.unwrap();
        let (got, took) = until_closed(&mut s, key).await;
        let (status, _, body) = support::parse_response(&got);
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("<Code>RequestTimeout</Code>"), "{text}");
        assert!(took >= limit * 9 / 10, "{took:?}");
        let e = c.head_object().bucket("slow").key(key).send().await.unwrap_err();
        assert!(e.into_service_error().is_not_found(), "{key}: a timed-out upload stored nothing");
    }

    // A body that trickles in, each gap under the limit, the whole well over it.
    let data = bytes(600_000, 6);
    let pre = c.put_object().bucket("slow").key("trickle").presigned(presign()).await.unwrap();
    let (mut s, first) = put_head(addr, &pre, data.len()).await;
    assert_eq!(first, 100);
    let t = Instant::now();
    let (last, rest) = data.split_at(data.len() - 100_000);
    for piece in last.chunks(100_000) {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(limit * 6 / 10).await;
    }
    let (status, _, body) = finish(s, rest).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(t.elapsed() > limit * 2);
    assert!(support::get_all(&c, "slow", "trickle").await == data);
    cluster.shutdown().await;
}

/// Shutting a gateway down waits for requests in flight, not for idle
/// keep-alive connections: one that sits after a response, and one that
/// has sent half of its next request head (hyper's header timer is then
/// running, so hyper alone would hold the shutdown for `header_timeout`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_does_not_wait_for_idle_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let addr: std::net::SocketAddr = cluster.endpoint(0).trim_start_matches("http://").parse().unwrap();
    let mut conns = Vec::new();
    for partial in [false, true] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET /tessera/health/live HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(5).any(|w| w == b"live\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before the response");
            got.extend_from_slice(&buf[..n]);
        }
        if partial {
            s.write_all(b"GET /bucket/key HTTP/1.1\r\nhost: ").await.unwrap();
        }
        conns.push(s);
    }
    let started = Instant::now();
    cluster.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown took {:?}", started.elapsed());
    // Both connections were closed by the gateway.
    for mut s in conns {
        let mut rest = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(r.is_ok(), "a connection was left open");
    }
    // An SDK client whose last request was refused in the access check
    // after a metadata read (a wrong expected bucket owner) left hyper's
    // graceful shutdown waiting 30 s in about one run of four; the drain
    // ends once no request is in flight.
    for round in 0..8 {
        let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
        let c = cluster.client(0);
        c.create_bucket().bucket("bkt").send().await.unwrap();
        let e = c.get_object().bucket("bkt").key("k").expected_bucket_owner("111122223333").send().await.unwrap_err();
        assert_eq!(code(&e), "AccessDenied");
        let started = Instant::now();
        cluster.shutdown().await;
        assert!(started.elapsed() < Duration::from_secs(10), "round {round}: shutdown took {:?}", started.elapsed());
    }
}

/// Presigned URLs live at most 7 days: a validly signed URL asking for more
/// is refused with AuthorizationQueryParametersError; an expired one (a
/// lifetime of 0 included) and one signed in the future are 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presigned_url_lifetimes() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    c.create_bucket().bucket("pre").send().await.unwrap();
    c.put_object().bucket("pre").key("k").body(ByteStream::from_static(b"presigned")).send().await.unwrap();
    let addr: std::net::SocketAddr = cluster.endpoint(0).trim_start_matches("http://").parse().unwrap();
    let host = addr.to_string();
    let get = |expires: u64, skew: i64| {
        let target = sigv4::presigned_get(&host, "/pre/k", ACCESS_KEY, SECRET_KEY, expires, skew);
        async move { raw_http(addr, "GET", &target, &[], b"").await }
    };
    let (st, _, body) = get(604_800, 0).await;
    assert_eq!((st, body.as_slice()), (200, &b"presigned"[..]));
    for expires in [604_801, 2_592_000] {
        let (st, _, body) = get(expires, 0).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(st, 400, "{expires}: {body}");
        assert!(body.contains("AuthorizationQueryParametersError"), "{expires}: {body}");
    }
    let (st, _, body) = get(60, -3600).await;
    assert_eq!(st, 403, "expired: {}", String::from_utf8_lossy(&body));
    let (st, _, body) = get(0, 0).await;
    assert_eq!(st, 403, "no lifetime: {}", String::from_utf8_lossy(&body));
    let (st, _, body) = get(60, 3600).await;
    assert_eq!(st, 403, "not yet valid: {}", String::from_utf8_lossy(&body));
    cluster.shutdown().await;
}

/// A body whose SHA-256 is not the `x-amz-content-sha256` the request
/// declared is XAmzContentSHA256Mismatch (400), for inline and sharded
/// sizes, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payload_hash_mismatch_is_refused() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    c.create_bucket().bucket("sha").send().await.unwrap();
    let addr: std::net::SocketAddr = cluster.endpoint(0).trim_start_matches("http://").parse().unwrap();
    for (key, len) in [("small", 1000), ("large", 600 << 10)] {
        let pre = c.put_object().bucket("sha").key(key).presigned(presign()).await.unwrap();
        let body = bytes(len, 9);
        let other = sigv4::sha_hex(&bytes(len, 10));
        let length = body.len().to_string();
        let headers = [("x-amz-content-sha256", other.as_str()), ("content-length", length.as_str())];
        let (st, _, resp) = raw_http(addr, "PUT", &target(pre.uri()), &headers, &body).await;
        let resp = String::from_utf8_lossy(&resp);
        assert_eq!(st, 400, "{key}: {resp}");
        assert!(resp.contains("<Code>XAmzContentSHA256Mismatch</Code>"), "{key}: {resp}");
        let e = c.head_object().bucket("sha").key(key).send().await.unwrap_err();
        assert_eq!(e.raw_response().unwrap().status().as_u16(), 404, "{key} was stored");
        // The right hash is accepted.
        let right = sigv4::sha_hex(&body);
        let headers = [("x-amz-content-sha256", right.as_str()), ("content-length", length.as_str())];
        let (st, _, resp) = raw_http(addr, "PUT", &target(pre.uri()), &headers, &body).await;
        assert_eq!(st, 200, "{key}: {}", String::from_utf8_lossy(&resp));
    }
    cluster.shutdown().await;
}

/// A body framed with `Transfer-Encoding: chunked` in pieces of `sizes`
/// (cycled), as FFmpeg and `curl -T -` send one.
fn chunked(data: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut at, mut i) = (0, 0);
    while at < data.len() {
        let n = sizes[i % sizes.len()].min(data.len() - at);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&data[at..at + n]);
        out.extend_from_slice(b"\r\n");
        at += n;
        i += 1;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// A PUT whose body has no Content-Length (chunked) is received, then
/// stored as any PUT: objects (inline and sharded) and parts; the spool
/// budget and the size limit hold; no spool file stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn puts_without_a_content_length_are_stored() {
    let spool = tempfile::tempdir().unwrap();
    let dir = spool.path().to_owned();
    let cluster = Cluster::start_with(support::Options {
        gateways: 1,
        gateway: Box::new(move |g| {
            g.spool_dir = dir.clone();
            g.spool_bytes = 8 << 20;
        }),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    let addr = cluster.gateway_addrs[0];
    c.create_bucket().bucket("chunky").send().await.unwrap();
    let te = [("transfer-encoding", "chunked")];
    for (key, len) in [("seg-small.ts", 70_001usize), ("seg-large.ts", (3 << 20) + 11)] {
        let data = bytes(len, len as u64);
        let put = c.put_object().bucket("chunky").key(key).presigned(presign()).await.unwrap();
        let (status, _, body) =
            raw_http(addr, "PUT", &target(put.uri()), &te, &chunked(&data, &[1, 8191, 65536])).await;
        assert_eq!(status, 200, "{key}: {}", String::from_utf8_lossy(&body));
        let head = c.head_object().bucket("chunky").key(key).send().await.unwrap();
        assert_eq!(head.content_length(), Some(len as i64));
        assert!(support::get_all(&c, "chunky", key).await == data, "{key} reads back");
    }
    // An empty chunked body is an empty object.
    let put = c.put_object().bucket("chunky").key("empty").presigned(presign()).await.unwrap();
    let (status, _, _) = raw_http(addr, "PUT", &target(put.uri()), &te, b"0\r\n\r\n").await;
    assert_eq!(status, 200);
    assert_eq!(c.head_object().bucket("chunky").key("empty").send().await.unwrap().content_length(), Some(0));

    // A part of a multipart upload, chunked too.
    let up = c.create_multipart_upload().bucket("chunky").key("mp").send().await.unwrap();
    let id = up.upload_id().unwrap();
    let part = bytes(5 << 20, 9);
    let pre =
        c.upload_part().bucket("chunky").key("mp").upload_id(id).part_number(1).presigned(presign()).await.unwrap();
    let (status, headers, body) = raw_http(addr, "PUT", &target(pre.uri()), &te, &chunked(&part, &[100_000])).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let etag = support::header(&headers, "etag").unwrap().to_owned();
    let done = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(etag).build())
        .build();
    c.complete_multipart_upload().bucket("chunky").key("mp").upload_id(id).multipart_upload(done).send().await.unwrap();
    assert!(support::get_all(&c, "chunky", "mp").await == part);

    // Above the spool budget (8 MiB here): 503 SlowDown, nothing stored.
    let big = bytes(9 << 20, 3);
    let put = c.put_object().bucket("chunky").key("too-big").presigned(presign()).await.unwrap();
    let (status, _, body) = raw_http(addr, "PUT", &target(put.uri()), &te, &chunked(&big, &[1 << 20])).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("<Code>SlowDown</Code>"));
    let e = c.head_object().bucket("chunky").key("too-big").send().await.unwrap_err();
    assert_eq!(support::status(&e), 404);
    // The budget is given back: the next one fits again.
    let data = bytes(6 << 20, 4);
    let put = c.put_object().bucket("chunky").key("fits").presigned(presign()).await.unwrap();
    let (status, _, _) = raw_http(addr, "PUT", &target(put.uri()), &te, &chunked(&data, &[1 << 20])).await;
    assert_eq!(status, 200);
    // A bad signature is still refused (after the body), and nothing is stored.
    let put = c.put_object().bucket("chunky").key("forged").presigned(presign()).await.unwrap();
    let t = target(put.uri());
    let at = t.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &t[at..at + 1] == "0" { "1" } else { "0" };
    let forged = format!("{}{flipped}{}", &t[..at], &t[at + 1..]);
    let (status, _, _) = raw_http(addr, "PUT", &forged, &te, &chunked(b"forged", &[3])).await;
    assert_eq!(status, 403);
    assert_eq!(support::status(&c.head_object().bucket("chunky").key("forged").send().await.unwrap_err()), 404);
    // Spool files are unlinked from the start.
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0, "a spool file stayed behind");
    cluster.shutdown().await;
}
