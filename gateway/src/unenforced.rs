//! Requests for guarantees Tessera does not give yet are refused, never
//! accepted and ignored.
//!
//! A client that sends `x-amz-server-side-encryption`, an object-lock
//! retention, or `x-amz-acl: public-read` relies on the store to do what the
//! header says; storing the object anyway would leave it unencrypted,
//! deletable or private while the client believes otherwise. Until the
//! feature that enforces each header lands, a request carrying it fails
//! before anything is read or stored, with the error AWS gives for a feature
//! a bucket does not have:
//!
//! - server-side encryption other than what `sse.rs` enforces (SSE-KMS,
//!   DSSE, KMS key ids and contexts, bucket keys, SSE headers on operations
//!   that do not take them, and any SSE parameter in a presigned URL's
//!   query, which the handlers would not see), object lock headers other
//!   than those PutObject, CopyObject, CreateMultipartUpload and
//!   CreateBucket take, tags other than `x-amz-tagging` on PutObject, CopyObject
//!   and CreateMultipartUpload, website redirects, storage classes other
//!   than `STANDARD`, appends (`x-amz-write-offset-bytes`), and conditions
//!   S3 honours only on directory buckets: `501 NotImplemented` ("a header
//!   you provided implies functionality that is not implemented");
//! - object ownership `ObjectWriter` (objects always belong to their
//!   bucket's owner): `501 NotImplemented`.
//!
//! Presigned URLs may carry these headers as query parameters (some SDKs
//! hoist `x-amz-*` headers there); those are judged the same way. ACLs are
//! enforced (acl.rs) from headers only, so an ACL other than `private` in a
//! query parameter is refused with `AccessControlListNotSupported`.
//!
//! This is pure: [`refusal`] looks at the operation name and the request's
//! headers and query; `access.rs` calls it for every request.

use http::HeaderMap;
use s3s::{S3Error, S3ErrorCode};

/// Why a request is refused, or `None` when nothing in it asks for a
/// guarantee Tessera does not give. `op` is s3s's operation name
/// (`PutObject`, `CreateBucket`, …).
pub fn refusal(op: &str, headers: &HeaderMap, query: Option<&str>) -> Option<S3Error> {
    for (name, value) in headers {
        if let Some(e) = judge(op, name.as_str(), value.to_str().unwrap_or("\u{fffd}"), false) {
            return Some(e);
        }
    }
    for (name, value) in query_pairs(query.unwrap_or("")) {
        let name = name.to_ascii_lowercase();
        // Only `x-amz-*` parameters stand for headers; the SigV4 ones
        // (`X-Amz-Algorithm`, `X-Amz-Signature`, …) match no rule below.
        if name.starts_with("x-amz-")
            && let Some(e) = judge(op, &name, &value, true).or_else(|| judge_acl_parameter(&name, &value))
        {
            return Some(e);
        }
    }
    None
}

/// The operations that take SSE-C headers for their own object.
const SSE_C_OPS: &[&str] = &[
    "PutObject",
    "GetObject",
    "HeadObject",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "GetObjectAttributes",
    "CompleteMultipartUpload",
    "ListParts",
];

/// Whether an SSE header is one the handlers enforce on `op` (sse.rs).
fn sse_enforced(op: &str, name: &str, v: &str) -> bool {
    let writes = matches!(op, "PutObject" | "CopyObject" | "CreateMultipartUpload");
    match name {
        "x-amz-server-side-encryption" => writes && v == "AES256",
        "x-amz-server-side-encryption-bucket-key-enabled" => writes && v.eq_ignore_ascii_case("false"),
        "x-amz-server-side-encryption-customer-algorithm"
        | "x-amz-server-side-encryption-customer-key"
        | "x-amz-server-side-encryption-customer-key-md5" => SSE_C_OPS.contains(&op),
        "x-amz-copy-source-server-side-encryption-customer-algorithm"
        | "x-amz-copy-source-server-side-encryption-customer-key"
        | "x-amz-copy-source-server-side-encryption-customer-key-md5" => {
            matches!(op, "CopyObject" | "UploadPartCopy")
        }
        _ => false,
    }
}

/// One header (lower-case name) of a request for `op`; `query`: it came
/// as a presigned URL's query parameter.
fn judge(op: &str, name: &str, value: &str, query: bool) -> Option<S3Error> {
    let v = value.trim();
    if name.starts_with("x-amz-server-side-encryption") || name.starts_with("x-amz-copy-source-server-side-encryption")
    {
        if !query && sse_enforced(op, name, v) {
            return None;
        }
        let what = if name.contains("aws-kms") || name.ends_with("-context") || v.starts_with("aws:kms") {
            "SSE-KMS is not supported: use SSE-S3 (AES256) or SSE-C"
        } else if query {
            "server-side encryption parameters are taken from headers only"
        } else {
            "this server-side encryption is not supported on this operation"
        };
        return Some(not_implemented(name, what));
    }
    match name {
        // Enforced (stored, checked by the state machine) by the writes
        // that take them; a presigned URL's parameter would not reach them.
        "x-amz-object-lock-mode" | "x-amz-object-lock-retain-until-date" | "x-amz-object-lock-legal-hold"
            if query || !matches!(op, "PutObject" | "CopyObject" | "CreateMultipartUpload") =>
        {
            Some(not_implemented(
                name,
                "object lock headers are taken from PutObject, CopyObject and CreateMultipartUpload headers",
            ))
        }
        "x-amz-bucket-object-lock-enabled" if !v.eq_ignore_ascii_case("false") && (query || op != "CreateBucket") => {
            Some(not_implemented(name, "object lock is enabled by CreateBucket's header"))
        }
        "x-amz-bucket-object-lock-token" => Some(not_implemented(name, "object lock is not supported yet")),
        "x-amz-object-ownership" if v == "ObjectWriter" => {
            Some(not_implemented(name, "objects always belong to the bucket's owner"))
        }
        "x-amz-storage-class" if v != "STANDARD" => {
            Some(not_implemented(name, "only the STANDARD storage class is supported"))
        }
        // Enforced (stored, counted, copied) by the writes that take it; a
        // presigned URL's parameter would not reach them.
        "x-amz-tagging" if query || !matches!(op, "PutObject" | "CopyObject" | "CreateMultipartUpload") => {
            Some(not_implemented(
                name,
                "tags are taken from the x-amz-tagging header of PutObject, CopyObject and CreateMultipartUpload",
            ))
        }
        "x-amz-website-redirect-location" => Some(not_implemented(name, "website redirects are not supported")),
        "x-amz-write-offset-bytes" => Some(not_implemented(name, "appending to an object is not supported")),
        "x-amz-if-match-last-modified-time" | "x-amz-if-match-size" if op.starts_with("Delete") => {
            Some(not_implemented(name, "conditional deletes accept only If-Match"))
        }
        _ => None,
    }
}

fn not_implemented(header: &str, what: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NotImplemented,
        format!("A header you provided implies functionality that is not implemented: {header} ({what})"),
    )
}

/// An ACL in a presigned URL's query (enforced only as a header).
fn judge_acl_parameter(name: &str, v: &str) -> Option<S3Error> {
    let owner_only = name == "x-amz-acl" && (v == "private" || v == "bucket-owner-full-control");
    (name == "x-amz-acl" || name.starts_with("x-amz-grant-")).then_some(()).filter(|()| !owner_only).map(|()| {
        S3Error::with_message(
            S3ErrorCode::AccessControlListNotSupported,
            format!("{name} as a query parameter is not enforced: send it as a header"),
        )
    })
}

/// The `name=value` pairs of a query string, percent-decoded.
pub(crate) fn query_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (n, v) = p.split_once('=').unwrap_or((p, ""));
        (percent_decode(n), percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(x) => {
                        out.push(x);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(http::HeaderName::from_bytes(n.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn code(op: &str, pairs: &[(&str, &str)]) -> Option<String> {
        refusal(op, &headers(pairs), None).map(|e| e.code().as_str().to_owned())
    }

    #[test]
    fn guarantees_not_enforced_are_refused() {
        let ni = Some("NotImplemented".to_owned());
        for h in [
            ("x-amz-server-side-encryption", "aws:kms"),
            ("x-amz-server-side-encryption", "aws:kms:dsse"),
            ("x-amz-server-side-encryption", "AES128"),
            ("x-amz-server-side-encryption-aws-kms-key-id", "k"),
            ("x-amz-server-side-encryption-context", "e30="),
            ("x-amz-server-side-encryption-bucket-key-enabled", "true"),
            ("x-amz-copy-source-server-side-encryption-customer-algorithm", "AES256"),
            ("x-amz-storage-class", "GLACIER"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-website-redirect-location", "/x"),
            ("x-amz-write-offset-bytes", "10"),
        ] {
            assert_eq!(code("PutObject", &[h]), ni, "{h:?}");
        }
        // SSE headers only where the handlers enforce them.
        assert_eq!(code("ListObjectsV2", &[("x-amz-server-side-encryption-customer-algorithm", "AES256")]), ni);
        assert_eq!(code("GetObject", &[("x-amz-server-side-encryption", "AES256")]), ni);
        assert_eq!(code("UploadPart", &[("x-amz-copy-source-server-side-encryption-customer-key", "a2V5")]), ni);
        assert_eq!(code("PutObject", &[("x-amz-bucket-object-lock-enabled", "true")]), ni);
        assert_eq!(code("UploadPart", &[("x-amz-object-lock-mode", "COMPLIANCE")]), ni);
        assert_eq!(code("PostObject", &[("x-amz-object-lock-legal-hold", "ON")]), ni, "the form path stores no lock");
        assert_eq!(code("PostObject", &[("x-amz-tagging", "a=b")]), ni, "the form path stores no tags");
        assert_eq!(code("PostObject", &[("x-amz-server-side-encryption", "AES256")]), ni);
        assert_eq!(code("DeleteObject", &[("x-amz-if-match-size", "10")]), ni);
        assert_eq!(code("CreateBucket", &[("x-amz-object-ownership", "ObjectWriter")]), ni);
    }

    #[test]
    fn what_tessera_gives_anyway_is_accepted() {
        for h in [
            ("x-amz-acl", "private"),
            ("x-amz-acl", "bucket-owner-full-control"),
            ("x-amz-acl", "public-read"),
            ("x-amz-grant-read", "id=abc"),
            ("x-amz-object-ownership", "BucketOwnerEnforced"),
            ("x-amz-object-ownership", "BucketOwnerPreferred"),
            ("x-amz-bucket-object-lock-enabled", "false"),
            ("x-amz-storage-class", "STANDARD"),
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("x-amz-meta-server-side-encryption", "AES256"),
            ("x-amz-bypass-governance-retention", "true"),
            ("content-type", "video/mp2t"),
            ("x-amz-server-side-encryption", "AES256"),
            ("x-amz-server-side-encryption-bucket-key-enabled", "false"),
            ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            ("x-amz-server-side-encryption-customer-key", "a2V5"),
            ("x-amz-server-side-encryption-customer-key-md5", "bWQ1"),
            ("x-amz-tagging", "a=b"),
            ("x-amz-object-lock-mode", "COMPLIANCE"),
            ("x-amz-object-lock-retain-until-date", "2030-01-01T00:00:00Z"),
            ("x-amz-object-lock-legal-hold", "ON"),
        ] {
            assert_eq!(code("PutObject", &[h]), None, "{h:?}");
        }
        assert_eq!(code("CreateBucket", &[("x-amz-bucket-object-lock-enabled", "True")]), None);
        for op in SSE_C_OPS {
            assert_eq!(code(op, &[("x-amz-server-side-encryption-customer-key", "a2V5")]), None, "{op}");
        }
        for op in ["CopyObject", "UploadPartCopy"] {
            assert_eq!(code(op, &[("x-amz-copy-source-server-side-encryption-customer-key", "a2V5")]), None);
        }
        assert_eq!(code("PutObject", &[("x-amz-if-match-size", "10")]), None);
    }

    #[test]
    fn presigned_query_parameters_count_as_headers() {
        let h = HeaderMap::new();
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=60&x-amz-acl=public-read&X-Amz-Signature=ab";
        assert_eq!(refusal("PutObject", &h, Some(q)).unwrap().code().as_str(), "AccessControlListNotSupported");
        let q = "X-Amz-Server-Side-Encryption=AES256";
        assert_eq!(refusal("PutObject", &h, Some(q)).unwrap().code().as_str(), "NotImplemented");
        let q = "x-amz-server-side-encryption-customer-key=a2V5";
        assert_eq!(refusal("GetObject", &h, Some(q)).unwrap().code().as_str(), "NotImplemented");
        let q = "x-amz-grant-read=id%3Dabc";
        assert_eq!(refusal("PutObject", &h, Some(q)).unwrap().code().as_str(), "AccessControlListNotSupported");
        let q = "x-amz-storage-class=STANDARD&x-amz-acl=private&prefix=a%2Bb&list-type=2";
        assert!(refusal("PutObject", &h, Some(q)).is_none());
        let q = "x-amz-object-lock-mode=GOVERNANCE";
        assert!(refusal("PutObject", &h, Some(q)).is_some());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb+c%zz%4"), "a/b c%zz%4");
        assert_eq!(percent_decode("%41"), "A");
        assert_eq!(percent_decode("%"), "%");
    }
}
