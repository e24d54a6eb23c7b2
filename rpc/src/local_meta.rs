//! The metadata node of this process, called without a network hop.
//!
//! `tessera server` runs the metadata node and the gateway together; every
//! S3 request makes at least one metadata call, and over loopback gRPC each
//! one pays HTTP/2 framing, two socket writes and reads, and wake-ups of the
//! connection tasks on both sides — for a 4 KiB GET, more server CPU than
//! the read itself. [`LocalMeta`] hands the call's HTTP request to the node's
//! tonic service directly: the same generated code encodes and decodes it,
//! the same handler answers (leader checks, read index, not-leader hints),
//! only the transport is gone. Calls to any other node go over the network
//! as before.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::Service;
use tonic::transport::Channel;
use tracing::Instrument as _;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type StdError = Box<dyn std::error::Error + Send + Sync>;

/// One call into an in-process tonic service.
trait Call: Send + Sync + 'static {
    fn call(&self, req: http::Request<Body>) -> BoxFuture<http::Response<Body>>;
}

/// What can be called in-process: a generated tonic server.
pub trait InProcessService:
    Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> InProcessService for S where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

struct ServiceCall<S>(S);

impl<S: InProcessService> Call for ServiceCall<S> {
    fn call(&self, req: http::Request<Body>) -> BoxFuture<http::Response<Body>> {
        let mut service = self.0.clone();
        // The span the node's gRPC server opens for a call from the network
        // (`trace::server_span`: method, caller's `traceparent`), so traces
        // look the same either way.
        let mut head = http::Request::new(());
        *head.uri_mut() = req.uri().clone();
        if let Some(parent) = req.headers().get(crate::trace::TRACEPARENT) {
            head.headers_mut().insert(crate::trace::TRACEPARENT, parent.clone());
        }
        let span = crate::trace::server_span(&head);
        Box::pin(
            async move {
                let ready = std::future::poll_fn(|cx| service.poll_ready(cx)).await;
                let Ok(()) = ready;
                let Ok(resp) = service.call(req).await;
                resp
            }
            .instrument(span),
        )
    }
}

/// The metadata service of this process and the URL other nodes know it by.
#[derive(Clone)]
pub struct LocalMeta {
    url: String,
    call: Arc<dyn Call>,
}

impl std::fmt::Debug for LocalMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMeta").field("url", &self.url).finish_non_exhaustive()
    }
}

impl LocalMeta {
    /// `service` (the node's generated `MetaServer`), reachable at `url`
    /// from other processes: calls a client would send to `url` go to
    /// `service` instead.
    pub fn new(url: impl Into<String>, service: impl InProcessService) -> Self {
        LocalMeta { url: url.into(), call: Arc::new(ServiceCall(service)) }
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// How one metadata call travels: over a gRPC channel, or in-process.
#[derive(Clone, Debug)]
pub(crate) enum MetaTransport {
    Net(Channel),
    Local(LocalMeta),
}

impl Service<http::Request<Body>> for MetaTransport {
    type Response = http::Response<Body>;
    type Error = StdError;
    type Future = BoxFuture<Result<http::Response<Body>, StdError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StdError>> {
        match self {
            MetaTransport::Net(c) => c.poll_ready(cx).map_err(Into::into),
            MetaTransport::Local(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        match self {
            MetaTransport::Net(c) => {
                let f = c.call(req);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
            MetaTransport::Local(l) => {
                let f = l.call.call(req);
                Box::pin(async move { Ok(f.await) })
            }
        }
    }
}
