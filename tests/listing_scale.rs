//! Listing a bucket of large multipart objects through the gateway: 1,000
//! objects of 200 parts each (records made through the metadata API, as
//! 200 real 5 MiB parts per object would not fit here). Each record holds
//! about 26 KiB of part entries (two checksums per part, as aws-cli's
//! uploads with SHA-256 have), 26 MiB for a page of 1,000 — more than
//! tonic's default 4 MiB that the metadata client used to decode (which
//! made such a listing fail with 503 forever), and more than the 16 MiB
//! limits set now: the listing works because it carries object summaries
//! only.

#![allow(clippy::unwrap_used)]

mod support;

use support::Cluster;
use tessera_rpc::MetaClient;
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::{
    Body, Checksum, Command, CompleteUpload, CompletedPart, CreateUpload, PartRecord, PutPart, UploadRecord, body,
};

const OBJECTS: usize = 1_000;
const PARTS: u32 = 200;
const PART_SIZE: u64 = 5 << 20;

async fn write(meta: &MetaClient, op: Op) {
    let r = meta.write(Command { now_ms: 0, op: Some(op) }).await.unwrap();
    assert!(!matches!(r.outcome, Some(tessera_rpc::proto::meta::command_result::Outcome::Failure(_))), "{r:?}");
}

/// One multipart object of `PARTS` parts, made as the gateway would.
async fn multipart_record(meta: MetaClient, key: String) {
    let upload_id = format!("upload-{}", key.replace(|c: char| !c.is_ascii_alphanumeric(), "-"));
    let upload = UploadRecord {
        bucket: "videos".into(),
        key: key.clone(),
        upload_id: upload_id.clone(),
        meta: None,
        owner: support::ACCESS_KEY.into(),
        ..Default::default()
    };
    write(&meta, Op::CreateUpload(CreateUpload { upload: Some(upload) })).await;
    let mut parts = tokio::task::JoinSet::new();
    for number in 1..=PARTS {
        let (meta, key, upload_id) = (meta.clone(), key.clone(), upload_id.clone());
        parts.spawn(async move {
            let part = PartRecord {
                number,
                size: PART_SIZE,
                etag: format!("{number:032x}"),
                last_modified_ms: 0,
                // The bytes are not the point here: an empty inline body.
                body: Some(Body { kind: Some(body::Kind::InlineData(Vec::new())), ..Default::default() }),
                checksums: vec![
                    Checksum { algorithm: "CRC32C".into(), value: "AAAAAA==".into(), ..Default::default() },
                    Checksum {
                        algorithm: "SHA256".into(),
                        value: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
                        ..Default::default()
                    },
                ],
            };
            let put = PutPart { bucket: "videos".into(), key, upload_id, part: Some(part) };
            meta.write(Command { now_ms: 0, op: Some(Op::PutPart(put)) }).await.unwrap();
        });
    }
    while let Some(r) = parts.join_next().await {
        r.unwrap();
    }
    let completed = (1..=PARTS).map(|number| CompletedPart { number, etag: format!("{number:032x}") }).collect();
    let complete = CompleteUpload {
        bucket: "videos".into(),
        key,
        upload_id,
        parts: completed,
        condition: None,
        checksums: Vec::new(),
    };
    write(&meta, Op::CompleteUpload(complete)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_of_a_thousand_large_multipart_objects_lists() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let s3 = cluster.client(0);
    s3.create_bucket().bucket("videos").send().await.unwrap();
    let keys: Vec<String> = (0..OBJECTS).map(|i| format!("vod/movie-{i:04}.mp4")).collect();
    for chunk in keys.chunks(16) {
        let mut objects = tokio::task::JoinSet::new();
        for key in chunk {
            objects.spawn(multipart_record(cluster.meta_client.clone(), key.clone()));
        }
        while let Some(r) = objects.join_next().await {
            r.unwrap();
        }
    }
    let head = s3.head_object().bucket("videos").key("vod/movie-0000.mp4").send().await.unwrap();
    assert_eq!(head.content_length(), Some((u64::from(PARTS) * PART_SIZE) as i64));

    // The metadata reply for a page of 1,000: summaries only.
    let reply = cluster
        .meta_client
        .list_objects(tessera_rpc::proto::meta::ListObjectsRequest {
            bucket: "videos".into(),
            max_keys: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let bytes = prost::Message::encoded_len(&reply);
    println!("a metadata page of {} objects: {bytes} bytes", reply.objects.len());
    assert!(reply.objects.len() == OBJECTS && bytes < 256 << 10, "{bytes} bytes");

    // One page of all 1,000 (ListObjectsV2 and V1), then pages of 100.
    let page = s3.list_objects_v2().bucket("videos").max_keys(1000).send().await.unwrap();
    assert_eq!(page.contents().len(), OBJECTS);
    assert_eq!(page.is_truncated(), Some(false));
    let first = &page.contents()[0];
    assert_eq!(first.key(), Some("vod/movie-0000.mp4"));
    assert_eq!(first.size(), Some((u64::from(PARTS) * PART_SIZE) as i64));
    assert!(first.e_tag().unwrap().ends_with("-200\""), "{:?}", first.e_tag());
    let v1 = s3.list_objects().bucket("videos").send().await.unwrap();
    assert_eq!(v1.contents().len(), OBJECTS);
    let mut listed = Vec::new();
    let mut pages = s3.list_objects_v2().bucket("videos").max_keys(100).into_paginator().send();
    while let Some(p) = pages.next().await {
        listed.extend(p.unwrap().contents().iter().map(|o| o.key().unwrap().to_owned()));
    }
    assert_eq!(listed, keys);
    cluster.shutdown().await;
}
