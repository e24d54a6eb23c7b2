//! Read and write conditions, conditional deletes, versions, bucket locations.

use super::*;

pub(super) fn etag_matches(c: &ETagCondition, stored: &str) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == stored,
    }
}

pub(super) struct Conditions<'a> {
    pub(super) if_match: Option<&'a ETagCondition>,
    pub(super) if_none_match: Option<&'a ETagCondition>,
    pub(super) if_modified_since: Option<&'a Timestamp>,
    pub(super) if_unmodified_since: Option<&'a Timestamp>,
}

impl Conditions<'_> {
    /// RFC 9110 §13.2.2 order, as S3 applies it: If-Match, else
    /// If-Unmodified-Since (412); then If-None-Match, else If-Modified-Since
    /// (304 for reads; `not_modified` chooses 412 for copies).
    pub(super) fn check(&self, rec: &ObjectRecord, not_modified: S3ErrorCode) -> S3Result<()> {
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

    pub(super) fn judge(&self, rec: &ObjectRecord, not_modified: S3ErrorCode) -> S3Result<()> {
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

pub(super) fn write_condition(
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
pub(super) async fn precheck_write(s3: &Tessera, bucket: &str, key: &str, cond: &Condition) -> S3Result<()> {
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
pub(super) fn check_location(conf: &CreateBucketConfiguration, region: &str) -> S3Result<()> {
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
pub(super) fn delete_condition(c: &ETagCondition) -> Condition {
    let etag = match c {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(e) => e.value().to_owned(),
    };
    Condition { kind: Some(condition::Kind::IfMatch(etag)) }
}

pub(super) fn precondition_failed() -> S3Error {
    s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold")
}
