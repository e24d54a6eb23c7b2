//! The S3 object path end to end: aws-sdk-s3 against real gateways on a
//! real in-process cluster (1 metadata node, 6 datanodes, EC 4+2).

#![allow(clippy::unwrap_used)]

mod support;

use aws_sdk_s3::primitives::ByteStream;
use support::{Cluster, bytes};

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String {
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => s.err().code().unwrap_or("").to_owned(),
        _ => "not a service error".to_owned(),
    }
}

fn status<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> u16 {
    e.raw_response().map_or(0, |r| r.status().as_u16())
}

async fn get_all(c: &aws_sdk_s3::Client, b: &str, k: &str) -> Vec<u8> {
    let r = c.get_object().bucket(b).key(k).send().await.unwrap();
    r.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buckets_objects_ranges_and_listing() {
    let cluster = Cluster::start().await;
    let c = cluster.client(0);
    let c2 = cluster.client(1);

    // Buckets.
    c.create_bucket().bucket("media").send().await.unwrap();
    let e = c.create_bucket().bucket("media").send().await.unwrap_err();
    assert_eq!(code(&e), "BucketAlreadyOwnedByYou");
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

    // Objects of every size class: empty, inline, one partial stripe, many stripes.
    let sizes = [0usize, 1, 100_000, 128 * 1024, 128 * 1024 + 1, 1 << 20, (1 << 20) + 12345, 9 << 20];
    for (i, &n) in sizes.iter().enumerate() {
        let data = bytes(n, i as u64);
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
        assert_eq!(put.e_tag(), Some(md5.as_str()), "size {n}");
        // Read-after-write through the other gateway.
        assert_eq!(get_all(&c2, "media", &key).await, data, "size {n}");
        let head = c2.head_object().bucket("media").key(&key).send().await.unwrap();
        assert_eq!(head.content_length(), Some(n as i64));
        assert_eq!(head.content_type(), Some("video/mp2t"));
        assert_eq!(head.metadata().unwrap().get("camera").map(String::as_str), Some("north"));
        assert_eq!(head.e_tag(), Some(md5.as_str()));
        if n > 10 {
            for (a, b) in [(0, 0), (1, n / 2), (n / 3, n - 1), (n - 1, n - 1)] {
                let r = c.get_object().bucket("media").key(&key).range(format!("bytes={a}-{b}")).send().await.unwrap();
                assert_eq!(r.content_range(), Some(format!("bytes {a}-{b}/{n}").as_str()));
                let got = r.body.collect().await.unwrap().into_bytes();
                assert_eq!(&got[..], &data[a..=b], "size {n} range {a}-{b}");
            }
            let r = c.get_object().bucket("media").key(&key).range("bytes=-7").send().await.unwrap();
            assert_eq!(&r.body.collect().await.unwrap().into_bytes()[..], &data[n - 7..]);
            let r = c.get_object().bucket("media").key(&key).range(format!("bytes={}-", n - 3)).send().await.unwrap();
            assert_eq!(&r.body.collect().await.unwrap().into_bytes()[..], &data[n - 3..]);
        }
        let e = c.get_object().bucket("media").key(&key).range(format!("bytes={n}-")).send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidRange", "size {n}");
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
