//! The gateway's Prometheus metrics (`tessera_gateway_*`): S3 requests by
//! operation and status, their latency, bytes in and out, and the time spent
//! erasure coding.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method};
use tessera_common::MetricsRegistry;
use tessera_common::metrics::{Counter, CounterFamily, HistogramFamily, latency_family};
use tessera_pipeline::PipelineMetrics;

/// Counters and histograms of one gateway. Cloning shares them.
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    /// S3 requests by operation and HTTP status.
    pub requests: CounterFamily,
    /// Request time, from the request's arrival to the end of its response
    /// body, by operation.
    pub request_seconds: HistogramFamily,
    /// Request body bytes received.
    pub bytes_in: Counter,
    /// Response body bytes sent.
    pub bytes_out: Counter,
    /// What the erasure-coded pipeline counts (encode and decode times,
    /// degraded stripes, shard writes given up).
    pub pipeline: PipelineMetrics,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics {
            requests: CounterFamily::default(),
            request_seconds: latency_family(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            pipeline: PipelineMetrics::default(),
        }
    }
}

impl GatewayMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &MetricsRegistry) -> Self {
        let m = GatewayMetrics::default();
        let r = registry;
        r.register("tessera_gateway_requests", "S3 requests by operation and status", m.requests.clone());
        r.register(
            "tessera_gateway_request_seconds",
            "S3 request time, arrival to the end of the response body",
            m.request_seconds.clone(),
        );
        r.register("tessera_gateway_bytes_in", "Request body bytes received", m.bytes_in.clone());
        r.register("tessera_gateway_bytes_out", "Response body bytes sent", m.bytes_out.clone());
        r.register(
            "tessera_gateway_ec_encode_seconds",
            "Time to encode one stripe",
            m.pipeline.ec_encode_seconds.clone(),
        );
        r.register(
            "tessera_gateway_ec_decode_seconds",
            "Time to verify and decode one stripe",
            m.pipeline.ec_decode_seconds.clone(),
        );
        r.register(
            "tessera_gateway_degraded_stripes",
            "Stripes read with parity standing in for a data shard",
            m.pipeline.degraded_stripes.clone(),
        );
        r.register(
            "tessera_gateway_hedged_shard_reads",
            "Shards opened beside others slower than the hedge timeout",
            m.pipeline.hedged_shard_reads.clone(),
        );
        r.register(
            "tessera_gateway_shard_write_failures",
            "Shard writes given up while the object was stored",
            m.pipeline.shard_write_failures.clone(),
        );
        m
    }
}

/// The S3 operation a request asks for, from its method, path and query (as
/// the S3 API routes them). Requests that are not S3 at all are `Other`.
pub fn operation(method: &Method, path: &str, query: Option<&str>, headers: &HeaderMap) -> &'static str {
    let path = path.trim_start_matches('/');
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) => (b, k),
        None => (path, ""),
    };
    let has = |name: &str| query.is_some_and(|q| q.split('&').any(|p| p.split('=').next() == Some(name)));
    let copy = headers.contains_key("x-amz-copy-source");
    if bucket.is_empty() {
        return if method == Method::GET { "ListBuckets" } else { "Other" };
    }
    if key.is_empty() {
        return match *method {
            Method::GET if has("location") => "GetBucketLocation",
            Method::GET if has("uploads") => "ListMultipartUploads",
            Method::GET if query.is_some_and(|q| q.contains("list-type=2")) => "ListObjectsV2",
            Method::GET => "ListObjects",
            Method::HEAD => "HeadBucket",
            Method::PUT => "CreateBucket",
            Method::DELETE => "DeleteBucket",
            Method::POST if has("delete") => "DeleteObjects",
            _ => "Other",
        };
    }
    match *method {
        Method::GET if has("uploadId") => "ListParts",
        Method::GET => "GetObject",
        Method::HEAD => "HeadObject",
        Method::PUT if has("uploadId") && copy => "UploadPartCopy",
        Method::PUT if has("uploadId") => "UploadPart",
        Method::PUT if copy => "CopyObject",
        Method::PUT => "PutObject",
        Method::POST if has("uploads") => "CreateMultipartUpload",
        Method::POST if has("uploadId") => "CompleteMultipartUpload",
        Method::DELETE if has("uploadId") => "AbortMultipartUpload",
        Method::DELETE => "DeleteObject",
        _ => "Other",
    }
}

/// A body that counts the bytes passing through it into a counter and, for
/// a response, records the request ([`Finish`]) when it ends or is dropped.
pub struct Counted<B> {
    inner: B,
    counter: Counter,
    finish: Option<Finish>,
    /// This request's own count (the audit log's bytes in or out).
    seen: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl<B> Counted<B> {
    /// Counts `inner`'s bytes into `counter` (a request body).
    pub fn new(inner: B, counter: Counter) -> Self {
        Counted { inner, counter, finish: None, seen: None }
    }

    /// Counts a response body and records `finish` at its end.
    pub fn response(inner: B, counter: Counter, finish: Finish) -> Self {
        Counted { inner, counter, finish: Some(finish), seen: None }
    }

    /// Counts into `seen` too.
    pub fn with_seen(mut self, seen: Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.seen = Some(seen);
        self
    }
}

impl<B> http_body::Body for Counted<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    self.counter.inc_by(d.len() as u64);
                    if let Some(s) = &self.seen {
                        s.fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            Poll::Ready(None | Some(Err(_))) => drop(self.finish.take()),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Records one request (count and latency) when its response body ends or
/// is dropped, so the latency includes streaming the body.
pub struct Finish {
    /// Where to record.
    pub metrics: Arc<GatewayMetrics>,
    /// The operation.
    pub op: &'static str,
    /// The response status.
    pub status: u16,
    /// When the request arrived.
    pub started: Instant,
    /// Its audit line, written after the metrics.
    pub audit: Option<crate::audit::AuditEntry>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let m = &self.metrics;
        m.requests.get_or_create(&vec![("op", self.op.to_owned()), ("status", self.status.to_string())]).inc();
        m.request_seconds
            .get_or_create(&vec![("op", self.op.to_owned())])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(m: Method, path: &str, q: Option<&str>) -> &'static str {
        operation(&m, path, q, &HeaderMap::new())
    }

    #[test]
    fn operations_are_named_as_s3_routes_them() {
        assert_eq!(op(Method::GET, "/", None), "ListBuckets");
        assert_eq!(op(Method::PUT, "/b", None), "CreateBucket");
        assert_eq!(op(Method::GET, "/b", Some("list-type=2&prefix=a")), "ListObjectsV2");
        assert_eq!(op(Method::GET, "/b", Some("prefix=a")), "ListObjects");
        assert_eq!(op(Method::GET, "/b", Some("location")), "GetBucketLocation");
        assert_eq!(op(Method::POST, "/b", Some("delete")), "DeleteObjects");
        assert_eq!(op(Method::GET, "/b/k/x", None), "GetObject");
        assert_eq!(op(Method::PUT, "/b/k", Some("partNumber=2&uploadId=u")), "UploadPart");
        assert_eq!(op(Method::POST, "/b/k", Some("uploads")), "CreateMultipartUpload");
        assert_eq!(op(Method::POST, "/b/k", Some("uploadId=u")), "CompleteMultipartUpload");
        assert_eq!(op(Method::DELETE, "/b/k", Some("uploadId=u")), "AbortMultipartUpload");
        let mut h = HeaderMap::new();
        h.insert("x-amz-copy-source", "/a/b".parse().expect("header"));
        assert_eq!(operation(&Method::PUT, "/b/k", None, &h), "CopyObject");
        assert_eq!(operation(&Method::PUT, "/b/k", Some("uploadId=u&partNumber=1"), &h), "UploadPartCopy");
    }
}
