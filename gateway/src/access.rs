//! The check every S3 request passes after authentication and before its
//! input is read: headers asking for guarantees Tessera does not give
//! (`unenforced`), presigned lifetimes, `x-amz-expected-bucket-owner` /
//! `x-amz-source-expected-bucket-owner`, and who may do what:
//!
//! ```text
//!  root key                          ─► allowed (never locked out)
//!  CreateBucket, ListBuckets         ─► any signed request (ListBuckets lists the caller's own buckets)
//!  bucket and object operations      ─► the bucket policy decides (policy::evaluate):
//!      a matching Deny               ─► AccessDenied (the owner keeps Get/Put/DeleteBucketPolicy)
//!      a matching Allow              ─► allowed (anonymous requests too: a public bucket)
//!      an ACL grant (acl.rs)         ─► allowed (a grant is an Allow on the resource side)
//!      nothing matches               ─► allowed for the bucket's owner, AccessDenied for anyone else
//!  CopyObject / UploadPartCopy       ─► also s3:GetObject on the source
//!  DeleteObjects                     ─► s3:DeleteObject decided per key by the handler
//! ```
//!
//! Keys and buckets (owner, policy) are cached for a few seconds, so a
//! policy change reaches every gateway within [`BUCKET_TTL`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{S3Error, S3Result, s3_error};
use tessera_rpc::MetaClient;
use tessera_rpc::proto::meta::{AccessKeyRecord, BucketRecord, failure};

use crate::acl;
use crate::policy::{self, Decision, Kind, Policy, Principal};
use crate::unenforced::refusal;

/// The client's address (a request extension set by the HTTP front).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// How a request arrived (a request extension set by the HTTP front):
/// `aws:SecureTransport` is true over TLS.
#[derive(Clone, Copy, Debug)]
pub struct Transport {
    /// The connection is TLS.
    pub tls: bool,
}

/// Who made a request, as the access check resolved it (a request
/// extension for the handlers).
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The access key; `None` for an anonymous request.
    pub key: Option<String>,
    /// The root key.
    pub root: bool,
    /// The key's identity policies, when it has any: it may then do only
    /// what they (or a bucket policy) allow, even in its own buckets.
    pub identity: Option<Arc<Vec<Policy>>>,
    /// One of the key's policies does not parse: refused everything.
    pub broken: bool,
    /// The request's condition keys (for checks the handlers make).
    pub context: HashMap<String, Vec<String>>,
}

/// How long a looked-up key is trusted.
pub const KEY_TTL: Duration = Duration::from_secs(5);
/// How long a looked-up bucket (owner, policy) is trusted.
pub const BUCKET_TTL: Duration = Duration::from_secs(2);

/// A bucket as access checks need it.
#[derive(Debug)]
pub struct BucketAccess {
    /// The owner's access key.
    pub owner: String,
    /// The bucket policy, parsed.
    pub policy: Option<Policy>,
    /// The CORS rules (empty: none).
    pub cors: Vec<tessera_rpc::proto::meta::CorsRule>,
    /// `RestrictPublicBuckets`: a public policy grants only the owner.
    pub restrict_public: bool,
    /// A stored policy that does not parse: nothing is allowed through
    /// the bucket (fail closed) but its owner's policy management.
    pub policy_broken: bool,
    /// The bucket ACL (empty: the owner only).
    pub acl: Vec<tessera_rpc::proto::meta::AclGrant>,
    /// Ownership `BucketOwnerEnforced`: ACLs grant nothing.
    pub acl_disabled: bool,
    /// `IgnorePublicAcls`: grants to the public groups grant nothing.
    pub ignore_public_acls: bool,
}

type Cached<T> = Mutex<HashMap<String, (T, Instant)>>;

/// An access key as access checks need it.
#[derive(Debug)]
pub struct KeyAccess {
    /// The record.
    pub record: AccessKeyRecord,
    /// Its identity policies, parsed. When one does not parse the key is
    /// refused everything (fail closed: it might have been a Deny).
    pub policies: Arc<Vec<Policy>>,
    /// An attached policy does not parse.
    pub broken: bool,
}

/// Access keys and buckets from the metadata service, cached briefly.
pub struct Directory {
    meta: MetaClient,
    keys: Cached<Option<Arc<KeyAccess>>>,
    buckets: Cached<Option<Arc<BucketAccess>>>,
    /// Bucket records as PutObject decides with them, with their digests:
    /// the metadata service applies such a put only while the bucket's
    /// record is still that one, so a stale entry costs a retry, never a
    /// write made with an old configuration.
    for_writes: Cached<Arc<(BucketRecord, Vec<u8>)>>,
    /// Until when puts go unchecked (and uncached): the metadata cluster
    /// refused a checked one (a node of an older release).
    unchecked_until: Mutex<Option<Instant>>,
}

/// How long puts go unchecked after the metadata cluster refused a checked
/// one (a rolling upgrade under way).
const UNCHECKED_FOR: Duration = Duration::from_secs(60);

fn unavailable(e: impl std::fmt::Display) -> S3Error {
    tracing::warn!(error = %e, "metadata service unavailable for an access check");
    s3_error!(ServiceUnavailable, "the metadata service is unavailable now; retry")
}

fn cached<T: Clone>(c: &Cached<T>, k: &str, ttl: Duration) -> Option<T> {
    let m = c.lock().ok()?;
    m.get(k).filter(|(_, at)| at.elapsed() < ttl).map(|(v, _)| v.clone())
}

fn remember<T>(c: &Cached<T>, k: &str, v: T) {
    if let Ok(mut m) = c.lock() {
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(k.to_owned(), (v, Instant::now()));
    }
}

impl Directory {
    /// Looks keys and buckets up through `meta`.
    pub fn new(meta: MetaClient) -> Self {
        Directory {
            meta,
            keys: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            for_writes: Mutex::new(HashMap::new()),
            unchecked_until: Mutex::new(None),
        }
    }

    /// The record of `bucket` a put may decide with, and its digest, if
    /// one was read less than [`BUCKET_TTL`] ago.
    pub fn bucket_for_write(&self, bucket: &str) -> Option<Arc<(BucketRecord, Vec<u8>)>> {
        cached(&self.for_writes, bucket, BUCKET_TTL)
    }

    /// Remembers a record read for a put (one with a digest, while checked
    /// puts are on).
    pub fn remember_for_write(&self, record: BucketRecord, digest: Vec<u8>) {
        if !digest.is_empty() && self.checked_puts() {
            let name = record.name.clone();
            remember(&self.for_writes, &name, Arc::new((record, digest)));
        }
    }

    /// Whether puts carry their bucket record's digest.
    pub fn checked_puts(&self) -> bool {
        self.unchecked_until.lock().is_ok_and(|u| u.is_none_or(|until| Instant::now() >= until))
    }

    /// The metadata cluster refused a checked put: send them unchecked,
    /// and decide each with a fresh record, for a while.
    pub fn checked_puts_refused(&self) {
        if let Ok(mut u) = self.unchecked_until.lock() {
            *u = Some(Instant::now() + UNCHECKED_FOR);
        }
        if let Ok(mut m) = self.for_writes.lock() {
            m.clear();
        }
    }

    /// The access key `id`, if it exists and is usable (not disabled, not
    /// expired).
    pub async fn key(&self, id: &str) -> S3Result<Option<Arc<KeyAccess>>> {
        let key = match cached(&self.keys, id, KEY_TTL) {
            Some(k) => k,
            None => {
                let reply = self.meta.get_access_key(id).await.map_err(unavailable)?;
                let key = match (reply.key, reply.failure) {
                    (Some(k), None) => {
                        let total = reply.policies.len();
                        let policies: Vec<Policy> = reply
                            .policies
                            .iter()
                            .filter_map(|p| {
                                Policy::parse(&p.document, Kind::Identity, None)
                                    .map_err(|e| {
                                        tracing::error!(policy = p.name, error = %e, "an identity policy does not parse")
                                    })
                                    .ok()
                            })
                            .collect();
                        let broken = policies.len() != total;
                        Some(Arc::new(KeyAccess { record: k, policies: Arc::new(policies), broken }))
                    }
                    (_, Some(f)) if f.code() != failure::Code::NoSuchAccessKey => {
                        return Err(s3_error!(InternalError, "access key lookup failed: {}", f.message));
                    }
                    _ => None,
                };
                remember(&self.keys, id, key.clone());
                key
            }
        };
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Ok(key.filter(|k| !k.record.disabled && (k.record.expires_ms == 0 || u128::from(k.record.expires_ms) > now_ms)))
    }

    /// The bucket `name` (owner and policy), if it exists.
    pub async fn bucket(&self, name: &str) -> S3Result<Option<Arc<BucketAccess>>> {
        if let Some(b) = cached(&self.buckets, name, BUCKET_TTL) {
            return Ok(b);
        }
        let r = self.meta.get_bucket(name).await.map_err(unavailable)?;
        let b = r.bucket.map(|b| {
            let parsed = (!b.policy.is_empty()).then(|| Policy::parse(&b.policy, Kind::Bucket, Some(name)));
            let policy_broken = matches!(&parsed, Some(Err(_)));
            let policy = parsed.and_then(|p| {
                p.map_err(|e| tracing::error!(bucket = name, error = %e, "a stored bucket policy does not parse; bucket closed"))
                    .ok()
            });
            let restrict_public = b.public_access_block.is_some_and(|p| p.restrict_public_buckets);
            let ignore_public_acls = b.public_access_block.is_some_and(|p| p.ignore_public_acls);
            Arc::new(BucketAccess {
                owner: b.owner,
                policy,
                cors: b.cors,
                restrict_public,
                policy_broken,
                acl: b.acl,
                acl_disabled: b.acl_disabled,
                ignore_public_acls,
            })
        });
        // Only found buckets are remembered: a bucket created a moment
        // later must not stay unknown (an unknown bucket is left to the
        // operation, which answers NoSuchBucket).
        if let Some(found) = &b {
            remember(&self.buckets, name, Some(found.clone()));
        }
        Ok(b)
    }

    /// Forgets access key `id` (disabled, deleted or given other policies here).
    pub fn forget_key(&self, id: &str) {
        if let Ok(mut m) = self.keys.lock() {
            m.remove(id);
        }
    }

    /// Forgets `bucket` (its policy changed here).
    pub fn forget_bucket(&self, bucket: &str) {
        if let Ok(mut m) = self.buckets.lock() {
            m.remove(bucket);
        }
        if let Ok(mut m) = self.for_writes.lock() {
            m.remove(bucket);
        }
    }

    /// Decides whether `caller` may do `action` on `bucket` (and `key`):
    /// the rules of the module docs. `NoSuchBucket` is left to the operation.
    pub async fn authorize(&self, caller: &Caller, action: &str, bucket: &str, key: Option<&str>) -> S3Result<()> {
        if caller.root {
            return Ok(());
        }
        let Some(b) = self.bucket(bucket).await? else {
            // No such bucket: the operation answers NoSuchBucket, unless
            // the key's own policies refuse it first.
            return self.authorize_identity(caller, action, &format!("arn:aws:s3:::{bucket}"));
        };
        let owner = caller.key.as_deref().is_some_and(|k| k == b.owner);
        let resource = match key {
            Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
            None => format!("arn:aws:s3:::{bucket}"),
        };
        let req = request(caller, action, &resource);
        let identity = caller.identity.as_ref().map_or(Decision::Default, |p| {
            let refs: Vec<&Policy> = p.iter().collect();
            policy::evaluate(&refs, &req)
        });
        let bucket_says = b.policy.as_ref().map_or(Decision::Default, |p| policy::evaluate(&[p], &req));
        let keeps_policy = owner && action.to_ascii_lowercase().ends_with("bucketpolicy");
        if b.policy_broken || caller.broken {
            return if keeps_policy && !caller.broken { Ok(()) } else { Err(s3_error!(AccessDenied, "Access Denied")) };
        }
        // RestrictPublicBuckets: what a public policy grants, it grants the owner only.
        let restricted = b.restrict_public && !owner && b.policy.as_ref().is_some_and(Policy::is_public);
        let denied = identity == Decision::Deny || bucket_says == Decision::Deny;
        let allowed = if denied {
            keeps_policy
        } else {
            identity == Decision::Allow
                || (bucket_says == Decision::Allow && !restricted)
                || (owner && caller.identity.is_none())
        };
        if allowed || (!denied && self.acl_grants(caller, owner, &b, action, bucket, key).await?) {
            Ok(())
        } else {
            Err(s3_error!(AccessDenied, "Access Denied"))
        }
    }

    /// Does an ACL (the bucket's, or the object's) grant `action`? Looked
    /// up only when nothing else allowed the request; an object's ACL costs
    /// a metadata read. The owner's own entry (canned ACLs name the owner
    /// with FULL_CONTROL) grants the owner nothing here: an owner limited
    /// by identity policies gets only what they (or public grants) allow.
    async fn acl_grants(
        &self,
        caller: &Caller,
        owner: bool,
        b: &BucketAccess,
        action: &str,
        bucket: &str,
        key: Option<&str>,
    ) -> S3Result<bool> {
        let Some((perm, on)) = acl::needed(action).filter(|_| !b.acl_disabled) else { return Ok(false) };
        let who = caller.key.as_deref();
        let decide = |acl: &[tessera_rpc::proto::meta::AclGrant]| {
            if owner {
                acl::grants_groups(acl, who.is_some(), perm, b.ignore_public_acls)
            } else {
                acl::grants(acl, who, perm, b.ignore_public_acls)
            }
        };
        match (on, key) {
            (acl::On::Bucket, _) => Ok(decide(&b.acl)),
            (acl::On::Object, Some(k)) => {
                let r = self.meta.get_object(bucket, k).await.map_err(unavailable)?;
                Ok(r.object.is_some_and(|o| decide(&o.acl)))
            }
            (acl::On::Object, None) => Ok(false),
        }
    }

    /// For a key with identity policies, an operation they must allow
    /// outside any existing bucket (CreateBucket, ListBuckets, a missing
    /// bucket); other keys may.
    pub fn authorize_identity(&self, caller: &Caller, action: &str, resource: &str) -> S3Result<()> {
        if caller.broken && !caller.root {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        let Some(p) = caller.identity.as_ref().filter(|_| !caller.root) else { return Ok(()) };
        let refs: Vec<&Policy> = p.iter().collect();
        match policy::evaluate(&refs, &request(caller, action, resource)) {
            Decision::Allow => Ok(()),
            _ => Err(s3_error!(AccessDenied, "Access Denied")),
        }
    }
}

fn request<'a>(caller: &'a Caller, action: &'a str, resource: &'a str) -> policy::Request<'a> {
    let principal = match &caller.key {
        Some(k) => Principal::User { name: k, root: false },
        None => Principal::Anonymous,
    };
    policy::Request { principal, action, resource, context: &caller.context }
}

/// Whether a query string names a `versionId`.
fn has_version_id(query: Option<&str>) -> bool {
    query.unwrap_or("").split('&').any(|p| p == "versionId" || p.starts_with("versionId="))
}

/// The policy action of `op` on a given version (`versioned`): S3's
/// `…Version…` actions, so a policy can allow the current version only.
pub fn action_of_versioned(op: &str, versioned: bool) -> String {
    if versioned {
        let a = match op {
            "HeadObject" | "GetObject" | "GetObjectAttributes" => Some("s3:GetObjectVersion"),
            "DeleteObject" => Some("s3:DeleteObjectVersion"),
            "GetObjectTagging" => Some("s3:GetObjectVersionTagging"),
            "PutObjectTagging" => Some("s3:PutObjectVersionTagging"),
            "DeleteObjectTagging" => Some("s3:DeleteObjectVersionTagging"),
            "GetObjectAcl" => Some("s3:GetObjectVersionAcl"),
            "PutObjectAcl" => Some("s3:PutObjectVersionAcl"),
            _ => None,
        };
        if let Some(a) = a {
            return a.to_owned();
        }
    }
    action_of(op)
}

/// The policy action of S3 operation `op` (s3s's operation name).
pub fn action_of(op: &str) -> String {
    let a = match op {
        "ListObjectVersions" => "s3:ListBucketVersions",
        "HeadObject" | "GetObject" => "s3:GetObject",
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => "s3:ListBucket",
        "ListBuckets" => "s3:ListAllMyBuckets",
        "CopyObject" | "CreateMultipartUpload" | "UploadPart" | "UploadPartCopy" | "CompleteMultipartUpload" => {
            "s3:PutObject"
        }
        "ListParts" => "s3:ListMultipartUploadParts",
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
        "DeleteObjects" => "s3:DeleteObject",
        "PutBucketPolicy" | "GetBucketPolicy" | "DeleteBucketPolicy" | "GetBucketPolicyStatus" => {
            return format!("s3:{op}");
        }
        other => return format!("s3:{other}"),
    };
    a.to_owned()
}

/// An SSE-C key travels only over TLS, as S3 requires, or over loopback
/// (a client on the same machine: nothing crosses a network).
fn check_customer_key_transport(cx: &mut S3AccessContext<'_>) -> S3Result<()> {
    let h = cx.headers();
    let has_key = h.contains_key("x-amz-server-side-encryption-customer-key")
        || h.contains_key("x-amz-copy-source-server-side-encryption-customer-key");
    if !has_key || cx.extensions_mut().get::<Transport>().is_some_and(|t| t.tls) {
        return Ok(());
    }
    if cx.extensions_mut().get::<Peer>().is_some_and(|Peer(a)| a.ip().is_loopback()) {
        return Ok(());
    }
    Err(s3_error!(
        InvalidRequest,
        "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection."
    ))
}

/// The condition keys of a request (`aws:*`, `s3:*`), lower-cased.
fn context(cx: &mut S3AccessContext<'_>, key: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut c: HashMap<String, Vec<String>> = HashMap::new();
    let mut put = |k: &str, v: String| c.entry(k.to_owned()).or_default().push(v);
    if let Some(Peer(addr)) = cx.extensions_mut().get::<Peer>() {
        put("aws:sourceip", addr.ip().to_string());
    }
    let tls = cx.extensions_mut().get::<Transport>().is_some_and(|t| t.tls);
    put("aws:securetransport", tls.to_string());
    let now = time::OffsetDateTime::now_utc();
    if let Ok(t) = now.format(&time::format_description::well_known::Rfc3339) {
        put("aws:currenttime", t);
    }
    put("aws:epochtime", now.unix_timestamp().to_string());
    put("aws:principaltype", if key.is_some() { "User" } else { "Anonymous" }.into());
    if let Some(k) = key {
        put("aws:username", k.to_owned());
        put("aws:userid", k.to_owned());
    }
    for (h, k) in [
        ("user-agent", "aws:useragent"),
        ("referer", "aws:referer"),
        ("x-amz-acl", "s3:x-amz-acl"),
        ("x-amz-server-side-encryption", "s3:x-amz-server-side-encryption"),
        ("x-amz-server-side-encryption-customer-algorithm", "s3:x-amz-server-side-encryption-customer-algorithm"),
    ] {
        if let Some(v) = cx.headers().get(h).and_then(|v| v.to_str().ok()) {
            put(k, v.to_owned());
        }
    }
    let query = cx.uri().query().unwrap_or("").to_owned();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = match k {
            "prefix" => "s3:prefix",
            "delimiter" => "s3:delimiter",
            "max-keys" => "s3:max-keys",
            _ => continue,
        };
        let v = query_decode(v);
        put(key, v);
    }
    c
}

/// The bucket an `x-amz-copy-source` header names.
fn copy_source_bucket(h: &http::HeaderMap) -> Option<String> {
    let s = h.get("x-amz-copy-source")?.to_str().ok()?;
    let b = percent_decode(s.trim_start_matches('/')).split('/').next()?.to_owned();
    (!b.is_empty()).then_some(b)
}

/// Percent-decodes a query value (`+` is a space there too).
fn query_decode(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// Percent-decodes a path (`x-amz-copy-source`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        match (hex, b[i]) {
            (Some(v), _) => {
                out.push(v);
                i += 3;
                continue;
            }
            (None, c) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// [`S3Access`] for the gateway.
pub struct RequestCheck {
    dir: Arc<Directory>,
    per_key: Option<Arc<crate::limits::RateLimiter>>,
}

impl RequestCheck {
    /// Decides through `dir`; limits each key's rate with `per_key`.
    pub fn new(dir: Arc<Directory>, per_key: Option<Arc<crate::limits::RateLimiter>>) -> Self {
        RequestCheck { dir, per_key }
    }

    /// Fails with 403 AccessDenied unless `bucket` is owned by `expected`,
    /// as S3 does for the expected-bucket-owner headers. A bucket that does
    /// not exist is left to the operation (NoSuchBucket).
    async fn check_owner(&self, bucket: &str, expected: &str) -> S3Result<()> {
        match self.dir.bucket(bucket).await? {
            Some(b) if b.owner != expected => Err(s3_error!(AccessDenied, "Access Denied")),
            _ => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl S3Access for RequestCheck {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if let Some(e) = refusal(cx.s3_op().name(), cx.headers(), cx.uri().query()) {
            return Err(e);
        }
        check_customer_key_transport(cx)?;
        check_presigned_expiry(cx.uri().query())?;
        let key_id = cx.credentials().map(|c| c.access_key.clone());
        if let (Some(l), Some(k)) = (&self.per_key, &key_id)
            && !l.allow(k)
        {
            return Err(s3_error!(SlowDown, "{}", crate::limits::SLOW_DOWN));
        }
        let key = match &key_id {
            Some(k) => self.dir.key(k).await?,
            None => None,
        };
        let root = key.as_ref().is_some_and(|k| k.record.root);
        let identity = key.as_ref().filter(|k| !k.record.policies.is_empty()).map(|k| k.policies.clone());
        let broken = key.as_ref().is_some_and(|k| k.broken);
        // Condition keys are built only when a policy may read them: the
        // key's own, or one on a bucket the request touches.
        let mut policed = identity.is_some();
        if !root && !policed {
            for b in [cx.s3_path().get_bucket_name().map(str::to_owned), copy_source_bucket(cx.headers())]
                .into_iter()
                .flatten()
            {
                policed |= self.dir.bucket(&b).await?.is_some_and(|b| b.policy.is_some());
            }
        }
        let context = if policed && !root { context(cx, key_id.as_deref()) } else { HashMap::new() };
        let op = cx.s3_op().name();
        let caller = Caller { key: key_id.clone(), root, identity, broken, context };
        let header = |name: &str| cx.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let target = match cx.s3_path() {
            S3Path::Bucket { bucket } => Some((bucket.to_string(), None)),
            S3Path::Object { bucket, key } => Some((bucket.to_string(), Some(key.to_string()))),
            S3Path::Root => None,
        };
        if let Some(expected) = header("x-amz-expected-bucket-owner")
            && let Some((b, _)) = &target
        {
            self.check_owner(b, expected.trim()).await?;
        }
        let source = header("x-amz-copy-source").map(|s| {
            let s = s.split('?').next().unwrap_or("").trim_start_matches('/').to_owned();
            let s = percent_decode(&s);
            match s.split_once('/') {
                Some((b, k)) => (b.to_owned(), k.to_owned()),
                None => (s, String::new()),
            }
        });
        if let Some(expected) = header("x-amz-source-expected-bucket-owner")
            && let Some((b, _)) = &source
            && !b.is_empty()
        {
            self.check_owner(b, expected.trim()).await?;
        }
        match (&target, op) {
            // Anyone signed may create a bucket or list their own, unless
            // the key's own policies say otherwise.
            (Some((bucket, _)), "CreateBucket") if key_id.is_some() => {
                self.dir.authorize_identity(&caller, "s3:CreateBucket", &format!("arn:aws:s3:::{bucket}"))?;
            }
            (_, "ListBuckets") if key_id.is_some() => {
                self.dir.authorize_identity(&caller, "s3:ListAllMyBuckets", "arn:aws:s3:::*")?;
            }
            (None, _) | (_, "CreateBucket" | "ListBuckets") => {
                if key_id.is_none() {
                    return Err(s3_error!(AccessDenied, "Access Denied"));
                }
            }
            // Each key of a multi-delete is decided by the handler; a form
            // upload's key is in its body (`post_object` below).
            (Some(_), "DeleteObjects" | "PostObject") => {}
            (Some((bucket, key)), _) => {
                let action = action_of_versioned(op, has_version_id(cx.uri().query()));
                self.dir.authorize(&caller, &action, bucket, key.as_deref()).await?;
            }
        }
        if matches!(op, "CopyObject" | "UploadPartCopy")
            && let Some((b, k)) = &source
            && !b.is_empty()
        {
            // A copy of a given version needs s3:GetObjectVersion, as in S3.
            let versioned = header("x-amz-copy-source").is_some_and(|s| has_version_id(s.split_once('?').map(|p| p.1)));
            let action = if versioned { "s3:GetObjectVersion" } else { "s3:GetObject" };
            self.dir.authorize(&caller, action, b, Some(k)).await?;
        }
        cx.extensions_mut().insert(caller);
        Ok(())
    }

    /// A browser-form upload, once s3s has parsed it and checked its
    /// policy: made the PutObject it stands for (post.rs), then decided as
    /// `s3:PutObject` on its key.
    async fn post_object(&self, req: &mut s3s::S3Request<s3s::dto::PostObjectInput>) -> S3Result<()> {
        crate::post::prepare(req)?;
        let caller = req.extensions.get::<Caller>().cloned().unwrap_or_default();
        self.dir.authorize(&caller, "s3:PutObject", &req.input.bucket, Some(&req.input.key)).await
    }
}

/// Longest lifetime of a SigV4 presigned URL, as S3 allows (seven days).
const MAX_PRESIGNED_EXPIRES_SECS: u64 = 604_800;

/// A SigV4 presigned URL lives at most 7 days (`X-Amz-Expires`); S3 refuses
/// a longer lifetime with `AuthorizationQueryParametersError`, even when the
/// signature over it is valid. (s3s refuses expired URLs, `0` included,
/// and unparsable lifetimes before this runs.)
fn check_presigned_expiry(query: Option<&str>) -> S3Result<()> {
    let Some(v) = query.unwrap_or("").split('&').find_map(|p| p.strip_prefix("X-Amz-Expires=")) else {
        return Ok(());
    };
    match v.parse::<u64>() {
        Ok(n) if n > MAX_PRESIGNED_EXPIRES_SECS => Err(s3_error!(
            AuthorizationQueryParametersError,
            "X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_EXPIRES_SECS}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_presigned_expiry;

    #[test]
    fn presigned_lifetimes_are_at_most_a_week() {
        assert!(check_presigned_expiry(None).is_ok());
        assert!(check_presigned_expiry(Some("list-type=2")).is_ok());
        assert!(check_presigned_expiry(Some("X-Amz-Date=x&X-Amz-Expires=604800&X-Amz-Signature=y")).is_ok());
        assert!(check_presigned_expiry(Some("X-Amz-Expires=1")).is_ok());
        for bad in ["X-Amz-Expires=604801", "X-Amz-Expires=2592000"] {
            let e = check_presigned_expiry(Some(bad)).unwrap_err();
            assert_eq!(e.code().as_str(), "AuthorizationQueryParametersError", "{bad}");
        }
    }
}
