//! CORS: a bucket's rules (PutBucketCors), the preflight `OPTIONS` a
//! browser sends before a cross-origin request, and the headers added to
//! the actual responses, as S3 does them.
//!
//! A rule applies to a request when its `AllowedOrigin` patterns match the
//! `Origin` (one `*` wildcard at most), its `AllowedMethod`s hold the
//! method (for a preflight, `Access-Control-Request-Method`), and, for a
//! preflight, every header of `Access-Control-Request-Headers` matches an
//! `AllowedHeader` pattern (case-insensitive). The first rule that applies
//! answers.

use http::{HeaderMap, HeaderValue, StatusCode};
use tessera_rpc::proto::meta::CorsRule;

use crate::policy::eval::wildcard;

/// Methods a rule may allow.
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];
/// Most rules in a configuration (S3's limit).
pub const MAX_RULES: usize = 100;

/// Checks a configuration as S3 does; the message of `InvalidRequest`.
pub fn validate(rules: &[CorsRule]) -> Result<(), String> {
    if rules.is_empty() {
        return Err("A CORS configuration needs at least one CORSRule".into());
    }
    if rules.len() > MAX_RULES {
        return Err(format!("A CORS configuration has at most {MAX_RULES} rules"));
    }
    for r in rules {
        if r.allowed_origins.is_empty() || r.allowed_methods.is_empty() {
            return Err("Each CORSRule needs an AllowedOrigin and an AllowedMethod".into());
        }
        if let Some(m) = r.allowed_methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
            return Err(format!("Found unsupported HTTP method in CORS config. Unsupported method is {m}"));
        }
        for (what, list) in [("AllowedOrigin", &r.allowed_origins), ("AllowedHeader", &r.allowed_headers)] {
            if let Some(p) = list.iter().find(|p| p.matches('*').count() > 1) {
                return Err(format!("{what} \"{p}\" can not have more than one wildcard."));
            }
        }
    }
    Ok(())
}

fn origin_ok(r: &CorsRule, origin: &str) -> bool {
    r.allowed_origins.iter().any(|p| wildcard(p, origin, false))
}

fn header_ok(r: &CorsRule, h: &str) -> bool {
    r.allowed_headers.iter().any(|p| wildcard(p, h, true))
}

/// The rule that applies to an actual request from `origin` with `method`.
pub fn for_request<'a>(rules: &'a [CorsRule], origin: &str, method: &str) -> Option<&'a CorsRule> {
    rules.iter().find(|r| origin_ok(r, origin) && r.allowed_methods.iter().any(|m| m == method))
}

fn put(h: &mut HeaderMap, name: &'static str, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.insert(name, v);
    }
}

/// The CORS headers of a response to `origin` under rule `r`.
pub fn response_headers(r: &CorsRule, origin: &str, h: &mut HeaderMap) {
    let any = r.allowed_origins.iter().any(|o| o == "*");
    put(h, "access-control-allow-origin", if any { "*" } else { origin });
    put(h, "access-control-allow-methods", &r.allowed_methods.join(", "));
    if !r.expose_headers.is_empty() {
        put(h, "access-control-expose-headers", &r.expose_headers.join(", "));
    }
    if !any {
        put(h, "access-control-allow-credentials", "true");
    }
    put(h, "vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method");
}

/// A preflight's answer: status, headers, and for a refusal the S3 error
/// code and message.
pub struct Preflight {
    /// 200 or the refusal's status.
    pub status: StatusCode,
    /// CORS headers (on 200).
    pub headers: HeaderMap,
    /// The refusal: code and message.
    pub error: Option<(&'static str, &'static str)>,
}

fn refuse(status: StatusCode, code: &'static str, message: &'static str) -> Preflight {
    Preflight { status, headers: HeaderMap::new(), error: Some((code, message)) }
}

/// Answers a preflight `OPTIONS` with request headers `req` against
/// `rules` (`None`: the bucket has no CORS configuration).
pub fn preflight(rules: Option<&[CorsRule]>, req: &HeaderMap) -> Preflight {
    let get = |n: &str| req.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let Some(origin) = get("origin").filter(|o| !o.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        );
    };
    let Some(method) = get("access-control-request-method").filter(|m| !m.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid Access-Control-Request-Method: the preflight request names no method.",
        );
    };
    let Some(rules) = rules.filter(|r| !r.is_empty()) else {
        return refuse(StatusCode::FORBIDDEN, "AccessForbidden", "CORSResponse: CORS is not enabled for this bucket.");
    };
    let asked: Vec<String> = get("access-control-request-headers")
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let rule = rules.iter().find(|r| {
        origin_ok(r, origin) && r.allowed_methods.iter().any(|m| m == method) && asked.iter().all(|h| header_ok(r, h))
    });
    let Some(r) = rule else {
        return refuse(
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        );
    };
    let mut headers = HeaderMap::new();
    response_headers(r, origin, &mut headers);
    if !asked.is_empty() {
        put(&mut headers, "access-control-allow-headers", &asked.join(", "));
    }
    if r.max_age_seconds >= 0 {
        put(&mut headers, "access-control-max-age", &r.max_age_seconds.to_string());
    }
    Preflight { status: StatusCode::OK, headers, error: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            id: String::new(),
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            allowed_methods: methods.iter().map(|s| (*s).to_owned()).collect(),
            allowed_headers: headers.iter().map(|s| (*s).to_owned()).collect(),
            expose_headers: vec!["ETag".into()],
            max_age_seconds: 600,
        }
    }

    fn req(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn configurations_are_checked() {
        assert!(validate(&[rule(&["https://a.example"], &["GET"], &[])]).is_ok());
        assert!(validate(&[]).is_err());
        assert!(validate(&[rule(&["*"], &["FLY"], &[])]).unwrap_err().contains("FLY"));
        assert!(validate(&[rule(&["https://*.*.example"], &["GET"], &[])]).unwrap_err().contains("wildcard"));
        assert!(validate(&[rule(&[], &["GET"], &[])]).is_err());
    }

    #[test]
    fn preflights_follow_the_rules() {
        let rules = [
            rule(&["https://player.example"], &["GET", "HEAD"], &["range", "x-amz-*"]),
            rule(&["https://*.studio.example"], &["PUT"], &["*"]),
        ];
        let ok = preflight(
            Some(&rules),
            &req(&[
                ("origin", "https://player.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "Range, X-Amz-Date"),
            ]),
        );
        assert_eq!(ok.status, StatusCode::OK);
        let h = |p: &Preflight, n: &str| p.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(h(&ok, "access-control-allow-origin").as_deref(), Some("https://player.example"));
        assert_eq!(h(&ok, "access-control-allow-methods").as_deref(), Some("GET, HEAD"));
        assert_eq!(h(&ok, "access-control-allow-headers").as_deref(), Some("range, x-amz-date"));
        assert_eq!(h(&ok, "access-control-max-age").as_deref(), Some("600"));
        assert_eq!(h(&ok, "access-control-expose-headers").as_deref(), Some("ETag"));
        // A header no rule allows, another origin, another method: refused.
        for bad in [
            [
                ("origin", "https://player.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "authorization"),
            ],
            [("origin", "https://evil.example"), ("access-control-request-method", "GET"), ("x-none", "")],
            [("origin", "https://player.example"), ("access-control-request-method", "DELETE"), ("x-none", "")],
        ] {
            let p = preflight(Some(&rules), &req(&bad));
            assert_eq!((p.status, p.error.map(|e| e.0)), (StatusCode::FORBIDDEN, Some("AccessForbidden")), "{bad:?}");
        }
        // The wildcard origin rule: any header.
        let p = preflight(
            Some(&rules),
            &req(&[
                ("origin", "https://eu.studio.example"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "content-type, x-anything"),
            ]),
        );
        assert_eq!(p.status, StatusCode::OK);
        // No configuration, no origin.
        let p =
            preflight(None, &req(&[("origin", "https://player.example"), ("access-control-request-method", "GET")]));
        assert_eq!(
            (p.status, p.error.map(|e| e.1)),
            (StatusCode::FORBIDDEN, Some("CORSResponse: CORS is not enabled for this bucket."))
        );
        let p = preflight(Some(&rules), &req(&[("access-control-request-method", "GET")]));
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
        // Actual requests: the method must be allowed for the origin.
        assert!(for_request(&rules, "https://player.example", "GET").is_some());
        assert!(for_request(&rules, "https://player.example", "PUT").is_none());
        assert!(for_request(&rules, "https://x.studio.example", "PUT").is_some());
    }
}
