//! Server-side encryption end to end: aws-sdk-s3 against gateways with an
//! SSE-S3 keyring on an in-process cluster (1 metadata node, 6 datanodes,
//! EC 4+2). SSE-S3 and SSE-C objects of every size class read back whole
//! and in ranges across package and stripe boundaries; SSE-C objects need
//! their key (AWS's errors otherwise); copies and multipart uploads
//! re-encrypt; the bucket default applies; no stored file holds the
//! plaintext; a rotated master key is picked up without a restart, and a
//! rewrap moves every object to it so the old key can go.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use base64::Engine as _;
use md5::Digest as _;
use support::{Cluster, bytes, code, get_all, status};
use tessera_gateway::sse::{Keyring, KeyringFile};

/// An SSE-C key as its headers carry it: (base64 key, base64 MD5).
fn customer(k: u8) -> (String, String) {
    let raw = [k; 32];
    let b64 = base64::engine::general_purpose::STANDARD;
    (b64.encode(raw), b64.encode(md5::Md5::digest(raw)))
}

async fn start(keyring: Arc<KeyringFile>) -> Cluster {
    Cluster::start_with(support::Options {
        gateway: Box::new(move |g| {
            g.sse_keyring = Some(keyring.clone());
            g.tls_reload_interval = Duration::from_millis(100);
        }),
        ..Default::default()
    })
    .await
}

async fn get_c(c: &aws_sdk_s3::Client, b: &str, k: &str, key: &(String, String), range: Option<String>) -> Vec<u8> {
    let r = c
        .get_object()
        .bucket(b)
        .key(k)
        .set_range(range)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key.0)
        .sse_customer_key_md5(&key.1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.sse_customer_algorithm(), Some("AES256"));
    assert_eq!(r.sse_customer_key_md5(), Some(key.1.as_str()));
    r.body.collect().await.unwrap().into_bytes().to_vec()
}

/// A GET of `enc/{k}` with SSE-C headers as given (key and MD5 may disagree).
fn keyed_get(
    c: &aws_sdk_s3::Client,
    k: &str,
    key: &str,
    md5: &str,
) -> aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder {
    c.get_object().bucket("enc").key(k).sse_customer_algorithm("AES256").sse_customer_key(key).sse_customer_key_md5(md5)
}

async fn get_range(c: &aws_sdk_s3::Client, b: &str, k: &str, range: &str) -> Vec<u8> {
    let r = c.get_object().bucket(b).key(k).range(range).send().await.unwrap();
    r.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Ranges that start and end on both sides of 64 KiB package edges and
/// 1 MiB stripe edges, and suffix ranges; (header, expected bounds).
fn ranges(n: usize) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = vec![(format!("bytes=0-{}", n.min(1) - 1), 0..1), (format!("bytes={}-", n - 1), n - 1..n)];
    out.push(("bytes=-10".into(), n.saturating_sub(10)..n));
    for (s, e) in [(65_535, 65_537), (100, 200_000), (1_048_575, 1_048_577), (65_536, 131_072), (7, 3_000_000)] {
        if s < n {
            let e = e.min(n);
            out.push((format!("bytes={s}-{}", e - 1), s..e));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encrypted_objects_read_back_in_ranges_and_need_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("sse.keyring");
    Keyring::create_file(&ring).unwrap();
    let cluster = start(Arc::new(KeyringFile::open(&ring).unwrap())).await;
    let c = cluster.client(0);
    let c2 = cluster.client(1);
    c.create_bucket().bucket("enc").send().await.unwrap();
    let (ka, kb) = (customer(0x11), customer(0x22));

    // Empty, inline, one package, one package + 1, sharded, many stripes.
    for (i, n) in [0usize, 100, 65_536, 65_537, 128 * 1024 + 1, (3 << 20) + 12_345].into_iter().enumerate() {
        let data = bytes(n, i as u64);
        let md5 = hex::encode(md5::Md5::digest(&data));
        let s3_key = format!("s3/{n}");
        let r = c
            .put_object()
            .bucket("enc")
            .key(&s3_key)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
        assert_eq!(r.e_tag().unwrap().trim_matches('"'), md5, "SSE-S3 ETags are the MD5, as in S3");
        let h = c2.head_object().bucket("enc").key(&s3_key).send().await.unwrap();
        assert_eq!(
            (h.server_side_encryption(), h.content_length()),
            (Some(&ServerSideEncryption::Aes256), Some(n as i64))
        );
        assert_eq!(get_all(&c2, "enc", &s3_key).await, data, "{s3_key}");

        let c_key = format!("c/{n}");
        let r = c2
            .put_object()
            .bucket("enc")
            .key(&c_key)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&ka.0)
            .sse_customer_key_md5(&ka.1)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!((r.sse_customer_algorithm(), r.sse_customer_key_md5()), (Some("AES256"), Some(ka.1.as_str())));
        assert_ne!(r.e_tag().unwrap().trim_matches('"'), md5, "an SSE-C ETag does not tell the plaintext's MD5");
        assert_eq!(get_c(&c, "enc", &c_key, &ka, None).await, data, "{c_key}");
        if n == 0 {
            continue;
        }
        for (range, want) in ranges(n) {
            assert_eq!(get_range(&c, "enc", &s3_key, &range).await, &data[want.clone()], "{s3_key} {range}");
            assert_eq!(get_c(&c2, "enc", &c_key, &ka, Some(range.clone())).await, &data[want], "{c_key} {range}");
        }
    }

    // SSE-C objects need their key, and only theirs.
    let big = format!("c/{}", (3 << 20) + 12_345);
    let e = c.get_object().bucket("enc").key(&big).send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    let e = c.head_object().bucket("enc").key(&big).send().await.unwrap_err();
    assert_eq!(status(&e), 400);
    let wrong = keyed_get(&c, &big, &kb.0, &kb.1).send().await.unwrap_err();
    assert_eq!((status(&wrong), code(&wrong).as_str()), (403, "AccessDenied"));
    let mismatch = keyed_get(&c, &big, &ka.0, &kb.1).send().await.unwrap_err();
    assert_eq!((status(&mismatch), code(&mismatch).as_str()), (400, "InvalidArgument"));
    let not_applicable = keyed_get(&c, "s3/100", &ka.0, &ka.1).send().await.unwrap_err();
    assert_eq!((status(&not_applicable), code(&not_applicable).as_str()), (400, "InvalidRequest"));
    let attrs = c
        .get_object_attributes()
        .bucket("enc")
        .key(&big)
        .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectSize)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&attrs), 400);

    // KMS is refused, and nothing is stored.
    let e = c
        .put_object()
        .bucket("enc")
        .key("kms")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    assert_eq!(status(&c.head_object().bucket("enc").key("kms").send().await.unwrap_err()), 404);

    // Copies: SSE-C to SSE-S3, and onto itself under a new customer key.
    let data = bytes((3 << 20) + 12_345, 5);
    c.copy_object()
        .bucket("enc")
        .key("copy/s3")
        .copy_source(format!("enc/{big}"))
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&ka.0)
        .copy_source_sse_customer_key_md5(&ka.1)
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap();
    assert_eq!(get_all(&c2, "enc", "copy/s3").await, data);
    let e = c.copy_object().bucket("enc").key("copy/x").copy_source(format!("enc/{big}")).send().await.unwrap_err();
    assert_eq!(status(&e), 400, "a copy of an SSE-C source needs its key");
    c.copy_object()
        .bucket("enc")
        .key(&big)
        .copy_source(format!("enc/{big}"))
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&ka.0)
        .copy_source_sse_customer_key_md5(&ka.1)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&kb.0)
        .sse_customer_key_md5(&kb.1)
        .send()
        .await
        .unwrap();
    assert_eq!(get_c(&c2, "enc", &big, &kb, None).await, data, "re-encrypted under key B");
    let old = keyed_get(&c, &big, &ka.0, &ka.1).send().await.unwrap_err();
    assert_eq!(status(&old), 403, "key A no longer opens it");

    // Multipart under SSE-C: every part needs the upload's key.
    let up = c
        .create_multipart_upload()
        .bucket("enc")
        .key("mp/c")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&ka.0)
        .sse_customer_key_md5(&ka.1)
        .send()
        .await
        .unwrap();
    assert_eq!(up.sse_customer_algorithm(), Some("AES256"));
    let id = up.upload_id().unwrap();
    let p1 = bytes(5 << 20, 40);
    let part = |key: Option<&(String, String)>| {
        let mut r =
            c.upload_part().bucket("enc").key("mp/c").upload_id(id).part_number(1).body(ByteStream::from(p1.clone()));
        if let Some(k) = key {
            r = r.sse_customer_algorithm("AES256").sse_customer_key(&k.0).sse_customer_key_md5(&k.1);
        }
        r.send()
    };
    assert_eq!(status(&part(None).await.unwrap_err()), 400);
    assert_eq!(status(&part(Some(&kb)).await.unwrap_err()), 403);
    let e1 = part(Some(&ka)).await.unwrap().e_tag().unwrap().to_owned();
    // Part 2 copied from an SSE-S3 object (decrypted, then sealed with the upload's key).
    let src = (3 << 20) + 12_345;
    let e2 = c
        .upload_part_copy()
        .bucket("enc")
        .key("mp/c")
        .upload_id(id)
        .part_number(2)
        .copy_source(format!("enc/s3/{src}"))
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&ka.0)
        .sse_customer_key_md5(&ka.1)
        .send()
        .await
        .unwrap()
        .copy_part_result
        .unwrap()
        .e_tag
        .unwrap();
    let parts = [(1, e1), (2, e2)]
        .into_iter()
        .map(|(n, e)| CompletedPart::builder().part_number(n).e_tag(e).build())
        .collect::<Vec<_>>();
    // Completion takes SSE-C headers (aws-cli sends them): only the upload's key.
    let complete = |k: &(String, String)| {
        c.complete_multipart_upload()
            .bucket("enc")
            .key("mp/c")
            .upload_id(id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts.clone())).build())
            .sse_customer_algorithm("AES256")
            .sse_customer_key(k.0.clone())
            .sse_customer_key_md5(k.1.clone())
            .send()
    };
    assert_eq!(status(&complete(&kb).await.unwrap_err()), 403);
    complete(&ka).await.unwrap();
    let whole = [p1.clone(), bytes(src, 5)].concat();
    assert_eq!(get_c(&c2, "enc", "mp/c", &ka, None).await, whole);
    let across = format!("bytes={}-{}", (5 << 20) - 70_000, (5 << 20) + 70_000);
    let want = &whole[(5 << 20) - 70_000..=(5 << 20) + 70_000];
    assert_eq!(get_c(&c2, "enc", "mp/c", &ka, Some(across)).await, want, "a range across the parts");

    // The bucket default: SSE-S3 for writes that ask for nothing.
    let e = c.get_bucket_encryption().bucket("enc").send().await.unwrap_err();
    assert_eq!(code(&e), "ServerSideEncryptionConfigurationNotFoundError");
    let rule = |alg: ServerSideEncryption| {
        ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder().sse_algorithm(alg).build().unwrap(),
                    )
                    .build(),
            )
            .build()
            .unwrap()
    };
    let e = c
        .put_bucket_encryption()
        .bucket("enc")
        .server_side_encryption_configuration(rule(ServerSideEncryption::AwsKms))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    c.put_bucket_encryption()
        .bucket("enc")
        .server_side_encryption_configuration(rule(ServerSideEncryption::Aes256))
        .send()
        .await
        .unwrap();
    let got = c.get_bucket_encryption().bucket("enc").send().await.unwrap();
    let alg = got.server_side_encryption_configuration().unwrap().rules()[0]
        .apply_server_side_encryption_by_default()
        .unwrap()
        .sse_algorithm()
        .clone();
    assert_eq!(alg, ServerSideEncryption::Aes256);
    let r = c2.put_object().bucket("enc").key("default").body(ByteStream::from_static(b"dflt")).send().await.unwrap();
    assert_eq!(r.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    let rec = cluster.meta_client.get_object("enc", "default").await.unwrap().object.unwrap();
    assert!(rec.sse.is_some(), "stored encrypted");
    let up = c.create_multipart_upload().bucket("enc").key("mp/s3").send().await.unwrap();
    assert_eq!(up.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    let p = bytes(6 << 20, 41);
    let whole = support::multipart(&c, "enc", "mp/s3-2", &[p.clone(), b"tail".to_vec()]).await;
    assert_eq!(get_all(&c2, "enc", "mp/s3-2").await, whole);
    let h = c2.head_object().bucket("enc").key("mp/s3-2").send().await.unwrap();
    assert_eq!(h.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    c.delete_bucket_encryption().bucket("enc").send().await.unwrap();
    let r = c.put_object().bucket("enc").key("plain").body(ByteStream::from_static(b"p")).send().await.unwrap();
    assert_eq!(r.server_side_encryption(), None);

    // AWS's canonical bucket policy: refuse uploads that do not ask for SSE-S3.
    c.create_bucket().bucket("must-encrypt").send().await.unwrap();
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:PutObject",
        "Resource":"arn:aws:s3:::must-encrypt/*",
        "Condition":{"StringNotEquals":{"s3:x-amz-server-side-encryption":"AES256"}}}]}"#;
    c.put_bucket_policy().bucket("must-encrypt").policy(policy).send().await.unwrap();
    let e = c.put_object().bucket("must-encrypt").key("p").body(ByteStream::from_static(b"p")).send().await;
    support::denied(e);
    let ok = c.put_object().bucket("must-encrypt").key("e").server_side_encryption(ServerSideEncryption::Aes256);
    ok.body(ByteStream::from_static(b"e")).send().await.unwrap();
    cluster.shutdown().await;
}

/// Whether any file under `dir` contains `needle`.
fn found_in(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    support::walk(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_stored_file_holds_the_plaintext_of_an_encrypted_object() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("sse.keyring");
    Keyring::create_file(&ring).unwrap();
    let cluster = start(Arc::new(KeyringFile::open(&ring).unwrap())).await;
    let c = cluster.client(0);
    c.create_bucket().bucket("grep").send().await.unwrap();
    let text = |tag: &str, n: usize| format!("{tag}-PLAINTEXT-MARKER-0123456789;").repeat(n).into_bytes();
    // The control: a plain object's marker is found in its data shards.
    c.put_object().bucket("grep").key("plain").body(ByteStream::from(text("PLAIN", 40_000))).send().await.unwrap();
    let ka = customer(0x33);
    for (key, tag, n) in [("s3-big", "SSES3", 40_000), ("s3-small", "SSES3SMALL", 100)] {
        let r = c.put_object().bucket("grep").key(key).server_side_encryption(ServerSideEncryption::Aes256);
        r.body(ByteStream::from(text(tag, n))).send().await.unwrap();
    }
    for (key, tag, n) in [("c-big", "SSEC", 40_000), ("c-small", "SSECSMALL", 100)] {
        c.put_object()
            .bucket("grep")
            .key(key)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&ka.0)
            .sse_customer_key_md5(&ka.1)
            .body(ByteStream::from(text(tag, n)))
            .send()
            .await
            .unwrap();
    }
    let root = cluster.root.path();
    assert!(
        !found_in(root, b"PLAIN-PLAINTEXT-MARKER").is_empty(),
        "the control marker is not found: the search is broken"
    );
    for tag in ["SSES3-", "SSES3SMALL-", "SSEC-", "SSECSMALL-"] {
        let hits = found_in(root, format!("{tag}PLAINTEXT-MARKER").as_bytes());
        assert!(hits.is_empty(), "{tag} plaintext found in {hits:?}");
    }
    assert_eq!(get_all(&c, "grep", "s3-small").await, text("SSES3SMALL", 100));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_master_key_is_used_at_once_and_a_rewrap_retires_the_old_one() {
    const ROOT: &str = "ROOTKEY00000000000001";
    const ROOT_SECRET: &str = "root-secret-00000000000000000";
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("sse.keyring");
    let first = Keyring::create_file(&ring).unwrap().current_id().to_owned();
    let cluster = start(Arc::new(KeyringFile::open(&ring).unwrap())).await;
    support::add_key(&cluster, ROOT, ROOT_SECRET, true).await;
    let c = cluster.client(0);
    c.create_bucket().bucket("rot").send().await.unwrap();
    let key_of = |k: &'static str| {
        let meta = cluster.meta_client.clone();
        async move { meta.get_object("rot", k).await.unwrap().object.unwrap().sse.unwrap().key_id }
    };
    let put = |k: &'static str, data: Vec<u8>| {
        c.put_object()
            .bucket("rot")
            .key(k)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(data.into())
            .send()
    };
    let old_big = bytes(2 << 20, 1);
    put("old-big", old_big.clone()).await.unwrap();
    // A versioned bucket: "v" written twice, its first version noncurrent.
    c.create_bucket().bucket("rotv").send().await.unwrap();
    let on = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    c.put_bucket_versioning().bucket("rotv").versioning_configuration(on).send().await.unwrap();
    let mut v_ids = Vec::new();
    for data in [bytes(300 << 10, 5), bytes(300 << 10, 6)] {
        let r = c.put_object().bucket("rotv").key("v").server_side_encryption(ServerSideEncryption::Aes256);
        v_ids.push(r.body(data.into()).send().await.unwrap().version_id.unwrap());
    }
    put("old-small", b"small".to_vec()).await.unwrap();
    assert_eq!(key_of("old-big").await, first);
    let open = c
        .create_multipart_upload()
        .bucket("rot")
        .key("open")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let p1 = bytes(5 << 20, 2);
    let e1 = c
        .upload_part()
        .bucket("rot")
        .key("open")
        .upload_id(&open)
        .part_number(1)
        .body(ByteStream::from(p1.clone()))
        .send()
        .await
        .unwrap()
        .e_tag
        .unwrap();

    // Rotation: new writes take the new key within the reload interval.
    let second = Keyring::rotate_file(&ring).unwrap();
    let started = Instant::now();
    loop {
        put("new", b"new".to_vec()).await.unwrap();
        if key_of("new").await == second {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the rotated key was not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get_all(&c, "rot", "old-big").await, old_big, "the old key still opens old objects");

    // The rewrap (`tessera admin sse rewrap`, the real binary) moves the old
    // objects and the open upload to the new key.
    let endpoint = cluster.endpoint(0);
    let cli = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["admin", "--endpoint", &endpoint, "--admin-access-key", ROOT, "--admin-secret-key", ROOT_SECRET])
            .args(["--json", "sse", "rewrap"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let out: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    // Three objects, the upload, and both versions of "v".
    assert_eq!((out["rewrapped"].as_u64(), out["current_key"].as_str()), (Some(5), Some(second.as_str())), "{out}");
    for k in ["old-big", "old-small", "new"] {
        assert_eq!(key_of(k).await, second, "{k}");
    }
    let (st, again) = support::admin_call(&cluster, "POST", "sse/rewrap", b"", (ROOT, ROOT_SECRET)).await;
    assert_eq!((st, again["rewrapped"].as_u64()), (200, Some(0)), "{again}");
    let denied = support::admin_call(&cluster, "POST", "sse/rewrap", b"", (support::ACCESS_KEY, support::SECRET_KEY));
    assert_eq!(denied.await.0, 403, "a plain key may not rewrap");

    // The old key leaves the keyring: everything still reads, the upload completes.
    let text = std::fs::read_to_string(&ring).unwrap();
    let kept: String =
        text.lines().filter(|l| l.split_whitespace().next() != Some(&first)).map(|l| format!("{l}\n")).collect();
    std::fs::write(&ring, kept).unwrap();
    let started = Instant::now();
    loop {
        let (_, s) = support::admin_call(&cluster, "GET", "sse", b"", (ROOT, ROOT_SECRET)).await;
        if s["keys"].as_array().is_some_and(|k| k.len() == 1) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the keyring was not reloaded: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get_all(&c, "rot", "old-big").await, old_big);
    assert_eq!(get_all(&c, "rot", "old-small").await, b"small");
    for (id, seed) in v_ids.iter().zip([5, 6]) {
        let r = c.get_object().bucket("rotv").key("v").version_id(id).send().await.unwrap();
        assert_eq!(r.body.collect().await.unwrap().into_bytes().to_vec(), bytes(300 << 10, seed), "version {id}");
    }
    let parts = CompletedMultipartUpload::builder().parts(CompletedPart::builder().part_number(1).e_tag(e1).build());
    c.complete_multipart_upload()
        .bucket("rot")
        .key("open")
        .upload_id(&open)
        .multipart_upload(parts.build())
        .send()
        .await
        .unwrap();
    assert_eq!(get_all(&c, "rot", "open").await, p1);
    cluster.shutdown().await;
}

/// A gateway decides a PutObject with the bucket record it read last (for
/// up to 2 s) and the metadata service applies the put only while the
/// record is still that one. So when default encryption is turned on
/// through another gateway, the very next small put through the first one
/// is stored encrypted (or refused with `SlowDown`, and encrypted when sent
/// again), never in the clear; a change a put does not depend on (bucket
/// tags) costs the client nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_follows_default_encryption_set_through_another_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("sse.keyring");
    Keyring::create_file(&ring).unwrap();
    let cluster = start(Arc::new(KeyringFile::open(&ring).unwrap())).await;
    // No retries: a SlowDown must be seen here, not retried by the SDK.
    let no_retries = |c: aws_sdk_s3::Client| {
        let conf = c.config().to_builder().retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
        aws_sdk_s3::Client::from_conf(conf.build())
    };
    let (a, b) = (no_retries(cluster.client(0)), cluster.client(1));
    a.create_bucket().bucket("late").send().await.unwrap();
    let put = |k: String| a.put_object().bucket("late").key(k).body(ByteStream::from_static(b"segment")).send();
    let (mut slowed, mut rounds) = (0, 0);
    for round in 0..5 {
        // Gateway a reads (and keeps) the bucket's record: no encryption
        // (or, from the round before, encryption: then SlowDown first).
        let r = match put(format!("plain-{round}")).await {
            Ok(r) => r,
            Err(e) => {
                assert_eq!((code(&e).as_str(), status(&e)), ("SlowDown", 503), "{e:?}");
                slowed += 1;
                put(format!("plain-{round}")).await.unwrap()
            }
        };
        assert_eq!(r.server_side_encryption(), None);
        // A tag change through b: a's record is stale, the put goes through.
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .tag_set(aws_sdk_s3::types::Tag::builder().key("round").value(round.to_string()).build().unwrap())
            .build()
            .unwrap();
        b.put_bucket_tagging().bucket("late").tagging(tagging).send().await.unwrap();
        let r = put(format!("tagged-{round}")).await.unwrap();
        assert_eq!(r.server_side_encryption(), None);
        // Default encryption through b, then at once a put through a.
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(
                ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256).build().unwrap(),
            )
            .build();
        let conf = ServerSideEncryptionConfiguration::builder().rules(rule).build().unwrap();
        b.put_bucket_encryption().bucket("late").server_side_encryption_configuration(conf).send().await.unwrap();
        let key = format!("after-{round}");
        let r = match put(key.clone()).await {
            Ok(r) => r,
            Err(e) => {
                assert_eq!((code(&e).as_str(), status(&e)), ("SlowDown", 503), "{e:?}");
                slowed += 1;
                put(key.clone()).await.unwrap()
            }
        };
        assert_eq!(r.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "round {round}");
        let rec = cluster.meta_client.get_object("late", &key).await.unwrap().object.unwrap();
        assert!(rec.sse.is_some(), "round {round}: stored encrypted");
        b.delete_bucket_encryption().bucket("late").send().await.unwrap();
        rounds += 1;
    }
    println!("{rounds} rounds, {slowed} puts refused with SlowDown and sent again");
    // Each change of default encryption made a's kept record decide wrong
    // once: the put after it was refused, not stored in the clear.
    assert!((1..2 * rounds).contains(&slowed), "{slowed}");
    cluster.shutdown().await;
}
