//! The S3 operations (s3s's `S3` trait) on metadata records and the shard
//! pipelines.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use http::HeaderMap;
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use tessera_rpc::MetaClientError;
use tessera_rpc::names::{MAX_KEY_BYTES, key_problem};
use tessera_rpc::proto::meta::{
    self as pb, Command, CommandResult, Condition, Failure, ObjectMeta, ObjectRecord, command, command_result,
    condition, failure,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument as _;

use crate::access::RequestCheck;
use crate::auth::MetaAuth;
use crate::cluster::Cluster;
use crate::read::{ReadError, read_sharded};
use crate::write::{BodyDigest, BodyStream, IdleTimeout, WriteError, WritePlan, read_small, write_sharded};
use crate::{Codecs, GatewayConfig};

/// Largest single PUT, part, or CopyObject source (5 GiB).
pub const MAX_PUT_BYTES: u64 = 5 << 30;
/// Largest total of `x-amz-meta-*` names and values.
pub const MAX_USER_METADATA_BYTES: usize = 2048;
/// Most keys in one DeleteObjects request.
const MAX_DELETE_KEYS: usize = 1000;
/// Chunks buffered between a shard reader and the response body.
const READ_AHEAD_CHUNKS: usize = 16;

/// Builds the s3s service: our operations, SigV4 with keys from metadata,
/// and virtual-hosted-style addressing when domains are configured.
pub fn build_service(cfg: Arc<GatewayConfig>, cluster: Cluster, md5: Option<tessera_md5::Md5Engine>) -> S3Service {
    let auth = MetaAuth::new(cluster.meta().clone());
    let access = RequestCheck::new(cluster.meta().clone());
    let domains = cfg.domains.clone();
    let s3 = Tessera { cfg, cluster, codecs: Arc::new(Codecs::default()), md5 };
    let mut b = S3ServiceBuilder::new(s3);
    b.set_auth(auth);
    b.set_access(access);
    if !domains.is_empty() {
        b.set_host(VirtualHosts { domains });
    }
    b.build()
}

/// Virtual-hosted-style addressing: `<bucket>.<domain>[:port]` names a
/// bucket; the bare domain, and any host that is not under a configured
/// domain (an IP address, `localhost`), is path style.
struct VirtualHosts {
    domains: Vec<String>,
}

impl s3s::host::S3Host for VirtualHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<s3s::host::VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        for d in &self.domains {
            if name.eq_ignore_ascii_case(d) {
                return Ok(s3s::host::VirtualHost::new(d.as_str()));
            }
            if name.len() > d.len() + 1
                && name[name.len() - d.len()..].eq_ignore_ascii_case(d)
                && name.as_bytes()[name.len() - d.len() - 1] == b'.'
            {
                let bucket = &name[..name.len() - d.len() - 1];
                return Ok(s3s::host::VirtualHost::new(d.as_str()).with_bucket(bucket));
            }
        }
        Ok(s3s::host::VirtualHost::new(name))
    }
}

#[derive(Clone)]
struct Tessera {
    cfg: Arc<GatewayConfig>,
    cluster: Cluster,
    codecs: Arc<Codecs>,
    /// Hashes the ETags of concurrent bodies together (none: each body on
    /// its own task).
    md5: Option<tessera_md5::Md5Engine>,
}

// ------------------------------------------------------------ error mapping

fn unavailable(e: MetaClientError) -> S3Error {
    s3_error!(ServiceUnavailable, "the metadata service is unavailable: {e}")
}

fn from_failure(f: &Failure) -> S3Error {
    use failure::Code as C;
    let code = match f.code() {
        C::NoSuchBucket => S3ErrorCode::NoSuchBucket,
        C::BucketAlreadyExists => S3ErrorCode::BucketAlreadyExists,
        C::BucketAlreadyOwnedByYou => S3ErrorCode::BucketAlreadyOwnedByYou,
        C::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
        C::InvalidBucketName => S3ErrorCode::InvalidBucketName,
        C::KeyTooLong => S3ErrorCode::KeyTooLongError,
        C::NoSuchKey => S3ErrorCode::NoSuchKey,
        C::PreconditionFailed => S3ErrorCode::PreconditionFailed,
        C::NoSuchUpload => S3ErrorCode::NoSuchUpload,
        C::InvalidPart => S3ErrorCode::InvalidPart,
        C::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
        C::EntityTooSmall => S3ErrorCode::EntityTooSmall,
        C::InvalidArgument => S3ErrorCode::InvalidArgument,
        C::NoSuchAccessKey => S3ErrorCode::InvalidAccessKeyId,
        C::EntityTooLarge => S3ErrorCode::EntityTooLarge,
        C::Unspecified => S3ErrorCode::InternalError,
    };
    if f.message.is_empty() { S3Error::new(code) } else { S3Error::with_message(code, f.message.clone()) }
}

fn write_error(e: WriteError) -> S3Error {
    match e {
        // s3s does not export its aws-chunked error type; its message is
        // pinned with s3s (=0.14.1) and a test covers it.
        WriteError::Body(m) if m.contains("AwsChunkedStreamError: SignatureMismatch") => {
            s3_error!(SignatureDoesNotMatch, "a chunk signature of the streaming upload does not match")
        }
        // Likewise for the payload hash s3s checks against x-amz-content-sha256.
        WriteError::Body(m) if m.contains("UploadStreamError: Sha256Mismatch") => {
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            );
            e.set_status_code(http::StatusCode::BAD_REQUEST);
            e
        }
        WriteError::Body(m) => s3_error!(IncompleteBody, "{m}"),
        e @ WriteError::Incomplete { .. } => s3_error!(IncompleteBody, "{e}"),
        e @ WriteError::TooLong { .. } => s3_error!(InvalidRequest, "{e}"),
        e @ WriteError::Quorum { .. } => s3_error!(ServiceUnavailable, "{e}"),
        e @ WriteError::Idle(_) => s3_error!(RequestTimeout, "the request timed out: {e}"),
        WriteError::Internal(m) => s3_error!(InternalError, "{m}"),
    }
}

fn check_key(key: &str) -> S3Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(s3_error!(KeyTooLongError, "Your key is too long (at most {MAX_KEY_BYTES} bytes)"));
    }
    if let Some(p) = key_problem(key) {
        return Err(s3_error!(InvalidArgument, "invalid key: {p}"));
    }
    Ok(())
}

// ------------------------------------------------------------ conversions

fn ts(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

fn unix_secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

fn etag(e: &str) -> ETag {
    ETag::Strong(e.to_owned())
}

fn http_date(t: &Timestamp) -> Option<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

struct MetaInput {
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
    metadata: Option<Metadata>,
}

fn object_meta(m: MetaInput) -> S3Result<ObjectMeta> {
    let mut user: Vec<pb::Header> = m
        .metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| pb::Header { name: name.to_ascii_lowercase(), value })
        .collect();
    let size: usize = user.iter().map(|h| h.name.len() + h.value.len()).sum();
    if size > MAX_USER_METADATA_BYTES {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size ({size} > {MAX_USER_METADATA_BYTES} bytes)"
        ));
    }
    user.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ObjectMeta {
        content_type: m.content_type.unwrap_or_default(),
        content_encoding: m.content_encoding.unwrap_or_default(),
        content_disposition: m.content_disposition.unwrap_or_default(),
        content_language: m.content_language.unwrap_or_default(),
        cache_control: m.cache_control.unwrap_or_default(),
        expires: m.expires.as_ref().and_then(http_date).unwrap_or_default(),
        user,
    })
}

fn user_metadata(m: &ObjectMeta) -> Option<Metadata> {
    (!m.user.is_empty()).then(|| m.user.iter().map(|h| (h.name.clone(), h.value.clone())).collect())
}

fn expires_of(m: &ObjectMeta) -> Option<Timestamp> {
    (!m.expires.is_empty()).then(|| Timestamp::parse(TimestampFormat::HttpDate, &m.expires).ok()).flatten()
}

fn owner(id: &str) -> Owner {
    Owner { display_name: Some(id.to_owned()), id: Some(id.to_owned()) }
}

// ------------------------------------------------------------ checksums

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alg {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

const ALGS: [Alg; 5] = [Alg::Crc32, Alg::Crc32c, Alg::Crc64Nvme, Alg::Sha1, Alg::Sha256];

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Crc32 => "CRC32",
            Alg::Crc32c => "CRC32C",
            Alg::Crc64Nvme => "CRC64NVME",
            Alg::Sha1 => "SHA1",
            Alg::Sha256 => "SHA256",
        }
    }

    fn header(self) -> &'static str {
        match self {
            Alg::Crc32 => "x-amz-checksum-crc32",
            Alg::Crc32c => "x-amz-checksum-crc32c",
            Alg::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Alg::Sha1 => "x-amz-checksum-sha1",
            Alg::Sha256 => "x-amz-checksum-sha256",
        }
    }

    fn from_name(s: &str) -> Option<Alg> {
        ALGS.into_iter().find(|a| a.name().eq_ignore_ascii_case(s))
    }

    fn from_header(s: &str) -> Option<Alg> {
        ALGS.into_iter().find(|a| a.header().eq_ignore_ascii_case(s.trim()))
    }

    fn get(self, c: &Checksum) -> Option<&String> {
        match self {
            Alg::Crc32 => c.checksum_crc32.as_ref(),
            Alg::Crc32c => c.checksum_crc32c.as_ref(),
            Alg::Crc64Nvme => c.checksum_crc64nvme.as_ref(),
            Alg::Sha1 => c.checksum_sha1.as_ref(),
            Alg::Sha256 => c.checksum_sha256.as_ref(),
        }
    }
}

/// The checksums a request asks for: values in headers, an algorithm to
/// compute, and checksums that arrive in the trailer.
#[derive(Default)]
struct ChecksumPlan {
    algs: Vec<Alg>,
    expected: Vec<(Alg, String)>,
    trailer: Vec<Alg>,
    md5: Option<[u8; 16]>,
}

impl ChecksumPlan {
    fn from_request(headers: &HeaderMap, algorithm: Option<&ChecksumAlgorithm>) -> S3Result<Self> {
        let mut p = ChecksumPlan::default();
        for a in ALGS {
            if let Some(v) = headers.get(a.header()) {
                let v = v.to_str().map_err(|_| s3_error!(InvalidRequest, "bad {} header", a.header()))?;
                p.expected.push((a, v.to_owned()));
                p.algs.push(a);
            }
        }
        if let Some(t) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
            for name in t.split(',') {
                match Alg::from_header(name) {
                    Some(a) => {
                        p.trailer.push(a);
                        p.algs.push(a);
                    }
                    None => return Err(s3_error!(InvalidRequest, "unsupported trailer {name}")),
                }
            }
        }
        if let Some(a) = algorithm {
            let a = Alg::from_name(a.as_str())
                .ok_or_else(|| s3_error!(InvalidRequest, "unsupported checksum algorithm {}", a.as_str()))?;
            p.algs.push(a);
        }
        if let Some(m) = headers.get("content-md5") {
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(m.as_bytes())
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))?;
            p.md5 = Some(raw);
        }
        p.algs.sort_by_key(|a| a.name());
        p.algs.dedup();
        Ok(p)
    }

    fn hasher(&self) -> s3s::checksum::ChecksumHasher {
        use s3s::crypto::Checksum as _;
        let mut h = s3s::checksum::ChecksumHasher::default();
        for a in &self.algs {
            match a {
                Alg::Crc32 => h.crc32 = Some(s3s::crypto::Crc32::new()),
                Alg::Crc32c => h.crc32c = Some(s3s::crypto::Crc32c::new()),
                Alg::Crc64Nvme => h.crc64nvme = Some(s3s::crypto::Crc64Nvme::new()),
                Alg::Sha1 => h.sha1 = Some(s3s::crypto::Sha1::new()),
                Alg::Sha256 => h.sha256 = Some(s3s::crypto::Sha256::new()),
            }
        }
        h
    }

    /// Checks what the client declared against what was computed; returns
    /// the checksums to store.
    fn verify(
        &self,
        md5: &[u8; 16],
        computed: &Checksum,
        trailers: Option<&s3s::TrailingHeaders>,
    ) -> S3Result<Vec<pb::Checksum>> {
        if self.md5.is_some_and(|m| &m != md5) {
            return Err(s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."));
        }
        let mut expected = self.expected.clone();
        if !self.trailer.is_empty() {
            let got = trailers.and_then(|t| t.take());
            for a in &self.trailer {
                let v = got.as_ref().and_then(|h| h.get(a.header())).and_then(|v| v.to_str().ok());
                match v {
                    Some(v) => expected.push((*a, v.trim().to_owned())),
                    None => {
                        return Err(s3_error!(
                            InvalidRequest,
                            "the trailer {} announced in x-amz-trailer is missing",
                            a.header()
                        ));
                    }
                }
            }
        }
        for (a, want) in &expected {
            if a.get(computed) != Some(want) {
                return Err(s3_error!(
                    BadDigest,
                    "The {} you specified did not match the calculated checksum.",
                    a.name()
                ));
            }
        }
        Ok(self
            .algs
            .iter()
            .filter_map(|a| a.get(computed).map(|v| pb::Checksum { algorithm: a.name().into(), value: v.clone() }))
            .collect())
    }
}

fn set_checksums(c: &[pb::Checksum], out: &mut Checksum) {
    for s in c {
        match Alg::from_name(&s.algorithm) {
            Some(Alg::Crc32) => out.checksum_crc32 = Some(s.value.clone()),
            Some(Alg::Crc32c) => out.checksum_crc32c = Some(s.value.clone()),
            Some(Alg::Crc64Nvme) => out.checksum_crc64nvme = Some(s.value.clone()),
            Some(Alg::Sha1) => out.checksum_sha1 = Some(s.value.clone()),
            Some(Alg::Sha256) => out.checksum_sha256 = Some(s.value.clone()),
            None => {}
        }
    }
}

/// Sets the five `checksum_*` fields of an S3 output from stored checksums.
macro_rules! copy_checksums {
    ($out:expr, $sums:expr) => {{
        let c = checksum_struct($sums);
        $out.checksum_crc32 = c.checksum_crc32;
        $out.checksum_crc32c = c.checksum_crc32c;
        $out.checksum_crc64nvme = c.checksum_crc64nvme;
        $out.checksum_sha1 = c.checksum_sha1;
        $out.checksum_sha256 = c.checksum_sha256;
    }};
}

fn checksum_struct(c: &[pb::Checksum]) -> Checksum {
    let mut out = Checksum::default();
    set_checksums(c, &mut out);
    out
}

// ------------------------------------------------------------ conditions

fn etag_matches(c: &ETagCondition, stored: &str) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == stored,
    }
}

struct Conditions<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
}

impl Conditions<'_> {
    /// RFC 9110 §13.2.2 order, as S3 applies it: If-Match, else
    /// If-Unmodified-Since (412); then If-None-Match, else If-Modified-Since
    /// (304 for reads; `not_modified` chooses 412 for copies).
    fn check(&self, rec: &ObjectRecord, not_modified: S3ErrorCode) -> S3Result<()> {
        self.judge(rec, not_modified).map_err(|mut e| {
            // S3 names the object a 304 or 412 is about, so a cache can
            // revalidate against it.
            let mut h = HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", rec.etag)) {
                h.insert(http::header::ETAG, v);
            }
            if let Some(v) = http_date(&ts(rec.last_modified_ms)).and_then(|d| http::HeaderValue::from_str(&d).ok()) {
                h.insert(http::header::LAST_MODIFIED, v);
            }
            e.set_headers(h);
            e
        })
    }

    fn judge(&self, rec: &ObjectRecord, not_modified: S3ErrorCode) -> S3Result<()> {
        let modified = (rec.last_modified_ms / 1000) as i64;
        if let Some(c) = self.if_match {
            if !etag_matches(c, &rec.etag) {
                return Err(precondition_failed());
            }
        } else if let Some(t) = self.if_unmodified_since
            && modified > unix_secs(t)
        {
            return Err(precondition_failed());
        }
        if let Some(c) = self.if_none_match {
            if etag_matches(c, &rec.etag) {
                return Err(S3Error::new(not_modified));
            }
        } else if let Some(t) = self.if_modified_since
            && modified <= unix_secs(t)
        {
            return Err(S3Error::new(not_modified));
        }
        Ok(())
    }
}

fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<Option<Condition>> {
    Ok(match (if_match, if_none_match) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(NotImplemented, "If-Match and If-None-Match together are not supported on writes"));
        }
        (None, Some(ETagCondition::Any)) => Some(Condition { kind: Some(condition::Kind::IfNoneMatchAny(true)) }),
        (None, Some(ETagCondition::ETag(_))) => {
            return Err(s3_error!(NotImplemented, "If-None-Match on a write accepts only *"));
        }
        (Some(ETagCondition::ETag(e)), None) => {
            Some(Condition { kind: Some(condition::Kind::IfMatch(e.value().to_owned())) })
        }
        (Some(ETagCondition::Any), None) => {
            return Err(s3_error!(NotImplemented, "If-Match on a write needs an ETag"));
        }
        (None, None) => None,
    })
}

/// Checks a write condition against the object as it is before the body is
/// read: a condition that already fails is 412 (404 NoSuchKey for If-Match
/// on a missing key, as S3 answers) and no byte is uploaded.
async fn precheck_write(s3: &Tessera, bucket: &str, key: &str, cond: &Condition) -> S3Result<()> {
    let current = match s3.object(bucket, key).await {
        Ok(rec) => Some(rec),
        Err(e) if *e.code() == S3ErrorCode::NoSuchKey => None,
        Err(e) => return Err(e),
    };
    match (&cond.kind, current) {
        (Some(condition::Kind::IfNoneMatchAny(true)), Some(_)) => Err(precondition_failed()),
        (Some(condition::Kind::IfMatch(_)), None) => Err(s3_error!(NoSuchKey)),
        (Some(condition::Kind::IfMatch(e)), Some(cur)) if e.trim_matches('"') != cur.etag => Err(precondition_failed()),
        _ => Ok(()),
    }
}

/// A bucket is created in the gateway's region or not at all: a
/// `LocationConstraint` naming another region is refused as S3 refuses it
/// (data the client wants kept elsewhere must not silently land here), and
/// directory buckets (`Bucket`/`Location` in the configuration) are not
/// supported. An empty constraint means us-east-1, as in S3.
fn check_location(conf: &CreateBucketConfiguration, region: &str) -> S3Result<()> {
    if conf.bucket.is_some() || conf.location.is_some() {
        return Err(s3_error!(NotImplemented, "directory buckets are not supported"));
    }
    let asked = conf.location_constraint.as_ref().map_or("us-east-1", |c| c.as_str());
    let asked = if asked.is_empty() { "us-east-1" } else { asked };
    if asked != region {
        return Err(s3_error!(
            IllegalLocationConstraintException,
            "The {asked} location constraint is incompatible for the region specific endpoint this request was sent to ({region})."
        ));
    }
    Ok(())
}

/// The condition of a conditional delete: If-Match with an ETag, or `*`
/// (the key must exist).
fn delete_condition(c: &ETagCondition) -> Condition {
    let etag = match c {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(e) => e.value().to_owned(),
    };
    Condition { kind: Some(condition::Kind::IfMatch(etag)) }
}

/// Buckets are unversioned: the only version of an object is `null`, as S3
/// names it in an unversioned bucket; any other id is not one of ours.
fn check_version(v: Option<&str>) -> S3Result<()> {
    match v {
        None | Some("null") => Ok(()),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid version id specified")),
    }
}

fn precondition_failed() -> S3Error {
    s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold")
}

/// A write condition that held when the request started but not when its
/// record was committed: another write or delete of the key finished while
/// the body was uploading. S3 answers 409 ConditionalRequestConflict; the
/// client should read the key again and retry.
fn raced(e: S3Error) -> S3Error {
    if matches!(e.code(), S3ErrorCode::PreconditionFailed | S3ErrorCode::NoSuchKey) {
        s3_error!(
            ConditionalRequestConflict,
            "A conflicting operation on this key finished while the upload was in progress; retry the request"
        )
    } else {
        e
    }
}

// ------------------------------------------------------------ listing helpers

/// Percent-encodes as S3 does for `encoding-type=url` (unreserved and `/` kept).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode_token(key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

fn decode_token(t: &str) -> S3Result<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))
}

fn max_keys(v: Option<i32>) -> S3Result<u32> {
    match v {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys cannot be negative")),
        Some(n) => Ok((n as u32).min(1000)),
    }
}

fn url_mode(e: Option<&EncodingType>) -> S3Result<bool> {
    match e {
        None => Ok(false),
        Some(e) if e.as_str().eq_ignore_ascii_case(EncodingType::URL) => Ok(true),
        Some(e) => Err(s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request: {}", e.as_str())),
    }
}

// ------------------------------------------------------------ body plumbing

/// The request body, failing when the client goes quiet for `idle`.
fn body_stream(blob: Option<StreamingBlob>, idle: Duration) -> BodyStream {
    match blob {
        Some(b) => Box::pin(IdleTimeout::new(Box::pin(b.map(|r| r.map_err(std::io::Error::other))), idle)),
        None => Box::pin(futures::stream::empty()),
    }
}

/// One stretch of an object's bytes: a body and the range of it to read.
struct Segment {
    body: pb::Body,
    part: u32,
    piece_len: u64,
    range: Range<u64>,
}

fn segments(rec: &ObjectRecord, range: Range<u64>) -> S3Result<Vec<Segment>> {
    if rec.parts.is_empty() {
        let body = rec.body.clone().ok_or_else(|| s3_error!(InternalError, "object record without a body"))?;
        return Ok(vec![Segment { body, part: 0, piece_len: rec.size, range }]);
    }
    let mut out = Vec::new();
    let mut offset = 0u64;
    for p in &rec.parts {
        let (start, end) = (offset, offset + p.size);
        offset = end;
        let (s, e) = (range.start.max(start), range.end.min(end));
        if s < e {
            let body = p.body.clone().ok_or_else(|| s3_error!(InternalError, "part record without a body"))?;
            out.push(Segment { body, part: p.number, piece_len: p.size, range: s - start..e - start });
        }
    }
    Ok(out)
}

fn read_error(e: &ReadError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Tessera {
    async fn write_cmd(&self, op: command::Op) -> S3Result<CommandResult> {
        let r = self.cluster.meta().write(Command { now_ms: 0, op: Some(op) }).await.map_err(unavailable)?;
        if let Some(command_result::Outcome::Failure(f)) = &r.outcome {
            return Err(from_failure(f));
        }
        Ok(r)
    }

    async fn bucket(&self, name: &str) -> S3Result<pb::BucketRecord> {
        let r = self.cluster.meta().get_bucket(name).await.map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        r.bucket.ok_or_else(|| s3_error!(NoSuchBucket))
    }

    async fn object(&self, bucket: &str, key: &str) -> S3Result<ObjectRecord> {
        let r = self.cluster.meta().get_object(bucket, key).await.map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        r.object.ok_or_else(|| s3_error!(NoSuchKey))
    }

    fn ec_profile(&self, bucket: &pb::BucketRecord) -> S3Result<pb::EcProfile> {
        if let Some(ec) = bucket.ec {
            return Ok(ec);
        }
        let d = self.cfg.ec;
        let layout =
            tessera_ec::StripeLayout::new(d.k, d.m, d.stripe_size).map_err(|e| s3_error!(InternalError, "{e}"))?;
        Ok(pb::EcProfile {
            codec: u32::from(d.codec.as_u16()),
            k: d.k as u32,
            m: d.m as u32,
            block_len: layout.block_len() as u32,
        })
    }

    /// Stores `len` bytes from `body`: inline when small, else as shards.
    async fn store_body(
        &self,
        bucket: &pb::BucketRecord,
        key: &str,
        part: u32,
        len: u64,
        body: &mut BodyStream,
        digest: &mut BodyDigest,
    ) -> S3Result<pb::Body> {
        if len <= self.cfg.inline_threshold {
            let data = read_small(body, len, digest).await.map_err(write_error)?;
            return Ok(pb::Body { kind: Some(pb::body::Kind::InlineData(data.to_vec())) });
        }
        let ec = self.ec_profile(bucket)?;
        let mut view = self.cluster.view();
        if view.map.is_none() {
            view = self.cluster.refresh().await.map_err(unavailable)?;
        }
        let pg = tessera_placement::pg_of(&bucket.name, key, view.pg_count());
        let n = (ec.k + ec.m) as usize;
        let disks = view
            .write_disks(pg, n)
            .map_err(|e| s3_error!(ServiceUnavailable, "no placement for the object's shards: {e}"))?;
        let plan = WritePlan {
            ec,
            pg: pg.get(),
            disks: disks.iter().map(|d| d.get()).collect(),
            part,
            quorum: self.cfg.quorum(ec.k as usize, ec.m as usize),
            shard_timeout: self.cfg.shard_write_timeout,
        };
        let set = write_sharded(&self.cluster, &self.codecs, &plan, len, body, digest).await.map_err(write_error)?;
        Ok(pb::Body { kind: Some(pb::body::Kind::Shards(set)) })
    }

    /// Streams `range` of `rec`. The first chunk is read before answering,
    /// so an object that cannot be read now is a 503, not a cut-off 200.
    async fn open_body(&self, rec: &ObjectRecord, range: Range<u64>) -> S3Result<StreamingBlob> {
        let segs = segments(rec, range)?;
        // Bytes kept in the record (small objects): no reader task needed.
        if segs.iter().all(|s| matches!(s.body.kind, Some(pb::body::Kind::InlineData(_)))) {
            let chunks: Vec<Result<Bytes, std::io::Error>> = segs
                .into_iter()
                .filter_map(|seg| match seg.body.kind {
                    Some(pb::body::Kind::InlineData(d)) => {
                        let d = Bytes::from(d);
                        let (s, e) = (seg.range.start as usize, (seg.range.end as usize).min(d.len()));
                        Some(Ok(d.slice(s.min(e)..e)))
                    }
                    _ => None,
                })
                .collect();
            return Ok(StreamingBlob::wrap(futures::stream::iter(chunks)));
        }
        let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(READ_AHEAD_CHUNKS);
        let this = self.clone();
        tokio::spawn(
            async move {
                for seg in segs {
                    match seg.body.kind {
                        Some(pb::body::Kind::InlineData(d)) => {
                            let d = Bytes::from(d);
                            let (s, e) = (seg.range.start as usize, (seg.range.end as usize).min(d.len()));
                            if tx.send(Ok(d.slice(s.min(e)..e))).await.is_err() {
                                return;
                            }
                        }
                        Some(pb::body::Kind::Shards(set)) => {
                            let r = read_sharded(
                                &this.cluster,
                                &this.codecs,
                                &set,
                                seg.part,
                                seg.piece_len,
                                seg.range,
                                this.cfg.hedge_timeout,
                                &tx,
                            )
                            .await;
                            if let Err(e) = r {
                                if !matches!(e, ReadError::Closed) {
                                    tracing::warn!("read failed: {e}");
                                    let _ = tx.send(Err(read_error(&e))).await;
                                }
                                return;
                            }
                        }
                        None => {
                            let _ = tx.send(Err(std::io::Error::other("a body record is empty"))).await;
                            return;
                        }
                    }
                }
            }
            .instrument(tracing::Span::current()),
        );
        let first = match rx.recv().await {
            None => None,
            Some(Ok(b)) => Some(Ok::<Bytes, std::io::Error>(b)),
            Some(Err(e)) => return Err(s3_error!(ServiceUnavailable, "the object cannot be read now: {e}")),
        };
        let stream = futures::stream::iter(first).chain(ReceiverStream::new(rx));
        Ok(StreamingBlob::wrap(stream))
    }

    /// The whole of `rec` (or `range` of it) as a body stream for a copy.
    async fn copy_source(&self, rec: &ObjectRecord, range: Range<u64>) -> S3Result<BodyStream> {
        if range.is_empty() {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let blob = self.open_body(rec, range).await?;
        Ok(Box::pin(blob.map(|r| r.map_err(std::io::Error::other))))
    }

    async fn source_record(&self, src: &CopySource, cond: Conditions<'_>) -> S3Result<(String, String, ObjectRecord)> {
        let CopySource::Bucket { bucket, key, version_id } = src else {
            return Err(s3_error!(NotImplemented, "copy from an access point is not supported"));
        };
        if version_id.is_some() {
            return Err(s3_error!(NotImplemented, "versioning is not supported"));
        }
        let rec = self.object(bucket, key).await?;
        cond.check(&rec, S3ErrorCode::PreconditionFailed)?;
        Ok((bucket.to_string(), key.to_string(), rec))
    }
}

fn content_len(v: Option<i64>, limit: u64) -> S3Result<u64> {
    let len = v.ok_or_else(|| s3_error!(MissingContentLength, "You must provide the Content-Length HTTP header."))?;
    let len = u64::try_from(len).map_err(|_| s3_error!(InvalidArgument, "negative Content-Length"))?;
    if len > limit {
        return Err(s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed size ({limit} bytes)"));
    }
    Ok(len)
}

fn byte_range(r: Option<&s3s::dto::Range>, size: u64) -> S3Result<Option<Range<u64>>> {
    match r {
        None => Ok(None),
        Some(r) => {
            r.check(size).map(Some).map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))
        }
    }
}

/// The range a GET or HEAD asks for: a `partNumber`, a `Range` header (not
/// both), or `None` for the whole object.
fn requested_range(
    rec: &ObjectRecord,
    part_number: Option<i32>,
    range: Option<&s3s::dto::Range>,
) -> S3Result<Option<Range<u64>>> {
    match part_number {
        Some(n) if range.is_some() => {
            Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter ({n})"))
        }
        Some(n) => part_range(rec, n).map(Some),
        None => byte_range(range, rec.size),
    }
}

/// The bytes of part `n` (GetObject/HeadObject `partNumber`); part 1 of a
/// simple object is the whole object.
fn part_range(rec: &ObjectRecord, n: i32) -> S3Result<Range<u64>> {
    let bad = || {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("InvalidPartNumber".into()),
            "The requested partnumber is not satisfiable",
        );
        e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
        e
    };
    if rec.parts.is_empty() {
        return if n == 1 && rec.size > 0 { Ok(0..rec.size) } else { Err(bad()) };
    }
    let mut offset = 0;
    for p in &rec.parts {
        if i64::from(p.number) == i64::from(n) {
            return if p.size > 0 { Ok(offset..offset + p.size) } else { Err(bad()) };
        }
        offset += p.size;
    }
    Err(bad())
}

/// `bytes=a-b` of an UploadPartCopy source.
fn copy_range(s: Option<&str>, size: u64) -> S3Result<Range<u64>> {
    let Some(s) = s else { return Ok(0..size) };
    let bad = || s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last");
    let (a, b) = s.strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a > b || b >= size {
        return Err(s3_error!(InvalidRange, "The requested range is not satisfiable"));
    }
    Ok(a..b + 1)
}

fn new_upload_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[async_trait::async_trait]
impl S3 for Tessera {
    // -------------------------------------------------------- buckets

    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        let input = &req.input;
        let max = match input.max_buckets {
            None => usize::MAX,
            Some(n @ 1..=10_000) => n as usize,
            Some(_) => return Err(s3_error!(InvalidArgument, "max-buckets must be between 1 and 10000")),
        };
        let after = input.continuation_token.as_deref().map(decode_token).transpose()?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let r = self.cluster.meta().list_buckets().await.map_err(unavailable)?;
        let me = req.credentials.as_ref().map(|c| c.access_key.clone()).unwrap_or_default();
        // Every bucket lives in the gateway's region; names come sorted.
        let in_region = input.bucket_region.as_deref().is_none_or(|r| r == self.cfg.region);
        let mut matching = r
            .buckets
            .into_iter()
            .filter(|b| in_region && b.name.starts_with(&prefix))
            .filter(|b| after.as_ref().is_none_or(|a| b.name.as_str() > a.as_str()))
            .peekable();
        let mut buckets = Vec::new();
        while buckets.len() < max {
            let Some(b) = matching.next() else { break };
            buckets.push(Bucket {
                bucket_region: Some(self.cfg.region.clone()),
                creation_date: Some(ts(b.created_ms)),
                name: Some(b.name),
            });
        }
        let continuation_token = match (matching.peek(), buckets.last()) {
            (Some(_), Some(Bucket { name: Some(last), .. })) => Some(encode_token(last)),
            _ => None,
        };
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner(&me)),
            continuation_token,
            prefix: input.prefix.clone(),
        }))
    }

    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        let owner = req.credentials.as_ref().map(|c| c.access_key.clone()).unwrap_or_default();
        if let Some(conf) = &req.input.create_bucket_configuration {
            check_location(conf, &self.cfg.region)?;
        }
        let name = req.input.bucket;
        let created =
            self.write_cmd(command::Op::CreateBucket(pb::CreateBucket { name: name.clone(), owner, ec: None }));
        match created.await {
            Ok(_) => {}
            // us-east-1 answers 200 to creating a bucket you already own
            // (other regions: BucketAlreadyOwnedByYou), as S3 does.
            Err(e) if *e.code() == S3ErrorCode::BucketAlreadyOwnedByYou && self.cfg.region == "us-east-1" => {}
            Err(e) => return Err(e),
        }
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }))
    }

    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.write_cmd(command::Op::DeleteBucket(pb::DeleteBucket { name: req.input.bucket })).await?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(self.cfg.region.clone()), ..Default::default() }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.bucket(&req.input.bucket).await?;
        // us-east-1 is reported as an empty constraint, as AWS does.
        let location_constraint =
            (self.cfg.region != "us-east-1").then(|| BucketLocationConstraint::from(self.cfg.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
    }

    // -------------------------------------------------------- objects

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let S3Request { input, headers, trailing_headers, .. } = req;
        check_key(&input.key)?;
        let len = content_len(input.content_length, MAX_PUT_BYTES)?;
        let plan = ChecksumPlan::from_request(&headers, input.checksum_algorithm.as_ref())?;
        let meta = object_meta(MetaInput {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires,
            metadata: input.metadata,
        })?;
        let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let bucket = self.bucket(&input.bucket).await?;
        if let Some(c) = &condition {
            precheck_write(self, &input.bucket, &input.key, c).await?;
        }
        let conditional = condition.is_some();
        let mut digest = BodyDigest::new(plan.hasher(), self.md5.as_ref(), len);
        let mut body = body_stream(input.body, self.cfg.body_idle_timeout);
        let stored = self.store_body(&bucket, &input.key, 0, len, &mut body, &mut digest).await?;
        let (md5, computed) = digest.finish().await.map_err(write_error)?;
        let checksums = plan.verify(&md5, &computed, trailing_headers.as_ref())?;
        let record = ObjectRecord {
            size: len,
            etag: hex::encode(md5),
            last_modified_ms: 0,
            meta: Some(meta),
            checksums: checksums.clone(),
            body: Some(stored),
            parts: Vec::new(),
        };
        let put = pb::PutObject { bucket: input.bucket, key: input.key, record: Some(record.clone()), condition };
        let committed = self.write_cmd(command::Op::PutObject(put)).await;
        committed.map_err(|e| if conditional { raced(e) } else { e })?;
        let mut out = PutObjectOutput { e_tag: Some(etag(&record.etag)), ..Default::default() };
        copy_checksums!(out, &checksums);
        Ok(S3Response::new(out))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        check_version(input.version_id.as_deref())?;
        let rec = self.object(&input.bucket, &input.key).await?;
        Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        }
        .check(&rec, S3ErrorCode::NotModified)?;
        let range = requested_range(&rec, input.part_number, input.range.as_ref())?;
        let read = range.clone().unwrap_or(0..rec.size);
        let body = self.open_body(&rec, read.clone()).await?;
        let meta = rec.meta.clone().unwrap_or_default();
        let mut out = GetObjectOutput {
            accept_ranges: Some("bytes".into()),
            body: Some(body),
            content_length: Some((read.end - read.start) as i64),
            content_range: range.map(|r| format!("bytes {}-{}/{}", r.start, r.end - 1, rec.size)),
            e_tag: Some(etag(&rec.etag)),
            last_modified: Some(ts(rec.last_modified_ms)),
            metadata: user_metadata(&meta),
            expires: expires_of(&meta),
            parts_count: (!rec.parts.is_empty()).then_some(rec.parts.len() as i32),
            ..Default::default()
        };
        out.content_type = input.response_content_type.or_else(|| non_empty(&meta.content_type));
        out.content_encoding = input.response_content_encoding.or_else(|| non_empty(&meta.content_encoding));
        out.content_disposition = input.response_content_disposition.or_else(|| non_empty(&meta.content_disposition));
        out.content_language = input.response_content_language.or_else(|| non_empty(&meta.content_language));
        out.cache_control = input.response_cache_control.or_else(|| non_empty(&meta.cache_control));
        if input.response_expires.is_some() {
            out.expires = input.response_expires;
        }
        if input.checksum_mode.as_ref().is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
            && out.content_range.is_none()
        {
            copy_checksums!(out, &rec.checksums);
        }
        Ok(S3Response::new(out))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        check_version(input.version_id.as_deref())?;
        let rec = self.object(&input.bucket, &input.key).await?;
        Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        }
        .check(&rec, S3ErrorCode::NotModified)?;
        let range = requested_range(&rec, input.part_number, input.range.as_ref())?;
        let read = range.clone().unwrap_or(0..rec.size);
        let meta = rec.meta.clone().unwrap_or_default();
        let mut out = HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some((read.end - read.start) as i64),
            content_range: range.map(|r| format!("bytes {}-{}/{}", r.start, r.end - 1, rec.size)),
            e_tag: Some(etag(&rec.etag)),
            last_modified: Some(ts(rec.last_modified_ms)),
            metadata: user_metadata(&meta),
            expires: expires_of(&meta),
            content_type: non_empty(&meta.content_type),
            content_encoding: non_empty(&meta.content_encoding),
            content_disposition: non_empty(&meta.content_disposition),
            content_language: non_empty(&meta.content_language),
            cache_control: non_empty(&meta.cache_control),
            parts_count: (!rec.parts.is_empty()).then_some(rec.parts.len() as i32),
            ..Default::default()
        };
        if input.checksum_mode.as_ref().is_some_and(|m| m.as_str() == ChecksumMode::ENABLED) {
            copy_checksums!(out, &rec.checksums);
        }
        Ok(S3Response::new(out))
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        check_version(input.version_id.as_deref())?;
        if input.if_match_last_modified_time.is_some() || input.if_match_size.is_some() {
            return Err(s3_error!(NotImplemented, "conditional deletes accept only If-Match"));
        }
        let condition = input.if_match.as_ref().map(delete_condition);
        self.delete_key(input.bucket, input.key, condition).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let objects = input.delete.objects;
        if objects.len() > MAX_DELETE_KEYS {
            return Err(s3_error!(MalformedXML, "a DeleteObjects request names at most {MAX_DELETE_KEYS} keys"));
        }
        if objects.is_empty() {
            return Err(s3_error!(MalformedXML, "a DeleteObjects request names at least one key"));
        }
        self.bucket(&input.bucket).await?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let bucket = input.bucket;
        let results: Vec<(String, Result<(), S3Error>)> = futures::stream::iter(objects)
            .map(|o| {
                let bucket = bucket.clone();
                async move {
                    let r = if o.last_modified_time.is_some() || o.size.is_some() {
                        Err(s3_error!(NotImplemented, "conditional deletes accept only an ETag"))
                    } else {
                        match check_version(o.version_id.as_deref()) {
                            Ok(()) => {
                                // An `<ETag>` of `*` reaches the state machine as `*`:
                                // the key must exist.
                                let condition = o
                                    .e_tag
                                    .as_ref()
                                    .map(|e| Condition { kind: Some(condition::Kind::IfMatch(e.value().to_owned())) });
                                self.delete_key(bucket, o.key.clone(), condition).await
                            }
                            Err(e) => Err(e),
                        }
                    };
                    (o.key, r)
                }
            })
            .buffered(16)
            .collect()
            .await;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (key, r) in results {
            match r {
                Ok(()) if !quiet => deleted.push(DeletedObject { key: Some(key), ..Default::default() }),
                Ok(()) => {}
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(key),
                    message: e.message().map(str::to_owned),
                    version_id: None,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        check_key(&input.key)?;
        let (sb, sk, src) = self
            .source_record(
                &input.copy_source,
                Conditions {
                    if_match: input.copy_source_if_match.as_ref(),
                    if_none_match: input.copy_source_if_none_match.as_ref(),
                    if_modified_since: input.copy_source_if_modified_since.as_ref(),
                    if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
                },
            )
            .await?;
        if src.size > MAX_PUT_BYTES {
            return Err(s3_error!(
                InvalidRequest,
                "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"
            ));
        }
        let replace = match input.metadata_directive.as_ref().map(MetadataDirective::as_str) {
            None | Some(MetadataDirective::COPY) => false,
            Some(MetadataDirective::REPLACE) => true,
            Some(other) => return Err(s3_error!(InvalidArgument, "Unknown metadata directive {other}")),
        };
        if !replace && sb == input.bucket && sk == input.key {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let meta = if replace {
            object_meta(MetaInput {
                content_type: input.content_type,
                content_encoding: input.content_encoding,
                content_disposition: input.content_disposition,
                content_language: input.content_language,
                cache_control: input.cache_control,
                expires: input.expires,
                metadata: input.metadata,
            })?
        } else {
            src.meta.clone().unwrap_or_default()
        };
        let bucket = self.bucket(&input.bucket).await?;
        let algs: Vec<Alg> = src.checksums.iter().filter_map(|c| Alg::from_name(&c.algorithm)).collect();
        let plan = ChecksumPlan { algs, ..Default::default() };
        let mut digest = BodyDigest::new(plan.hasher(), self.md5.as_ref(), src.size);
        let mut body = self.copy_source(&src, 0..src.size).await?;
        let stored = self.store_body(&bucket, &input.key, 0, src.size, &mut body, &mut digest).await?;
        let (md5, computed) = digest.finish().await.map_err(write_error)?;
        let checksums = plan.verify(&md5, &computed, None)?;
        let record = ObjectRecord {
            size: src.size,
            etag: hex::encode(md5),
            last_modified_ms: 0,
            meta: Some(meta),
            checksums,
            body: Some(stored),
            parts: Vec::new(),
        };
        let put = pb::PutObject { bucket: input.bucket, key: input.key, record: Some(record), condition: None };
        let r = self.write_cmd(command::Op::PutObject(put)).await?;
        let Some(command_result::Outcome::Object(stored)) = r.outcome else {
            return Err(s3_error!(InternalError, "the metadata service did not return the stored record"));
        };
        let result = CopyObjectResult {
            e_tag: Some(etag(&stored.etag)),
            last_modified: Some(ts(stored.last_modified_ms)),
            ..Default::default()
        };
        Ok(S3Response::new(CopyObjectOutput { copy_object_result: Some(result), ..Default::default() }))
    }

    // -------------------------------------------------------- listing

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let url = url_mode(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let r = self
            .cluster
            .meta()
            .list_objects(pb::ListObjectsRequest {
                bucket: input.bucket.clone(),
                prefix: prefix.clone(),
                delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
                after: input.marker.clone().filter(|m| !m.is_empty()),
                max_keys: max,
            })
            .await
            .map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let contents = r
            .objects
            .into_iter()
            .map(|o| {
                let rec = o.record.unwrap_or_default();
                Object {
                    e_tag: Some(etag(&rec.etag)),
                    key: Some(enc(o.key)),
                    last_modified: Some(ts(rec.last_modified_ms)),
                    size: Some(rec.size as i64),
                    storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                    ..Default::default()
                }
            })
            .collect();
        let common_prefixes =
            r.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect::<Vec<_>>();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            marker: Some(enc(input.marker.unwrap_or_default())),
            max_keys: Some(max as i32),
            is_truncated: Some(r.is_truncated),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            delimiter: input.delimiter.filter(|d| !d.is_empty()).map(enc),
            next_marker: if r.is_truncated { r.last.map(enc) } else { None },
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let url = url_mode(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = match input.continuation_token.as_deref() {
            Some(t) => Some(decode_token(t)?),
            None => input.start_after.clone().filter(|s| !s.is_empty()),
        };
        let bucket = if input.fetch_owner == Some(true) { Some(self.bucket(&input.bucket).await?) } else { None };
        let r = self
            .cluster
            .meta()
            .list_objects(pb::ListObjectsRequest {
                bucket: input.bucket.clone(),
                prefix: prefix.clone(),
                delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
                after,
                max_keys: max,
            })
            .await
            .map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let key_count = (r.objects.len() + r.common_prefixes.len()) as i32;
        let contents = r
            .objects
            .into_iter()
            .map(|o| {
                let rec = o.record.unwrap_or_default();
                Object {
                    e_tag: Some(etag(&rec.etag)),
                    key: Some(enc(o.key)),
                    last_modified: Some(ts(rec.last_modified_ms)),
                    size: Some(rec.size as i64),
                    owner: bucket.as_ref().map(|b| owner(&b.owner)),
                    storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                    ..Default::default()
                }
            })
            .collect();
        let common_prefixes =
            r.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect::<Vec<_>>();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            is_truncated: Some(r.is_truncated),
            next_continuation_token: if r.is_truncated { r.last.as_deref().map(encode_token) } else { None },
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            delimiter: input.delimiter.filter(|d| !d.is_empty()).map(enc),
            encoding_type: input.encoding_type,
            start_after: input.start_after.map(enc),
            ..Default::default()
        }))
    }

    // -------------------------------------------------------- multipart

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let who = req.credentials.as_ref().map(|c| c.access_key.clone()).unwrap_or_default();
        let input = req.input;
        check_key(&input.key)?;
        let meta = object_meta(MetaInput {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires,
            metadata: input.metadata,
        })?;
        let algorithm = match input.checksum_algorithm.as_ref() {
            Some(a) => Alg::from_name(a.as_str())
                .ok_or_else(|| s3_error!(InvalidRequest, "unsupported checksum algorithm {}", a.as_str()))?
                .name()
                .to_owned(),
            None => String::new(),
        };
        let upload_id = new_upload_id();
        let upload = pb::UploadRecord {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: upload_id.clone(),
            initiated_ms: 0,
            meta: Some(meta),
            owner: who,
            checksum_algorithm: algorithm,
        };
        self.write_cmd(command::Op::CreateUpload(pb::CreateUpload { upload: Some(upload) })).await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm: input.checksum_algorithm,
            ..Default::default()
        }))
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let S3Request { input, headers, trailing_headers, .. } = req;
        let number = part_number(input.part_number)?;
        let len = content_len(input.content_length, MAX_PUT_BYTES)?;
        let plan = ChecksumPlan::from_request(&headers, input.checksum_algorithm.as_ref())?;
        let bucket = self.bucket(&input.bucket).await?;
        self.require_upload(&input.bucket, &input.key, &input.upload_id).await?;
        let mut digest = BodyDigest::new(plan.hasher(), self.md5.as_ref(), len);
        let mut body = body_stream(input.body, self.cfg.body_idle_timeout);
        let stored = self.store_body(&bucket, &input.key, number, len, &mut body, &mut digest).await?;
        let (md5, computed) = digest.finish().await.map_err(write_error)?;
        let checksums = plan.verify(&md5, &computed, trailing_headers.as_ref())?;
        let part = pb::PartRecord {
            number,
            size: len,
            etag: hex::encode(md5),
            last_modified_ms: 0,
            body: Some(stored),
            checksums: checksums.clone(),
        };
        let e = part.etag.clone();
        let put = pb::PutPart { bucket: input.bucket, key: input.key, upload_id: input.upload_id, part: Some(part) };
        self.write_cmd(command::Op::PutPart(put)).await?;
        let c = checksum_struct(&checksums);
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(etag(&e)),
            checksum_crc32: c.checksum_crc32,
            checksum_crc32c: c.checksum_crc32c,
            checksum_crc64nvme: c.checksum_crc64nvme,
            checksum_sha1: c.checksum_sha1,
            checksum_sha256: c.checksum_sha256,
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let number = part_number(input.part_number)?;
        let (_, _, src) = self
            .source_record(
                &input.copy_source,
                Conditions {
                    if_match: input.copy_source_if_match.as_ref(),
                    if_none_match: input.copy_source_if_none_match.as_ref(),
                    if_modified_since: input.copy_source_if_modified_since.as_ref(),
                    if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
                },
            )
            .await?;
        let range = copy_range(input.copy_source_range.as_deref(), src.size)?;
        let len = range.end - range.start;
        if len > MAX_PUT_BYTES {
            return Err(s3_error!(EntityTooLarge, "a part is at most 5 GiB"));
        }
        let bucket = self.bucket(&input.bucket).await?;
        self.require_upload(&input.bucket, &input.key, &input.upload_id).await?;
        let mut digest = BodyDigest::new(s3s::checksum::ChecksumHasher::default(), self.md5.as_ref(), len);
        let mut body = self.copy_source(&src, range).await?;
        let stored = self.store_body(&bucket, &input.key, number, len, &mut body, &mut digest).await?;
        let (md5, _) = digest.finish().await.map_err(write_error)?;
        let part = pb::PartRecord {
            number,
            size: len,
            etag: hex::encode(md5),
            last_modified_ms: 0,
            body: Some(stored),
            checksums: Vec::new(),
        };
        let e = part.etag.clone();
        let put = pb::PutPart { bucket: input.bucket, key: input.key, upload_id: input.upload_id, part: Some(part) };
        self.write_cmd(command::Op::PutPart(put)).await?;
        let result = CopyPartResult {
            e_tag: Some(etag(&e)),
            last_modified: Some(Timestamp::from(SystemTime::now())),
            ..Default::default()
        };
        Ok(S3Response::new(UploadPartCopyOutput { copy_part_result: Some(result), ..Default::default() }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let parts = input.multipart_upload.and_then(|m| m.parts).filter(|p| !p.is_empty()).ok_or_else(|| {
            s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            )
        })?;
        let mut completed = Vec::with_capacity(parts.len());
        for p in parts {
            let number = p.part_number.ok_or_else(|| s3_error!(MalformedXML, "a part without a PartNumber"))?;
            let e = p.e_tag.ok_or_else(|| s3_error!(MalformedXML, "a part without an ETag"))?;
            completed.push(pb::CompletedPart { number: part_number(number)?, etag: e.value().to_owned() });
        }
        let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let cmd = pb::CompleteUpload {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: input.upload_id,
            parts: completed,
            condition,
        };
        let r = self.write_cmd(command::Op::CompleteUpload(cmd)).await?;
        let Some(command_result::Outcome::Object(rec)) = r.outcome else {
            return Err(s3_error!(InternalError, "the metadata service did not return the stored record"));
        };
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&rec.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let cmd = pb::AbortUpload { bucket: input.bucket, key: input.key, upload_id: input.upload_id };
        self.write_cmd(command::Op::AbortUpload(cmd)).await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let max = match input.max_parts {
            None => 1000,
            Some(n) if n < 0 => return Err(s3_error!(InvalidArgument, "max-parts cannot be negative")),
            Some(n) => (n as u32).min(1000),
        };
        let after = match input.part_number_marker {
            None => 0,
            Some(n) => u32::try_from(n).map_err(|_| s3_error!(InvalidArgument, "bad part-number-marker"))?,
        };
        let upload = self.require_upload(&input.bucket, &input.key, &input.upload_id).await?;
        let r = self
            .cluster
            .meta()
            .list_parts(pb::ListPartsRequest {
                bucket: input.bucket.clone(),
                key: input.key.clone(),
                upload_id: input.upload_id.clone(),
                after_part: after,
                max_parts: max,
            })
            .await
            .map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        let next = r.parts.last().map(|p| p.number as i32);
        let parts = r
            .parts
            .into_iter()
            .map(|p| {
                let c = checksum_struct(&p.checksums);
                Part {
                    e_tag: Some(etag(&p.etag)),
                    last_modified: Some(ts(p.last_modified_ms)),
                    part_number: Some(p.number as i32),
                    size: Some(p.size as i64),
                    checksum_crc32: c.checksum_crc32,
                    checksum_crc32c: c.checksum_crc32c,
                    checksum_crc64nvme: c.checksum_crc64nvme,
                    checksum_sha1: c.checksum_sha1,
                    checksum_sha256: c.checksum_sha256,
                }
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            is_truncated: Some(r.is_truncated),
            parts: Some(parts),
            owner: Some(owner(&upload.owner)),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let url = url_mode(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_uploads)?;
        let r = self
            .cluster
            .meta()
            .list_uploads(pb::ListUploadsRequest {
                bucket: input.bucket.clone(),
                prefix: input.prefix.clone().unwrap_or_default(),
                delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
                key_marker: input.key_marker.clone().filter(|m| !m.is_empty()),
                upload_id_marker: input.upload_id_marker.clone().filter(|m| !m.is_empty()),
                max_uploads: max,
            })
            .await
            .map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let uploads = r
            .uploads
            .into_iter()
            .map(|u| MultipartUpload {
                initiated: Some(ts(u.initiated_ms)),
                key: Some(enc(u.key)),
                owner: Some(owner(&u.owner)),
                upload_id: Some(u.upload_id),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            common_prefixes: Some(
                r.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect(),
            ),
            delimiter: input.delimiter.filter(|d| !d.is_empty()).map(enc),
            encoding_type: input.encoding_type,
            is_truncated: Some(r.is_truncated),
            key_marker: input.key_marker.map(enc),
            max_uploads: Some(max as i32),
            next_key_marker: r.next_key_marker.map(enc),
            next_upload_id_marker: r.next_upload_id_marker,
            prefix: input.prefix.map(enc),
            upload_id_marker: input.upload_id_marker,
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"))
}

impl Tessera {
    /// Deletes a key; deleting a missing key succeeds, as in S3, unless
    /// If-Match asked for it to exist (404 NoSuchKey).
    async fn delete_key(&self, bucket: String, key: String, condition: Option<Condition>) -> S3Result<()> {
        let conditional = condition.is_some();
        let op = command::Op::DeleteObject(pb::DeleteObject { bucket, key, condition });
        match self.write_cmd(op).await {
            Ok(_) => Ok(()),
            Err(e) if *e.code() == S3ErrorCode::NoSuchKey && !conditional => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn require_upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<pb::UploadRecord> {
        let r = self
            .cluster
            .meta()
            .get_upload(pb::UploadRequest { bucket: bucket.into(), key: key.into(), upload_id: upload_id.into() })
            .await
            .map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        r.upload.ok_or_else(|| s3_error!(NoSuchUpload))
    }
}
