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
