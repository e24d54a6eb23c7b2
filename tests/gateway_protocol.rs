//! The S3 protocol edges: SigV4 failures, presigned URLs, clock skew,
//! anonymous access, request ids, `Expect: 100-continue`, size and name
//! limits, truncated bodies, virtual-hosted-style addressing.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::operation::RequestId as _;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use support::{ACCESS_KEY, Cluster, SECRET_KEY, bytes, code, header, raw_http};

#[derive(Debug)]
struct Skewed(Duration);

impl aws_smithy_async::time::TimeSource for Skewed {
    fn now(&self) -> SystemTime {
        SystemTime::now() + self.0
    }
}

/// Splits a presigned URL into the request target (path and query).
fn target(url: &str) -> String {
    let after_scheme = url.split_once("://").unwrap().1;
    format!("/{}", after_scheme.split_once('/').unwrap().1)
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

/// SigV4 streaming uploads signed chunk by chunk
/// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, as minio-go and the older SDKs
/// send them): built by hand here, since current SDKs send unsigned chunks.
mod chunk_signing {
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Digest, Sha256};

    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        m.update(data.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    pub fn sha_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    /// `YYYYMMDDTHHMMSSZ` for a Unix time.
    pub fn amz_date(secs: u64) -> String {
        let days = (secs / 86400) as i64;
        let rem = secs % 86400;
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
    }

    /// Headers and the chunk-signed body of a PUT of `data` to `path` in
    /// chunks of `chunk` bytes; `tamper` corrupts the signature of chunk 1.
    pub fn signed_put(
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
            ("content-encoding".to_owned(), "aws-chunked".to_owned()),
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
    let put = |key: &str, data: &[u8], chunk: usize, tamper: bool| {
        chunk_signing::signed_put(&host, &format!("/chunked/{key}"), data, chunk, ACCESS_KEY, SECRET_KEY, tamper)
    };
    // Inline and sharded sizes, several chunks each.
    for (key, len) in [("small", 100_000usize), ("large", 3 * 1024 * 1024 + 11)] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let (headers, body) = put(key, &data, 64 * 1024, false);
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, _, resp) = raw_http(addr, "PUT", &format!("/chunked/{key}"), &h, &body).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
        let head = c.head_object().bucket("chunked").key(key).send().await.unwrap();
        assert_eq!(head.content_length(), Some(len as i64));
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
