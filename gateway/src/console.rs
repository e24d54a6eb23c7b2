//! The web console: three static files built into the binary and served
//! under `/tessera/console/` by every gateway. The page signs its own
//! requests to the admin API and the S3 API (SigV4, in the browser), so the
//! gateway needs no session of its own: the console can do exactly what
//! the key it was given may do (docs/console.md).

use http::{HeaderValue, Method, Response, StatusCode};
use s3s::Body;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// Only the page's own files run; nothing may frame it (clickjacking), and
/// it connects only to its own origin.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The answer to `METHOD /tessera/console/<rest>` (`rest` after `console`).
pub(crate) fn serve(method: &Method, rest: &str) -> Response<Body> {
    let asset = match rest {
        "" => {
            // Relative links need the folder's slash.
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
            r.headers_mut().insert(http::header::LOCATION, HeaderValue::from_static("/tessera/console/"));
            return r;
        }
        "/" | "/index.html" => Some((INDEX, "text/html; charset=utf-8")),
        "/console.js" => Some((SCRIPT, "text/javascript; charset=utf-8")),
        "/console.css" => Some((STYLE, "text/css; charset=utf-8")),
        _ => None,
    };
    let (status, body, kind) = match (method, asset) {
        (&Method::GET | &Method::HEAD, Some((text, kind))) => (StatusCode::OK, text, kind),
        (_, Some(_)) => (StatusCode::METHOD_NOT_ALLOWED, "the console's files are only read\n", "text/plain"),
        (_, None) => (StatusCode::NOT_FOUND, "no such file in the console\n", "text/plain"),
    };
    let mut r = Response::new(if method == Method::HEAD { Body::empty() } else { Body::from(body.to_owned()) });
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(http::header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    h.insert(http::header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(http::header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if method == Method::GET || method == Method::HEAD {
        h.insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_are_served_with_a_strict_policy_and_nothing_else_is() {
        let r = serve(&Method::GET, "/");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()[http::header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap_or("")
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(
            serve(&Method::GET, "/console.js").headers()[http::header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(serve(&Method::GET, "").status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(serve(&Method::GET, "/../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert_eq!(serve(&Method::PUT, "/index.html").status(), StatusCode::METHOD_NOT_ALLOWED);
        // Every file the page names is served.
        for name in ["console.js", "console.css"] {
            assert!(INDEX.contains(name));
            assert_eq!(serve(&Method::GET, &format!("/{name}")).status(), StatusCode::OK);
        }
    }
}
