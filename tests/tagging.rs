//! Object and bucket tags through aws-sdk-s3 on an in-process cluster:
//! `x-amz-tagging` on PutObject, CreateMultipartUpload and CopyObject (its
//! directive), the tag count on GET, Put/Get/DeleteObjectTagging and
//! BucketTagging, and S3's limits (`InvalidTag`), which store nothing.

#![allow(clippy::unwrap_used)]

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Tag, Tagging, TaggingDirective};
use support::{Cluster, code, status};

fn tags(pairs: &[(&str, &str)]) -> Tagging {
    let set = pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap()).collect();
    Tagging::builder().set_tag_set(Some(set)).build().unwrap()
}

async fn tags_of(c: &aws_sdk_s3::Client, key: &str) -> Vec<(String, String)> {
    let r = c.get_object_tagging().bucket("tags").key(key).send().await.unwrap();
    r.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tags_on_objects_and_buckets() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    c.create_bucket().bucket("tags").send().await.unwrap();

    // On PUT (inline and sharded), counted on GET, listed by GetObjectTagging.
    for (key, len) in [("small", 10usize), ("big", 300 << 10)] {
        c.put_object()
            .bucket("tags")
            .key(key)
            .tagging("team=video&note=a%20b%2Bc")
            .body(ByteStream::from(support::bytes(len, 1)))
            .send()
            .await
            .unwrap();
        let got = c.get_object().bucket("tags").key(key).send().await.unwrap();
        assert_eq!(got.tag_count(), Some(2), "{key}");
        assert_eq!(tags_of(&c, key).await, owned(&[("team", "video"), ("note", "a b+c")]));
    }
    let plain = c.put_object().bucket("tags").key("plain").body(ByteStream::from_static(b"x")).send().await;
    plain.unwrap();
    assert_eq!(c.get_object().bucket("tags").key("plain").send().await.unwrap().tag_count(), None);
    assert!(tags_of(&c, "plain").await.is_empty());

    // Replaced, then removed; the object's bytes stay.
    c.put_object_tagging().bucket("tags").key("big").tagging(tags(&[("env", "prod")])).send().await.unwrap();
    assert_eq!(tags_of(&c, "big").await, owned(&[("env", "prod")]));
    c.delete_object_tagging().bucket("tags").key("big").send().await.unwrap();
    assert!(tags_of(&c, "big").await.is_empty());
    assert_eq!(support::get_all(&c, "tags", "big").await, support::bytes(300 << 10, 1));
    let e = c.put_object_tagging().bucket("tags").key("missing").tagging(tags(&[("a", "b")])).send().await;
    assert_eq!(code(&e.unwrap_err()), "NoSuchKey");

    // S3's limits: refused with InvalidTag, nothing stored or changed.
    let eleven: String = (0..11).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join("&");
    for bad in [eleven.as_str(), "aws:x=1", "k=1&k=2", "k=semi;colon"] {
        let e = c
            .put_object()
            .bucket("tags")
            .key("refused")
            .tagging(bad)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidTag"), "{bad}");
    }
    assert_eq!(status(&c.head_object().bucket("tags").key("refused").send().await.unwrap_err()), 404);
    let e = c.put_object_tagging().bucket("tags").key("small").tagging(tags(&[("aws:k", "v")])).send().await;
    assert_eq!(code(&e.unwrap_err()), "InvalidTag");
    assert_eq!(tags_of(&c, "small").await.len(), 2, "a refused PutObjectTagging changed the tags");

    // Copies keep the source's tags, or take the request's with REPLACE.
    c.copy_object().bucket("tags").key("copy").copy_source("tags/small").send().await.unwrap();
    assert_eq!(tags_of(&c, "copy").await, owned(&[("team", "video"), ("note", "a b+c")]));
    c.copy_object()
        .bucket("tags")
        .key("copy2")
        .copy_source("tags/small")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("only=this")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&c, "copy2").await, owned(&[("only", "this")]));
    let e = c.copy_object().bucket("tags").key("copy3").copy_source("tags/small").tagging("x=y").send().await;
    assert_eq!(code(&e.unwrap_err()), "InvalidArgument", "tags with COPY would be ignored");

    // A multipart upload's tags go to the completed object.
    let id = c
        .create_multipart_upload()
        .bucket("tags")
        .key("mp")
        .tagging("kind=segment")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let part = c
        .upload_part()
        .bucket("tags")
        .key("mp")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(support::bytes(1000, 2)))
        .send()
        .await
        .unwrap();
    let done = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    c.complete_multipart_upload().bucket("tags").key("mp").upload_id(&id).multipart_upload(done).send().await.unwrap();
    assert_eq!(tags_of(&c, "mp").await, owned(&[("kind", "segment")]));

    // Bucket tags.
    let e = c.get_bucket_tagging().bucket("tags").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchTagSet"));
    c.put_bucket_tagging()
        .bucket("tags")
        .tagging(tags(&[("cost-center", "42"), ("owner", "ops")]))
        .send()
        .await
        .unwrap();
    let got = c.get_bucket_tagging().bucket("tags").send().await.unwrap();
    let got: Vec<(String, String)> = got.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    assert_eq!(got, owned(&[("cost-center", "42"), ("owner", "ops")]));
    c.delete_bucket_tagging().bucket("tags").send().await.unwrap();
    assert_eq!(code(&c.get_bucket_tagging().bucket("tags").send().await.unwrap_err()), "NoSuchTagSet");
    cluster.shutdown().await;
}
