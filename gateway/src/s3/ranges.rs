//! Sizes, ranges, part numbers and upload ids of requests.

use super::*;

pub(super) fn content_len(v: Option<i64>, limit: u64) -> S3Result<u64> {
    let len = v.ok_or_else(|| s3_error!(MissingContentLength, "You must provide the Content-Length HTTP header."))?;
    let len = u64::try_from(len).map_err(|_| s3_error!(InvalidArgument, "negative Content-Length"))?;
    if len > limit {
        return Err(s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed size ({limit} bytes)"));
    }
    Ok(len)
}

pub(super) fn byte_range(r: Option<&s3s::dto::Range>, size: u64) -> S3Result<Option<Range<u64>>> {
    match r {
        None => Ok(None),
        Some(r) => {
            r.check(size).map(Some).map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))
        }
    }
}

/// The range a GET or HEAD asks for: a `partNumber`, a `Range` header (not
/// both), or `None` for the whole object.
pub(super) fn requested_range(
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
pub(super) fn part_range(rec: &ObjectRecord, n: i32) -> S3Result<Range<u64>> {
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
pub(super) fn copy_range(s: Option<&str>, size: u64) -> S3Result<Range<u64>> {
    let Some(s) = s else { return Ok(0..size) };
    let bad = || s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last");
    let (a, b) = s.strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a > b || b >= size {
        return Err(s3_error!(InvalidRange, "The requested range is not satisfiable"));
    }
    Ok(a..b + 1)
}

pub(super) fn new_upload_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

pub(super) fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"))
}
