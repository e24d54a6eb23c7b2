//! The HTTP front: accepts connections (HTTP/1.1 and h2, `TCP_NODELAY` on
//! every socket), answers the reserved `/tessera/health/*` paths itself, hands
//! everything else to the S3 service, and stamps an `x-amz-request-id` on
//! every response.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::Body;
use s3s::service::S3Service;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::GatewayError;
use crate::cluster::Cluster;

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-amz-request-id";

struct Front {
    s3: S3Service,
    cluster: Cluster,
    prefix: u64,
    seq: AtomicU64,
}

impl Front {
    fn next_id(&self) -> String {
        format!("{:08X}{:08X}", self.prefix as u32, self.seq.fetch_add(1, Ordering::Relaxed))
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>, s3s::HttpError> {
        let id = self.next_id();
        let mut resp = if let Some(rest) = req.uri().path().strip_prefix("/tessera/") {
            self.reserved(rest).await
        } else {
            self.s3.call(req.map(Body::from)).await?
        };
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, v.clone());
            resp.headers_mut().insert("x-amz-id-2", v);
        }
        Ok(resp)
    }

    /// `/tessera/health/live` answers while the process serves;
    /// `/tessera/health/ready` once the metadata service answers and at
    /// least one datanode is known.
    async fn reserved(&self, path: &str) -> Response<Body> {
        let (status, text) = match path {
            "health/live" => (StatusCode::OK, "live\n".to_owned()),
            "health/ready" => match self.cluster.refresh().await {
                Ok(v) if v.map.is_some() => (StatusCode::OK, format!("ready, map epoch {}\n", v.epoch)),
                Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "no datanode has registered\n".to_owned()),
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

/// How long in-flight requests may take to finish after shutdown starts.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Accepts connections on `listener` until `shutdown`; then stops accepting,
/// lets in-flight requests finish (up to [`DRAIN_TIMEOUT`]) and closes idle
/// connections.
pub async fn serve(
    listener: TcpListener,
    s3: S3Service,
    cluster: Cluster,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), GatewayError> {
    let prefix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let front = Arc::new(Front { s3, cluster, prefix, seq: AtomicU64::new(0) });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let mut conns = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => continue,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, _) = match accepted {
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
        let svc = hyper::service::service_fn(move |req| front.clone().handle(req));
        let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
        let conn = graceful.watch(conn);
        conns.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; closing their connections");
    }
    conns.shutdown().await;
    Ok(())
}
