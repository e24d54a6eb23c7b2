//! Every mapping of metadata and pipeline outcomes to S3 errors (the
//! metadata service's failure codes, write and read failures, conditional
//! races); key checks. The tests below cover every variant.

use super::*;

// Internal details (metadata and datanode addresses, disk ids, gRPC
// statuses) go to the log, in the request's span (with its request id);
// the S3 client is told what happened and whether to retry.

pub(super) fn unavailable(e: MetaClientError) -> S3Error {
    tracing::warn!(error = %e, "metadata service unavailable");
    s3_error!(ServiceUnavailable, "the metadata service is unavailable now; retry")
}

pub(super) fn from_failure(f: &Failure) -> S3Error {
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
        C::NoSuchVersion => S3ErrorCode::NoSuchVersion,
        C::MethodNotAllowed => S3ErrorCode::MethodNotAllowed,
        C::ObjectLocked => S3ErrorCode::AccessDenied,
        C::InvalidBucketState => S3ErrorCode::InvalidBucketState,
        // A rolling upgrade under way: the feature exists only once every
        // metadata node runs the release that has it.
        C::NotYetEnabled => S3ErrorCode::NotImplemented,
        // A put's bucket changed under it (`commit_put` retries when it may).
        C::BucketChanged => S3ErrorCode::SlowDown,
        C::Unspecified => S3ErrorCode::InternalError,
    };
    if f.message.is_empty() { S3Error::new(code) } else { S3Error::with_message(code, f.message.clone()) }
}

pub(super) fn write_error(e: WriteError) -> S3Error {
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
        e @ WriteError::Quorum { .. } => {
            tracing::warn!(error = %e, "a write did not reach its quorum");
            s3_error!(ServiceUnavailable, "too few datanodes stored the object's shards; nothing was stored; retry")
        }
        e @ WriteError::Idle(_) => s3_error!(RequestTimeout, "the request timed out: {e}"),
        WriteError::Internal(m) => {
            tracing::error!(error = %m, "internal error in a write");
            s3_error!(InternalError, "We encountered an internal error. Please try again.")
        }
    }
}

/// A write condition that held when the request started but not when its
/// record was committed: another write or delete of the key finished while
/// the body was uploading. S3 answers 409 ConditionalRequestConflict; the
/// client should read the key again and retry.
pub(super) fn raced(e: S3Error) -> S3Error {
    if matches!(e.code(), S3ErrorCode::PreconditionFailed | S3ErrorCode::NoSuchKey) {
        s3_error!(
            ConditionalRequestConflict,
            "A conflicting operation on this key finished while the upload was in progress; retry the request"
        )
    } else {
        e
    }
}

/// A read that failed after the answer started: the body stream ends with
/// this error (the client sees a cut-off body); the cause is logged where
/// it happened.
pub(super) fn read_error(e: &ReadError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

pub(super) fn check_key(key: &str) -> S3Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(s3_error!(KeyTooLongError, "Your key is too long (at most {MAX_KEY_BYTES} bytes)"));
    }
    if let Some(p) = key_problem(key) {
        return Err(s3_error!(InvalidArgument, "invalid key: {p}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use failure::Code as C;

    /// The code and HTTP status S3 answers with.
    fn answer(e: &S3Error) -> (String, u16) {
        let status = e.status_code().or_else(|| e.code().status_code()).map_or(0, |s| s.as_u16());
        (e.code().as_str().to_owned(), status)
    }

    #[test]
    fn every_metadata_failure_has_its_s3_code_and_status() {
        // An exhaustive match: a new failure code does not compile until
        // its S3 answer is written here.
        let want = |c: C| -> (&'static str, u16) {
            match c {
                C::NoSuchBucket => ("NoSuchBucket", 404),
                C::BucketAlreadyExists => ("BucketAlreadyExists", 409),
                C::BucketAlreadyOwnedByYou => ("BucketAlreadyOwnedByYou", 409),
                C::BucketNotEmpty => ("BucketNotEmpty", 409),
                C::InvalidBucketName => ("InvalidBucketName", 400),
                C::KeyTooLong => ("KeyTooLongError", 400),
                C::NoSuchKey => ("NoSuchKey", 404),
                C::PreconditionFailed => ("PreconditionFailed", 412),
                C::NoSuchUpload => ("NoSuchUpload", 404),
                C::InvalidPart => ("InvalidPart", 400),
                C::InvalidPartOrder => ("InvalidPartOrder", 400),
                C::EntityTooSmall => ("EntityTooSmall", 400),
                C::InvalidArgument => ("InvalidArgument", 400),
                C::NoSuchAccessKey => ("InvalidAccessKeyId", 403),
                C::EntityTooLarge => ("EntityTooLarge", 400),
                C::NotYetEnabled => ("NotImplemented", 501),
                C::NoSuchVersion => ("NoSuchVersion", 404),
                C::MethodNotAllowed => ("MethodNotAllowed", 405),
                C::ObjectLocked => ("AccessDenied", 403),
                C::InvalidBucketState => ("InvalidBucketState", 409),
                C::BucketChanged => ("SlowDown", 503),
                C::Unspecified => ("InternalError", 500),
            }
        };
        let mut seen = 0;
        for i in 0..256 {
            let Ok(c) = C::try_from(i) else { continue };
            seen += 1;
            let e = from_failure(&Failure { code: i, message: "the message".into() });
            let (code, status) = want(c);
            assert_eq!(answer(&e), (code.to_owned(), status), "{c:?}");
            assert_eq!(e.message(), Some("the message"));
        }
        assert_eq!(seen, 22, "every failure code is mapped");
    }

    #[test]
    fn every_write_failure_has_its_s3_code_and_no_internal_detail() {
        let cases = [
            (WriteError::Body("connection reset".into()), ("IncompleteBody", 400)),
            (
                WriteError::Body("AwsChunkedStreamError: SignatureMismatch at chunk 2".into()),
                ("SignatureDoesNotMatch", 403),
            ),
            (WriteError::Body("UploadStreamError: Sha256Mismatch".into()), ("XAmzContentSHA256Mismatch", 400)),
            (WriteError::Incomplete { expected: 10, got: 4 }, ("IncompleteBody", 400)),
            (WriteError::TooLong { expected: 10 }, ("InvalidRequest", 400)),
            (
                WriteError::Quorum {
                    stored: 3,
                    needed: 5,
                    reasons: "shard 1 (disk 4): http://10.0.0.7:9301 refused".into(),
                },
                ("ServiceUnavailable", 503),
            ),
            (WriteError::Idle(Duration::from_secs(30)), ("RequestTimeout", 400)),
            (WriteError::Internal("codec 9 at 10.0.0.7".into()), ("InternalError", 500)),
        ];
        for (e, (code, status)) in cases {
            // An exhaustive match again, so a new variant needs a case.
            match &e {
                WriteError::Body(_)
                | WriteError::Incomplete { .. }
                | WriteError::TooLong { .. }
                | WriteError::Quorum { .. }
                | WriteError::Idle(_)
                | WriteError::Internal(_) => {}
            }
            let shown = format!("{e:?}");
            let s3 = write_error(e);
            assert_eq!(answer(&s3), (code.to_owned(), status), "{shown}");
            let message = s3.message().unwrap_or("");
            assert!(!message.contains("10.0.0.7") && !message.contains("disk 4"), "{shown}: {message}");
        }
    }

    #[test]
    fn a_lost_conditional_race_is_a_conflict() {
        for lost in [s3_error!(PreconditionFailed), s3_error!(NoSuchKey)] {
            assert_eq!(answer(&raced(lost)), ("ConditionalRequestConflict".to_owned(), 409));
        }
        assert_eq!(answer(&raced(s3_error!(NoSuchBucket))), ("NoSuchBucket".to_owned(), 404));
    }

    #[test]
    fn keys_are_checked_as_s3_does() {
        assert!(check_key("a/b c.m4s").is_ok());
        assert_eq!(answer(&check_key(&"k".repeat(MAX_KEY_BYTES + 1)).unwrap_err()).0, "KeyTooLongError");
    }
}
