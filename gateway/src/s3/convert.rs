//! Conversions between records and S3 types.

use super::*;

pub(super) fn ts(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

pub(super) fn unix_secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

pub(super) fn etag(e: &str) -> ETag {
    ETag::Strong(e.to_owned())
}

pub(super) fn http_date(t: &Timestamp) -> Option<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

pub(super) fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

pub(super) struct MetaInput {
    pub(super) content_type: Option<String>,
    pub(super) content_encoding: Option<String>,
    pub(super) content_disposition: Option<String>,
    pub(super) content_language: Option<String>,
    pub(super) cache_control: Option<String>,
    pub(super) expires: Option<Timestamp>,
    pub(super) metadata: Option<Metadata>,
}

pub(super) fn object_meta(m: MetaInput) -> S3Result<ObjectMeta> {
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
        content_encoding: stored_encoding(m.content_encoding.as_deref()),
        content_disposition: m.content_disposition.unwrap_or_default(),
        content_language: m.content_language.unwrap_or_default(),
        cache_control: m.cache_control.unwrap_or_default(),
        expires: m.expires.as_ref().and_then(http_date).unwrap_or_default(),
        user,
    })
}

/// The Content-Encoding kept for an object: the request's, without
/// `aws-chunked` (how the body was framed on the wire, not how it is
/// stored: S3 drops it too), so `gzip, aws-chunked` is stored as `gzip`.
pub(super) fn stored_encoding(e: Option<&str>) -> String {
    let Some(e) = e else { return String::new() };
    let kept: Vec<&str> =
        e.split(',').map(str::trim).filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked")).collect();
    kept.join(", ")
}

pub(super) fn user_metadata(m: &ObjectMeta) -> Option<Metadata> {
    (!m.user.is_empty()).then(|| m.user.iter().map(|h| (h.name.clone(), h.value.clone())).collect())
}

pub(super) fn expires_of(m: &ObjectMeta) -> Option<Timestamp> {
    (!m.expires.is_empty()).then(|| Timestamp::parse(TimestampFormat::HttpDate, &m.expires).ok()).flatten()
}

pub(super) fn owner(id: &str) -> Owner {
    Owner { display_name: Some(id.to_owned()), id: Some(id.to_owned()) }
}
