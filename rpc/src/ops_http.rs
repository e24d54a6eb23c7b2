//! The operations HTTP port of the metadata and datanode roles: the reserved
//! `/tessera/` paths (health and Prometheus metrics) for load balancers,
//! orchestrators and scrapers. (The gateway serves the same paths on its S3
//! port.)
//!
//! ```text
//!  GET /tessera/health/live   200 while the process serves
//!  GET /tessera/health/ready  200 when the role can do its job, else 503 and why
//!  GET /tessera/metrics       Prometheus text of the process's registry
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tessera_common::MetricsRegistry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Whether the role is ready: `Ok(detail)` or `Err(why not)`.
pub type ReadyCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    r
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    registry: MetricsRegistry,
    ready: ReadyCheck,
) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n".into());
    }
    match req.uri().path() {
        "/tessera/health/live" => text(StatusCode::OK, "text/plain", "live\n".into()),
        "/tessera/health/ready" => match ready().await {
            Ok(detail) => text(StatusCode::OK, "text/plain", format!("ready: {detail}\n")),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("not ready: {why}\n")),
        },
        "/tessera/metrics" => text(StatusCode::OK, tessera_common::metrics::CONTENT_TYPE, registry.render()),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "no such path\n".into()),
    }
}

/// Serves the operations paths on `listener` until `shutdown` turns true.
pub async fn serve_ops(
    listener: TcpListener,
    registry: MetricsRegistry,
    ready: ReadyCheck,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut conns = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("ops http accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => continue,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        let (registry, ready) = (registry.clone(), ready.clone());
        let svc = hyper::service::service_fn(move |req| {
            let (registry, ready) = (registry.clone(), ready.clone());
            async move { Ok::<_, Infallible>(answer(req, registry, ready).await) }
        });
        conns.spawn(async move {
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                // A client that never finishes its request headers is cut off.
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!("ops http connection ended: {e}");
            }
        });
    }
    conns.shutdown().await;
    Ok(())
}
