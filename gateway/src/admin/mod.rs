//! The admin API, part one: access keys and named identity policies, as
//! JSON under `/tessera/admin/v1/` on every gateway (docs/admin-api.md).
//!
//! Requests are SigV4-signed like S3 requests (s3s checks the signature
//! before this route runs) by the root key or a key whose identity policies
//! allow the `admin:*` action asked for; anonymous requests and other keys
//! get `403 AccessDenied`. A request with a body signs its payload
//! (`x-amz-content-sha256` is the body's SHA-256): an admin call must not
//! be replayable with another body.
//!
//! | method and path                      | action              |
//! |--------------------------------------|---------------------|
//! | `GET    /tessera/admin/v1/keys`      | `admin:ListKeys`    |
//! | `POST   /tessera/admin/v1/keys`      | `admin:CreateKey`   |
//! | `GET    /tessera/admin/v1/keys/ID`   | `admin:ListKeys`    |
//! | `PATCH  /tessera/admin/v1/keys/ID`   | `admin:UpdateKey`   |
//! | `DELETE /tessera/admin/v1/keys/ID`   | `admin:DeleteKey`   |
//! | `GET    /tessera/admin/v1/policies`  | `admin:ListPolicies`|
//! | `PUT    /tessera/admin/v1/policies/N`| `admin:PutPolicy`   |
//! | `DELETE /tessera/admin/v1/policies/N`| `admin:DeletePolicy`|
//! | `GET    /tessera/admin/v1/sse`       | `admin:SseStatus`   |
//! | `POST   /tessera/admin/v1/sse/rewrap`| `admin:RewrapKeys`  |
//! | `POST   /tessera/admin/v1/join-tokens`| `admin:CreateJoinToken` |
//!
//! A created key's secret is in the creation's answer and nowhere else
//! (listings leave secrets out). The root key cannot be created, disabled,
//! given an expiry or deleted here: it is never locked out.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use rand::Rng;
use s3s::route::S3Route;
use s3s::{Body, S3Error, S3Request, S3Response, S3Result, s3_error};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tessera_rpc::MetaClient;
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::{
    AccessKeyRecord, Command, CreateAccessKey, DeleteAccessKey, DeletePolicy, Encryption, ListObjectsRequest,
    ListUploadsRequest, ListVersionsRequest, PolicyRecord, PutPolicy, RewrapKey, UpdateAccessKey, command_result,
    encryption, failure,
};

mod buckets;
mod calls;
mod cluster;

use crate::access::Directory;
use crate::policy::{self, Decision, Kind, Policy, Principal};
use crate::sse::KeyringFile;

/// The path every admin call starts with.
pub const PREFIX: &str = "/tessera/admin/v1/";

/// Largest admin request body (a policy document is at most 20 KiB).
const MAX_BODY: usize = 64 * 1024;

/// The admin API as an s3s route (after the signature check).
pub struct AdminRoute {
    meta: MetaClient,
    dir: Arc<Directory>,
    keyring: Option<Arc<KeyringFile>>,
    /// The EC profile of new objects: what placement must fit.
    ec: crate::EcDefaults,
}

impl AdminRoute {
    /// Serves the admin API over `meta`, deciding callers through `dir`;
    /// `keyring`: the SSE-S3 master keys, for a rewrap; `ec`: the EC
    /// profile of new objects.
    pub fn new(
        meta: MetaClient,
        dir: Arc<Directory>,
        keyring: Option<Arc<KeyringFile>>,
        ec: crate::EcDefaults,
    ) -> Self {
        AdminRoute { meta, dir, keyring, ec }
    }
}

/// An admin answer: a status and a JSON document.
struct Answer(StatusCode, Value);

fn fail(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Answer {
    Answer(status, json!({"error": {"code": code, "message": message.to_string()}}))
}

fn unavailable(e: impl std::fmt::Display) -> Answer {
    fail(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", format!("the metadata service is unavailable: {e}"))
}

/// A key as listed: never its secret.
fn key_json(k: &AccessKeyRecord) -> Value {
    json!({
        "access_key": k.access_key_id,
        "description": k.description,
        "root": k.root,
        "policies": k.policies,
        "disabled": k.disabled,
        "expires_ms": k.expires_ms,
        "created_ms": k.created_ms,
    })
}

/// A fresh access key id: 20 upper-case letters and digits, as AWS's.
fn new_key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut r = rand::rng();
    let tail: String = (0..16).map(|_| char::from(ALPHABET[r.random_range(0..ALPHABET.len())])).collect();
    format!("TSRK{tail}")
}

/// A fresh secret: 40 characters, 240 random bits.
fn new_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut r = rand::rng();
    (0..40).map(|_| char::from(ALPHABET[r.random_range(0..ALPHABET.len())])).collect()
}

impl AdminRoute {
    /// May `caller` (a signed request's key) do `action`?
    async fn allowed(&self, caller: &str, action: &str) -> S3Result<bool> {
        let Some(key) = self.dir.key(caller).await? else { return Ok(false) };
        if key.record.root {
            return Ok(true);
        }
        if key.broken || key.record.policies.is_empty() {
            return Ok(false);
        }
        let context = std::collections::HashMap::new();
        let refs: Vec<&Policy> = key.policies.iter().collect();
        let req = policy::Request {
            principal: Principal::User { name: caller, root: false },
            action,
            resource: "arn:aws:s3:::*",
            context: &context,
        };
        Ok(policy::evaluate(&refs, &req) == Decision::Allow)
    }

    async fn write(&self, op: Op) -> Result<(), Answer> {
        let r = self.meta.write(Command { now_ms: 0, op: Some(op) }).await.map_err(unavailable)?;
        match r.outcome {
            Some(command_result::Outcome::Failure(f)) => Err(match f.code() {
                failure::Code::NoSuchAccessKey => fail(StatusCode::NOT_FOUND, "NoSuchAccessKey", f.message),
                failure::Code::NoSuchBucket => fail(StatusCode::NOT_FOUND, "NoSuchBucket", f.message),
                failure::Code::BucketNotEmpty => fail(StatusCode::CONFLICT, "BucketNotEmpty", f.message),
                failure::Code::BucketAlreadyExists | failure::Code::BucketAlreadyOwnedByYou => {
                    fail(StatusCode::CONFLICT, "BucketAlreadyExists", f.message)
                }
                failure::Code::NotYetEnabled => fail(StatusCode::NOT_IMPLEMENTED, "NotImplemented", f.message),
                _ => fail(StatusCode::BAD_REQUEST, "InvalidArgument", f.message),
            }),
            _ => Ok(()),
        }
    }

    async fn key(&self, id: &str) -> Result<AccessKeyRecord, Answer> {
        let r = self.meta.get_access_key(id).await.map_err(unavailable)?;
        r.key.ok_or_else(|| fail(StatusCode::NOT_FOUND, "NoSuchAccessKey", format!("no access key {id}")))
    }

    async fn serve(&self, action: &str, name: Option<String>, body: &[u8]) -> Result<Answer, Answer> {
        let doc = || -> Result<Value, Answer> {
            if body.is_empty() {
                return Ok(json!({}));
            }
            serde_json::from_slice(body).map_err(|e| fail(StatusCode::BAD_REQUEST, "MalformedJSON", e))
        };
        let name = name.unwrap_or_default();
        match action {
            "admin:ListKeys" if name.is_empty() => {
                let keys = self.meta.list_access_keys().await.map_err(unavailable)?.keys;
                Ok(Answer(StatusCode::OK, json!({"keys": keys.iter().map(key_json).collect::<Vec<_>>()})))
            }
            "admin:ListKeys" => {
                let mut k = self.key(&name).await?;
                k.secret_key.clear();
                Ok(Answer(StatusCode::OK, key_json(&k)))
            }
            "admin:CreateKey" => self.create_key(&doc()?).await,
            "admin:UpdateKey" => self.update_key(&name, &doc()?).await,
            "admin:DeleteKey" => {
                // Never locked out. (The state machine allows it: a node
                // starting with the same root key and a new secret replaces
                // the key by deleting and creating it.)
                if self.key(&name).await?.root {
                    return Err(fail(
                        StatusCode::BAD_REQUEST,
                        "InvalidArgument",
                        "the root key cannot be deleted; start Tessera with a new root key to replace it",
                    ));
                }
                self.write(Op::DeleteAccessKey(DeleteAccessKey { access_key_id: name.clone() })).await?;
                self.dir.forget_key(&name);
                Ok(Answer(StatusCode::OK, json!({"deleted": name})))
            }
            "admin:ListPolicies" => {
                let policies = self.meta.list_policies().await.map_err(unavailable)?.policies;
                let list: Vec<Value> = policies
                    .iter()
                    .map(|p| json!({"name": p.name, "document": p.document, "created_ms": p.created_ms}))
                    .collect();
                Ok(Answer(StatusCode::OK, json!({"policies": list})))
            }
            "admin:PutPolicy" => {
                let document = std::str::from_utf8(body)
                    .map_err(|_| fail(StatusCode::BAD_REQUEST, "MalformedPolicy", "the document is not UTF-8"))?;
                Policy::parse(document, Kind::Identity, None)
                    .map_err(|e| fail(StatusCode::BAD_REQUEST, "MalformedPolicy", e))?;
                let p = PolicyRecord { name: name.clone(), document: document.to_owned(), created_ms: 0 };
                self.write(Op::PutPolicy(PutPolicy { policy: Some(p) })).await?;
                Ok(Answer(StatusCode::OK, json!({"name": name})))
            }
            "admin:DeletePolicy" => {
                let keys = self.meta.list_access_keys().await.map_err(unavailable)?.keys;
                let users: Vec<&str> =
                    keys.iter().filter(|k| k.policies.contains(&name)).map(|k| k.access_key_id.as_str()).collect();
                if !users.is_empty() {
                    return Err(fail(
                        StatusCode::CONFLICT,
                        "DeleteConflict",
                        format!("policy {name} is attached to {}; detach it first", users.join(", ")),
                    ));
                }
                let r = self.write(Op::DeletePolicy(DeletePolicy { name: name.clone() })).await;
                r.map_err(|_| fail(StatusCode::NOT_FOUND, "NoSuchPolicy", format!("no policy {name}")))?;
                Ok(Answer(StatusCode::OK, json!({"deleted": name})))
            }
            "admin:SseStatus" => {
                let ring = self.keyring()?;
                let ids: Vec<&str> = ring.ids().collect();
                Ok(Answer(StatusCode::OK, json!({"keys": ids, "current_key": ring.current_id()})))
            }
            "admin:RewrapKeys" => self.rewrap().await,
            "admin:CreateJoinToken" => self.join_token(&doc()?).await,
            "admin:PutBucketTtl" => self.put_bucket_ttl(&name, &doc()?).await,
            "admin:GetBucketTtl" => {
                let b = self.meta.get_bucket(&name).await.map_err(unavailable)?;
                let b =
                    b.bucket.ok_or_else(|| fail(StatusCode::NOT_FOUND, "NoSuchBucket", format!("no bucket {name}")))?;
                let rules: Vec<Value> = b.lifecycle.iter().filter(|r| crate::is_extension(r)).map(ttl_json).collect();
                Ok(Answer(StatusCode::OK, json!({"bucket": name, "rules": rules})))
            }
            "admin:PutNotifyTarget" | "admin:DeleteNotifyTarget" => {
                let url = if action == "admin:PutNotifyTarget" {
                    doc()?["url"].as_str().unwrap_or_default().to_owned()
                } else {
                    String::new()
                };
                if action == "admin:PutNotifyTarget" && !url.starts_with("http://") {
                    return Err(fail(StatusCode::BAD_REQUEST, "InvalidArgument", "url is an http:// URL"));
                }
                let target = tessera_rpc::proto::meta::NotifyTarget { name: name.clone(), url };
                let set = tessera_rpc::proto::meta::SetNotifyTarget { target: Some(target) };
                self.write(Op::SetNotifyTarget(set)).await?;
                Ok(Answer(StatusCode::OK, json!({"target": name, "arn": format!("arn:tessera:sqs::{name}:webhook")})))
            }
            "admin:LifecycleStatus" | "admin:NotifyStatus" => {
                let workers = self.meta.worker_status().await.map_err(unavailable)?.workers;
                let wanted = if action == "admin:NotifyStatus" { "notify" } else { "lifecycle" };
                let w = workers.iter().find(|w| w.name == wanted);
                Ok(Answer(
                    StatusCode::OK,
                    json!({
                        "state": w.map_or("unknown", |w| w.state.as_str()),
                        "progress": w.map(|w| w.progress.clone()),
                        "errors": w.map_or(0, |w| w.errors),
                        "last_error": w.map(|w| w.last_error.clone()).filter(|e| !e.is_empty()),
                        "node_id": w.map(|w| w.node_id),
                    }),
                ))
            }
            _ => Err(fail(StatusCode::NOT_FOUND, "NoSuchAdminCall", "unknown admin call")),
        }
    }

    /// Tessera's lifecycle extension, ages in seconds: `{"rules": [{"prefix",
    /// "expire_seconds"?, "noncurrent_seconds"?, "abort_incomplete_seconds"?}]}`
    /// replaces the bucket's TTL rules (an empty list removes them); S3's
    /// lifecycle rules stay as they are.
    async fn put_bucket_ttl(&self, bucket: &str, doc: &Value) -> Result<Answer, Answer> {
        let bad = |m: String| fail(StatusCode::BAD_REQUEST, "InvalidArgument", m);
        let list = doc["rules"].as_array().ok_or_else(|| bad("rules is a list".into()))?;
        let mut rules = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let secs = |name: &str| -> Result<u64, Answer> {
                match r.get(name) {
                    None | Some(Value::Null) => Ok(0),
                    Some(v) => v
                        .as_u64()
                        .filter(|s| (1..=10 * 365 * 86_400).contains(s))
                        .ok_or_else(|| bad(format!("rule {i}: {name} is 1 to 315360000 seconds"))),
                }
            };
            let rule = tessera_rpc::proto::meta::LifecycleRule {
                id: format!("tessera-ttl-{i}"),
                enabled: true,
                prefix: r.get("prefix").and_then(Value::as_str).unwrap_or_default().to_owned(),
                expiration_seconds: secs("expire_seconds")?,
                noncurrent_seconds: secs("noncurrent_seconds")?,
                abort_incomplete_seconds: secs("abort_incomplete_seconds")?,
                ..Default::default()
            };
            if !crate::is_extension(&rule) {
                return Err(bad(format!(
                    "rule {i} sets none of expire_seconds, noncurrent_seconds, abort_incomplete_seconds"
                )));
            }
            rules.push(rule);
        }
        let n = rules.len();
        let set = tessera_rpc::proto::meta::SetBucketLifecycle { bucket: bucket.to_owned(), rules, extension: true };
        let r =
            self.meta.write(Command { now_ms: 0, op: Some(Op::SetBucketLifecycle(set)) }).await.map_err(unavailable)?;
        if let Some(command_result::Outcome::Failure(f)) = r.outcome {
            return Err(match f.code() {
                failure::Code::NoSuchBucket => {
                    fail(StatusCode::NOT_FOUND, "NoSuchBucket", format!("no bucket {bucket}"))
                }
                failure::Code::NotYetEnabled => fail(StatusCode::NOT_IMPLEMENTED, "NotImplemented", f.message),
                _ => fail(StatusCode::BAD_REQUEST, "InvalidArgument", f.message),
            });
        }
        Ok(Answer(StatusCode::OK, json!({"bucket": bucket, "rules": n})))
    }

    /// A single-use join token for one new node: `{"role", "ttl_s"?}` →
    /// `{"token", "role", "expires_in_s"}` (the only time it is shown).
    async fn join_token(&self, doc: &Value) -> Result<Answer, Answer> {
        let bad = |m: &str| fail(StatusCode::BAD_REQUEST, "InvalidArgument", m);
        let role: tessera_rpc::cluster_tls::Role = doc["role"]
            .as_str()
            .ok_or_else(|| bad("role is meta, datanode or gateway"))?
            .parse()
            .map_err(|e: String| bad(&e))?;
        let ttl_s = doc.get("ttl_s").map_or(Some(3600), Value::as_u64).filter(|t| (1..=7 * 86400).contains(t));
        let ttl_s = ttl_s.ok_or_else(|| bad("ttl_s is 1 to 604800 seconds"))?;
        let tls = tessera_rpc::cluster_tls::current().ok_or_else(|| {
            fail(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                "this gateway runs without cluster TLS: there is no CA to join",
            )
        })?;
        let token = tessera_rpc::enroll::JoinToken::generate(tls.ca_pem())
            .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e))?;
        let create = tessera_rpc::proto::meta::CreateJoinToken {
            id: token.id.clone(),
            secret_sha256: token.secret_sha256(),
            role: role.as_str().to_owned(),
            ttl_ms: ttl_s * 1000,
        };
        self.write(Op::CreateJoinToken(create)).await?;
        Ok(Answer(
            StatusCode::CREATED,
            json!({"token": token.to_string(), "role": role.as_str(), "expires_in_s": ttl_s}),
        ))
    }

    fn keyring(&self) -> Result<Arc<crate::sse::Keyring>, Answer> {
        let k = self.keyring.as_ref().ok_or_else(|| {
            fail(StatusCode::NOT_IMPLEMENTED, "NotImplemented", "this gateway has no SSE-S3 keyring (--sse-keyring)")
        })?;
        k.refresh();
        Ok(k.get())
    }

    /// Re-wraps the data key of every SSE-S3 object and upload whose
    /// master key is not the keyring's current one (the data stays as it
    /// is): afterwards the older keys can leave the keyring. Each record
    /// is replaced only if it is still the one read (`RewrapKey`).
    async fn rewrap(&self) -> Result<Answer, Answer> {
        let ring = self.keyring()?;
        let current = ring.current_id().to_owned();
        let (mut examined, mut rewrapped, mut failed) = (0u64, 0u64, Vec::<String>::new());
        let buckets = self.meta.list_buckets().await.map_err(unavailable)?.buckets;
        for b in &buckets {
            if b.versioning != 0 {
                // Every version, noncurrent ones included.
                let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
                loop {
                    let req = ListVersionsRequest {
                        bucket: b.name.clone(),
                        key_marker: key_marker.clone(),
                        version_id_marker: id_marker.clone(),
                        max_keys: 1000,
                        ..Default::default()
                    };
                    let page = self.meta.list_versions(req).await.map_err(unavailable)?;
                    if page.failure.is_some() {
                        break; // the bucket went away meanwhile
                    }
                    for v in &page.versions {
                        examined += 1;
                        let id = v.record.as_ref().map_or("", |r| r.version_id.as_str());
                        let id = if id.is_empty() { "null" } else { id };
                        let r = self.meta.get_object_version(&b.name, &v.key, id).await.map_err(unavailable)?;
                        let Some(sse) = r.object.and_then(|rec| rec.sse) else { continue };
                        match self.rewrap_one(&ring, &b.name, &v.key, "", id, sse).await {
                            Ok(true) => rewrapped += 1,
                            Ok(false) => {}
                            Err(e) => failed.push(format!("{}/{} (version {id}): {e}", b.name, v.key)),
                        }
                    }
                    if !page.is_truncated {
                        break;
                    }
                    (key_marker, id_marker) = (page.next_key_marker, page.next_version_id_marker);
                }
            }
            // An unversioned bucket: its objects.
            let mut after: Option<String> = None;
            loop {
                if b.versioning != 0 {
                    break;
                }
                let req = ListObjectsRequest {
                    bucket: b.name.clone(),
                    prefix: String::new(),
                    delimiter: None,
                    after: after.clone(),
                    max_keys: 1000,
                };
                let page = self.meta.list_objects(req).await.map_err(unavailable)?;
                if page.failure.is_some() {
                    break; // the bucket went away meanwhile
                }
                for o in &page.objects {
                    examined += 1;
                    let r = self.meta.get_object(&b.name, &o.key).await.map_err(unavailable)?;
                    let Some(sse) = r.object.and_then(|rec| rec.sse) else { continue };
                    match self.rewrap_one(&ring, &b.name, &o.key, "", "", sse).await {
                        Ok(true) => rewrapped += 1,
                        Ok(false) => {}
                        Err(e) => failed.push(format!("{}/{}: {e}", b.name, o.key)),
                    }
                }
                after = page.objects.last().map(|o| o.key.clone()).or(page.last);
                if !page.is_truncated || after.is_none() {
                    break;
                }
            }
            let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
            loop {
                let req = ListUploadsRequest {
                    bucket: b.name.clone(),
                    key_marker: key_marker.clone(),
                    upload_id_marker: id_marker.clone(),
                    max_uploads: 1000,
                    ..Default::default()
                };
                let page = self.meta.list_uploads(req).await.map_err(unavailable)?;
                for up in page.uploads {
                    examined += 1;
                    let Some(sse) = up.sse else { continue };
                    match self.rewrap_one(&ring, &b.name, &up.key, &up.upload_id, "", sse).await {
                        Ok(true) => rewrapped += 1,
                        Ok(false) => {}
                        Err(e) => failed.push(format!("{}/{} (upload {}): {e}", b.name, up.key, up.upload_id)),
                    }
                }
                if !page.is_truncated {
                    break;
                }
                (key_marker, id_marker) = (page.next_key_marker, page.next_upload_id_marker);
            }
        }
        let status = if failed.is_empty() { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR };
        tracing::info!(current, examined, rewrapped, failed = failed.len(), "SSE-S3 rewrap");
        Ok(Answer(
            status,
            json!({"current_key": current, "examined": examined, "rewrapped": rewrapped, "failed": failed}),
        ))
    }

    /// Moves one SSE-S3 record to the current key; false: nothing to do.
    async fn rewrap_one(
        &self,
        ring: &crate::sse::Keyring,
        bucket: &str,
        key: &str,
        upload_id: &str,
        version_id: &str,
        sse: Encryption,
    ) -> Result<bool, String> {
        if sse.mode != encryption::Mode::SseS3 as i32 || sse.key_id == ring.current_id() {
            return Ok(false);
        }
        let dek = ring.unwrap(&sse, bucket, key).map_err(|e| e.to_string())?;
        let cmd = RewrapKey {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            old_wrapped_key: sse.wrapped_key,
            sse: Some(ring.wrap(&dek, bucket, key)),
            version_id: version_id.to_owned(),
        };
        self.write(Op::RewrapKey(cmd)).await.map_err(|a| a.1.to_string())?;
        Ok(true)
    }

    /// Checks that every named policy exists.
    async fn check_policies(&self, names: &[String]) -> Result<(), Answer> {
        if names.is_empty() {
            return Ok(());
        }
        let known = self.meta.list_policies().await.map_err(unavailable)?.policies;
        match names.iter().find(|n| !known.iter().any(|p| &&p.name == n)) {
            Some(missing) => Err(fail(StatusCode::NOT_FOUND, "NoSuchPolicy", format!("no policy {missing}"))),
            None => Ok(()),
        }
    }

    async fn create_key(&self, doc: &Value) -> Result<Answer, Answer> {
        let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
        let id = text("access_key").unwrap_or_else(new_key_id);
        let secret = text("secret_key").unwrap_or_else(new_secret);
        let policies = string_list(doc, "policies")?;
        self.check_policies(&policies).await?;
        let key = AccessKeyRecord {
            access_key_id: id.clone(),
            secret_key: secret.clone(),
            created_ms: 0,
            description: text("description").unwrap_or_default(),
            root: false,
            policies,
            disabled: false,
            expires_ms: doc.get("expires_ms").and_then(Value::as_u64).unwrap_or(0),
        };
        let listed = key_json(&key);
        self.write(Op::CreateAccessKey(CreateAccessKey { key: Some(key) })).await?;
        let mut out = listed;
        out["secret_key"] = json!(secret);
        Ok(Answer(StatusCode::CREATED, out))
    }

    async fn update_key(&self, id: &str, doc: &Value) -> Result<Answer, Answer> {
        let current = self.key(id).await?;
        let policies = match doc.get("policies") {
            Some(_) => string_list(doc, "policies")?,
            None => current.policies.clone(),
        };
        self.check_policies(&policies).await?;
        let flag = |k: &str, was: bool| doc.get(k).and_then(Value::as_bool).unwrap_or(was);
        let update = UpdateAccessKey {
            access_key_id: id.to_owned(),
            policies,
            disabled: flag("disabled", current.disabled),
            expires_ms: doc.get("expires_ms").and_then(Value::as_u64).unwrap_or(current.expires_ms),
        };
        self.write(Op::UpdateAccessKey(update)).await?;
        self.dir.forget_key(id);
        let mut k = self.key(id).await?;
        k.secret_key.clear();
        Ok(Answer(StatusCode::OK, key_json(&k)))
    }
}

fn string_list(doc: &Value, field: &str) -> Result<Vec<String>, Answer> {
    match doc.get(field) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "InvalidArgument", format!("{field} is a list of names"))),
        Some(_) => Err(fail(StatusCode::BAD_REQUEST, "InvalidArgument", format!("{field} is a list of names"))),
    }
}

/// A request with a body must sign it: its `x-amz-content-sha256` is the
/// body's SHA-256.
fn check_payload(headers: &HeaderMap, body: &[u8]) -> S3Result<()> {
    if body.is_empty() {
        return Ok(());
    }
    let claimed = headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()).unwrap_or("");
    if claimed.len() != 64 {
        return Err(s3_error!(InvalidRequest, "an admin request signs its payload (x-amz-content-sha256)"));
    }
    if !claimed.eq_ignore_ascii_case(&hex::encode(Sha256::digest(body))) {
        return Err(sha256_mismatch());
    }
    Ok(())
}

fn sha256_mismatch() -> S3Error {
    let mut e = S3Error::with_message(
        s3s::S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    );
    e.set_status_code(StatusCode::BAD_REQUEST);
    e
}

async fn read_body(body: Body) -> S3Result<Bytes> {
    use futures::StreamExt;
    let mut body = body;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            // s3s checks a signed payload's hash as it streams.
            if e.to_string().contains("Sha256Mismatch") {
                sha256_mismatch()
            } else {
                s3_error!(IncompleteBody, "the admin request body: {e}")
            }
        })?;
        if out.len() + chunk.len() > MAX_BODY {
            return Err(s3_error!(MaxMessageLengthExceeded, "an admin request body is at most 64 KiB"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(&self, _method: &Method, uri: &Uri, _headers: &HeaderMap, _: &mut http::Extensions) -> bool {
        uri.path().starts_with(PREFIX)
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let Some(caller) = req.credentials.as_ref().map(|c| c.access_key.clone()) else {
            return Err(s3_error!(AccessDenied, "admin calls are signed"));
        };
        let rest = req.uri.path().strip_prefix(PREFIX).unwrap_or("");
        let Some(matched) = calls::find(&req.method, rest) else {
            return Ok(respond(fail(
                StatusCode::NOT_FOUND,
                "NoSuchAdminCall",
                format!("{} {}", req.method, req.uri.path()),
            )));
        };
        let call = match cluster::call_of(&req.method, &matched) {
            Some(c) => (matched.action, Err(c)),
            None => (matched.action, Ok(matched.params.into_iter().next())),
        };
        let action = call.0;
        if !self.allowed(&caller, action).await? {
            return Err(S3Error::with_message(s3s::S3ErrorCode::AccessDenied, format!("{caller} may not {action}")));
        }
        let body = read_body(req.input).await?;
        check_payload(&req.headers, &body)?;
        let answer = match call.1 {
            Ok(name) => self.serve(action, name, &body).await,
            Err(c) => self.cluster(&caller, c, &body).await,
        };
        let answer = match answer {
            Ok(a) | Err(a) => a,
        };
        tracing::info!(target: "tessera_gateway::admin", caller, action, status = answer.0.as_u16(), "admin call");
        Ok(respond(answer))
    }
}

fn respond(a: Answer) -> S3Response<Body> {
    let mut r = S3Response::new(Body::from(a.1.to_string()));
    r.status = Some(a.0);
    r.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// A TTL rule (the lifecycle extension) as the admin API shows it.
fn ttl_json(r: &tessera_rpc::proto::meta::LifecycleRule) -> Value {
    let secs = |s: u64| (s > 0).then_some(s);
    json!({
        "prefix": r.prefix,
        "expire_seconds": secs(r.expiration_seconds),
        "noncurrent_seconds": secs(r.noncurrent_seconds),
        "abort_incomplete_seconds": secs(r.abort_incomplete_seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_keys_and_secrets_look_like_aws_ones_and_differ() {
        let (a, b) = (new_key_id(), new_key_id());
        assert_eq!(a.len(), 20);
        assert!(a.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        assert_ne!(a, b);
        let s = new_secret();
        assert_eq!(s.len(), 40);
        assert_ne!(s, new_secret());
    }

    #[test]
    fn bodies_must_be_signed() {
        let mut h = HeaderMap::new();
        assert!(check_payload(&h, b"").is_ok());
        assert!(check_payload(&h, b"{}").is_err(), "no hash");
        h.insert("x-amz-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
        assert!(check_payload(&h, b"{}").is_err(), "unsigned");
        h.insert("x-amz-content-sha256", hex::encode(Sha256::digest(b"{}")).parse().unwrap());
        assert!(check_payload(&h, b"{}").is_ok());
        assert_eq!(check_payload(&h, b"{ }").unwrap_err().code().as_str(), "XAmzContentSHA256Mismatch");
    }
}
