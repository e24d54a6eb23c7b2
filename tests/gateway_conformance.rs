//! S3 behaviour as AWS documents it, for the details real clients and
//! caches depend on: bucket creation answers, conditional-read headers,
//! ranges HTTP says to ignore, empty delimiters. aws-sdk-s3 against a real
//! in-process cluster.

#![allow(clippy::unwrap_used)]

mod support;

use aws_sdk_s3::primitives::ByteStream;
use support::{Cluster, code, status};
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::{AccessKeyRecord, Command, CreateAccessKey};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buckets_conditionals_ranges_and_delimiters() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);

    // CreateBucket: 200 again for the owner (us-east-1), BucketAlreadyExists
    // (409) for anyone else.
    c.create_bucket().bucket("conf").send().await.unwrap();
    c.create_bucket().bucket("conf").send().await.unwrap();
    let other = AccessKeyRecord {
        access_key_id: "OTHERKEY000000000001".into(),
        secret_key: "other-secret-key-000000000000000000000000".into(),
        created_ms: 0,
        description: "another user".into(),
        root: false,
        policies: Vec::new(),
        disabled: false,
        expires_ms: 0,
    };
    let cmd = Command { now_ms: 0, op: Some(Op::CreateAccessKey(CreateAccessKey { key: Some(other.clone()) })) };
    cluster.meta_client.write(cmd).await.unwrap();
    let c2 = cluster.client_with(0, &other.access_key_id, &other.secret_key);
    let e = c2.create_bucket().bucket("conf").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (409, "BucketAlreadyExists"));

    // 304 and 412 name the object: ETag and Last-Modified.
    let data = support::bytes(1000, 3);
    let put = c.put_object().bucket("conf").key("k").body(ByteStream::from(data.clone())).send().await.unwrap();
    let etag = put.e_tag().unwrap().to_owned();
    let head = c.head_object().bucket("conf").key("k").send().await.unwrap();
    let last_modified = head.last_modified().unwrap().fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate).unwrap();
    let e = c.get_object().bucket("conf").key("k").if_none_match(&etag).send().await.unwrap_err();
    let e412 = c.get_object().bucket("conf").key("k").if_match("\"0000\"").send().await.unwrap_err();
    let h304 = c.head_object().bucket("conf").key("k").if_none_match(&etag).send().await.unwrap_err();
    for (e, want) in
        [(e.raw_response().unwrap(), 304), (e412.raw_response().unwrap(), 412), (h304.raw_response().unwrap(), 304)]
    {
        assert_eq!(e.status().as_u16(), want);
        assert_eq!(e.headers().get("etag"), Some(etag.as_str()), "{want}");
        assert_eq!(e.headers().get("last-modified"), Some(last_modified.as_str()), "{want}");
    }

    // A Range header that is not one valid byte range is ignored: 200 and
    // the whole object (here on a presigned URL, as a player sends it; a
    // range the signature covers cannot be dropped). A valid one that
    // cannot be satisfied is 416.
    let pre = c
        .get_object()
        .bucket("conf")
        .key("k")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let addr: std::net::SocketAddr = cluster.endpoint(0).trim_start_matches("http://").parse().unwrap();
    let target = pre.uri().split_once(&cluster.endpoint(0)).map(|(_, t)| t.to_owned()).unwrap();
    for r in ["bytes=5-2", "bytes=0-1,4-5", "bytes=x-y", "items=0-1"] {
        let (st, headers, body) = support::raw_http(addr, "GET", &target, &[("range", r)], b"").await;
        assert_eq!(st, 200, "{r}: {}", String::from_utf8_lossy(&body));
        assert_eq!(support::header(&headers, "content-range"), None, "{r}");
        assert_eq!(body, data, "{r}");
    }
    let (st, headers, body) = support::raw_http(addr, "GET", &target, &[("range", "bytes=2-5")], b"").await;
    assert_eq!((st, support::header(&headers, "content-range")), (206, Some("bytes 2-5/1000")));
    assert_eq!(body, data[2..=5]);
    let e = c.get_object().bucket("conf").key("k").range("bytes=1000-").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (416, "InvalidRange"));

    // An empty delimiter is no delimiter: every key listed, none grouped,
    // and no Delimiter element in the answer.
    c.put_object().bucket("conf").key("a/b").body(ByteStream::from_static(b"x")).send().await.unwrap();
    let l = c.list_objects_v2().bucket("conf").delimiter("").send().await.unwrap();
    assert_eq!(l.delimiter(), None);
    assert!(l.common_prefixes().is_empty());
    assert_eq!(l.contents().len(), 2);
    let l = c.list_objects().bucket("conf").delimiter("").send().await.unwrap();
    assert_eq!(l.delimiter(), None);
    assert_eq!(l.contents().len(), 2);
    let l = c.list_objects_v2().bucket("conf").delimiter("/").send().await.unwrap();
    assert_eq!(l.delimiter(), Some("/"));
    assert_eq!(l.common_prefixes().len(), 1);

    // ListBuckets pages (max-buckets, continuation-token), filters by
    // prefix and by region.
    for b in ["pa-1", "pa-2", "pa-3", "pa-4", "pa-5", "pb-1"] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let r = c.list_buckets().max_buckets(2).set_continuation_token(token.clone()).send().await.unwrap();
        assert!(r.buckets().len() <= 2);
        names.extend(r.buckets().iter().map(|b| b.name().unwrap().to_owned()));
        token = r.continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names, ["conf", "pa-1", "pa-2", "pa-3", "pa-4", "pa-5", "pb-1"]);
    let r = c.list_buckets().prefix("pa-").max_buckets(3).send().await.unwrap();
    let got: Vec<&str> = r.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!((got, r.prefix()), (vec!["pa-1", "pa-2", "pa-3"], Some("pa-")));
    let r = c.list_buckets().prefix("pa-").continuation_token(r.continuation_token().unwrap()).send().await.unwrap();
    let got: Vec<&str> = r.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!((got, r.continuation_token()), (vec!["pa-4", "pa-5"], None));
    assert!(c.list_buckets().bucket_region("eu-west-1").send().await.unwrap().buckets().is_empty());
    assert_eq!(c.list_buckets().bucket_region("us-east-1").send().await.unwrap().buckets().len(), 7);
    let e = c.list_buckets().max_buckets(0).send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");

    // Error bodies name the request (the x-amz-request-id header) and the
    // resource.
    let (st, headers, body) = support::raw_http(addr, "GET", "/conf/missing%20key", &[], b"").await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(st, 403, "{body}"); // unsigned
    let id = support::header(&headers, "x-amz-request-id").unwrap();
    assert!(body.contains(&format!("<RequestId>{id}</RequestId>")), "{body}");
    assert!(body.contains("<Resource>/conf/missing%20key</Resource>"), "{body}");
    let e = c.get_object().bucket("conf").key("missing & <key>").send().await.unwrap_err();
    let raw = e.raw_response().unwrap();
    let id = raw.headers().get("x-amz-request-id").unwrap().to_owned();
    let body = String::from_utf8_lossy(raw.body().bytes().unwrap()).into_owned();
    assert!(body.contains("<Code>NoSuchKey</Code>"), "{body}");
    assert!(body.contains(&format!("<RequestId>{id}</RequestId>")), "{body}");
    assert!(body.contains("<Resource>/conf/missing%20%26%20%3Ckey%3E</Resource>"), "{body}");

    cluster.shutdown().await;
}

/// Settings Tessera does not offer yet answer what S3 answers for a bucket
/// where they were never configured (tools probe them before anything
/// else), and a missing bucket or key is still NoSuchBucket / NoSuchKey.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_configured_settings_answer_as_s3_does() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    c.create_bucket().bucket("probe").send().await.unwrap();
    c.put_object().bucket("probe").key("k").body(ByteStream::from_static(b"x")).send().await.unwrap();

    let v = c.get_bucket_versioning().bucket("probe").send().await.unwrap();
    assert_eq!((v.status(), v.mfa_delete()), (None, None), "versioning never enabled");
    let e = c.get_bucket_policy().bucket("probe").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchBucketPolicy"));
    let e = c.get_bucket_policy_status().bucket("probe").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchBucketPolicy"));
    let e = c.get_bucket_cors().bucket("probe").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchCORSConfiguration"));
    let e = c.get_bucket_encryption().bucket("probe").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "ServerSideEncryptionConfigurationNotFoundError"));
    let e = c.get_bucket_tagging().bucket("probe").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchTagSet"));
    let e = c.get_bucket_lifecycle_configuration().bucket("probe").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchLifecycleConfiguration"));
    let e = c.get_bucket_website().bucket("probe").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchWebsiteConfiguration"));
    let e = c.get_object_lock_configuration().bucket("probe").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "ObjectLockConfigurationNotFoundError"));
    let e = c.get_public_access_block().bucket("probe").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchPublicAccessBlockConfiguration"));

    let o = c.get_bucket_ownership_controls().bucket("probe").send().await.unwrap();
    let rules = o.ownership_controls().unwrap().rules();
    assert_eq!(
        rules[0].object_ownership().as_str(),
        "BucketOwnerPreferred",
        "ACLs enabled, objects the bucket owner's"
    );
    for (grants, owner) in [
        {
            let a = c.get_bucket_acl().bucket("probe").send().await.unwrap();
            (a.grants().to_vec(), a.owner().cloned())
        },
        {
            let a = c.get_object_acl().bucket("probe").key("k").send().await.unwrap();
            (a.grants().to_vec(), a.owner().cloned())
        },
    ] {
        assert_eq!(grants.len(), 1, "{grants:?}");
        assert_eq!(grants[0].permission().map(|p| p.as_str()), Some("FULL_CONTROL"));
        assert_eq!(grants[0].grantee().and_then(|g| g.id()), owner.as_ref().and_then(|o| o.id()));
        assert!(owner.and_then(|o| o.id().map(str::to_owned)).is_some_and(|id| !id.is_empty()));
    }
    let t = c.get_object_tagging().bucket("probe").key("k").send().await.unwrap();
    assert!(t.tag_set().is_empty());
    assert!(c.get_bucket_logging().bucket("probe").send().await.unwrap().logging_enabled().is_none());
    let n = c.get_bucket_notification_configuration().bucket("probe").send().await.unwrap();
    assert!(n.topic_configurations().is_empty() && n.queue_configurations().is_empty());
    let p = c.get_bucket_request_payment().bucket("probe").send().await.unwrap();
    assert_eq!(p.payer().map(|p| p.as_str()), Some("BucketOwner"));
    assert!(c.get_bucket_accelerate_configuration().bucket("probe").send().await.unwrap().status().is_none());

    // Missing bucket or key: the usual errors first.
    let e = c.get_bucket_policy().bucket("nope").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    let e = c.get_bucket_versioning().bucket("nope").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    let e = c.get_object_acl().bucket("probe").key("missing").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    let e = c.get_object_tagging().bucket("probe").key("missing").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    cluster.shutdown().await;
}

/// CompleteMultipartUpload retried after it succeeded (an SDK retry after a
/// lost response) answers the same success while the object is what that
/// completion made; anything else about the upload is NoSuchUpload.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_completion_retried_after_success_answers_the_same() {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let up = c.create_multipart_upload().bucket("mpu").key("k").send().await.unwrap().upload_id.unwrap();
    let mut parts = Vec::new();
    for (n, len) in [(1, 5 << 20), (2, 1000)] {
        let r = c
            .upload_part()
            .bucket("mpu")
            .key("k")
            .upload_id(&up)
            .part_number(n)
            .body(ByteStream::from(support::bytes(len, n as u64)))
            .send()
            .await
            .unwrap();
        parts.push(CompletedPart::builder().part_number(n).e_tag(r.e_tag().unwrap()).build());
    }
    let complete = |parts: Vec<CompletedPart>, upload: &str| {
        c.complete_multipart_upload()
            .bucket("mpu")
            .key("k")
            .upload_id(upload)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
    };
    let first = complete(parts.clone(), &up).await.unwrap();
    let again = complete(parts.clone(), &up).await.unwrap();
    assert_eq!(again.e_tag(), first.e_tag(), "a retry answers the same ETag");
    assert!(first.e_tag().unwrap().ends_with("-2\""));
    // Not the same completion: other parts, or another upload id.
    let e = complete(parts[..1].to_vec(), &up).await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    let e = complete(parts.clone(), "not-an-upload").await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    // Once the object is overwritten, the upload is gone for good.
    c.put_object().bucket("mpu").key("k").body(ByteStream::from_static(b"new")).send().await.unwrap();
    let e = complete(parts, &up).await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_attributes_as_s3_answers_them() {
    use aws_sdk_s3::types::{
        ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart, ObjectAttributes,
    };
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    c.create_bucket().bucket("attrs").send().await.unwrap();
    let all = [
        ObjectAttributes::Etag,
        ObjectAttributes::Checksum,
        ObjectAttributes::ObjectParts,
        ObjectAttributes::ObjectSize,
        ObjectAttributes::StorageClass,
    ];

    // A simple object: its ETag, size, class and whole-object checksum; no parts.
    let data = support::bytes(300_000, 1);
    let put = c
        .put_object()
        .bucket("attrs")
        .key("simple")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let a = c.get_object_attributes().bucket("attrs").key("simple").set_object_attributes(Some(all.to_vec())).send();
    let a = a.await.unwrap();
    assert_eq!(a.e_tag().map(|e| e.trim_matches('"')), put.e_tag().map(|e| e.trim_matches('"')));
    assert_eq!(a.object_size(), Some(300_000));
    assert_eq!(a.storage_class().map(|s| s.as_str()), Some("STANDARD"));
    let sum = a.checksum().unwrap();
    assert_eq!(sum.checksum_crc32(), put.checksum_crc32());
    assert_eq!(sum.checksum_type(), Some(&ChecksumType::FullObject));
    assert!(a.object_parts().is_none(), "a simple object has no parts");
    assert!(a.last_modified().is_some());
    // Only what was asked for.
    let a = c
        .get_object_attributes()
        .bucket("attrs")
        .key("simple")
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .unwrap();
    assert_eq!((a.object_size(), a.e_tag(), a.checksum().is_none()), (Some(300_000), None, true));

    // A multipart object of three parts with CRC32 checksums: the part
    // count, and the parts page by page.
    let up = c
        .create_multipart_upload()
        .bucket("attrs")
        .key("mp")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let sizes = [5 << 20, 5 << 20, 1234usize];
    let mut done = CompletedMultipartUpload::builder();
    for (i, size) in sizes.iter().enumerate() {
        let n = i as i32 + 1;
        let r = c
            .upload_part()
            .bucket("attrs")
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(support::bytes(*size, 10 + i as u64)))
            .send()
            .await
            .unwrap();
        let part = CompletedPart::builder().part_number(n).e_tag(r.e_tag().unwrap());
        done = done.parts(part.set_checksum_crc32(r.checksum_crc32().map(Into::into)).build());
    }
    c.complete_multipart_upload()
        .bucket("attrs")
        .key("mp")
        .upload_id(id)
        .multipart_upload(done.build())
        .send()
        .await
        .unwrap();
    let page = |marker: Option<i32>| {
        c.get_object_attributes()
            .bucket("attrs")
            .key("mp")
            .object_attributes(ObjectAttributes::ObjectParts)
            .object_attributes(ObjectAttributes::ObjectSize)
            .max_parts(2)
            .set_part_number_marker(marker.map(|m| m.to_string()))
            .send()
    };
    let first = page(None).await.unwrap();
    assert_eq!(first.object_size(), Some(sizes.iter().sum::<usize>() as i64));
    let parts = first.object_parts().unwrap();
    assert_eq!(parts.total_parts_count(), Some(3));
    assert_eq!(parts.is_truncated(), Some(true));
    let listed: Vec<(i32, i64)> = parts.parts().iter().map(|p| (p.part_number().unwrap(), p.size().unwrap())).collect();
    assert_eq!(listed, [(1, 5 << 20), (2, 5 << 20)]);
    assert!(parts.parts().iter().all(|p| p.checksum_crc32().is_some()), "part checksums listed");
    let next = parts.next_part_number_marker().unwrap();
    let second = page(Some(next.parse().unwrap())).await.unwrap();
    let parts = second.object_parts().unwrap();
    assert_eq!(parts.is_truncated(), Some(false));
    let listed: Vec<i32> = parts.parts().iter().map(|p| p.part_number().unwrap()).collect();
    assert_eq!(listed, [3]);
    // Its checksum is the composite one the completion made.
    let a = c
        .get_object_attributes()
        .bucket("attrs")
        .key("mp")
        .object_attributes(ObjectAttributes::Checksum)
        .send()
        .await
        .unwrap();
    let sum = a.checksum().unwrap();
    assert!(sum.checksum_crc32().is_some_and(|v| v.ends_with("-3")), "{sum:?}");
    assert_eq!(sum.checksum_type(), Some(&ChecksumType::Composite));

    // Errors: a missing key, an unknown attribute, another version.
    let e = c.get_object_attributes().bucket("attrs").key("nope").object_attributes(ObjectAttributes::Etag).send();
    assert_eq!(code(&e.await.unwrap_err()), "NoSuchKey");
    let e = c
        .get_object_attributes()
        .bucket("attrs")
        .key("simple")
        .object_attributes(ObjectAttributes::from("Colour"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    let e = c
        .get_object_attributes()
        .bucket("attrs")
        .key("simple")
        .version_id("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
        .object_attributes(ObjectAttributes::Etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_checksums_as_s3_makes_them() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart};
    use base64::Engine as _;
    use crc_fast::CrcAlgorithm::{Crc32IsoHdlc, Crc64Nvme};
    let b64 = |raw: &[u8]| base64::engine::general_purpose::STANDARD.encode(raw);
    let unb64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    c.create_bucket().bucket("sums").send().await.unwrap();
    let bodies = [support::bytes(5 << 20, 1), support::bytes(777_777, 2)];
    let whole = bodies.concat();

    // Uploads `bodies` as parts of a new upload of `key` made with `alg`
    // (and `kind`); returns the id and the parts as Complete names them.
    let upload = |key: &'static str, alg: ChecksumAlgorithm, kind: Option<ChecksumType>| {
        let (c, bodies) = (c.clone(), bodies.clone());
        async move {
            let up = c
                .create_multipart_upload()
                .bucket("sums")
                .key(key)
                .checksum_algorithm(alg.clone())
                .set_checksum_type(kind)
                .send()
                .await
                .unwrap();
            let id = up.upload_id().unwrap().to_owned();
            let mut parts = Vec::new();
            for (i, body) in bodies.iter().enumerate() {
                let r = c
                    .upload_part()
                    .bucket("sums")
                    .key(key)
                    .upload_id(&id)
                    .part_number(i as i32 + 1)
                    .checksum_algorithm(alg.clone())
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .unwrap();
                parts.push(
                    CompletedPart::builder()
                        .part_number(i as i32 + 1)
                        .e_tag(r.e_tag().unwrap())
                        .set_checksum_crc32(r.checksum_crc32().map(Into::into))
                        .set_checksum_crc64_nvme(r.checksum_crc64_nvme().map(Into::into))
                        .build(),
                );
            }
            (id, parts)
        }
    };
    let complete = |key: &'static str, id: String, parts: Vec<CompletedPart>| {
        c.complete_multipart_upload()
            .bucket("sums")
            .key(key)
            .upload_id(id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
    };

    // CRC32, composite (the default): the CRC32 of the parts' raw CRC32s, "-2".
    let (id, parts) = upload("composite", ChecksumAlgorithm::Crc32, None).await;
    let raw: Vec<u8> = parts.iter().flat_map(|p| unb64(p.checksum_crc32().unwrap())).collect();
    let want = format!("{}-2", b64(&(crc_fast::checksum(Crc32IsoHdlc, &raw) as u32).to_be_bytes()));
    let done = complete("composite", id, parts).send().await.unwrap();
    assert_eq!(done.checksum_crc32(), Some(want.as_str()));
    assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));
    let h = c.head_object().bucket("sums").key("composite").checksum_mode(ChecksumMode::Enabled).send().await.unwrap();
    assert_eq!((h.checksum_crc32(), h.checksum_type()), (Some(want.as_str()), Some(&ChecksumType::Composite)));

    // CRC64NVME, full object: the CRC64 of all the bytes, also declared
    // by the client at completion and checked.
    let full = b64(&crc_fast::checksum(Crc64Nvme, &whole).to_be_bytes());
    let (id, parts) = upload("full", ChecksumAlgorithm::Crc64Nvme, None).await;
    let bad = complete("full", id.clone(), parts.clone()).checksum_crc64_nvme(b64(&[0u8; 8])).send().await;
    assert_eq!(code(&bad.unwrap_err()), "BadDigest");
    let done = complete("full", id, parts).checksum_crc64_nvme(&full).send().await.unwrap();
    assert_eq!(
        (done.checksum_crc64_nvme(), done.checksum_type()),
        (Some(full.as_str()), Some(&ChecksumType::FullObject))
    );
    let g = c.get_object().bucket("sums").key("full").checksum_mode(ChecksumMode::Enabled).send().await.unwrap();
    assert_eq!(g.checksum_crc64_nvme(), Some(full.as_str()));
    assert_eq!(g.body.collect().await.unwrap().into_bytes().to_vec(), whole);

    // CRC32 asked as full object: the CRC32 of all the bytes.
    let (id, parts) = upload("full32", ChecksumAlgorithm::Crc32, Some(ChecksumType::FullObject)).await;
    let done = complete("full32", id, parts).send().await.unwrap();
    let want = b64(&(crc_fast::checksum(Crc32IsoHdlc, &whole) as u32).to_be_bytes());
    assert_eq!(done.checksum_crc32(), Some(want.as_str()));

    // A part checksum that is not the one uploaded: InvalidPart; another
    // checksum type than the upload's: InvalidRequest; nothing completed.
    let (id, mut parts) = upload("wrong", ChecksumAlgorithm::Crc32, None).await;
    let good = parts.clone();
    parts[1] = CompletedPart::builder()
        .part_number(2)
        .e_tag(parts[1].e_tag().unwrap())
        .checksum_crc32(b64(&[1, 2, 3, 4]))
        .build();
    assert_eq!(code(&complete("wrong", id.clone(), parts).send().await.unwrap_err()), "InvalidPart");
    let e = complete("wrong", id.clone(), good.clone()).checksum_type(ChecksumType::FullObject).send().await;
    assert_eq!(code(&e.unwrap_err()), "InvalidRequest");
    complete("wrong", id, good).send().await.unwrap();

    // Types an algorithm cannot make are refused at creation.
    for (alg, kind) in
        [(ChecksumAlgorithm::Sha256, ChecksumType::FullObject), (ChecksumAlgorithm::Crc64Nvme, ChecksumType::Composite)]
    {
        let e = c
            .create_multipart_upload()
            .bucket("sums")
            .key("never")
            .checksum_algorithm(alg)
            .checksum_type(kind)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidRequest");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn error_answers_name_the_request_and_head_errors_have_no_body() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    let addr = cluster.gateway_addrs[0];
    c.create_bucket().bucket("errs").send().await.unwrap();
    let get = c.get_object().bucket("errs").key("missing").presigned(support::presign()).await.unwrap();
    let path = get.uri().split_once("://").map(|(_, r)| &r[r.find('/').unwrap()..]).unwrap().to_owned();
    let (status, headers, body) = support::raw_http(addr, "GET", &path, &[], b"").await;
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 404, "{text}");
    let id = support::header(&headers, "x-amz-request-id").unwrap();
    assert!(text.contains("<Code>NoSuchKey</Code>"), "{text}");
    assert!(text.contains(&format!("<RequestId>{id}</RequestId>")), "{text}");
    assert!(text.contains("<Resource>/errs/missing</Resource>"), "{text}");
    // HEAD: the status and the request id, no body (as S3).
    let head = c.head_object().bucket("errs").key("missing").presigned(support::presign()).await.unwrap();
    let path = head.uri().split_once("://").map(|(_, r)| &r[r.find('/').unwrap()..]).unwrap().to_owned();
    let (status, headers, body) = support::raw_http(addr, "HEAD", &path, &[], b"").await;
    assert_eq!(status, 404);
    assert!(support::header(&headers, "x-amz-request-id").is_some());
    assert!(body.is_empty(), "a HEAD answer has no body: {:?}", String::from_utf8_lossy(&body));
    cluster.shutdown().await;
}
