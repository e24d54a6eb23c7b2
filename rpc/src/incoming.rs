//! Accepted connections for tonic servers, with `TCP_NODELAY` set.
//!
//! tonic's own `tcp_nodelay` setting applies only to listeners it binds
//! itself; a server fed with an existing listener must set it per socket.
//! Without it, small messages (a Raft write's reply, a shard stream's last
//! frame) wait for the peer's delayed ACK.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::net::{TcpListener, TcpStream};

/// A stream of accepted connections with Nagle's algorithm off.
#[derive(Debug)]
pub struct NoDelayIncoming {
    listener: TcpListener,
}

impl NoDelayIncoming {
    /// Accepts from `listener`.
    pub fn new(listener: TcpListener) -> Self {
        NoDelayIncoming { listener }
    }
}

impl tokio_stream::Stream for NoDelayIncoming {
    type Item = std::io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.listener.poll_accept(cx) {
            Poll::Ready(Ok((stream, _))) => {
                if let Err(e) = stream.set_nodelay(true) {
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(stream)))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}
