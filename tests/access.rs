//! Access control end to end (aws-sdk-s3 and plain HTTP against an
//! in-process cluster): a bucket belongs to the key that created it; other
//! keys and anonymous requests get AccessDenied unless the bucket policy
//! allows them; an explicit Deny beats everything but the owner's control
//! of the policy itself; the root key is never locked out; every refusal
//! stores nothing.

#![allow(clippy::unwrap_used)]

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use support::{Cluster, add_key, code, denied, get_all, header, raw_http};
use tessera_rpc::proto::meta::Command;
use tessera_rpc::proto::meta::command::Op;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owners_policies_anonymous_readers_and_denies() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let addr = cluster.gateway_addrs[0];
    let owner = cluster.client(0);
    let other = add_key(&cluster, "OTHERKEY0000000000001", "other-secret-0000000000000000", false).await;
    let root = add_key(&cluster, "ROOTKEY00000000000001", "root-secret-00000000000000000", true).await;
    owner.create_bucket().bucket("media").send().await.unwrap();
    let seg = support::bytes(300_000, 1);
    owner.put_object().bucket("media").key("live/seg1.ts").body(ByteStream::from(seg.clone())).send().await.unwrap();

    // Another key: nothing in someone else's bucket, and it does not see it listed.
    denied(other.get_object().bucket("media").key("live/seg1.ts").send().await);
    let e = other.head_object().bucket("media").key("live/seg1.ts").send().await.unwrap_err();
    assert_eq!(support::status(&e), 403, "HEAD answers 403 without a body");
    denied(other.put_object().bucket("media").key("x").body(ByteStream::from_static(b"x")).send().await);
    denied(other.list_objects_v2().bucket("media").send().await);
    denied(other.delete_object().bucket("media").key("live/seg1.ts").send().await);
    denied(other.get_bucket_policy().bucket("media").send().await);
    let listed = other.list_buckets().send().await.unwrap();
    assert!(listed.buckets().is_empty(), "{listed:?}");
    other.create_bucket().bucket("others").send().await.unwrap();
    let names: Vec<String> =
        root.list_buckets().send().await.unwrap().buckets().iter().map(|b| b.name().unwrap().to_owned()).collect();
    assert_eq!(names, ["media", "others"], "the root key sees every bucket");
    assert!(get_all(&root, "media", "live/seg1.ts").await == seg, "the root key reads everything");
    // Anonymous: refused.
    let (status, _, body) = raw_http(addr, "GET", "/media/live/seg1.ts", &[], b"").await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("<Code>AccessDenied</Code>"));

    // A bad policy is refused; the owner makes the bucket public-read.
    for bad in [
        "{",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::others/*"}]}"#,
    ] {
        let e = owner.put_bucket_policy().bucket("media").policy(bad).send().await.unwrap_err();
        assert_eq!(code(&e), "MalformedPolicy", "{bad}");
    }
    let public = r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::media/*"]}]}"#;
    denied(other.put_bucket_policy().bucket("media").policy(public).send().await);
    owner.put_bucket_policy().bucket("media").policy(public).send().await.unwrap();
    assert_eq!(owner.get_bucket_policy().bucket("media").send().await.unwrap().policy(), Some(public));
    let status = owner.get_bucket_policy_status().bucket("media").send().await.unwrap();
    assert_eq!(status.policy_status().and_then(|s| s.is_public()), Some(true));

    // A player without keys: GET, HEAD and ranges; nothing else.
    let (status, _, body) = raw_http(addr, "GET", "/media/live/seg1.ts", &[], b"").await;
    assert_eq!(status, 200);
    assert!(body == seg);
    let (status, headers, _) = raw_http(addr, "HEAD", "/media/live/seg1.ts", &[], b"").await;
    assert_eq!((status, header(&headers, "content-length")), (200, Some("300000")));
    let (status, _, body) = raw_http(addr, "GET", "/media/live/seg1.ts", &[("range", "bytes=100-199")], b"").await;
    assert_eq!((status, &body[..]), (206, &seg[100..200]));
    for (method, target, body) in [
        ("PUT", "/media/live/seg2.ts", &b"evil"[..]),
        ("GET", "/media?list-type=2", &b""[..]),
        ("DELETE", "/media/live/seg1.ts", &b""[..]),
        ("GET", "/media?policy", &b""[..]),
        ("GET", "/", &b""[..]),
    ] {
        let len = body.len().to_string();
        let (status, _, text) = raw_http(addr, method, target, &[("content-length", &len)], body).await;
        assert_eq!(status, 403, "{method} {target}: {}", String::from_utf8_lossy(&text));
    }
    let e = owner.head_object().bucket("media").key("live/seg2.ts").send().await.unwrap_err();
    assert_eq!(support::status(&e), 404, "the refused PUT stored nothing");
    // Another key reads through the policy too, and still cannot write.
    assert!(get_all(&other, "media", "live/seg1.ts").await == seg);
    denied(other.put_object().bucket("media").key("live/seg2.ts").body(ByteStream::from_static(b"x")).send().await);
    // It may copy what it may read into its own bucket, not from a bucket it cannot read.
    other.copy_object().bucket("others").key("copy.ts").copy_source("media/live/seg1.ts").send().await.unwrap();
    owner.create_bucket().bucket("private").send().await.unwrap();
    owner.put_object().bucket("private").key("p").body(ByteStream::from_static(b"secret")).send().await.unwrap();
    denied(other.copy_object().bucket("others").key("stolen").copy_source("private/p").send().await);

    // A key limited by the policy to one prefix: list, and write under uploads/ only.
    let scoped = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::media/*"},
            {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:user/OTHERKEY0000000000001"]},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::media"},
            {"Effect":"Allow","Principal":{"AWS":"OTHERKEY0000000000001"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::media/uploads/${aws:username}/*"},
            {"Sid":"NoDeletes","Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::media/live/*"}]}"#;
    owner.put_bucket_policy().bucket("media").policy(scoped).send().await.unwrap();
    other.list_objects_v2().bucket("media").send().await.unwrap();
    other
        .put_object()
        .bucket("media")
        .key("uploads/OTHERKEY0000000000001/a.ts")
        .body(ByteStream::from_static(b"mine"))
        .send()
        .await
        .unwrap();
    denied(
        other.put_object().bucket("media").key("uploads/someone/a.ts").body(ByteStream::from_static(b"x")).send().await,
    );

    // The explicit Deny beats the owner's own rights; a multi-delete is
    // decided per key; the owner keeps control of the policy.
    denied(owner.delete_object().bucket("media").key("live/seg1.ts").send().await);
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("live/seg1.ts").build().unwrap())
        .objects(ObjectIdentifier::builder().key("uploads/OTHERKEY0000000000001/a.ts").build().unwrap())
        .build()
        .unwrap();
    let r = owner.delete_objects().bucket("media").delete(delete).send().await.unwrap();
    let deleted: Vec<&str> = r.deleted().iter().map(|d| d.key().unwrap()).collect();
    let errors: Vec<(&str, &str)> = r.errors().iter().map(|e| (e.key().unwrap(), e.code().unwrap())).collect();
    assert_eq!(deleted, ["uploads/OTHERKEY0000000000001/a.ts"]);
    assert_eq!(errors, [("live/seg1.ts", "AccessDenied")]);
    assert!(get_all(&owner, "media", "live/seg1.ts").await == seg, "the denied key is still there");
    owner.delete_bucket_policy().bucket("media").send().await.unwrap();
    let e = owner.get_bucket_policy().bucket("media").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchBucketPolicy");
    owner.delete_object().bucket("media").key("live/seg1.ts").send().await.unwrap();

    // Conditions on the request: a network the client is not in.
    let office = |net: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::private","arn:aws:s3:::private/*"],"Condition":{{"NotIpAddress":{{"aws:SourceIp":"{net}"}}}}}}]}}"#
        )
    };
    owner.put_bucket_policy().bucket("private").policy(office("127.0.0.0/8")).send().await.unwrap();
    assert_eq!(get_all(&owner, "private", "p").await, b"secret");
    owner.put_bucket_policy().bucket("private").policy(office("10.0.0.0/8")).send().await.unwrap();
    denied(owner.get_object().bucket("private").key("p").send().await);
    owner.delete_bucket_policy().bucket("private").send().await.unwrap();
    assert_eq!(get_all(&owner, "private", "p").await, b"secret");
    cluster.shutdown().await;
}

/// The audit log: one JSON line per S3 request, naming the request, who,
/// from where, what and how it ended; no secret or signature in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_request_leaves_one_audit_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let path = log.clone();
    let cluster = Cluster::start_with(support::Options {
        gateways: 1,
        gateway: Box::new(move |g| g.audit_log = Some(path.clone())),
        ..Default::default()
    })
    .await;
    let addr = cluster.gateway_addrs[0];
    let c = cluster.client(0);
    c.create_bucket().bucket("audited").send().await.unwrap();
    let put = c.put_object().bucket("audited").key("a b.ts").body(ByteStream::from(vec![7u8; 12_345])).send();
    put.await.unwrap();
    assert_eq!(get_all(&c, "audited", "a b.ts").await.len(), 12_345);
    let (status, headers, _) = raw_http(addr, "GET", "/audited/a%20b.ts", &[], b"").await;
    assert_eq!(status, 403);
    let denied_id = header(&headers, "x-amz-request-id").unwrap().to_owned();
    // Lines are written when the response ends: wait for the fourth.
    let start = std::time::Instant::now();
    let text = loop {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        if t.lines().count() >= 4 || start.elapsed() > std::time::Duration::from_secs(10) {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4, "{text}");
    let ops: Vec<&str> = lines.iter().map(|l| l["operation"].as_str().unwrap()).collect();
    assert_eq!(ops, ["CreateBucket", "PutObject", "GetObject", "GetObject"]);
    let put = &lines[1];
    assert_eq!(put["principal"], support::ACCESS_KEY);
    assert_eq!((put["bucket"].as_str(), put["key"].as_str()), (Some("audited"), Some("a%20b.ts")));
    assert_eq!((put["status"].as_u64(), put["bytes_in"].as_u64().unwrap() >= 12_345), (Some(200), true));
    assert_eq!(put["source_ip"], "127.0.0.1");
    assert_eq!(lines[2]["bytes_out"].as_u64(), Some(12_345));
    let denied = &lines[3];
    assert_eq!((denied["principal"].as_str(), denied["status"].as_u64()), (Some("anonymous"), Some(403)));
    assert_eq!(denied["request_id"], denied_id.as_str());
    assert!(!text.contains(support::SECRET_KEY) && !text.contains("Signature"), "{text}");
    cluster.shutdown().await;
}

/// The public access block overrides a public policy: RestrictPublicBuckets
/// takes the public grant back from anyone but the owner, BlockPublicPolicy
/// refuses a public policy; deleting the block restores the policy's effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_public_access_block_overrides_a_public_policy() {
    use aws_sdk_s3::types::PublicAccessBlockConfiguration;
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let addr = cluster.gateway_addrs[0];
    let owner = cluster.client(0);
    owner.create_bucket().bucket("pab").send().await.unwrap();
    owner.put_object().bucket("pab").key("seg").body(ByteStream::from_static(b"bytes")).send().await.unwrap();
    let e = owner.get_public_access_block().bucket("pab").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchPublicAccessBlockConfiguration");
    let public = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pab/*"}]}"#;
    owner.put_bucket_policy().bucket("pab").policy(public).send().await.unwrap();
    assert_eq!(raw_http(addr, "GET", "/pab/seg", &[], b"").await.0, 200);

    let block = |restrict: bool, policy: bool| {
        PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(policy)
            .restrict_public_buckets(restrict)
            .build()
    };
    owner
        .put_public_access_block()
        .bucket("pab")
        .public_access_block_configuration(block(true, false))
        .send()
        .await
        .unwrap();
    let got = owner.get_public_access_block().bucket("pab").send().await.unwrap();
    let c = got.public_access_block_configuration().unwrap();
    assert_eq!(
        (c.restrict_public_buckets(), c.block_public_policy(), c.block_public_acls()),
        (Some(true), Some(false), Some(true))
    );
    assert_eq!(raw_http(addr, "GET", "/pab/seg", &[], b"").await.0, 403, "restricted: no anonymous read");
    assert_eq!(get_all(&owner, "pab", "seg").await, b"bytes", "the owner still reads");

    owner
        .put_public_access_block()
        .bucket("pab")
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .unwrap();
    let e = owner.put_bucket_policy().bucket("pab").policy(public).send().await.unwrap_err();
    assert_eq!(code(&e), "AccessDenied", "BlockPublicPolicy refuses a public policy");
    let private = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"SOMEKEY0000000000001"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::pab/*"}]}"#;
    owner.put_bucket_policy().bucket("pab").policy(private).send().await.unwrap();
    owner.put_bucket_policy().bucket("pab").policy(public.replace("pab/*", "pab/x")).send().await.unwrap_err();

    owner.delete_public_access_block().bucket("pab").send().await.unwrap();
    owner.put_bucket_policy().bucket("pab").policy(public).send().await.unwrap();
    assert_eq!(raw_http(addr, "GET", "/pab/seg", &[], b"").await.0, 200, "public again without the block");
    cluster.shutdown().await;
}

/// A flood from one key gets 503 SlowDown while another key is served;
/// a per-IP limit slows every client at one address, anonymous ones too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flooding_key_is_slowed_down_and_others_are_served() {
    let cluster = Cluster::start_with(support::Options {
        gateways: 2,
        gateway: Box::new(|g| {
            if g.md5 == tessera_gateway::Md5Mode::Inline {
                g.rate_per_ip = 5.0; // gateway 1: per address
            } else {
                g.rate_per_key = 5.0; // gateway 0: per key
            }
        }),
        ..Default::default()
    })
    .await;
    // No SDK retries: they would turn each SlowDown into a later success.
    let conf = aws_sdk_s3::Config::builder()
        .endpoint_url(cluster.endpoint(0))
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            support::ACCESS_KEY,
            support::SECRET_KEY,
            None,
            None,
            "tests",
        ))
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .force_path_style(true)
        .build();
    let flooder = aws_sdk_s3::Client::from_conf(conf);
    let calm = add_key(&cluster, "CALMKEY00000000000001", "calm-secret-00000000000000000", false).await;
    flooder.create_bucket().bucket("flood").send().await.unwrap();
    let mut slowed = 0;
    for _ in 0..40 {
        match flooder.head_bucket().bucket("flood").send().await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(support::status(&e), 503);
                slowed += 1;
            }
        }
    }
    assert!(slowed >= 20, "only {slowed} of 40 requests slowed down");
    // The other key has its own budget.
    calm.list_buckets().send().await.unwrap();
    // Per address: anonymous requests from here are slowed down too.
    let addr = cluster.gateway_addrs[1];
    let mut codes = Vec::new();
    for _ in 0..30 {
        codes.push(raw_http(addr, "GET", "/flood/x", &[], b"").await.0);
    }
    assert!(codes.iter().filter(|c| **c == 503).count() >= 15, "{codes:?}");
    assert!(codes.contains(&403), "within the budget the request is decided as usual: {codes:?}");
    cluster.shutdown().await;
}

/// Identity policies attached to keys: a key limited to one bucket cannot
/// list, write or create others; a read-only key cannot PUT or DELETE; an
/// identity Deny beats a bucket policy's Allow; a disabled or expired key
/// is refused as an unknown one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_limited_by_their_policies() {
    use tessera_rpc::proto::meta::{PolicyRecord, PutPolicy, UpdateAccessKey};
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let admin = add_key(&cluster, "ADMINKEY0000000000001", "admin-secret-0000000000000000", true).await;
    let meta = &cluster.meta_client;
    let write = |op: Op| async move {
        let r = meta.write(Command { now_ms: 0, op: Some(op) }).await.unwrap();
        assert!(!matches!(r.outcome, Some(tessera_rpc::proto::meta::command_result::Outcome::Failure(_))), "{r:?}");
    };
    let policy = |name: &str, doc: &str| {
        Op::PutPolicy(PutPolicy {
            policy: Some(PolicyRecord { name: name.into(), document: doc.into(), created_ms: 0 }),
        })
    };
    let attach = |key: &str, names: &[&str], disabled: bool, expires_ms: u64| {
        Op::UpdateAccessKey(UpdateAccessKey {
            access_key_id: key.into(),
            policies: names.iter().map(|n| (*n).to_owned()).collect(),
            disabled,
            expires_ms,
        })
    };
    write(policy(
        "team-only",
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::team","arn:aws:s3:::team/*"]},
            {"Effect":"Deny","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::team/keep/*"}]}"#,
    ))
    .await;
    write(policy(
        "read-only",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket","s3:ListAllMyBuckets"],"Resource":"*"}]}"#,
    ))
    .await;
    for b in ["team", "other"] {
        admin.create_bucket().bucket(b).send().await.unwrap();
        admin.put_object().bucket(b).key("keep/x").body(ByteStream::from_static(b"x")).send().await.unwrap();
    }
    let app = add_key(&cluster, "APPKEY000000000000001", "app-secret-000000000000000000", false).await;
    let reader = add_key(&cluster, "READERKEY000000000001", "reader-secret-000000000000000", false).await;
    write(attach("APPKEY000000000000001", &["team-only", "no-such-policy"], false, 0)).await;
    write(attach("READERKEY000000000001", &["read-only"], false, 0)).await;

    // The team key: everything in "team" (owned by another key), nothing elsewhere.
    app.put_object().bucket("team").key("a").body(ByteStream::from_static(b"a")).send().await.unwrap();
    app.list_objects_v2().bucket("team").send().await.unwrap();
    app.delete_object().bucket("team").key("a").send().await.unwrap();
    denied(app.delete_object().bucket("team").key("keep/x").send().await);
    denied(app.list_objects_v2().bucket("other").send().await);
    denied(app.put_object().bucket("other").key("a").body(ByteStream::from_static(b"a")).send().await);
    denied(app.get_object().bucket("other").key("keep/x").send().await);
    denied(app.create_bucket().bucket("mine").send().await);
    denied(app.list_buckets().send().await);
    // The reader: reads anywhere, writes nowhere.
    assert_eq!(get_all(&reader, "other", "keep/x").await, b"x");
    reader.list_buckets().send().await.unwrap();
    denied(reader.put_object().bucket("team").key("b").body(ByteStream::from_static(b"b")).send().await);
    denied(reader.delete_object().bucket("other").key("keep/x").send().await);
    denied(reader.create_bucket().bucket("readers").send().await);
    // The identity Deny beats a bucket policy that allows everyone to delete.
    let open = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::team/*"}]}"#;
    admin.put_bucket_policy().bucket("team").policy(open).send().await.unwrap();
    denied(app.delete_object().bucket("team").key("keep/x").send().await);
    reader.delete_object().bucket("team").key("keep/y").send().await.unwrap();

    // Disabled, then expired: refused as unknown keys (after the key cache's 5 s).
    write(attach("READERKEY000000000001", &["read-only"], true, 0)).await;
    write(attach("APPKEY000000000000001", &["team-only"], false, 1)).await;
    tokio::time::sleep(tessera_gateway::KEY_TTL + std::time::Duration::from_millis(200)).await;
    for c in [&reader, &app] {
        let e = c.list_objects_v2().bucket("team").send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidAccessKeyId");
    }
    // The root key cannot be disabled.
    let r = meta.write(Command { now_ms: 0, op: Some(attach("ADMINKEY0000000000001", &[], true, 0)) }).await.unwrap();
    assert!(matches!(r.outcome, Some(tessera_rpc::proto::meta::command_result::Outcome::Failure(_))));
    cluster.shutdown().await;
}

/// A stored policy that does not parse (written around the gateway's
/// checks, or by an older version) closes what it governs rather than
/// opening it: it might have been a Deny.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policies_that_do_not_parse_fail_closed() {
    use tessera_rpc::proto::meta::{PolicyRecord, PutPolicy, SetBucketPolicy, UpdateAccessKey};
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let owner = cluster.client(0);
    owner.create_bucket().bucket("broken").send().await.unwrap();
    owner.put_object().bucket("broken").key("k").body(ByteStream::from_static(b"k")).send().await.unwrap();
    let write = |op: Op| cluster.meta_client.write(Command { now_ms: 0, op: Some(op) });
    write(Op::SetBucketPolicy(SetBucketPolicy { bucket: "broken".into(), policy: "{ not json".into() })).await.unwrap();
    // Written around this gateway: it sees the change once its cache entry ages out.
    tokio::time::sleep(tessera_gateway::BUCKET_TTL + std::time::Duration::from_millis(200)).await;
    denied(owner.get_object().bucket("broken").key("k").send().await);
    // The owner can still remove it, and then reads again.
    owner.delete_bucket_policy().bucket("broken").send().await.unwrap();
    assert_eq!(get_all(&owner, "broken", "k").await, b"k");

    let app = add_key(&cluster, "BROKENKEY000000000001", "broken-secret-000000000000000", false).await;
    let allow_all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    for (name, doc) in [("all", allow_all), ("garbage", "[1,2")] {
        let p = PolicyRecord { name: name.into(), document: doc.into(), created_ms: 0 };
        write(Op::PutPolicy(PutPolicy { policy: Some(p) })).await.unwrap();
    }
    let attach = |names: &[&str]| {
        Op::UpdateAccessKey(UpdateAccessKey {
            access_key_id: "BROKENKEY000000000001".into(),
            policies: names.iter().map(|n| (*n).to_owned()).collect(),
            disabled: false,
            expires_ms: 0,
        })
    };
    write(attach(&["all", "garbage"])).await.unwrap();
    denied(app.create_bucket().bucket("apps").send().await);
    denied(app.get_object().bucket("broken").key("k").send().await);
    cluster.shutdown().await;
}
