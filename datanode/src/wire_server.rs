//! One port for both transports: the gRPC service and the shard wire
//! (`tessera_rpc::wire`). Each accepted connection is routed by its first
//! byte: the shard wire's preface starts with `T`, an HTTP/2 connection with
//! `P` (`PRI * HTTP/2.0`).
//!
//! ```text
//!  accept ──► peek first byte ──► 'T': preface ──► requests, one after another
//!                             └─► else: tonic (DataService, health)
//! ```
//! On shutdown the listener stops accepting, idle shard-wire connections
//! close and requests in flight finish; the caller bounds how long.

use std::io;
use std::time::Duration;

use tessera_rpc::HealthService;
use tessera_rpc::cluster_tls::{self, Conn};
use tessera_rpc::proto::data::wire_request::Op;
use tessera_rpc::proto::data::{GetShardRequest, PutShardRequest, ShardFrame};
use tessera_rpc::wire::{self, PREFACE};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::Instrument;

use crate::service::{FrameSource, OutFrame};
use crate::{DataService, FrameSpan, server_builder};

/// How long a new connection may take to send its first bytes.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a refused put's connection is read (and discarded) while the
/// client notices the refusal, so that closing it does not reset the
/// connection before the client has read why.
const REFUSAL_LINGER: Duration = Duration::from_secs(10);

async fn until_true(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Serves `service` (and `health`, if given) on `listener` over gRPC and the
/// shard wire until `shutdown` becomes true and every connection has ended.
pub async fn serve_data(
    listener: TcpListener,
    service: DataService,
    health: Option<HealthService>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let (grpc_tx, grpc_rx) = mpsc::channel::<io::Result<Conn>>(64);
    let mut stop = shutdown.clone();
    let grpc = server_builder()
        .add_service(service.clone().into_server())
        .add_optional_service(health.map(HealthService::into_server))
        .serve_with_incoming_shutdown(ReceiverStream::new(grpc_rx), async move { until_true(&mut stop).await });
    let accept = accept_loop(listener, service, grpc_tx, shutdown);
    let (served, ()) = tokio::join!(grpc, accept);
    served
}

async fn accept_loop(
    listener: TcpListener,
    service: DataService,
    grpc: mpsc::Sender<io::Result<Conn>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((conn, _)) => {
                    if let Err(e) = conn.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY");
                    }
                    conns.spawn(route(conn, service.clone(), grpc.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = until_true(&mut shutdown) => break,
        }
    }
    drop(listener);
    drop(grpc);
    while conns.join_next().await.is_some() {}
}

async fn route(
    conn: TcpStream,
    service: DataService,
    grpc: mpsc::Sender<io::Result<Conn>>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Some(tls) = cluster_tls::current() {
        // Mutual TLS: the handshake proves the peer is a node of this
        // cluster, and its ALPN says which transport follows.
        let shook = tokio::select! {
            s = tokio::time::timeout(cluster_tls::HANDSHAKE_TIMEOUT, tls.accept(conn)) => s,
            () = until_true(&mut shutdown) => return,
        };
        let conn = match shook {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return tracing::warn!(error = %e, "refused an internal connection: TLS handshake failed"),
            Err(_) => return tracing::warn!("refused an internal connection: no TLS handshake in time"),
        };
        if conn.alpn() == Some(cluster_tls::ALPN_WIRE) {
            if let Err(e) = wire::tune_socket(conn.tcp()) {
                tracing::debug!(error = %e, "could not set keepalive on a shard-wire connection");
            }
            return serve_wire(conn, service, shutdown).await;
        }
        if grpc.send(Ok(conn)).await.is_err() {
            tracing::debug!("connection arrived as the gRPC server stopped");
        }
        return;
    }
    let mut first = [0u8; 1];
    let peeked = tokio::select! {
        p = tokio::time::timeout(FIRST_BYTES_TIMEOUT, conn.peek(&mut first)) => p,
        () = until_true(&mut shutdown) => return,
    };
    match peeked {
        Ok(Ok(1)) if first[0] == PREFACE[0] => {
            if let Err(e) = wire::tune_socket(&conn) {
                tracing::debug!(error = %e, "could not set keepalive on a shard-wire connection");
            }
            serve_wire(Conn::Plain(conn), service, shutdown).await
        }
        Ok(Ok(1)) => {
            let sent = grpc.send(Ok(Conn::Plain(conn))).await;
            if sent.is_err() {
                tracing::debug!("connection arrived as the gRPC server stopped");
            }
        }
        _ => {} // closed, failed or silent: drop it
    }
}

/// One shard-wire connection: its requests, one after another.
async fn serve_wire(mut conn: Conn, service: DataService, mut shutdown: watch::Receiver<bool>) {
    let mut preface = [0u8; PREFACE.len()];
    match tokio::time::timeout(FIRST_BYTES_TIMEOUT, conn.read_exact(&mut preface)).await {
        Ok(Ok(_)) if &preface == PREFACE => {}
        _ => return,
    }
    loop {
        let req = tokio::select! {
            r = wire::read_request(&mut conn) => r,
            () = until_true(&mut shutdown) => return,
        };
        let req = match req {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "bad shard-wire request");
                return;
            }
        };
        let (method, op) = match req.op {
            Some(Op::Put(p)) => ("/tessera.data.v1.Data/PutShard", Ok(p)),
            Some(Op::Get(g)) => ("/tessera.data.v1.Data/GetShard", Err(g)),
            None => return,
        };
        let span = tessera_rpc::trace::wire_span(method, &req.traceparent);
        let keep = match op {
            Ok(put) => wire_put(&mut conn, &service, put, &mut shutdown).instrument(span).await,
            Err(get) => wire_get(&mut conn, &service, get).instrument(span).await,
        };
        if !keep || *shutdown.borrow() {
            return;
        }
    }
}

/// A put's frames as they arrive on the connection.
struct WireFrames<'a> {
    conn: &'a mut Conn,
    /// Why the stream broke, if it did.
    broken: Option<io::Error>,
}

impl FrameSource for WireFrames<'_> {
    async fn next_frame(&mut self) -> Result<Option<ShardFrame>, Status> {
        wire::read_put_frame(self.conn).await.map_err(|e| {
            let status = Status::invalid_argument(format!("shard stream broken: {e}"));
            self.broken = Some(e);
            status
        })
    }
}

/// Serves one put; whether the connection can carry another request.
async fn wire_put(
    conn: &mut Conn,
    service: &DataService,
    first: PutShardRequest,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut frames = WireFrames { conn, broken: None };
    let outcome = service.put(first, &mut frames).await;
    if let Some(e) = frames.broken
        && e.kind() != io::ErrorKind::InvalidData
    {
        return false; // the client is gone: nobody to answer
    }
    if wire::write_status(conn, &outcome).await.is_err() {
        return false;
    }
    if outcome.is_err() {
        // Refused (the client closes the connection after a refusal): if
        // the frames were not all read, let the client read why before
        // closing, so that unread data does not reset the connection.
        let _ = conn.shutdown().await;
        let mut sink = vec![0u8; 64 << 10];
        let drain = async { while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {} };
        tokio::select! {
            _ = tokio::time::timeout(REFUSAL_LINGER, drain) => {}
            () = until_true(shutdown) => {}
        }
        return false;
    }
    true
}

/// Serves one get; whether the connection can carry another request.
/// Each frame is read and verified by the service's reader before it is
/// sent. One read through the page cache is sent from the shard file with
/// `sendfile(2)`: the socket takes the pages the reader has just read, with
/// no copy through this process. (The gateway verifies every block again on
/// receipt, so a page that changed between the two, which a shard file's
/// never should, is still caught. Should the kernel have dropped those
/// pages in between, `sendfile` reads them again from the disk on this
/// task's thread: slower, still correct.) One read around the cache is
/// sent from the reader's buffer.
async fn wire_get(conn: &mut Conn, service: &DataService, req: GetShardRequest) -> bool {
    let (file, mut rx, expected) = match service.get_for_sendfile(req).await {
        Ok(v) => v,
        Err(status) => return wire::write_status(conn, &Err(status)).await.is_ok(),
    };
    let mut sent = 0u64;
    while let Some(item) = rx.recv().await {
        let out = match item {
            Ok(OutFrame::InFile(span)) => send_frame(conn, &file, span).await,
            Ok(OutFrame::Bytes(frame)) => write_frame(conn, &frame).await,
            Err(status) => return wire::write_status(conn, &Err(status)).await.is_ok(),
        };
        if let Err(e) = out {
            tracing::debug!(error = %e, "shard-wire get cut short");
            return false; // dropping rx stops the reader
        }
        sent += 1;
    }
    let end = if sent == expected {
        Ok(())
    } else {
        Err(Status::internal(format!("shard reader stopped after {sent} of {expected} stripes")))
    };
    wire::write_status(conn, &end).await.is_ok()
}

/// Sends one verified frame from memory: its head, then hash and block.
async fn write_frame(conn: &mut Conn, frame: &[u8]) -> io::Result<()> {
    conn.write_all(&wire::get_frame_head(frame.len())?).await?;
    conn.write_all(frame).await
}

/// Sends one verified frame: its head, then hash and block from the file.
/// Over plain TCP with `sendfile(2)`; over TLS the bytes must pass through
/// the cipher, so they are read from the file (the pages the reader has
/// just read) and written.
async fn send_frame(conn: &mut Conn, file: &std::fs::File, span: FrameSpan) -> io::Result<()> {
    conn.write_all(&wire::get_frame_head(span.len)?).await?;
    let conn: &TcpStream = match conn {
        Conn::Plain(tcp) => tcp,
        tls => {
            let mut buf = vec![0u8; span.len];
            std::os::unix::fs::FileExt::read_exact_at(file, &mut buf, span.offset)?;
            return tls.write_all(&buf).await;
        }
    };
    let mut offset = span.offset;
    let mut left = span.len;
    while left > 0 {
        conn.writable().await?;
        let sent = conn.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(conn, file, Some(&mut offset), left).map_err(io::Error::from)
        });
        match sent {
            // The file ended before the span did: it shrank after the read.
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "shard file ended inside a frame")),
            Ok(n) => left -= n.min(left),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
