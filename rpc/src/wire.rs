//! The shard wire: the lean transport for shard bytes (#4's `ShardTransport`
//! seam). It shares the datanode's port with the gRPC service; the datanode
//! tells the two apart by a connection's first bytes (HTTP/2 starts with
//! `PRI `, the shard wire with [`PREFACE`]).
//!
//! Over gRPC every block is copied into an encode buffer by the sender and
//! out of HTTP/2's buffers by the receiver, and travels through several tasks
//! on each side. Here a block goes from the sender's memory to the socket in
//! one vectored write and from the socket into its final buffer in one read.
//!
//! ```text
//!  connection  = PREFACE request*              (requests one after another)
//!  request     = u32 len, WireRequest (protobuf, len bytes)
//!  put         = request(put) frame* END  ◄── status
//!  frame       = u32 block len (> 0), 32-byte hash, block
//!  END         = u32 0
//!  get         = request(get)  ◄── (TAG_FRAME frame)* status
//!  status      = TAG_STATUS, u8 gRPC code (0 = OK), u32 len, UTF-8 message
//! ```
//! Integers are big-endian. A put's status comes after END (the shard is
//! fsynced and visible when it is OK); a datanode that refuses a put early
//! sends its status at once, stops reading and closes the connection once
//! the client has gone. After a refused put neither side reuses the
//! connection. A get's frames are verified by the datanode before
//! they are sent; its status ends the response (OK after the last frame).
//! After a complete exchange the connection carries the next request; a
//! client that gives up half way closes it.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cluster_tls::Conn;
use tokio::sync::mpsc;
use tonic::{Code, Status};

use crate::proto::data::{GetShardRequest, PutShardRequest, ShardFrame, WireRequest, wire_request};
use crate::trace::TraceContext;

/// The first bytes a shard-wire client sends on a connection.
pub const PREFACE: &[u8; 8] = b"TSHARD/1";
/// Largest request header.
pub const MAX_HEADER_BYTES: usize = 64 << 10;
/// Largest block in a frame (blocks are at most 16 MiB).
pub const MAX_BLOCK_BYTES: usize = 20 << 20;
/// Length of a frame's hash.
pub const HASH_BYTES: usize = 32;
/// Tag of a frame in a get response.
pub const TAG_FRAME: u8 = 0;
/// Tag of the status that ends a response.
pub const TAG_STATUS: u8 = 1;
/// Longest status message sent or accepted.
const MAX_MESSAGE_BYTES: usize = 16 << 10;
/// Idle connections kept per datanode.
const MAX_IDLE_PER_ADDR: usize = 32;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle time before TCP keepalive probes start on a shard-wire connection,
/// and the time between probes: a peer that vanished without closing (a
/// partition, a powered-off host) is noticed within about two minutes, as
/// gRPC's HTTP/2 keepalive noticed it. (No read timeout: a slow S3 client
/// legitimately slows the shard streams behind it.)
const KEEPALIVE_IDLE: Duration = Duration::from_secs(20);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Sets `TCP_NODELAY` and TCP keepalive on a shard-wire socket.
pub fn tune_socket(s: &TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    let ka = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE).with_interval(KEEPALIVE_INTERVAL);
    socket2::SockRef::from(s).set_tcp_keepalive(&ka)
}

fn code_of(c: u8) -> Code {
    Code::from_i32(i32::from(c))
}

/// Reads the status that ends a response (after its tag).
async fn read_status_body<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Status> {
    let code = r.read_u8().await?;
    let len = r.read_u32().await? as usize;
    if len > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("status message of {len} bytes")));
    }
    let mut msg = vec![0; len];
    r.read_exact(&mut msg).await?;
    Ok(Status::new(code_of(code), String::from_utf8_lossy(&msg).into_owned()))
}

/// Writes a status (tag included): what ends a get, and a put's answer.
pub async fn write_status<W: AsyncWrite + Unpin>(w: &mut W, status: &Result<(), Status>) -> io::Result<()> {
    let (code, msg) = match status {
        Ok(()) => (0u8, ""),
        Err(s) => (u8::try_from(s.code() as i32).unwrap_or(2), s.message()),
    };
    let msg = &msg.as_bytes()[..msg.len().min(MAX_MESSAGE_BYTES)];
    let mut b = Vec::with_capacity(6 + msg.len());
    b.push(TAG_STATUS);
    b.push(code);
    b.put_u32(msg.len() as u32);
    b.extend_from_slice(msg);
    w.write_all(&b).await?;
    w.flush().await
}

/// Reads exactly `n` bytes into a new buffer, without zeroing it first.
async fn read_bytes<R: AsyncRead + Unpin>(r: &mut R, n: usize) -> io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(n);
    while buf.len() < n {
        let want = n - buf.len();
        if r.read_buf(&mut (&mut buf).limit(want)).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf.freeze())
}

/// Reads one request header; `None` if the peer closed the connection
/// cleanly before it (between requests).
pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<WireRequest>> {
    let mut len = [0u8; 4];
    let got = r.read(&mut len).await?;
    if got == 0 {
        return Ok(None);
    }
    r.read_exact(&mut len[got..]).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_HEADER_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("request header of {len} bytes")));
    }
    let b = read_bytes(r, len).await?;
    WireRequest::decode(b).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn write_request<W: AsyncWrite + Unpin>(w: &mut W, op: wire_request::Op) -> io::Result<()> {
    let traceparent = TraceContext::current().map(|c| c.to_traceparent()).unwrap_or_default();
    let req = WireRequest { op: Some(op), traceparent };
    let mut b = Vec::with_capacity(4 + req.encoded_len());
    b.put_u32(req.encoded_len() as u32);
    req.encode(&mut b).map_err(io::Error::other)?;
    w.write_all(&b).await
}

/// Reads the next frame of a put; `None` at END.
pub async fn read_put_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<ShardFrame>> {
    let len = r.read_u32().await? as usize;
    if len == 0 {
        return Ok(None);
    }
    if len > MAX_BLOCK_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
    }
    let f = read_bytes(r, HASH_BYTES + len).await?;
    Ok(Some(ShardFrame { hash: f.slice(..HASH_BYTES), block: f.slice(HASH_BYTES..) }))
}

/// What goes before a get's frame of `frame_len` bytes (its hash followed
/// by its block, as a shard file stores it); the datanode then sends the
/// frame itself from the file.
pub fn get_frame_head(frame_len: usize) -> io::Result<[u8; 5]> {
    let block = frame_len.checked_sub(HASH_BYTES).filter(|&n| n > 0).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "a frame is a 32-byte hash and a non-empty block")
    })?;
    let block = u32::try_from(block)
        .ok()
        .filter(|&b| b as usize <= MAX_BLOCK_BYTES)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("a block of {block} bytes")))?;
    let mut head = [0u8; 5];
    head[0] = TAG_FRAME;
    head[1..].copy_from_slice(&block.to_be_bytes());
    Ok(head)
}

fn broken(addr: &str, e: &io::Error) -> Status {
    Status::unavailable(format!("shard wire to {addr}: {e}"))
}

/// `host:port` of a datanode URL (`http://host:port`).
fn host_port(addr: &str) -> &str {
    let a = addr.split_once("://").map_or(addr, |(_, rest)| rest);
    a.trim_end_matches('/')
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// A shard-wire client: connections to datanodes, kept open and reused one
/// request at a time.
#[derive(Clone)]
pub struct WireClient {
    idle: Arc<Mutex<HashMap<String, Vec<Idle>>>>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for WireClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireClient").field("connect_timeout", &self.connect_timeout).finish_non_exhaustive()
    }
}

impl WireClient {
    /// A client that gives up connecting after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        WireClient { idle: Arc::new(Mutex::new(HashMap::new())), connect_timeout }
    }

    /// An idle connection to `addr` that is still open, or a new one.
    async fn checkout(&self, addr: &str) -> Result<Conn, Status> {
        loop {
            let idle = match self.idle.lock() {
                Ok(mut m) => m.get_mut(addr).and_then(Vec::pop),
                Err(_) => None,
            };
            let Some(Idle { conn, since }) = idle else { break };
            if since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            // A live idle connection has nothing to read; one the datanode
            // closed (it restarted) reads EOF, or a TLS alert before it.
            // Peeked, not read: bytes under TLS belong to the TLS session.
            let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
            match socket2::SockRef::from(conn.tcp()).peek(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(conn),
                _ => continue,
            }
        }
        let target = host_port(addr);
        let mut conn = tokio::time::timeout(self.connect_timeout, crate::cluster_tls::connect_tcp(target, true))
            .await
            .map_err(|_| Status::unavailable(format!("shard wire to {addr}: connect timed out")))?
            .map_err(|e| broken(addr, &e))?;
        tune_socket(conn.tcp()).map_err(|e| broken(addr, &e))?;
        conn.write_all(PREFACE).await.map_err(|e| broken(addr, &e))?;
        Ok(conn)
    }

    fn checkin(&self, addr: &str, conn: Conn) {
        if let Ok(mut m) = self.idle.lock() {
            let v = m.entry(addr.to_owned()).or_default();
            if v.len() < MAX_IDLE_PER_ADDR {
                v.push(Idle { conn, since: Instant::now() });
            }
        }
    }

    /// Stores one shard on the datanode at `addr`: `first` names the shard
    /// and its geometry, `frames` yields its frames in stripe order. The
    /// shard is acknowledged once fsynced and visible; if `frames` ends
    /// before the last stripe the datanode stores nothing and says so.
    pub async fn put_shard(
        &self,
        addr: &str,
        first: PutShardRequest,
        mut frames: mpsc::Receiver<ShardFrame>,
    ) -> Result<(), Status> {
        let mut conn = self.checkout(addr).await?;
        let (outcome, in_sync) = {
            let (mut rd, mut wr) = tokio::io::split(&mut conn);
            let send = async {
                write_request(&mut wr, wire_request::Op::Put(first)).await?;
                while let Some(f) = frames.recv().await {
                    if f.hash.len() != HASH_BYTES || f.block.is_empty() || f.block.len() > MAX_BLOCK_BYTES {
                        return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad frame"));
                    }
                    let mut head = [0u8; 4 + HASH_BYTES];
                    head[..4].copy_from_slice(&(f.block.len() as u32).to_be_bytes());
                    head[4..].copy_from_slice(&f.hash);
                    wr.write_all_buf(&mut Buf::chain(&head[..], f.block)).await?;
                }
                wr.write_all(&0u32.to_be_bytes()).await?;
                wr.flush().await
            };
            let reply = async {
                match rd.read_u8().await? {
                    TAG_STATUS => read_status_body(&mut rd).await,
                    t => Err(io::Error::new(io::ErrorKind::InvalidData, format!("unexpected tag {t}"))),
                }
            };
            tokio::pin!(send, reply);
            tokio::select! {
                biased;
                // An answer before END: the datanode refused the shard and
                // stopped reading; the connection cannot be reused.
                r = &mut reply => (r, false),
                s = &mut send => match s {
                    Ok(()) => (reply.await, true),
                    // A send that failed may be explained by the status the
                    // datanode sent before closing.
                    Err(e) => match tokio::time::timeout(Duration::from_secs(1), &mut reply).await {
                        Ok(Ok(status)) => (Ok(status), false),
                        _ => (Err(e), false),
                    },
                },
            }
        };
        match outcome {
            Ok(status) if status.code() == Code::Ok => {
                if in_sync {
                    self.checkin(addr, conn);
                }
                Ok(())
            }
            // A refused put's connection is closed by both sides: the
            // datanode may have stopped reading anywhere in the stream.
            Ok(status) => Err(status),
            Err(e) => Err(broken(addr, &e)),
        }
    }

    /// Starts reading stripes of a shard from the datanode at `addr`. Errors
    /// of the shard itself (missing, corrupt) come from
    /// [`WireFrames::message`].
    pub async fn get_shard(&self, addr: &str, req: GetShardRequest) -> Result<WireFrames, Status> {
        let mut conn = self.checkout(addr).await?;
        write_request(&mut conn, wire_request::Op::Get(req)).await.map_err(|e| broken(addr, &e))?;
        Ok(WireFrames { conn: Some(conn), client: self.clone(), addr: addr.to_owned() })
    }
}

/// The frames of one get, in stripe order. Dropped before the end, it
/// closes its connection (the datanode stops reading the shard).
#[derive(Debug)]
pub struct WireFrames {
    conn: Option<Conn>,
    client: WireClient,
    addr: String,
}

impl WireFrames {
    /// The next frame; `None` after the last; an error says why the rest
    /// will not come (its code as the gRPC service would give it).
    pub async fn message(&mut self) -> Result<Option<ShardFrame>, Status> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let r = async {
            match conn.read_u8().await? {
                TAG_FRAME => {
                    let len = conn.read_u32().await? as usize;
                    if len == 0 || len > MAX_BLOCK_BYTES {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
                    }
                    let f = read_bytes(conn, HASH_BYTES + len).await?;
                    Ok(Ok(ShardFrame { hash: f.slice(..HASH_BYTES), block: f.slice(HASH_BYTES..) }))
                }
                TAG_STATUS => Ok(Err(read_status_body(conn).await?)),
                t => Err(io::Error::new(io::ErrorKind::InvalidData, format!("unexpected tag {t}"))),
            }
        }
        .await;
        match r {
            Ok(Ok(f)) => Ok(Some(f)),
            Ok(Err(status)) => {
                // The exchange is complete: the connection can carry another.
                if let Some(c) = self.conn.take() {
                    self.client.checkin(&self.addr, c);
                }
                if status.code() == Code::Ok { Ok(None) } else { Err(status) }
            }
            Err(e) => {
                self.conn = None;
                Err(broken(&self.addr, &e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_socket_addresses() {
        assert_eq!(host_port("http://127.0.0.1:9002"), "127.0.0.1:9002");
        assert_eq!(host_port("http://dn-1.example:9002/"), "dn-1.example:9002");
        assert_eq!(host_port("10.0.0.5:7000"), "10.0.0.5:7000");
    }

    #[test]
    fn preface_cannot_be_mistaken_for_http2() {
        assert_ne!(&PREFACE[..4], b"PRI ");
        assert_eq!(PREFACE.len(), 8);
    }

    #[tokio::test]
    async fn wire_sockets_get_nodelay_and_keepalive() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        tune_socket(&c).unwrap();
        let s = socket2::SockRef::from(&c);
        assert!(s.keepalive().unwrap() && c.nodelay().unwrap());
    }

    #[tokio::test]
    async fn statuses_and_frames_round_trip() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        write_status(&mut a, &Err(Status::data_loss("stripe 3 corrupt"))).await.unwrap();
        write_status(&mut a, &Ok(())).await.unwrap();
        let mut frame = vec![7u8; HASH_BYTES];
        frame.extend_from_slice(b"block");
        a.write_all(&get_frame_head(frame.len()).unwrap()).await.unwrap();
        a.write_all(&frame).await.unwrap();
        assert!(get_frame_head(HASH_BYTES).is_err(), "empty block refused");
        assert!(get_frame_head(HASH_BYTES + MAX_BLOCK_BYTES + 1).is_err(), "oversized block refused");
        assert_eq!(b.read_u8().await.unwrap(), TAG_STATUS);
        let s = read_status_body(&mut b).await.unwrap();
        assert_eq!((s.code(), s.message()), (Code::DataLoss, "stripe 3 corrupt"));
        assert_eq!(b.read_u8().await.unwrap(), TAG_STATUS);
        assert_eq!(read_status_body(&mut b).await.unwrap().code(), Code::Ok);
        assert_eq!(b.read_u8().await.unwrap(), TAG_FRAME);
        assert_eq!(b.read_u32().await.unwrap(), 5);
        assert_eq!(read_bytes(&mut b, HASH_BYTES + 5).await.unwrap().slice(HASH_BYTES..), Bytes::from_static(b"block"));
    }

    #[tokio::test]
    async fn oversized_and_truncated_input_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        a.write_all(&(MAX_HEADER_BYTES as u32 + 1).to_be_bytes()).await.unwrap();
        assert_eq!(read_request(&mut b).await.unwrap_err().kind(), io::ErrorKind::InvalidData);
        a.write_all(&(MAX_BLOCK_BYTES as u32 + 1).to_be_bytes()).await.unwrap();
        assert_eq!(read_put_frame(&mut b).await.unwrap_err().kind(), io::ErrorKind::InvalidData);
        a.write_all(&10u32.to_be_bytes()).await.unwrap();
        a.write_all(&[0u8; 20]).await.unwrap();
        drop(a);
        assert_eq!(read_put_frame(&mut b).await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let (a, mut b) = tokio::io::duplex(64);
        drop(a);
        assert!(read_request(&mut b).await.unwrap().is_none(), "a clean close between requests");
    }
}
