//! The audit log: one JSON line per S3 request, written when its response
//! has been sent (or abandoned): time, request id, principal, source IP,
//! method, operation, bucket, key, status, bytes in and out, duration.
//! Never a secret or a signature: the principal is the access key id the
//! request names (whether or not its signature held — a 403 says which).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where audit lines go.
pub struct AuditSink {
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditSink")
    }
}

impl AuditSink {
    /// Appends to `path`; `-` is standard output.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::LineWriter::new(std::io::stdout()))
        } else {
            Box::new(std::io::LineWriter::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?))
        };
        Ok(AuditSink { out: Mutex::new(out) })
    }

    fn write(&self, line: &str) {
        if let Ok(mut o) = self.out.lock()
            && let Err(e) = writeln!(o, "{line}")
        {
            tracing::warn!(error = %e, "could not write the audit log");
        }
    }
}

/// One request being audited; written when dropped (the response's end).
pub struct AuditEntry {
    /// Where to.
    pub sink: Arc<AuditSink>,
    /// Arrival, RFC 3339.
    pub time: String,
    /// When it arrived, for the duration.
    pub started: Instant,
    /// The `x-amz-request-id`.
    pub request_id: String,
    /// The access key id the request names, or `anonymous`.
    pub principal: String,
    /// The client's address.
    pub source_ip: String,
    /// HTTP method.
    pub method: String,
    /// S3 operation.
    pub op: &'static str,
    /// Bucket and key, as the path names them (empty when none).
    pub bucket: String,
    /// Key (percent-encoded as sent).
    pub key: String,
    /// Response status.
    pub status: u16,
    /// Request body bytes received.
    pub bytes_in: Arc<AtomicU64>,
    /// Response body bytes sent.
    pub bytes_out: Arc<AtomicU64>,
}

impl Drop for AuditEntry {
    fn drop(&mut self) {
        let line = serde_json::json!({
            "time": self.time,
            "request_id": self.request_id,
            "principal": self.principal,
            "source_ip": self.source_ip,
            "method": self.method,
            "operation": self.op,
            "bucket": self.bucket,
            "key": self.key,
            "status": self.status,
            "bytes_in": self.bytes_in.load(Ordering::Relaxed),
            "bytes_out": self.bytes_out.load(Ordering::Relaxed),
            "duration_ms": (self.started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        });
        self.sink.write(&line.to_string());
    }
}

/// The access key id a request names (SigV4 or SigV2, header or query),
/// without checking anything; `anonymous` when none.
pub fn principal_of(headers: &http::HeaderMap, query: Option<&str>) -> String {
    let auth = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let from_header = if let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256") {
        rest.split("Credential=").nth(1).and_then(|c| c.split('/').next())
    } else {
        auth.strip_prefix("AWS ").and_then(|r| r.split(':').next())
    };
    let from_query = || {
        query.unwrap_or("").split('&').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            match k {
                "X-Amz-Credential" => v.split("%2F").next().and_then(|v| v.split('/').next()),
                "AWSAccessKeyId" => Some(v),
                _ => None,
            }
        })
    };
    let id = from_header.or_else(from_query).unwrap_or("").trim();
    // Only what an access key id can be: letters and digits.
    if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        id.to_owned()
    } else if id.is_empty() {
        "anonymous".to_owned()
    } else {
        "invalid".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_named_never_with_their_signature() {
        let mut h = http::HeaderMap::new();
        assert_eq!(principal_of(&h, None), "anonymous");
        h.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc"
                .parse()
                .unwrap(),
        );
        assert_eq!(principal_of(&h, None), "AKIDEXAMPLE");
        h.insert(http::header::AUTHORIZATION, "AWS AKIDV2:c2lnbmF0dXJl".parse().unwrap());
        assert_eq!(principal_of(&h, None), "AKIDV2");
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDQ%2F20261206%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=ff";
        assert_eq!(principal_of(&http::HeaderMap::new(), Some(q)), "AKIDQ");
        assert_eq!(principal_of(&http::HeaderMap::new(), Some("AWSAccessKeyId=AKIDV2Q&Signature=x")), "AKIDV2Q");
        h.insert(http::header::AUTHORIZATION, "AWS <script>:x".parse().unwrap());
        assert_eq!(principal_of(&h, None), "invalid");
    }
}
