//! Answers to GET-style probes of bucket and object settings: what S3
//! answers for a bucket where they were never configured, so tools that
//! read them first (rclone, s3cmd, Terraform, the SDKs' helpers) go on.
//! For settings Tessera does not offer yet, setting them is refused
//! elsewhere (NotImplemented or AccessControlListNotSupported), so these
//! answers stay true: no lifecycle, no website, no logging, no
//! notifications. Policy, CORS, the public access block, ACLs, object
//! ownership, encryption, tags, versioning and object lock can be set;
//! their getters use the "none" answers here only when none is.

use s3s::{S3Error, S3ErrorCode};

/// The 404 S3 answers when `what` was never configured on a bucket.
pub(super) fn not_configured(code: S3ErrorCode, what: &str) -> S3Error {
    let mut e = S3Error::with_message(code, format!("the bucket has no {what}"));
    e.set_status_code(http::StatusCode::NOT_FOUND);
    e
}

/// The bucket has no policy.
pub(super) fn no_policy() -> S3Error {
    not_configured(S3ErrorCode::NoSuchBucketPolicy, "bucket policy")
}

/// The public access block S3 answers for a bucket that has none.
pub(super) fn no_public_access_block() -> S3Error {
    not_configured(
        S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
        "public access block configuration",
    )
}
