//! What legacy clients signing with AWS Signature Version 2 need before s3s
//! checks their signature (s3s verifies the HMAC-SHA1 itself).
//!
//! - The request time: S3 refuses a header-signed V2 request whose `Date`
//!   (or `x-amz-date`) is missing or more than 15 minutes from the
//!   server's clock (`403 RequestTimeTooSkewed`), so a captured request
//!   cannot be replayed later. s3s checks only that a date is present.
//! - The resource of a path-style request to a bucket: the string to sign
//!   ends with `/bucket/` (S3's CanonicalizedResource of a bucket), and
//!   botocore, for one, signs that while sending `/bucket`; s3s signs the
//!   path as sent. The path is given its trailing slash before s3s sees
//!   it (both name the same bucket). Virtual-hosted requests are left
//!   alone: there the path is a key.

use http::Request;
use time::OffsetDateTime;

/// How far a V2 request's date may be from the server's clock.
pub const MAX_SKEW: time::Duration = time::Duration::minutes(15);

/// An S3 error for a request refused here: status, code, message.
pub type Refusal = (http::StatusCode, &'static str, &'static str);

/// Whether `req` is signed with Signature Version 2: an `Authorization:
/// AWS <key>:<signature>` header, or a presigned URL's `Signature` and
/// `AWSAccessKeyId` parameters.
fn v2_kind<B>(req: &Request<B>) -> Option<bool> {
    let header = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if header.is_some_and(|a| a.starts_with("AWS ")) {
        return Some(true);
    }
    let q = req.uri().query().unwrap_or("");
    let has = |name: &str| q.split('&').any(|p| p.split('=').next() == Some(name));
    (header.is_none() && has("Signature") && has("AWSAccessKeyId")).then_some(false)
}

/// Prepares a V2-signed request for s3s (see the module docs); returns the
/// refusal when its date is missing or too far off. Other requests pass
/// untouched. `virtual_host`: whether the request names its bucket in the
/// host.
pub fn prepare<B>(req: &mut Request<B>, virtual_host: bool, now: OffsetDateTime) -> Result<(), Refusal> {
    let Some(header_signed) = v2_kind(req) else { return Ok(()) };
    if header_signed {
        let h = req.headers();
        let date = h.get("x-amz-date").or_else(|| h.get(http::header::DATE)).and_then(|v| v.to_str().ok());
        let Some(at) = date.and_then(parse_date) else {
            return Err((
                http::StatusCode::FORBIDDEN,
                "AccessDenied",
                "AWS authentication requires a valid Date or x-amz-date header",
            ));
        };
        if (at - now).abs() > MAX_SKEW {
            return Err((
                http::StatusCode::FORBIDDEN,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
            ));
        }
    }
    if !virtual_host {
        let path = req.uri().path();
        let one_segment = path.len() > 1 && !path[1..].contains('/');
        if one_segment {
            let pq = match req.uri().query() {
                Some(q) => format!("{path}/?{q}"),
                None => format!("{path}/"),
            };
            let mut parts = req.uri().clone().into_parts();
            if let Ok(pq) = pq.parse() {
                parts.path_and_query = Some(pq);
                if let Ok(uri) = http::Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
        }
    }
    Ok(())
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, as V2 clients send in
/// `Date` and `x-amz-date`), or ISO 8601 basic (`19941106T084937Z`).
fn parse_date(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = httpdate::parse_http_date(s) {
        return Some(OffsetDateTime::from(t));
    }
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(s, &fmt).ok().map(|t| t.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "Sun, 06 Dec 2026 16:21:29 GMT";

    fn now() -> OffsetDateTime {
        parse_date(NOW).unwrap()
    }

    fn req(target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method("GET").uri(target);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn dates_parse_in_both_forms() {
        assert_eq!(parse_date("20261206T162129Z"), Some(now()));
        assert_eq!(parse_date("  Sun, 06 Dec 2026 16:21:29 GMT "), Some(now()));
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn a_v2_request_outside_fifteen_minutes_is_refused() {
        let auth = ("authorization", "AWS AKID:c2lnbmF0dXJl");
        let mut ok = req("/b/k", &[auth, ("date", "Sun, 06 Dec 2026 16:35:00 GMT")]);
        assert_eq!(prepare(&mut ok, false, now()), Ok(()));
        let mut late = req("/b/k", &[auth, ("date", "Sun, 06 Dec 2026 16:37:00 GMT")]);
        assert_eq!(prepare(&mut late, false, now()).unwrap_err().1, "RequestTimeTooSkewed");
        let mut early = req("/b/k", &[auth, ("date", "Sun, 06 Dec 2026 16:00:00 GMT")]);
        assert_eq!(prepare(&mut early, false, now()).unwrap_err().1, "RequestTimeTooSkewed");
        // x-amz-date wins over Date, as in the string to sign.
        let mut amz = req("/b/k", &[auth, ("date", "Sun, 06 Dec 2026 10:00:00 GMT"), ("x-amz-date", NOW)]);
        assert_eq!(prepare(&mut amz, false, now()), Ok(()));
        let mut none = req("/b/k", &[auth]);
        assert_eq!(prepare(&mut none, false, now()).unwrap_err().1, "AccessDenied");
        let mut junk = req("/b/k", &[auth, ("date", "soon")]);
        assert_eq!(prepare(&mut junk, false, now()).unwrap_err().1, "AccessDenied");
    }

    #[test]
    fn other_requests_pass_untouched() {
        for r in [
            req("/b", &[("authorization", "AWS4-HMAC-SHA256 Credential=x"), ("date", "Sun, 01 Jan 2006 00:00:00 GMT")]),
            req("/b", &[]),
            req("/b?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab", &[]),
        ] {
            let mut r2 = r;
            assert_eq!(prepare(&mut r2, false, now()), Ok(()));
            assert_eq!(r2.uri().path(), "/b");
        }
    }

    #[test]
    fn a_path_style_bucket_gets_its_trailing_slash() {
        let auth = ("authorization", "AWS AKID:c2ln");
        let mut r = req("/bucket?encoding-type=url", &[auth, ("date", NOW)]);
        prepare(&mut r, false, now()).unwrap();
        assert_eq!(r.uri().path_and_query().unwrap().as_str(), "/bucket/?encoding-type=url");
        // Keys, the service and virtual-hosted requests keep their path.
        for (target, vh) in [("/bucket/key", false), ("/", false), ("/bucket/", false), ("/key", true)] {
            let mut r = req(target, &[auth, ("date", NOW)]);
            prepare(&mut r, vh, now()).unwrap();
            assert_eq!(r.uri().path(), target);
        }
        // Presigned V2 URLs too, with no date check (they carry Expires).
        let mut p = req("/bucket?AWSAccessKeyId=AKID&Expires=1&Signature=abc", &[]);
        prepare(&mut p, false, now()).unwrap();
        assert_eq!(p.uri().path(), "/bucket/");
    }
}
