//! Request tracing across nodes: a W3C `traceparent` travels in the gRPC
//! metadata of every metadata and datanode call, so the spans a request
//! causes on other nodes join its trace; and an optional OTLP exporter
//! (OTLP/HTTP with JSON encoding) sends finished spans to a collector.
//!
//! ```text
//!  gateway: span "s3" (request_id) ──► MetaClient / data client calls
//!           TraceInjector adds traceparent: 00-<trace id>-<span id>-01
//!  meta / datanode: tonic trace_fn ──► span "grpc" (rpc.method, traceparent)
//!  datanode, shard wire: span "shard" (rpc.method, traceparent from the request header)
//!           OtlpLayer takes the remote parent from the traceparent field
//!  every process: OtlpLayer ──► bounded queue ──► exporter task ──► POST <endpoint>/v1/traces
//! ```
//! Only Tessera's own spans (targets starting with `tessera`) are exported.

use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::service::Interceptor;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Span, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The metadata key (and HTTP header) carrying the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// Ids of one span in one trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The span.
    pub span_id: [u8; 8],
}

impl TraceContext {
    /// The W3C `traceparent` value: `00-<trace id>-<span id>-01`.
    pub fn to_traceparent(&self) -> String {
        format!("00-{}-{}-01", hex(&self.trace_id), hex(&self.span_id))
    }

    /// Parses a `traceparent` value (version 00).
    pub fn from_traceparent(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('-');
        let (v, t, p, _flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if v != "00" || t.len() != 32 || p.len() != 16 {
            return None;
        }
        let mut trace_id = [0; 16];
        let mut span_id = [0; 8];
        unhex(t, &mut trace_id)?;
        unhex(p, &mut span_id)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext { trace_id, span_id })
    }

    /// The context of the current span (or its nearest traced ancestor), if
    /// tracing is on in this process.
    pub fn current() -> Option<Self> {
        Span::current().with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
            let span = registry.span(id)?;
            span.scope().find_map(|s| s.extensions().get::<SpanData>().map(|d| d.context))
        })?
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn unhex(s: &str, out: &mut [u8]) -> Option<()> {
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

fn random<const N: usize>() -> [u8; N]
where
    rand::distr::StandardUniform: rand::distr::Distribution<[u8; N]>,
{
    loop {
        let b: [u8; N] = rand::random();
        if b.iter().any(|&x| x != 0) {
            return b;
        }
    }
}

/// Adds the current trace context to outgoing gRPC calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceInjector;

impl Interceptor for TraceInjector {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(ctx) = TraceContext::current()
            && let Ok(v) = ctx.to_traceparent().parse()
        {
            req.metadata_mut().insert(TRACEPARENT, v);
        }
        Ok(req)
    }
}

/// The span a gRPC server opens for each call (tonic's `trace_fn`): named
/// `grpc`, with the method and the caller's `traceparent`, if any.
pub fn server_span(req: &http::Request<()>) -> Span {
    let parent = req.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::info_span!(target: "tessera_rpc::server", parent: None, "grpc", rpc.method = %req.uri().path(), traceparent = %parent)
}

/// The span a datanode opens for a shard-wire request ([`crate::wire`]):
/// named `shard`, with the method the gRPC service would have and the
/// caller's `traceparent`, if any.
pub fn wire_span(method: &str, traceparent: &str) -> Span {
    tracing::info_span!(target: "tessera_rpc::server", parent: None, "shard", rpc.method = %method, traceparent = %traceparent)
}

/// What the layer keeps per span.
struct SpanData {
    context: TraceContext,
    parent: Option<[u8; 8]>,
    name: &'static str,
    start: SystemTime,
    attributes: Vec<(String, String)>,
}

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

/// A finished span, ready to export.
#[derive(Debug, Clone)]
pub struct FinishedSpan {
    /// Ids.
    pub context: TraceContext,
    /// Parent span id, if any (local or remote).
    pub parent: Option<[u8; 8]>,
    /// Span name.
    pub name: &'static str,
    /// Start and end.
    pub start: SystemTime,
    /// End.
    pub end: SystemTime,
    /// Fields recorded on the span.
    pub attributes: Vec<(String, String)>,
}

/// Spans waiting for the exporter (bounded: when the collector is slow or
/// gone, new spans are dropped, never the process's memory).
struct Queue {
    spans: Mutex<Vec<FinishedSpan>>,
    dropped: std::sync::atomic::AtomicU64,
}

const QUEUE_LIMIT: usize = 8192;

fn queue() -> &'static Queue {
    static Q: OnceLock<Queue> = OnceLock::new();
    Q.get_or_init(|| Queue { spans: Mutex::new(Vec::new()), dropped: Default::default() })
}

/// The layer that gives spans trace ids and queues finished ones for OTLP.
pub struct OtlpLayer;

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut attributes = Vec::new();
        attrs.record(&mut Fields(&mut attributes));
        let local_parent = span.parent().and_then(|p| p.extensions().get::<SpanData>().map(|d| d.context));
        let remote =
            attributes.iter().find(|(k, _)| k == TRACEPARENT).and_then(|(_, v)| TraceContext::from_traceparent(v));
        let (trace_id, parent) = match (local_parent, remote) {
            (Some(p), _) => (p.trace_id, Some(p.span_id)),
            (None, Some(r)) => (r.trace_id, Some(r.span_id)),
            (None, None) => (random::<16>(), None),
        };
        attributes.retain(|(k, v)| k != TRACEPARENT && !v.is_empty());
        span.extensions_mut().insert(SpanData {
            context: TraceContext { trace_id, span_id: random::<8>() },
            parent,
            name: attrs.metadata().name(),
            start: SystemTime::now(),
            attributes,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(d) = span.extensions_mut().get_mut::<SpanData>()
        {
            values.record(&mut Fields(&mut d.attributes));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(d) = span.extensions_mut().remove::<SpanData>() else { return };
        let q = queue();
        let mut spans = q.spans.lock().unwrap_or_else(|p| p.into_inner());
        if spans.len() >= QUEUE_LIMIT {
            q.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        spans.push(FinishedSpan {
            context: d.context,
            parent: d.parent,
            name: d.name,
            start: d.start,
            end: SystemTime::now(),
            attributes: d.attributes,
        });
    }
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The OTLP/JSON body (`ExportTraceServiceRequest`) for `spans`.
pub fn otlp_json(service: &str, spans: &[FinishedSpan]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":{}}}}}]}},"scopeSpans":[{{"scope":{{"name":"tessera"}},"spans":["#,
        json_str(service)
    );
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let kind = if s.name == "grpc" || s.name == "s3" { 2 } else { 1 };
        let _ = write!(
            out,
            r#"{{"traceId":"{}","spanId":"{}","parentSpanId":"{}","name":{},"kind":{kind},"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":["#,
            hex(&s.context.trace_id),
            hex(&s.context.span_id),
            s.parent.map(|p| hex(&p)).unwrap_or_default(),
            json_str(s.name),
            nanos(s.start),
            nanos(s.end),
        );
        for (j, (k, v)) in s.attributes.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, r#"{{"key":{},"value":{{"stringValue":{}}}}}"#, json_str(k), json_str(v));
        }
        out.push_str("]}");
    }
    out.push_str("]}]}]}");
    out
}

/// Sends queued spans to `endpoint` (`http://host:port`, OTLP/HTTP) every
/// `interval` until `shutdown`, then once more.
pub async fn export_loop(
    endpoint: String,
    service: String,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            _ = shutdown.changed() => true,
        };
        let batch = std::mem::take(&mut *queue().spans.lock().unwrap_or_else(|p| p.into_inner()));
        if !batch.is_empty()
            && let Err(e) = post(&endpoint, otlp_json(&service, &batch)).await
        {
            tracing::debug!(%endpoint, error = %e, spans = batch.len(), "OTLP export failed; spans dropped");
        }
        if stopping || *shutdown.borrow() {
            return;
        }
    }
}

async fn post(endpoint: &str, body: String) -> Result<(), String> {
    use http_body_util::{BodyExt as _, Full};
    let rest = endpoint.strip_prefix("http://").ok_or("only http:// OTLP endpoints are supported")?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let req = http::Request::post(format!("{prefix}/v1/traces"))
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| "collector did not answer".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    conn.abort();
    if status.is_success() { Ok(()) } else { Err(format!("collector answered {status}")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_garbage() {
        let c = TraceContext { trace_id: [0xab; 16], span_id: [0x01; 8] };
        let s = c.to_traceparent();
        assert_eq!(s, format!("00-{}-{}-01", "ab".repeat(16), "01".repeat(8)));
        assert_eq!(TraceContext::from_traceparent(&s), Some(c));
        assert_eq!(TraceContext::from_traceparent("00-zz-01-01"), None);
        assert_eq!(TraceContext::from_traceparent(&format!("00-{}-{}-01", "0".repeat(32), "1".repeat(16))), None);
    }

    #[test]
    fn spans_nest_and_the_json_names_the_parents() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry().with(OtlpLayer);
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(target: "tessera_test", "s3", request_id = "R1");
            let _g = outer.enter();
            let ctx = TraceContext::current().unwrap();
            let inner = tracing::info_span!(target: "tessera_test", "inner");
            let inner_ctx = inner.in_scope(TraceContext::current).unwrap();
            assert_eq!(inner_ctx.trace_id, ctx.trace_id);
            assert_ne!(inner_ctx.span_id, ctx.span_id);
            drop(inner);
            // A remote parent from a traceparent field.
            let remote = TraceContext { trace_id: [7; 16], span_id: [9; 8] };
            let tp = remote.to_traceparent();
            let _guard = tracing::Span::none().entered();
            let server = tracing::info_span!(target: "tessera_test", parent: None, "grpc", traceparent = %tp);
            let got = server.in_scope(TraceContext::current).unwrap();
            assert_eq!(got.trace_id, remote.trace_id);
        });
        let spans = std::mem::take(&mut *queue().spans.lock().unwrap());
        let json = otlp_json("svc", &spans);
        assert!(json.contains(r#""name":"inner""#), "{json}");
        assert!(json.contains(&format!(r#""parentSpanId":"{}""#, "09".repeat(8))), "{json}");
        assert!(json.contains(r#""key":"request_id","value":{"stringValue":"R1"}"#), "{json}");
    }
}
