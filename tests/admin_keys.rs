//! The admin API's keys and policies (`/tessera/admin/v1/`), driven with
//! SigV4-signed HTTP as `tessera admin` sends it, and the keys it makes
//! used through aws-sdk-s3: the secret is shown once; a migrated key keeps
//! its given secret; a policy limits a key; a disabled, expired or deleted
//! key is refused at once; the root key cannot be locked out; only admin
//! keys may call.

#![allow(clippy::unwrap_used)]

mod support;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};
use support::{Cluster, add_key, code, denied, raw_http};

const ROOT: &str = "ROOTKEY00000000000001";
const ROOT_SECRET: &str = "root-secret-00000000000000000";

use support::admin_call as admin;

fn keys_of(list: &Value) -> Vec<String> {
    list["keys"].as_array().unwrap().iter().map(|k| k["access_key"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_and_policies_through_the_admin_api() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let root = add_key(&cluster, ROOT, ROOT_SECRET, true).await;
    let as_root = (ROOT, ROOT_SECRET);
    root.create_bucket().bucket("media").send().await.unwrap();
    root.put_object().bucket("media").key("a.ts").body(ByteStream::from_static(b"segment")).send().await.unwrap();

    // Anonymous and wrongly signed calls are refused.
    let (status, _, _) = raw_http(cluster.gateway_addrs[0], "GET", "/tessera/admin/v1/keys", &[], b"").await;
    assert_eq!(status, 403);
    assert_eq!(admin(&cluster, "GET", "keys", b"", (ROOT, "wrong-secret-000000000000000")).await.0, 403);

    // Create a key: its secret is in this answer only.
    let (status, made) = admin(&cluster, "POST", "keys", br#"{"description":"encoder"}"#, as_root).await;
    assert_eq!(status, 201, "{made}");
    let (id, secret) = (made["access_key"].as_str().unwrap(), made["secret_key"].as_str().unwrap());
    assert_eq!((id.len(), secret.len()), (20, 40));
    let (status, list) = admin(&cluster, "GET", "keys", b"", as_root).await;
    assert_eq!(status, 200);
    assert!(keys_of(&list).contains(&id.to_owned()) && keys_of(&list).contains(&ROOT.to_owned()), "{list}");
    assert!(!list.to_string().contains(secret) && !list.to_string().contains(ROOT_SECRET), "a listing shows a secret");
    assert!(list["keys"].as_array().unwrap().iter().all(|k| k.get("secret_key").is_none()));
    let encoder = cluster.client_with(0, id, secret);
    encoder.create_bucket().bucket("encoder").send().await.unwrap();
    denied(encoder.get_object().bucket("media").key("a.ts").send().await);

    // A policy, and a key migrated from another store with it attached.
    let bad = admin(&cluster, "PUT", "policies/broken", br#"{"Statement":[{"Effect":"Allow"}]}"#, as_root).await;
    assert_eq!((bad.0, bad.1["error"]["code"].as_str()), (400, Some("MalformedPolicy")), "{}", bad.1);
    let readonly = br#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}"#;
    assert_eq!(admin(&cluster, "PUT", "policies/readonly", readonly, as_root).await.0, 200);
    let migrated = json!({"access_key": "MIGRATEDKEY000000001", "secret_key": "kept-from-minio-0000000000000", "policies": ["readonly"]});
    let (status, made) = admin(&cluster, "POST", "keys", migrated.to_string().as_bytes(), as_root).await;
    assert_eq!((status, made["secret_key"].as_str()), (201, Some("kept-from-minio-0000000000000")), "{made}");
    let reader = cluster.client_with(0, "MIGRATEDKEY000000001", "kept-from-minio-0000000000000");
    assert_eq!(support::get_all(&reader, "media", "a.ts").await, b"segment");
    denied(reader.put_object().bucket("media").key("b.ts").body(ByteStream::from_static(b"x")).send().await);
    let (status, _) = admin(&cluster, "POST", "keys", migrated.to_string().as_bytes(), as_root).await;
    assert_eq!(status, 400, "the same access key twice");
    let unknown = json!({"policies": ["nope"]});
    let (status, out) = admin(&cluster, "POST", "keys", unknown.to_string().as_bytes(), as_root).await;
    assert_eq!((status, out["error"]["code"].as_str()), (404, Some("NoSuchPolicy")));

    // Only admin keys call the admin API; admin:* actions can be granted one by one.
    assert_eq!(
        admin(&cluster, "GET", "keys", b"", ("MIGRATEDKEY000000001", "kept-from-minio-0000000000000")).await.0,
        403
    );
    let lister =
        br#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"admin:ListKeys","Resource":"*"}]}"#;
    assert_eq!(admin(&cluster, "PUT", "policies/lister", lister, as_root).await.0, 200);
    let ops = json!({"access_key": "OPSKEY00000000000001", "secret_key": "ops-secret-0000000000000000000", "policies": ["lister"]});
    assert_eq!(admin(&cluster, "POST", "keys", ops.to_string().as_bytes(), as_root).await.0, 201);
    let as_ops = ("OPSKEY00000000000001", "ops-secret-0000000000000000000");
    assert_eq!(admin(&cluster, "GET", "keys", b"", as_ops).await.0, 200);
    assert_eq!(admin(&cluster, "POST", "keys", b"{}", as_ops).await.0, 403);
    assert_eq!(admin(&cluster, "DELETE", &format!("keys/{id}"), b"", as_ops).await.0, 403);

    // Disabled, then enabled again; an expired key; deleted: refused at once.
    let (status, k) = admin(&cluster, "PATCH", &format!("keys/{id}"), br#"{"disabled":true}"#, as_root).await;
    assert_eq!((status, k["disabled"].as_bool()), (200, Some(true)), "{k}");
    let e = encoder.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidAccessKeyId");
    admin(&cluster, "PATCH", &format!("keys/{id}"), br#"{"disabled":false}"#, as_root).await;
    encoder.list_buckets().send().await.unwrap();
    admin(&cluster, "PATCH", &format!("keys/{id}"), br#"{"expires_ms":1}"#, as_root).await;
    assert_eq!(code(&encoder.list_buckets().send().await.unwrap_err()), "InvalidAccessKeyId");
    assert_eq!(admin(&cluster, "DELETE", &format!("keys/{id}"), b"", as_root).await.0, 200);
    assert_eq!(admin(&cluster, "GET", &format!("keys/{id}"), b"", as_root).await.0, 404);
    assert_eq!(admin(&cluster, "DELETE", &format!("keys/{id}"), b"", as_root).await.0, 404);

    // The root key is never locked out.
    assert_eq!(admin(&cluster, "DELETE", &format!("keys/{ROOT}"), b"", as_root).await.0, 400);
    assert_eq!(admin(&cluster, "PATCH", &format!("keys/{ROOT}"), br#"{"disabled":true}"#, as_root).await.0, 400);
    assert!(keys_of(&admin(&cluster, "GET", "keys", b"", as_root).await.1).contains(&ROOT.to_owned()));
    root.list_buckets().send().await.unwrap();

    // A policy in use cannot be deleted; detached, it can.
    let (status, out) = admin(&cluster, "DELETE", "policies/readonly", b"", as_root).await;
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("DeleteConflict")), "{out}");
    let detach = admin(&cluster, "PATCH", "keys/MIGRATEDKEY000000001", br#"{"policies":[]}"#, as_root).await;
    assert_eq!(detach.1["policies"], json!([]));
    assert_eq!(admin(&cluster, "DELETE", "policies/readonly", b"", as_root).await.0, 200);
    let (_, list) = admin(&cluster, "GET", "policies", b"", as_root).await;
    let names: Vec<&str> = list["policies"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["lister"]);

    // A body that is not the one signed; unknown calls; bad JSON.
    let addr = cluster.gateway_addrs[0];
    let path = "/tessera/admin/v1/keys";
    let signed = support::sig::signed_headers("POST", &addr.to_string(), path, "", b"{}", ROOT, ROOT_SECRET);
    let mut headers: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    headers.push(("content-length", "21"));
    let (status, _, body) = raw_http(addr, "POST", path, &headers, br#"{"description":"bad"}"#).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("XAmzContentSHA256Mismatch"), "{}", String::from_utf8_lossy(&body));
    assert_eq!(admin(&cluster, "GET", "frobnicate", b"", as_root).await.0, 404);
    assert_eq!(admin(&cluster, "POST", "keys", b"{not json", as_root).await.0, 400);
    let keys_now = keys_of(&admin(&cluster, "GET", "keys", b"", as_root).await.1);
    assert_eq!(keys_now.len(), 4, "refused calls changed nothing: {keys_now:?}");
    cluster.shutdown().await;
}
