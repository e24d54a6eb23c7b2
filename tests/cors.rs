//! CORS end to end (aws-sdk-s3 and plain HTTP against an in-process
//! cluster): a bucket's rules answer browsers' preflights (no signature),
//! and actual responses to an allowed origin carry the CORS headers — for
//! a player on another origin range-reading a public bucket.

#![allow(clippy::unwrap_used)]

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use support::{Cluster, code, header, raw_http};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn preflights_and_responses_follow_the_bucket_rules() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let addr = cluster.gateway_addrs[0];
    let c = cluster.client(0);
    c.create_bucket().bucket("vod").send().await.unwrap();
    let seg = support::bytes(200_000, 5);
    c.put_object().bucket("vod").key("hls/seg1.ts").body(ByteStream::from(seg.clone())).send().await.unwrap();
    let public = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::vod/*"}]}"#;
    c.put_bucket_policy().bucket("vod").policy(public).send().await.unwrap();
    let player = "https://player.example";
    let preflight = |origin: &'static str, method: &'static str, headers: &'static str| async move {
        let mut h = vec![("origin", origin), ("access-control-request-method", method)];
        if !headers.is_empty() {
            h.push(("access-control-request-headers", headers));
        }
        raw_http(addr, "OPTIONS", "/vod/hls/seg1.ts", &h, b"").await
    };

    // No configuration yet: refused, and GetBucketCors says none.
    let (status, _, body) = preflight(player, "GET", "").await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("CORS is not enabled"));
    assert_eq!(code(&c.get_bucket_cors().bucket("vod").send().await.unwrap_err()), "NoSuchCORSConfiguration");
    // A bad configuration is refused.
    let bad = CorsConfiguration::builder()
        .cors_rules(CorsRule::builder().allowed_origins("*").allowed_methods("FLY").build().unwrap())
        .build()
        .unwrap();
    let e = c.put_bucket_cors().bucket("vod").cors_configuration(bad).send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidRequest");

    let rules = support::player_cors(player);
    c.put_bucket_cors().bucket("vod").cors_configuration(rules).send().await.unwrap();
    let got = c.get_bucket_cors().bucket("vod").send().await.unwrap();
    let r = &got.cors_rules()[0];
    assert_eq!(
        (r.id(), r.allowed_methods(), r.max_age_seconds()),
        (Some("players"), &["GET".to_owned(), "HEAD".to_owned()][..], Some(600))
    );

    // The player's preflight for a range GET: allowed, with the headers a browser checks.
    let (status, h, _) = preflight(player, "GET", "Range").await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "access-control-allow-origin"), Some(player));
    assert_eq!(header(&h, "access-control-allow-methods"), Some("GET, HEAD"));
    assert_eq!(header(&h, "access-control-allow-headers"), Some("range"));
    assert_eq!(header(&h, "access-control-max-age"), Some("600"));
    // Another origin, a method or a header the rule does not allow: refused.
    for (origin, method, headers) in
        [("https://evil.example", "GET", ""), (player, "PUT", ""), (player, "GET", "authorization")]
    {
        let (status, h, body) = preflight(origin, method, headers).await;
        assert_eq!(status, 403, "{origin} {method} {headers}: {}", String::from_utf8_lossy(&body));
        assert!(header(&h, "access-control-allow-origin").is_none());
    }

    // The actual anonymous range GET from the player's page: the bytes and the CORS headers.
    let (status, h, body) =
        raw_http(addr, "GET", "/vod/hls/seg1.ts", &[("origin", player), ("range", "bytes=0-999")], b"").await;
    assert_eq!((status, &body[..]), (206, &seg[..1000]));
    assert_eq!(header(&h, "access-control-allow-origin"), Some(player));
    assert_eq!(header(&h, "access-control-expose-headers"), Some("ETag, Content-Range"));
    // From another origin: served (the policy allows it) but without CORS
    // headers, so the browser keeps the answer from the page.
    let (status, h, _) = raw_http(addr, "GET", "/vod/hls/seg1.ts", &[("origin", "https://evil.example")], b"").await;
    assert_eq!(status, 200);
    assert!(header(&h, "access-control-allow-origin").is_none());

    c.delete_bucket_cors().bucket("vod").send().await.unwrap();
    let (status, _, _) = preflight(player, "GET", "").await;
    assert_eq!(status, 403, "no CORS after DeleteBucketCors");
    cluster.shutdown().await;
}
