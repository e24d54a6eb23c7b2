//! Headers that ask for a guarantee Tessera does not give are refused, and
//! nothing is stored; the guarantees it does give on a delete (If-Match,
//! versions of an unversioned bucket, the expected bucket owner) hold.
//! aws-sdk-s3 against a real in-process cluster.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketCannedAcl, BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectCannedAcl, ObjectIdentifier,
    ObjectLockLegalHoldStatus, ObjectLockMode, ServerSideEncryption, StorageClass,
};
use support::{Cluster, code, get_all, status};

const SSE_C_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes, base64
const SSE_C_MD5: &str = "hRasmdxgYDKV3nvbahU1MA==";

/// Every refused request leaves the key as it was: `old` bytes, or absent.
async fn unchanged(c: &aws_sdk_s3::Client, key: &str, old: Option<&[u8]>) {
    match old {
        Some(b) => assert_eq!(get_all(c, "bkt", key).await, b, "{key} changed"),
        None => {
            let e = c.head_object().bucket("bkt").key(key).send().await.unwrap_err();
            assert_eq!(status(&e), 404, "{key} was stored");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unenforced_guarantees_are_refused() {
    let cluster = Cluster::start().await;
    let c = cluster.client(0);
    c.create_bucket().bucket("bkt").send().await.unwrap();
    let old = b"the bytes before".to_vec();
    c.put_object().bucket("bkt").key("exists").body(ByteStream::from(old.clone())).send().await.unwrap();
    let big = support::bytes(300 << 10, 7); // sharded, not inline

    type Put = aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
    type Case = (&'static str, Box<dyn Fn(Put) -> Put>);
    let until = DateTime::from_secs(4_102_444_800);
    let not_implemented: Vec<Case> = vec![
        // This cluster's gateways have no SSE-S3 keyring (tests/sse.rs has one).
        ("SSE-S3 without a keyring", Box::new(|p: Put| p.server_side_encryption(ServerSideEncryption::Aes256))),
        ("SSE-KMS", Box::new(|p: Put| p.server_side_encryption(ServerSideEncryption::AwsKms))),
        ("DSSE-KMS", Box::new(|p: Put| p.server_side_encryption(ServerSideEncryption::AwsKmsDsse))),
        ("KMS key id", Box::new(|p: Put| p.ssekms_key_id("arn:aws:kms:us-east-1:111122223333:key/k"))),
        ("storage class", Box::new(|p: Put| p.storage_class(StorageClass::Glacier))),
        ("website redirect", Box::new(|p: Put| p.website_redirect_location("/elsewhere"))),
    ];
    // Object lock where the bucket has none (tests/object_lock.rs has one): S3's 400.
    let no_lock: Vec<Case> = vec![
        (
            "compliance retention",
            Box::new(move |p: Put| p.object_lock_mode(ObjectLockMode::Compliance).object_lock_retain_until_date(until)),
        ),
        (
            "governance retention",
            Box::new(move |p: Put| p.object_lock_mode(ObjectLockMode::Governance).object_lock_retain_until_date(until)),
        ),
        ("legal hold", Box::new(|p: Put| p.object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On))),
    ];
    for (key, before) in [("new", None), ("exists", Some(old.as_slice()))] {
        for body in [b"small".to_vec(), big.clone()] {
            for (cases, want) in [(&not_implemented, (501, "NotImplemented")), (&no_lock, (400, "InvalidRequest"))] {
                for (what, add) in cases {
                    let put = c.put_object().bucket("bkt").key(key).body(ByteStream::from(body.clone()));
                    let e = add(put).send().await.unwrap_err();
                    assert_eq!((status(&e), code(&e).as_str()), want, "{what}, {key}, {} bytes", body.len());
                    unchanged(&c, key, before).await;
                }
            }
        }
    }

    // What Tessera gives is accepted: ACLs (tests/acl.rs), STANDARD.
    for acl in [ObjectCannedAcl::Private, ObjectCannedAcl::BucketOwnerFullControl] {
        c.put_object().bucket("bkt").key("ok").acl(acl).body(ByteStream::from_static(b"x")).send().await.unwrap();
    }
    c.put_object()
        .bucket("bkt")
        .key("ok")
        .storage_class(StorageClass::Standard)
        .body(ByteStream::from_static(b"y"))
        .send()
        .await
        .unwrap();
    assert_eq!(get_all(&c, "bkt", "ok").await, b"y");

    // Buckets: ownership by the object writer.
    let e = c
        .create_bucket()
        .bucket("writer")
        .object_ownership(aws_sdk_s3::types::ObjectOwnership::ObjectWriter)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    let e = c.head_bucket().bucket("writer").send().await.unwrap_err();
    assert_eq!(status(&e), 404, "bucket writer was created");
    c.create_bucket()
        .bucket("plain")
        .object_lock_enabled_for_bucket(false)
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    // A bucket is created in the gateway's region (us-east-1) or not at all.
    let elsewhere = CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::EuWest1).build();
    let e = c.create_bucket().bucket("eu-bucket").create_bucket_configuration(elsewhere).send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "IllegalLocationConstraintException"));
    let e = c.head_bucket().bucket("eu-bucket").send().await.unwrap_err();
    assert_eq!(status(&e), 404);

    // Multipart uploads and copies.
    let e = c
        .create_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    let e = c
        .create_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(DateTime::from_secs(4_102_444_800))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequest", "object lock on a bucket without it");
    let ups = c.list_multipart_uploads().bucket("bkt").send().await.unwrap();
    assert!(ups.uploads().is_empty(), "an upload was created: {:?}", ups.uploads());
    let e = c
        .copy_object()
        .bucket("bkt")
        .key("copy")
        .copy_source("bkt/exists")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    let e = c
        .copy_object()
        .bucket("bkt")
        .key("copy")
        .copy_source("bkt/exists")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(SSE_C_KEY)
        .copy_source_sse_customer_key_md5(SSE_C_MD5)
        .send()
        .await
        .unwrap_err();
    // The source is not SSE-C: its key parameters do not apply (AWS's answer).
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    unchanged(&c, "copy", None).await;

    // Reads that ask for SSE-C decryption of a plain object.
    let e = c
        .get_object()
        .bucket("bkt")
        .key("exists")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(SSE_C_KEY)
        .sse_customer_key_md5(SSE_C_MD5)
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));

    // A presigned PUT carrying a public ACL, sent with plain HTTP: the ACL is
    // enforced (anyone may read the object) — never stored and ignored.
    let pre = c
        .put_object()
        .bucket("bkt")
        .key("presigned")
        .acl(ObjectCannedAcl::PublicRead)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let addr: std::net::SocketAddr = cluster.endpoint(0).trim_start_matches("http://").parse().unwrap();
    let target = pre.uri().split_once(&cluster.endpoint(0)).map(|(_, t)| t.to_owned()).unwrap();
    let mut headers: Vec<(&str, &str)> = pre.headers().filter(|(h, _)| !h.eq_ignore_ascii_case("host")).collect();
    headers.push(("content-length", "5"));
    let (st, _, body) = support::raw_http(addr, "PUT", &target, &headers, b"hello").await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let (st, _, body) = support::raw_http(addr, "GET", "/bkt/presigned", &[], b"").await;
    assert_eq!((st, &body[..]), (200, &b"hello"[..]), "anonymous GET of a public-read object");

    // On a kept-alive connection, a PUT refused before its body was read is
    // answered with `Connection: close` (the unread body is still on the
    // wire) and the connection ends; a PUT that succeeds keeps it open.
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (st, headers) = keep_alive_put(&mut conn, addr, &c, "ka", false, &big).await;
    assert_eq!(st, 200);
    assert_eq!(support::header(&headers, "connection"), None);
    let (st, headers) = keep_alive_put(&mut conn, addr, &c, "ka2", true, b"hello").await;
    assert_eq!(st, 501);
    assert_eq!(support::header(&headers, "connection"), Some("close"));
    let mut rest = Vec::new();
    let n =
        tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read_to_end(&mut conn, &mut rest)).await;
    assert!(n.is_ok(), "the gateway kept the connection open");
    unchanged(&c, "ka2", None).await;
    assert_eq!(get_all(&c, "bkt", "ka").await, big);

    cluster.shutdown().await;
}

/// Sends a presigned PUT of `body` on `conn` without `Connection: close`
/// and reads one response (status, headers; the body is skipped); a
/// `refused` one asks for a storage class Tessera does not offer.
async fn keep_alive_put(
    conn: &mut tokio::net::TcpStream,
    addr: std::net::SocketAddr,
    c: &aws_sdk_s3::Client,
    key: &str,
    refused: bool,
    body: &[u8],
) -> (u16, Vec<(String, String)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pre = c
        .put_object()
        .bucket("bkt")
        .key(key)
        .set_storage_class(refused.then_some(StorageClass::Glacier))
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let target = pre.uri().split_once(&format!("http://{addr}")).map(|(_, t)| t.to_owned()).unwrap();
    let mut head = format!("PUT {target} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n", body.len());
    for (h, v) in pre.headers() {
        if !h.eq_ignore_ascii_case("host") {
            head.push_str(&format!("{h}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await.unwrap();
    // The gateway may answer (and stop reading) before the body is sent.
    let _ = conn.write_all(body).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let (st, headers, _) = support::parse_response(&got[..end + 4]);
            let len: usize = support::header(&headers, "content-length").map_or(0, |v| v.parse().unwrap());
            while got.len() < end + 4 + len {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed mid-response");
                got.extend_from_slice(&buf[..n]);
            }
            return (st, headers);
        }
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a response");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_deletes_versions_and_expected_owner() {
    let cluster = Cluster::start().await;
    let c = cluster.client(0);
    let c2 = cluster.client(1);
    c.create_bucket().bucket("bkt").send().await.unwrap();
    let put = |key: &'static str, body: &'static [u8]| {
        let c = c.clone();
        async move {
            let r = c.put_object().bucket("bkt").key(key).body(ByteStream::from_static(body)).send().await.unwrap();
            r.e_tag().unwrap().to_owned()
        }
    };

    // DeleteObject with If-Match: a stale ETag is 412 and the object stays;
    // the current one deletes; a missing key is 404 NoSuchKey; `*` needs
    // the key to exist.
    let first = put("k", b"one").await;
    let second = put("k", b"two").await;
    let e = c.delete_object().bucket("bkt").key("k").if_match(&first).send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (412, "PreconditionFailed"));
    assert_eq!(get_all(&c2, "bkt", "k").await, b"two");
    c2.delete_object().bucket("bkt").key("k").if_match(&second).send().await.unwrap();
    let e = c.head_object().bucket("bkt").key("k").send().await.unwrap_err();
    assert_eq!(status(&e), 404);
    let e = c.delete_object().bucket("bkt").key("k").if_match(&second).send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchKey"));
    let e = c.delete_object().bucket("bkt").key("k").if_match("*").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    put("k", b"three").await;
    c.delete_object().bucket("bkt").key("k").if_match("*").send().await.unwrap();
    let e = c.head_object().bucket("bkt").key("k").send().await.unwrap_err();
    assert_eq!(status(&e), 404);
    // Without a condition, deleting a missing key still succeeds.
    c.delete_object().bucket("bkt").key("k").send().await.unwrap();

    // DeleteObjects with an ETag per key.
    let ea = put("a", b"a").await;
    put("b", b"b").await;
    put("c", b"c").await;
    let objs = vec![
        ObjectIdentifier::builder().key("a").e_tag(&ea).build().unwrap(),
        ObjectIdentifier::builder().key("b").e_tag(&ea).build().unwrap(),
        ObjectIdentifier::builder().key("c").build().unwrap(),
        ObjectIdentifier::builder().key("gone").e_tag(&ea).build().unwrap(),
    ];
    let r = c
        .delete_objects()
        .bucket("bkt")
        .delete(Delete::builder().set_objects(Some(objs)).build().unwrap())
        .send()
        .await
        .unwrap();
    let mut deleted: Vec<&str> = r.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(deleted, ["a", "c"]);
    let mut errors: Vec<(&str, &str)> = r.errors().iter().map(|e| (e.key().unwrap(), e.code().unwrap())).collect();
    errors.sort();
    assert_eq!(errors, [("b", "PreconditionFailed"), ("gone", "NoSuchKey")]);
    assert_eq!(get_all(&c, "bkt", "b").await, b"b");

    // Versions: buckets are unversioned, so the one version is "null".
    put("v", b"versioned?").await;
    assert_eq!(
        c.get_object()
            .bucket("bkt")
            .key("v")
            .version_id("null")
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .to_vec(),
        b"versioned?"
    );
    c.head_object().bucket("bkt").key("v").version_id("null").send().await.unwrap();
    // A copy source may name the null version too.
    c.copy_object().bucket("bkt").key("v-copy").copy_source("bkt/v?versionId=null").send().await.unwrap();
    assert_eq!(get_all(&c, "bkt", "v-copy").await, b"versioned?");
    for v in ["3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", "1"] {
        let e = c.get_object().bucket("bkt").key("v").version_id(v).send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidArgument");
        let src = format!("bkt/v?versionId={v}");
        let e = c.copy_object().bucket("bkt").key("v-copy2").copy_source(src).send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidArgument");
        let e = c.delete_object().bucket("bkt").key("v").version_id(v).send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidArgument");
        assert_eq!(get_all(&c, "bkt", "v").await, b"versioned?");
    }
    c.delete_object().bucket("bkt").key("v").version_id("null").send().await.unwrap();
    let e = c.head_object().bucket("bkt").key("v").send().await.unwrap_err();
    assert_eq!(status(&e), 404);

    // x-amz-expected-bucket-owner: the owner is the key that created the bucket.
    put("o", b"owned").await;
    let me = support::ACCESS_KEY;
    c.get_object().bucket("bkt").key("o").expected_bucket_owner(me).send().await.unwrap();
    c.head_bucket().bucket("bkt").expected_bucket_owner(me).send().await.unwrap();
    let e = c.get_object().bucket("bkt").key("o").expected_bucket_owner("111122223333").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (403, "AccessDenied"));
    let e = c.delete_object().bucket("bkt").key("o").expected_bucket_owner("111122223333").send().await.unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = c
        .put_object()
        .bucket("bkt")
        .key("o")
        .expected_bucket_owner("111122223333")
        .body(ByteStream::from_static(b"overwritten"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = c
        .copy_object()
        .bucket("bkt")
        .key("o2")
        .copy_source("bkt/o")
        .expected_source_bucket_owner("111122223333")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    c.copy_object().bucket("bkt").key("o2").copy_source("bkt/o").expected_source_bucket_owner(me).send().await.unwrap();
    assert_eq!(get_all(&c, "bkt", "o").await, b"owned");
    assert_eq!(get_all(&c, "bkt", "o2").await, b"owned");

    cluster.shutdown().await;
}
