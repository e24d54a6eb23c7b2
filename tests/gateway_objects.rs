//! The S3 object path end to end: aws-sdk-s3 against real gateways on a
//! real in-process cluster (1 metadata node, 6 datanodes, EC 4+2).

#![allow(clippy::unwrap_used)]

mod support;

use aws_sdk_s3::primitives::ByteStream;
use support::{Cluster, bytes, code, get_all, status};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buckets_objects_ranges_and_listing() {
    let cluster = Cluster::start().await;
    let c = cluster.client(0);
    let c2 = cluster.client(1);

    // Buckets.
    c.create_bucket().bucket("media").send().await.unwrap();
    // us-east-1 answers 200 to creating a bucket you already own.
    c.create_bucket().bucket("media").send().await.unwrap();
    let e = c.create_bucket().bucket("Bad_Name").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidBucketName");
    let names: Vec<String> =
        c2.list_buckets().send().await.unwrap().buckets().iter().filter_map(|b| b.name().map(Into::into)).collect();
    assert_eq!(names, vec!["media".to_string()]);
    c2.head_bucket().bucket("media").send().await.unwrap();
    let e = c.head_bucket().bucket("nope").send().await.unwrap_err();
    assert_eq!(status(&e), 404);
    let e = c.get_object().bucket("nope").key("k").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");

    // Objects of every size class: empty, inline, one partial stripe, many
    // stripes; each written through both gateways (the MD5 engine's lanes,
    // and inline) and read through the other.
    let sizes = [0usize, 1, 100_000, 128 * 1024, 128 * 1024 + 1, 1 << 20, (1 << 20) + 12345, 9 << 20];
    for (i, &n) in sizes.iter().enumerate() {
        for round in 0..2 {
            let (c, c2) = if round == 0 { (&c, &c2) } else { (&c2, &c) };
            let data = bytes(n, (2 * i + round) as u64);
            let key = format!("obj/{n}");
            let put = c
                .put_object()
                .bucket("media")
                .key(&key)
                .content_type("video/mp2t")
                .metadata("camera", "north")
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .unwrap();
            let md5 = format!("\"{}\"", hex_md5(&data));
            assert_eq!(put.e_tag(), Some(md5.as_str()), "size {n}, round {round}");
            // Read-after-write through the other gateway.
            assert_eq!(get_all(c2, "media", &key).await, data, "size {n}, round {round}");
            let head = c2.head_object().bucket("media").key(&key).send().await.unwrap();
            assert_eq!(head.content_length(), Some(n as i64));
            assert_eq!(head.content_type(), Some("video/mp2t"));
            assert_eq!(head.metadata().unwrap().get("camera").map(String::as_str), Some("north"));
            assert_eq!(head.e_tag(), Some(md5.as_str()));
            if n > 10 {
                for (a, b) in [(0, 0), (1, n / 2), (n / 3, n - 1), (n - 1, n - 1)] {
                    let r =
                        c.get_object().bucket("media").key(&key).range(format!("bytes={a}-{b}")).send().await.unwrap();
                    assert_eq!(r.content_range(), Some(format!("bytes {a}-{b}/{n}").as_str()));
                    let got = r.body.collect().await.unwrap().into_bytes();
                    assert_eq!(&got[..], &data[a..=b], "size {n} range {a}-{b}");
                }
                let r = c.get_object().bucket("media").key(&key).range("bytes=-7").send().await.unwrap();
                assert_eq!(&r.body.collect().await.unwrap().into_bytes()[..], &data[n - 7..]);
                let r =
                    c.get_object().bucket("media").key(&key).range(format!("bytes={}-", n - 3)).send().await.unwrap();
                assert_eq!(&r.body.collect().await.unwrap().into_bytes()[..], &data[n - 3..]);
            }
            let e = c.get_object().bucket("media").key(&key).range(format!("bytes={n}-")).send().await.unwrap_err();
            assert_eq!(code(&e), "InvalidRange", "size {n}, round {round}");
        }
    }

    // Listing with a delimiter, prefixes and pages; list-after-write on the other gateway.
    let l = c2.list_objects_v2().bucket("media").delimiter("/").send().await.unwrap();
    assert_eq!(l.common_prefixes().len(), 1);
    assert_eq!(l.common_prefixes()[0].prefix(), Some("obj/"));
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let r = c2
            .list_objects_v2()
            .bucket("media")
            .prefix("obj/")
            .max_keys(3)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        seen.extend(r.contents().iter().map(|o| o.key().unwrap().to_owned()));
        if !r.is_truncated().unwrap() {
            break;
        }
        token = r.next_continuation_token().map(Into::into);
    }
    let mut want: Vec<String> = sizes.iter().map(|n| format!("obj/{n}")).collect();
    want.sort();
    assert_eq!(seen, want);
    let v1 = c.list_objects().bucket("media").prefix("obj/1").send().await.unwrap();
    assert!(v1.contents().iter().all(|o| o.key().unwrap().starts_with("obj/1")));

    // Overwrite and delete are seen at once on the other gateway.
    c.put_object().bucket("media").key("obj/1").body(ByteStream::from(b"new".to_vec())).send().await.unwrap();
    assert_eq!(get_all(&c2, "media", "obj/1").await, b"new");
    c.delete_object().bucket("media").key("obj/1").send().await.unwrap();
    let e = c2.get_object().bucket("media").key("obj/1").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    // Deleting a missing key succeeds.
    c.delete_object().bucket("media").key("obj/1").send().await.unwrap();

    // A bucket with objects cannot be deleted.
    let e = c.delete_bucket().bucket("media").send().await.unwrap_err();
    assert_eq!(code(&e), "BucketNotEmpty");

    cluster.shutdown().await;
}

fn hex_md5(data: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(data))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_copy_conditionals_and_checksums() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
    let cluster = Cluster::start().await;
    let c = cluster.client(0);
    let c2 = cluster.client(1);
    c.create_bucket().bucket("mpu").send().await.unwrap();

    // Multipart: parts uploaded out of order, one re-uploaded, then completed.
    let part_size = 5 << 20;
    let parts: Vec<Vec<u8>> = (0..3).map(|i| bytes(if i == 2 { 1234 } else { part_size }, 100 + i)).collect();
    let up = c.create_multipart_upload().bucket("mpu").key("big").content_type("video/mp4").send().await.unwrap();
    let id = up.upload_id().unwrap().to_owned();
    let mut etags = vec![String::new(); 3];
    for i in [2usize, 0, 1, 0] {
        let r = c
            .upload_part()
            .bucket("mpu")
            .key("big")
            .upload_id(&id)
            .part_number(i as i32 + 1)
            .body(ByteStream::from(parts[i].clone()))
            .send()
            .await
            .unwrap();
        etags[i] = r.e_tag().unwrap().to_owned();
    }
    let listed = c2.list_parts().bucket("mpu").key("big").upload_id(&id).send().await.unwrap();
    assert_eq!(listed.parts().len(), 3);
    let uploads = c2.list_multipart_uploads().bucket("mpu").send().await.unwrap();
    assert_eq!(uploads.uploads().len(), 1);
    // Out of order completion and a wrong ETag are refused.
    let part = |n: i32, e: &str| CompletedPart::builder().part_number(n).e_tag(e).build();
    let bad = CompletedMultipartUpload::builder().parts(part(2, &etags[1])).parts(part(1, &etags[0])).build();
    let e = c.complete_multipart_upload().bucket("mpu").key("big").upload_id(&id).multipart_upload(bad).send().await;
    assert_eq!(code(&e.unwrap_err()), "InvalidPartOrder");
    let bad = CompletedMultipartUpload::builder().parts(part(1, &etags[1])).build();
    let e = c.complete_multipart_upload().bucket("mpu").key("big").upload_id(&id).multipart_upload(bad).send().await;
    assert_eq!(code(&e.unwrap_err()), "InvalidPart");
    let good = CompletedMultipartUpload::builder()
        .parts(part(1, &etags[0]))
        .parts(part(2, &etags[1]))
        .parts(part(3, &etags[2]))
        .build();
    let done = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .multipart_upload(good)
        .send()
        .await
        .unwrap();
    assert!(done.e_tag().unwrap().ends_with("-3\""));
    let whole: Vec<u8> = parts.concat();
    assert_eq!(get_all(&c2, "mpu", "big").await, whole);
    let r = c2.get_object().bucket("mpu").key("big").range("bytes=5242000-5243000").send().await.unwrap();
    assert_eq!(&r.body.collect().await.unwrap().into_bytes()[..], &whole[5242000..=5243000]);
    let head = c2.head_object().bucket("mpu").key("big").send().await.unwrap();
    assert_eq!(head.content_type(), Some("video/mp4"));
    assert_eq!(head.content_length(), Some(whole.len() as i64));
    let e = c
        .upload_part()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(vec![1]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    // A small non-last part is refused at completion; abort discards the upload.
    let up = c.create_multipart_upload().bucket("mpu").key("small").send().await.unwrap();
    let id2 = up.upload_id().unwrap().to_owned();
    let mut small = Vec::new();
    for n in 1..=2 {
        let r = c
            .upload_part()
            .bucket("mpu")
            .key("small")
            .upload_id(&id2)
            .part_number(n)
            .body(ByteStream::from(vec![n as u8; 100]))
            .send()
            .await
            .unwrap();
        small.push(part(n, r.e_tag().unwrap()));
    }
    let e = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("small")
        .upload_id(&id2)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(small)).build())
        .send()
        .await;
    assert_eq!(code(&e.unwrap_err()), "EntityTooSmall");
    c.abort_multipart_upload().bucket("mpu").key("small").upload_id(&id2).send().await.unwrap();
    let e = c.abort_multipart_upload().bucket("mpu").key("small").upload_id(&id2).send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");

    // UploadPartCopy with a range, from the multipart object.
    let up = c.create_multipart_upload().bucket("mpu").key("copied").send().await.unwrap();
    let id3 = up.upload_id().unwrap().to_owned();
    let r = c
        .upload_part_copy()
        .bucket("mpu")
        .key("copied")
        .upload_id(&id3)
        .part_number(1)
        .copy_source("mpu/big")
        .copy_source_range("bytes=100-5243099")
        .send()
        .await
        .unwrap();
    let e1 = r.copy_part_result().unwrap().e_tag().unwrap().to_owned();
    c.complete_multipart_upload()
        .bucket("mpu")
        .key("copied")
        .upload_id(&id3)
        .multipart_upload(CompletedMultipartUpload::builder().parts(part(1, &e1)).build())
        .send()
        .await
        .unwrap();
    assert_eq!(get_all(&c, "mpu", "copied").await, &whole[100..5243100]);

    // CopyObject: COPY keeps metadata, REPLACE replaces it; copy onto itself needs REPLACE.
    c.copy_object().bucket("mpu").key("big-copy").copy_source("mpu/big").send().await.unwrap();
    assert_eq!(get_all(&c2, "mpu", "big-copy").await, whole);
    let h = c2.head_object().bucket("mpu").key("big-copy").send().await.unwrap();
    assert_eq!(h.content_type(), Some("video/mp4"));
    let e = c.copy_object().bucket("mpu").key("big").copy_source("mpu/big").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidRequest");
    c.copy_object()
        .bucket("mpu")
        .key("big")
        .copy_source("mpu/big")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .content_type("text/plain")
        .send()
        .await
        .unwrap();
    let h = c2.head_object().bucket("mpu").key("big").send().await.unwrap();
    assert_eq!(h.content_type(), Some("text/plain"));
    let e = c.copy_object().bucket("mpu").key("x").copy_source("mpu/missing").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    let e = c
        .copy_object()
        .bucket("mpu")
        .key("x")
        .copy_source("mpu/big")
        .copy_source_if_match("\"0000\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "PreconditionFailed");

    // Conditional reads.
    c.put_object().bucket("mpu").key("cond").body(ByteStream::from(b"v1".to_vec())).send().await.unwrap();
    let h = c.head_object().bucket("mpu").key("cond").send().await.unwrap();
    let et = h.e_tag().unwrap().to_owned();
    let lm = h.last_modified().unwrap().to_owned();
    c.get_object().bucket("mpu").key("cond").if_match(&et).send().await.unwrap();
    let e = c.get_object().bucket("mpu").key("cond").if_match("\"abc\"").send().await.unwrap_err();
    assert_eq!(status(&e), 412);
    let e = c.get_object().bucket("mpu").key("cond").if_none_match(&et).send().await.unwrap_err();
    assert_eq!(status(&e), 304);
    let e = c.get_object().bucket("mpu").key("cond").if_modified_since(lm).send().await.unwrap_err();
    assert_eq!(status(&e), 304);
    let past = aws_sdk_s3::primitives::DateTime::from_secs(lm.secs() - 3600);
    let e = c.get_object().bucket("mpu").key("cond").if_unmodified_since(past).send().await.unwrap_err();
    assert_eq!(status(&e), 412);
    c.get_object().bucket("mpu").key("cond").if_modified_since(past).send().await.unwrap();

    // Conditional writes, atomic in the metadata state machine.
    let e = c
        .put_object()
        .bucket("mpu")
        .key("cond")
        .if_none_match("*")
        .body(ByteStream::from(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "PreconditionFailed");
    c.put_object()
        .bucket("mpu")
        .key("fresh")
        .if_none_match("*")
        .body(ByteStream::from(b"x".to_vec()))
        .send()
        .await
        .unwrap();
    let e = c
        .put_object()
        .bucket("mpu")
        .key("cond")
        .if_match("\"0123\"")
        .body(ByteStream::from(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "PreconditionFailed");
    c.put_object().bucket("mpu").key("cond").if_match(&et).body(ByteStream::from(b"v2".to_vec())).send().await.unwrap();
    assert_eq!(get_all(&c2, "mpu", "cond").await, b"v2");

    // Checksums: every algorithm is verified on upload and returned when asked.
    for alg in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ] {
        let key = format!("sum-{}", alg.as_str());
        let data = bytes(300_000, 7);
        c.put_object()
            .bucket("mpu")
            .key(&key)
            .checksum_algorithm(alg.clone())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        let r = c2
            .get_object()
            .bucket("mpu")
            .key(&key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let got = match alg {
            ChecksumAlgorithm::Crc32 => r.checksum_crc32().map(str::to_owned),
            ChecksumAlgorithm::Crc32C => r.checksum_crc32_c().map(str::to_owned),
            ChecksumAlgorithm::Crc64Nvme => r.checksum_crc64_nvme().map(str::to_owned),
            ChecksumAlgorithm::Sha1 => r.checksum_sha1().map(str::to_owned),
            _ => r.checksum_sha256().map(str::to_owned),
        };
        assert!(got.is_some(), "{alg:?} returned");
        assert_eq!(r.body.collect().await.unwrap().into_bytes().to_vec(), data);
    }
    // A wrong checksum or Content-MD5 is BadDigest and stores nothing.
    let e = c
        .put_object()
        .bucket("mpu")
        .key("bad-sum")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from(b"hello".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    let e = c
        .put_object()
        .bucket("mpu")
        .key("bad-sum")
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from(b"hello".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    let e = c.get_object().bucket("mpu").key("bad-sum").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");

    // DeleteObjects, verbose and quiet.
    let ids = |keys: &[&str]| {
        Delete::builder()
            .set_objects(Some(keys.iter().map(|k| ObjectIdentifier::builder().key(*k).build().unwrap()).collect()))
    };
    let r = c
        .delete_objects()
        .bucket("mpu")
        .delete(ids(&["cond", "fresh", "never-was"]).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.deleted().len(), 3);
    assert!(r.errors().is_empty());
    let r = c
        .delete_objects()
        .bucket("mpu")
        .delete(ids(&["big", "big-copy"]).quiet(true).build().unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.deleted().is_empty());
    let e = c2.head_object().bucket("mpu").key("big").send().await.unwrap_err();
    assert_eq!(status(&e), 404);

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn headers_metadata_listing_options_and_part_numbers() {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, EncodingType};
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    c.create_bucket().bucket("hdrs").send().await.unwrap();
    let loc = c.get_bucket_location().bucket("hdrs").send().await.unwrap();
    assert!(loc.location_constraint().is_none_or(|l| l.as_str().is_empty()));

    // Standard headers round-trip; the SDK's default upload (aws-chunked with a
    // CRC32 trailer) is verified and its checksum returned.
    let expires = aws_sdk_s3::primitives::DateTime::from_secs(2_000_000_000);
    let put = c
        .put_object()
        .bucket("hdrs")
        .key("seg 1.m4s")
        .content_type("video/iso.segment")
        .content_encoding("identity")
        .content_disposition("attachment; filename=\"seg1.m4s\"")
        .content_language("en")
        .cache_control("max-age=60")
        .expires(expires)
        .metadata("track", "v1")
        .body(ByteStream::from(bytes(500_000, 3)))
        .send()
        .await
        .unwrap();
    assert!(put.checksum_crc32().is_some(), "the default CRC32 trailer is verified and echoed");
    let h = c.head_object().bucket("hdrs").key("seg 1.m4s").send().await.unwrap();
    assert_eq!(h.content_type(), Some("video/iso.segment"));
    assert_eq!(h.content_encoding(), Some("identity"));
    assert_eq!(h.content_disposition(), Some("attachment; filename=\"seg1.m4s\""));
    assert_eq!(h.content_language(), Some("en"));
    assert_eq!(h.cache_control(), Some("max-age=60"));
    assert_eq!(h.expires_string(), Some("Wed, 18 May 2033 03:33:20 GMT"));
    let g = c
        .get_object()
        .bucket("hdrs")
        .key("seg 1.m4s")
        .response_content_type("application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(g.content_type(), Some("application/octet-stream"));

    // User metadata is limited to 2 KiB.
    let e = c
        .put_object()
        .bucket("hdrs")
        .key("fat")
        .metadata("big", "x".repeat(2100))
        .body(ByteStream::from(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "MetadataTooLarge");

    // encoding-type=url, fetch-owner, V1 marker paging.
    let l = c.list_objects_v2().bucket("hdrs").encoding_type(EncodingType::Url).fetch_owner(true).send().await.unwrap();
    assert_eq!(l.contents()[0].key(), Some("seg%201.m4s"));
    assert_eq!(l.contents()[0].owner().and_then(|o| o.id()), Some(support::ACCESS_KEY));
    // Keys with control characters (not allowed in XML 1.0) and non-ASCII
    // come back percent-encoded, prefixes and delimiters too; without
    // encoding-type, a carriage return survives the XML (as `&#13;`).
    let odd = "ctl/\u{1}a\r\n\tb é";
    c.put_object().bucket("hdrs").key(odd).body(ByteStream::from(b"x".to_vec())).send().await.unwrap();
    let l = c.list_objects_v2().bucket("hdrs").prefix("ctl/").encoding_type(EncodingType::Url).send().await.unwrap();
    assert_eq!(l.contents()[0].key(), Some("ctl/%01a%0D%0A%09b%20%C3%A9"));
    assert_eq!(l.prefix(), Some("ctl/"));
    let l = c
        .list_objects()
        .bucket("hdrs")
        .delimiter("\u{1}")
        .prefix("ctl/")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .unwrap();
    assert_eq!(l.common_prefixes()[0].prefix(), Some("ctl/%01"));
    assert_eq!(l.delimiter(), Some("%01"));
    let crlf = "crlf/a\r\nb";
    c.put_object().bucket("hdrs").key(crlf).body(ByteStream::from(b"x".to_vec())).send().await.unwrap();
    let l = c.list_objects_v2().bucket("hdrs").prefix("crlf/").send().await.unwrap();
    assert_eq!(l.contents()[0].key(), Some(crlf));
    c.delete_object().bucket("hdrs").key(odd).send().await.unwrap();
    c.delete_object().bucket("hdrs").key(crlf).send().await.unwrap();
    for i in 0..5 {
        c.put_object().bucket("hdrs").key(format!("p/{i}")).body(ByteStream::from(vec![i])).send().await.unwrap();
    }
    let mut marker = None;
    let mut seen = Vec::new();
    loop {
        let r =
            c.list_objects().bucket("hdrs").prefix("p/").max_keys(2).set_marker(marker.clone()).send().await.unwrap();
        seen.extend(r.contents().iter().map(|o| o.key().unwrap().to_owned()));
        if !r.is_truncated().unwrap() {
            break;
        }
        marker = r.next_marker().map(Into::into);
    }
    assert_eq!(seen, (0..5).map(|i| format!("p/{i}")).collect::<Vec<_>>());
    let e = c.list_objects_v2().bucket("hdrs").continuation_token("%%%").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");

    // GET and HEAD by part number.
    let parts: Vec<Vec<u8>> = vec![bytes(5 << 20, 1), bytes(1000, 2)];
    let up = c.create_multipart_upload().bucket("hdrs").key("mp").send().await.unwrap();
    let id = up.upload_id().unwrap();
    let mut done = CompletedMultipartUpload::builder();
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let r = c
            .upload_part()
            .bucket("hdrs")
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .unwrap();
        done = done.parts(CompletedPart::builder().part_number(n).e_tag(r.e_tag().unwrap()).build());
    }
    c.complete_multipart_upload()
        .bucket("hdrs")
        .key("mp")
        .upload_id(id)
        .multipart_upload(done.build())
        .send()
        .await
        .unwrap();
    let r = c.get_object().bucket("hdrs").key("mp").part_number(2).send().await.unwrap();
    assert_eq!(r.parts_count(), Some(2));
    assert_eq!(r.content_range(), Some(format!("bytes {}-{}/{}", 5 << 20, (5 << 20) + 999, (5 << 20) + 1000).as_str()));
    assert_eq!(r.body.collect().await.unwrap().into_bytes().to_vec(), parts[1]);
    let h = c.head_object().bucket("hdrs").key("mp").part_number(1).send().await.unwrap();
    assert_eq!(h.content_length(), Some(5 << 20));
    let e = c.get_object().bucket("hdrs").key("mp").part_number(3).send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidPartNumber");

    // An emptied bucket can be deleted.
    for k in ["seg 1.m4s", "mp", "p/0", "p/1", "p/2", "p/3", "p/4"] {
        c.delete_object().bucket("hdrs").key(k).send().await.unwrap();
    }
    c.delete_bucket().bucket("hdrs").send().await.unwrap();
    let e = c.head_bucket().bucket("hdrs").send().await.unwrap_err();
    assert_eq!(status(&e), 404);
    cluster.shutdown().await;
}
