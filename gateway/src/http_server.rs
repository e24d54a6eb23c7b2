//! The HTTP front: accepts connections (HTTP/1.1 and h2, `TCP_NODELAY` on
//! every socket), answers the reserved `/tessera/health/*` and
//! `/tessera/metrics` paths itself, counts every S3 request, hands
//! everything else to the S3 service, and stamps an `x-amz-request-id` on
//! every response.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use s3s::Body;
use s3s::service::S3Service;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::GatewayError;
use crate::cluster::Cluster;
use crate::metrics::{Counted, Finish, GatewayMetrics, operation};
use std::time::{Duration, Instant};
use tessera_common::MetricsRegistry;
use tessera_rpc::trace::TRACEPARENT;
use tracing::Instrument as _;

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-amz-request-id";

/// What the HTTP front needs besides the S3 service.
pub struct FrontConfig {
    /// Rendered at `/tessera/metrics`.
    pub registry: MetricsRegistry,
    /// The gateway's own request metrics.
    pub metrics: Arc<GatewayMetrics>,
    /// Virtual-host domains (to name operations of `bucket.<domain>` requests).
    pub domains: Vec<String>,
    /// Up disks needed before the gateway calls itself ready
    /// ([`crate::min_disks`] of the default profile).
    pub min_disks: usize,
    /// How long a connection may take to deliver a request head (and how
    /// long an idle HTTP/1 keep-alive connection is kept).
    pub header_timeout: Duration,
    /// Where PUT bodies without a Content-Length wait for their length.
    pub spool: crate::spool::Spool,
    /// Buckets (their CORS rules) for preflights and CORS headers.
    pub dir: Arc<crate::access::Directory>,
    /// Where audit lines go, if anywhere.
    pub audit: Option<Arc<crate::audit::AuditSink>>,
    /// Requests per client IP, if limited.
    pub per_ip: Option<Arc<crate::limits::RateLimiter>>,
    /// Client connections served at once; more wait in the listen backlog
    /// until one closes.
    pub max_connections: usize,
}

struct Front {
    s3: S3Service,
    in_flight: Arc<InFlight>,
    cluster: Cluster,
    prefix: u64,
    seq: AtomicU64,
    config: FrontConfig,
}

impl Front {
    fn next_id(&self) -> String {
        format!("{:08X}{:08X}", self.prefix as u32, self.seq.fetch_add(1, Ordering::Relaxed))
    }

    async fn handle(self: Arc<Self>, mut req: Request<Incoming>) -> Result<Response<Body>, s3s::HttpError> {
        let id = self.next_id();
        let query = req.uri().query().map(str::to_owned);
        ignore_invalid_range(req.headers_mut(), query.as_deref());
        // A browser's cross-origin request: its bucket's CORS rule, if any.
        let origin = req.headers().get(http::header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let cors_bucket =
            if origin.is_some() || req.method() == http::Method::OPTIONS { self.bucket_name(&req) } else { None };
        let method = req.method().as_str().to_owned();
        let admin = req.uri().path().starts_with(crate::admin::PREFIX);
        let console = req.uri().path() == "/tessera/console" || req.uri().path().starts_with("/tessera/console/");
        let mut resp = if (admin || console) && !req.extensions().get::<AdminPort>().is_none_or(|p| p.0) {
            // An operator chose a port of its own for these.
            let mut r =
                Response::new(Body::from("the admin API and the console are served on the admin port\n".to_owned()));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        } else if console {
            crate::console::serve(req.method(), &req.uri().path()["/tessera/console".len()..])
        } else if let Some(rest) = req.uri().path().strip_prefix("/tessera/").filter(|_| !admin) {
            self.reserved(rest).await
        } else if req.method() == http::Method::OPTIONS {
            self.preflight(cors_bucket.as_deref(), req.headers()).await
        } else {
            let started = Instant::now();
            let guard = self.in_flight.enter();
            let op = self.operation(&req);
            let m = &self.config.metrics;
            let bytes_in = m.bytes_in.clone();
            let parent = req.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let span = tracing::info_span!(
                target: "tessera_gateway::s3",
                "s3",
                request_id = %id,
                op,
                http.method = %req.method(),
                http.target = %req.uri().path(),
                http.status = tracing::field::Empty,
                traceparent = %parent,
            );
            let http1 = req.version() <= http::Version::HTTP_11;
            let resource = req.uri().path().to_owned();
            let seen_in = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let seen_out = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let audit = self.config.audit.clone().map(|sink| {
                let key = match &cors_bucket {
                    _ if self.virtual_host(&req) => resource.trim_start_matches('/').to_owned(),
                    _ => resource.trim_start_matches('/').split_once('/').map_or(String::new(), |(_, k)| k.to_owned()),
                };
                crate::audit::AuditEntry {
                    sink,
                    time: time::OffsetDateTime::now_utc()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    started,
                    request_id: id.clone(),
                    principal: crate::audit::principal_of(req.headers(), req.uri().query()),
                    source_ip: req
                        .extensions()
                        .get::<crate::access::Peer>()
                        .map_or(String::new(), |p| p.0.ip().to_string()),
                    method: method.clone(),
                    op,
                    bucket: self.bucket_name(&req).unwrap_or_default(),
                    key,
                    status: 0,
                    bytes_in: seen_in.clone(),
                    bytes_out: seen_out.clone(),
                }
            });
            let body_read = Arc::new(AtomicBool::new(false));
            let mut req = req.map(|b| ReadToEnd::new(b, body_read.clone()));
            let vhost = self.virtual_host(&req);
            let mut form_file = None;
            let prepared = crate::sigv2::prepare(&mut req, vhost, time::OffsetDateTime::now_utc())
                .map_err(|(s, c, m)| (s, c, m.to_owned()));
            let req = match prepared {
                Ok(()) if crate::spool::unsized_put(&req) => {
                    let counted = req.map(|b| Counted::new(b, bytes_in).with_seen(seen_in.clone()));
                    self.config.spool.receive(counted).instrument(span.clone()).await
                }
                Ok(()) => {
                    let (mut parts, b) = req.into_parts();
                    let counted = Counted::new(b, bytes_in).with_seen(seen_in.clone());
                    form_file = crate::post::file_name_slot(&parts.method, &parts.headers, &mut parts.extensions);
                    let body = match &form_file {
                        Some(slot) => Body::http_body_unsync(crate::post::Sniff::new(counted, slot.clone())),
                        None => Body::http_body_unsync(counted),
                    };
                    Ok(Request::from_parts(parts, body))
                }
                Err(refusal) => Err(refusal),
            };
            let over_ip = self.config.per_ip.as_ref().is_some_and(|l| {
                let ip = req.as_ref().ok().and_then(|r| r.extensions().get::<crate::access::Peer>()).map(|p| p.0.ip());
                ip.is_some_and(|ip| !l.allow(&ip.to_string()))
            });
            let req = match req {
                Ok(_) if over_ip => {
                    Err((http::StatusCode::SERVICE_UNAVAILABLE, "SlowDown", crate::limits::SLOW_DOWN.to_owned()))
                }
                other => other,
            };
            let mut resp = match req {
                Ok(req) => self.s3.call(req).instrument(span.clone()).await?,
                Err((status, code, message)) => {
                    let xml = format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
                    );
                    let mut r = Response::new(Body::from(xml));
                    *r.status_mut() = status;
                    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
                    r
                }
            };
            // Answered before the request body was read to its end (a
            // refusal, an early 403 or 503): the rest of the body is still
            // on the connection, so it cannot carry another request. Say
            // so, or a client that reuses it fails on its next request.
            if http1 && !body_read.load(Ordering::Acquire) {
                resp.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            if let Some(slot) = &form_file {
                post_policy_failure(&mut resp);
                crate::post::name_stored_key(&mut resp, slot);
            }
            name_error(&mut resp, &resource, &id);
            span.record("http.status", resp.status().as_u16());
            // One line per failed request, in its span (request id, op):
            // a client's mistake at DEBUG, a failure of ours at WARN (with
            // its cause logged where it happened). s3s's own lines, which
            // put every client error at ERROR twice, are filtered out.
            let status = resp.status().as_u16();
            span.in_scope(|| {
                if status >= 500 {
                    tracing::warn!(status, "request failed");
                } else if status >= 400 {
                    tracing::debug!(status, "request refused");
                }
            });
            let status = resp.status().as_u16();
            let audit = audit.map(|mut a| {
                a.status = status;
                a
            });
            let finish = Finish { metrics: m.clone(), op, status, started, audit };
            let bytes_out = m.bytes_out.clone();
            resp.map(|b| {
                let counted = Counted::response(b, bytes_out, finish).with_seen(seen_out);
                Body::http_body_unsync(Holding { inner: counted, _guard: guard })
            })
        };
        if let (Some(origin), Some(bucket)) = (&origin, &cors_bucket)
            && method != "OPTIONS"
            && let Ok(Some(b)) = self.config.dir.bucket(bucket).await
            && let Some(rule) = crate::cors::for_request(&b.cors, origin, &method)
        {
            crate::cors::response_headers(rule, origin, resp.headers_mut());
        }
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, v.clone());
            resp.headers_mut().insert("x-amz-id-2", v);
        }
        Ok(resp)
    }

    /// The bucket a request names: the host's label under a configured
    /// domain, else the first path segment.
    fn bucket_name<B>(&self, req: &Request<B>) -> Option<String> {
        if self.virtual_host(req) {
            let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok())?;
            return host.split('.').next().map(str::to_owned).filter(|b| !b.is_empty());
        }
        let seg = req.uri().path().trim_start_matches('/').split('/').next()?;
        (!seg.is_empty()).then(|| seg.to_owned())
    }

    /// Answers a CORS preflight (`OPTIONS`) from the bucket's rules; no
    /// signature is asked (browsers send none).
    async fn preflight(&self, bucket: Option<&str>, headers: &http::HeaderMap) -> Response<Body> {
        let rules = match bucket {
            Some(b) => match self.config.dir.bucket(b).await {
                Ok(Some(b)) => Some(b.cors.clone()),
                Ok(None) => None,
                Err(_) => {
                    let mut r = Response::new(Body::from(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>ServiceUnavailable</Code><Message>the metadata service is unavailable now; retry</Message></Error>".to_owned(),
                    ));
                    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    return r;
                }
            },
            None => None,
        };
        let p = crate::cors::preflight(rules.as_deref(), headers);
        let body = match p.error {
            Some((code, message)) => Body::from(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            )),
            None => Body::empty(),
        };
        let mut r = Response::new(body);
        *r.status_mut() = p.status;
        r.headers_mut().extend(p.headers);
        if p.error.is_some() {
            r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        }
        r
    }

    /// Whether `req` names its bucket in the host (`bucket.<domain>`).
    fn virtual_host<B>(&self, req: &Request<B>) -> bool {
        let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let host =
            host.rsplit_once(':').map_or(host, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
        self.config.domains.iter().any(|d| {
            host.len() > d.len() + 1
                && host[host.len() - d.len()..].eq_ignore_ascii_case(d)
                && host.as_bytes()[host.len() - d.len() - 1] == b'.'
        })
    }

    /// The S3 operation of `req`, for metrics.
    fn operation(&self, req: &Request<Incoming>) -> &'static str {
        let path = req.uri().path();
        if self.virtual_host(req) {
            let full = format!("/vhost{path}");
            operation(req.method(), &full, req.uri().query(), req.headers())
        } else {
            operation(req.method(), path, req.uri().query(), req.headers())
        }
    }

    /// `/tessera/health/live` answers while the process serves;
    /// `/tessera/health/ready` once the metadata service answers and enough
    /// disks are up to store a write of the default profile.
    async fn reserved(&self, path: &str) -> Response<Body> {
        let (status, text) = match path {
            "health/live" => (StatusCode::OK, "live\n".to_owned()),
            "metrics" => {
                let mut r = Response::new(Body::from(self.config.registry.render()));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static(tessera_common::metrics::CONTENT_TYPE),
                );
                return r;
            }
            "health/ready" => match self.cluster.refresh().await {
                Ok(v) => {
                    let up = v.map.as_ref().map_or(0, |m| m.disks().filter(|(_, _, _, d)| d.writable()).count());
                    // Disks lost to the cluster (down, or out without an
                    // operator's drain): objects may lack shards meanwhile;
                    // full ones are written around.
                    let mut lost: Vec<_> = v.map.as_ref().map_or_else(Vec::new, |m| {
                        m.disks()
                            .filter(|(_, _, _, d)| !(d.marked_out || d.state.up && d.state.is_in && !d.full))
                            .map(|(_, _, _, d)| {
                                let why = match (d.state.up, d.state.is_in) {
                                    (false, _) => "down",
                                    (true, false) => "out",
                                    (true, true) => "full",
                                };
                                (d.id, format!("{} {why}", d.id))
                            })
                            .collect()
                    });
                    lost.sort();
                    let lost: Vec<String> = lost.into_iter().map(|(_, s)| s).collect();
                    if up >= self.config.min_disks && !lost.is_empty() {
                        let lost = lost.join(", ");
                        (
                            StatusCode::OK,
                            format!("ready, degraded ({lost}), map epoch {}, {up} disks writable\n", v.epoch),
                        )
                    } else if up >= self.config.min_disks {
                        (StatusCode::OK, format!("ready, map epoch {}, {up} disks writable\n", v.epoch))
                    } else {
                        let need = self.config.min_disks;
                        (StatusCode::SERVICE_UNAVAILABLE, format!("{up} disks writable, {need} needed for writes\n"))
                    }
                }
                Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("metadata unavailable: {e}\n")),
            },
            _ => (StatusCode::NOT_FOUND, "no such path\n".to_owned()),
        };
        let mut r = Response::new(Body::from(text));
        *r.status_mut() = status;
        r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        r
    }
}

/// The sockets a gateway serves S3 on.
pub struct Listeners {
    /// The S3 port: HTTPS when `tls` is set, else plain HTTP.
    pub main: TcpListener,
    /// The certificates the main port presents.
    pub tls: Option<Arc<tessera_rpc::tls::CertStore>>,
    /// A second, plain-HTTP port beside an HTTPS main port, if wanted.
    pub plain: Option<TcpListener>,
    /// The only port serving the admin API and the console, if wanted
    /// (HTTPS when the main port is).
    pub admin: Option<TcpListener>,
}

/// Whether the port a request came in on serves the admin API and the console.
#[derive(Clone, Copy)]
struct AdminPort(bool);

/// How long in-flight requests may take to finish after shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections on `listener` until `shutdown`; then stops accepting,
/// lets in-flight requests finish (up to [`DRAIN_TIMEOUT`]) and closes idle
/// connections.
pub async fn serve(
    listeners: Listeners,
    s3: S3Service,
    cluster: Cluster,
    config: FrontConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), GatewayError> {
    let prefix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let in_flight = Arc::new(InFlight::default());
    let front = Arc::new(Front { s3, in_flight: in_flight.clone(), cluster, prefix, seq: AtomicU64::new(0), config });
    let header_timeout = front.config.header_timeout;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // HTTP/1: the head of every request, the first and each one after a
    // response, must arrive within the header timeout. HTTP/2: idle
    // connections are pinged, and dropped when the peer does not answer.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(header_timeout);
    let builder = Arc::new(builder);
    let mut conns = JoinSet::new();
    let max_connections = front.config.max_connections.max(1);
    let Listeners { main, tls, plain, admin } = listeners;
    let separate_admin = admin.is_some();
    let tls = match tls {
        Some(store) => Some(tokio_rustls::TlsAcceptor::from(
            store.server_config().map_err(|e| GatewayError::Config(format!("TLS: {e}")))?,
        )),
        None => None,
    };
    let accept_plain = async |plain: &Option<TcpListener>| match plain {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    };
    loop {
        if *shutdown.borrow() {
            break;
        }
        // At the cap, nothing is accepted until a connection ends.
        let room = conns.len() < max_connections;
        let (accepted, over_tls, admin_port) = tokio::select! {
            a = main.accept(), if room => (a, tls.is_some(), !separate_admin),
            a = accept_plain(&plain), if room => (a, false, !separate_admin),
            a = accept_plain(&admin), if room => (a, tls.is_some(), true),
            _ = shutdown.changed() => continue,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Running out of file descriptors and the like: back off, keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let front = front.clone();
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            // The client's address, for policies (`aws:SourceIp`) and logs.
            req.extensions_mut().insert(crate::access::Peer(peer));
            req.extensions_mut().insert(crate::access::Transport { tls: over_tls });
            req.extensions_mut().insert(AdminPort(admin_port));
            front.clone().handle(req)
        });
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        let acceptor = if over_tls { tls.clone() } else { None };
        conns.spawn(async move {
            // The protocol sniffing ahead of hyper's header timer has no
            // clock of its own: a client that connects and sends nothing
            // is dropped here.
            let mut first = [0u8; 1];
            if !matches!(tokio::time::timeout(header_timeout, stream.peek(&mut first)).await, Ok(Ok(1))) {
                tracing::debug!("connection sent nothing within {header_timeout:?}; closed");
                return;
            }
            let Some(acceptor) = acceptor else {
                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            };
            // The handshake, too, must end within the header timeout.
            let stream = match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake with {peer} failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake with {peer} took over {header_timeout:?}; closed");
                    return;
                }
            };
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(main);
    drop(plain);
    // Every connection stops keeping alive and idle ones close. hyper does
    // not count an HTTP/1 connection that waits for its next request head
    // as idle (its header timer runs), so the drain also ends as soon as no
    // request is in flight; what is left open then is closed.
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = in_flight.idle() => {}
        }
    });
    if drained.await.is_err() {
        tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; closing their connections");
    }
    conns.shutdown().await;
    Ok(())
}

/// A failed POST policy condition answered as S3 does (post.rs).
fn post_policy_failure(resp: &mut Response<Body>) {
    let Some(xml) = resp.body().bytes() else { return };
    let Some(s3_says) = crate::post::policy_failure_as_s3_says(resp.status(), &String::from_utf8_lossy(&xml)) else {
        return;
    };
    *resp.status_mut() = http::StatusCode::FORBIDDEN;
    if resp.headers().contains_key(http::header::CONTENT_LENGTH) {
        resp.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(s3_says.len()));
    }
    *resp.body_mut() = Body::from(s3_says);
}

/// An S3 error body names the request and the resource, as S3's do:
/// `<Resource>` (the path) and `<RequestId>` (the `x-amz-request-id`
/// header's value) are added to the `<Error>` s3s wrote.
fn name_error(resp: &mut Response<Body>, resource: &str, id: &str) {
    if resp.status().as_u16() < 300 {
        return;
    }
    let Some(xml) = resp.body().bytes() else { return };
    let Ok(text) = std::str::from_utf8(&xml) else { return };
    if text.contains("<RequestId>") {
        return;
    }
    let Some(end) = text.rfind("</Error>") else { return };
    let escape = |s: &str| {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
    };
    let named = format!(
        "{}<Resource>{}</Resource><RequestId>{}</RequestId>{}",
        &text[..end],
        escape(resource),
        escape(id),
        &text[end..]
    );
    if resp.headers().contains_key(http::header::CONTENT_LENGTH) {
        resp.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(named.len()));
    }
    *resp.body_mut() = Body::from(named);
}

/// A `Range` header that is not one byte range (`bytes=5-2`, several
/// ranges, garbage) is ignored, as HTTP says and S3 does: the whole object
/// is answered with 200. Only when the signature does not cover it (a
/// presigned URL, a browser's or a player's request): removing a signed
/// header would break the signature, so a signed invalid range is left to
/// s3s, which refuses it.
fn ignore_invalid_range(headers: &mut http::HeaderMap, query: Option<&str>) {
    let valid =
        headers.get(http::header::RANGE).map(|v| v.to_str().ok().is_some_and(|s| s3s::dto::Range::parse(s).is_ok()));
    if valid != Some(false) {
        return;
    }
    let signed_in = |list: &str| list.split(';').any(|h| h.trim().eq_ignore_ascii_case("range"));
    let in_header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("SignedHeaders=").nth(1))
        .is_some_and(|rest| signed_in(rest.split(',').next().unwrap_or("")));
    let in_query = query.unwrap_or("").split('&').any(|p| {
        p.split_once('=').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("X-Amz-SignedHeaders") && signed_in(&v.replace("%3B", ";").replace("%3b", ";"))
        })
    });
    if !in_header && !in_query {
        headers.remove(http::header::RANGE);
    }
}

/// A request body that raises a flag once it has been read to its end (at
/// once for a request without a body).
struct ReadToEnd<B> {
    inner: B,
    ended: Arc<AtomicBool>,
}

impl<B: http_body::Body> ReadToEnd<B> {
    fn new(inner: B, ended: Arc<AtomicBool>) -> Self {
        if inner.is_end_stream() {
            ended.store(true, Ordering::Release);
        }
        ReadToEnd { inner, ended }
    }
}

impl<B> http_body::Body for ReadToEnd<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None))
            || (matches!(polled, Poll::Ready(Some(Ok(_)))) && self.inner.is_end_stream())
        {
            self.ended.store(true, Ordering::Release);
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

/// The S3 requests being answered, from arrival to the end (or drop) of
/// their response body.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One request in flight; leaves when dropped.
struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.clone())
    }

    /// Returns once no request is in flight.
    async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A response body that keeps its request counted in flight until it ends
/// or is dropped.
struct Holding<B> {
    inner: B,
    _guard: InFlightGuard,
}

impl<B> http_body::Body for Holding<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
