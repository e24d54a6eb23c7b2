//! PUTs whose body has no declared length: HTTP/1.1 `Transfer-Encoding:
//! chunked` without `Content-Length` (FFmpeg's HTTP output, `curl -T -`,
//! streaming encoders), or an HTTP/2 body without one.
//!
//! S3 answers them `411 MissingContentLength`, and so does s3s; the
//! sharded writer needs the length up front (it sizes the shards and their
//! stripe count before the first byte is written). The body is received
//! into an unlinked temporary file first — memory stays a few buffers
//! whatever the size — then handed on with its `Content-Length`, as any
//! PUT: the signature, checksums and limits apply as usual (the header is
//! not one the client signed, since it did not send it).
//!
//! Bounded: at most [`crate::s3::MAX_PUT_BYTES`] per request
//! (`EntityTooLarge`), at most the spool budget across requests at once
//! (`503 SlowDown`), and the body idle timeout between two reads
//! (`RequestTimeout`).

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budget unit: permits are MiB of spooled body.
const UNIT: u64 = 1 << 20;

/// Where bodies without a length wait, and how much may wait at once.
#[derive(Clone, Debug)]
pub struct Spool {
    dir: PathBuf,
    budget: Arc<Semaphore>,
    idle: Duration,
    max_bytes: u64,
}

/// Why a body could not be spooled: an S3 status, code and message.
pub type SpoolRefusal = (http::StatusCode, &'static str, String);

/// Whether `req` is a PUT whose body length is not declared.
pub fn unsized_put<B: http_body::Body>(req: &Request<B>) -> bool {
    req.method() == http::Method::PUT
        && !req.headers().contains_key(http::header::CONTENT_LENGTH)
        && req.body().size_hint().exact().is_none()
}

impl Spool {
    /// Bodies go to files in `dir` (unlinked at once); at most
    /// `budget_bytes` wait at once; a body that sends nothing for `idle`
    /// is dropped.
    pub fn new(dir: PathBuf, budget_bytes: u64, idle: Duration, max_bytes: u64) -> Self {
        let permits = usize::try_from(budget_bytes.div_ceil(UNIT)).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
        Spool { dir, budget: Arc::new(Semaphore::new(permits)), idle, max_bytes }
    }

    /// Receives the body of `req` and returns the request with a
    /// `Content-Length` and a body read back from the spool file.
    pub async fn receive<B>(&self, req: Request<B>) -> Result<Request<s3s::Body>, SpoolRefusal>
    where
        B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let (mut parts, mut body) = req.into_parts();
        let path = self.dir.join(format!(".tessera-spool-{}", uuid::Uuid::now_v7().simple()));
        let internal = |what: &str, e: std::io::Error| {
            tracing::error!(path = %path.display(), error = %e, "{what}: a body without a length could not be spooled");
            (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.".to_owned(),
            )
        };
        let mut file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| internal("create", e))?;
        // Unlinked now: the file lives as long as the handle, whatever happens.
        tokio::fs::remove_file(&path).await.map_err(|e| internal("unlink", e))?;
        let mut held: Vec<OwnedSemaphorePermit> = Vec::new();
        let mut units = 0u64;
        let mut len = 0u64;
        loop {
            let frame = match tokio::time::timeout(
                self.idle,
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)),
            )
            .await
            {
                Err(_) => {
                    return Err((
                        http::StatusCode::BAD_REQUEST,
                        "RequestTimeout",
                        "Your socket connection to the server was not read from or written to within the timeout period."
                            .to_owned(),
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err((
                        http::StatusCode::BAD_REQUEST,
                        "IncompleteBody",
                        format!("the request body failed: {e}"),
                    ));
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else { continue }; // trailers: not kept
            len += data.len() as u64;
            if len > self.max_bytes {
                return Err((
                    http::StatusCode::BAD_REQUEST,
                    "EntityTooLarge",
                    format!("Your proposed upload exceeds the maximum allowed object size ({} bytes).", self.max_bytes),
                ));
            }
            let need = len.div_ceil(UNIT);
            if need > units {
                let more = u32::try_from(need - units).unwrap_or(u32::MAX);
                let Ok(p) = self.budget.clone().try_acquire_many_owned(more) else {
                    return Err((
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        "SlowDown",
                        "Too many uploads without a Content-Length are being received; retry, or send one.".to_owned(),
                    ));
                };
                held.push(p);
                units = need;
            }
            file.write_all(&data).await.map_err(|e| internal("write", e))?;
        }
        file.flush().await.map_err(|e| internal("flush", e))?;
        file.seek(SeekFrom::Start(0)).await.map_err(|e| internal("rewind", e))?;
        parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
        parts.headers.remove(http::header::TRANSFER_ENCODING);
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10);
        let body = Holding { stream, _budget: held, remaining: len };
        Ok(Request::from_parts(parts, s3s::Body::http_body_unsync(body)))
    }
}

/// The spooled body read back; holds its share of the budget until dropped.
struct Holding {
    stream: tokio_util::io::ReaderStream<tokio::fs::File>,
    _budget: Vec<OwnedSemaphorePermit>,
    remaining: u64,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        use futures::Stream as _;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.stream).poll_next(cx) {
            std::task::Poll::Ready(Some(Ok(b))) => {
                this.remaining = this.remaining.saturating_sub(b.len() as u64);
                std::task::Poll::Ready(Some(Ok(http_body::Frame::data(b))))
            }
            std::task::Poll::Ready(Some(Err(e))) => std::task::Poll::Ready(Some(Err(e))),
            std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}
