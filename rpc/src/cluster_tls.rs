//! Mutual TLS between the nodes of a cluster: every metadata, datanode and
//! gateway process holds a node certificate issued by the cluster's CA,
//! presents it on every internal connection (gRPC, Raft, the shard wire)
//! and accepts only peers whose certificate chains to that CA.
//!
//! ```text
//!   <certs>/ca.pem   the cluster CA's certificate (trust root)
//!   <certs>/node.pem this node's certificate (leaf first), names its role
//!   <certs>/node.key its key (0600)
//! ```
//!
//! A node certificate is valid for [`NODE_NAME`] (every node checks its
//! peers against that one name, whatever address it dialled) and for
//! `<role>.role.tessera.internal`, which says what the node is. The files
//! are watched like the S3 port's ([`crate::tls::CertStore`]): a renewed
//! certificate is presented from the next handshake on.
//!
//! The process installs its identity once ([`install`]); every internal
//! client and server of the process then speaks TLS ([`channel`],
//! [`connect_tcp`], [`Incoming`]). Without one they speak plain TCP, as
//! `tessera server` (loopback ports) and in-process test clusters do.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::tls::{CertFiles, CertStore, TlsError};

pub use crate::cluster_ca::{ClusterCa, IssuedCert, validity};

/// The name every node certificate is valid for, and that every internal
/// client checks its peer's certificate against.
pub const NODE_NAME: &str = "node.tessera.internal";

/// ALPN of gRPC connections (HTTP/2).
pub const ALPN_GRPC: &[u8] = b"h2";
/// ALPN of shard-wire connections (`crate::wire`).
pub const ALPN_WIRE: &[u8] = b"tessera-wire";
/// ALPN of a joining node's enrollment (HTTP/1.1, no client certificate).
pub const ALPN_ENROLL: &[u8] = b"http/1.1";

/// What a node is, as its certificate says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A metadata (Raft) node.
    Meta,
    /// A datanode.
    Datanode,
    /// An S3 gateway.
    Gateway,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Meta, Role::Datanode, Role::Gateway];

    /// The role's name (`meta`, `datanode`, `gateway`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Meta => "meta",
            Role::Datanode => "datanode",
            Role::Gateway => "gateway",
        }
    }

    /// The DNS name a certificate of this role carries.
    pub(crate) fn san(self) -> String {
        format!("{}.role.tessera.internal", self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a role (meta, datanode or gateway)"))
    }
}

/// The role a peer's leaf certificate names, if any.
pub fn role_of(leaf: &CertificateDer<'_>) -> Option<Role> {
    let ee = webpki::EndEntityCert::try_from(leaf).ok()?;
    Role::ALL
        .into_iter()
        .find(|r| ServerName::try_from(r.san()).is_ok_and(|name| ee.verify_is_valid_for_subject_name(&name).is_ok()))
}

/// This node's TLS identity inside the cluster.
#[derive(Debug)]
pub struct ClusterTls {
    role: Role,
    ca_pem: String,
    store: Arc<CertStore>,
    server: Arc<rustls::ServerConfig>,
    /// As `server`, but a client without a certificate is let in too: it
    /// may only enroll (metadata nodes' ports; see `enroll`).
    server_enroll: Arc<rustls::ServerConfig>,
    grpc_client: Arc<rustls::ClientConfig>,
    wire_client: Arc<rustls::ClientConfig>,
}

/// The client side of the node's certificate store: always its one pair.
#[derive(Debug)]
struct ClientCert(Arc<CertStore>);

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.first()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ClusterTls {
    /// Loads the identity in `dir` (`ca.pem`, `node.pem`, `node.key`); the
    /// certificate must be the CA's and name a role.
    pub fn load(dir: &Path) -> Result<Arc<ClusterTls>, TlsError> {
        let ca_path = dir.join("ca.pem");
        let ca_pem = std::fs::read(&ca_path).map_err(|source| TlsError::Read { path: ca_path.clone(), source })?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&ca_pem).filter_map(Result::ok) {
            roots.add(c)?;
        }
        if roots.is_empty() {
            return Err(TlsError::NoCertificate { path: ca_path });
        }
        let roots = Arc::new(roots);
        let store = CertStore::load(vec![CertFiles { cert: dir.join("node.pem"), key: dir.join("node.key") }])?;
        let leaf = store
            .chains()
            .first()
            .and_then(|c| c.first().cloned())
            .ok_or_else(|| TlsError::NoCertificate { path: dir.join("node.pem") })?;
        let role = role_of(&leaf).ok_or_else(|| {
            TlsError::Generate(format!(
                "{} names no role: not a Tessera node certificate",
                dir.join("node.pem").display()
            ))
        })?;
        let provider = crate::tls::provider();
        // Our own certificate must chain to our own CA, or every peer would refuse us.
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        {
            use rustls::client::danger::ServerCertVerifier as _;
            let chain = store.chains().remove(0);
            let name = ServerName::try_from(NODE_NAME).map_err(|e| TlsError::Generate(e.to_string()))?;
            verifier
                .verify_server_cert(&chain[0], &chain[1..], &name, &[], rustls::pki_types::UnixTime::now())
                .map_err(|e| {
                    TlsError::Generate(format!(
                        "{} is not valid under {}: {e}",
                        dir.join("node.pem").display(),
                        ca_path.display()
                    ))
                })?;
        }
        let server = |anonymous: bool| -> Result<rustls::ServerConfig, TlsError> {
            let mut v = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            if anonymous {
                v = v.allow_unauthenticated();
            }
            let v = v.build().map_err(|e| TlsError::Generate(e.to_string()))?;
            let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .with_client_cert_verifier(v)
                .with_cert_resolver(store.clone());
            server.alpn_protocols = vec![ALPN_GRPC.to_vec(), ALPN_WIRE.to_vec()];
            if anonymous {
                server.alpn_protocols.push(ALPN_ENROLL.to_vec());
            }
            // No session tickets: connections are long-lived, and bytes the
            // server sends unasked would make an idle pooled connection look
            // busy (the shard wire peeks at idle ones before reuse).
            server.send_tls13_tickets = 0;
            Ok(server)
        };
        let (server, server_enroll) = (server(false)?, server(true)?);
        let client = |alpn: &[u8]| -> Result<Arc<rustls::ClientConfig>, TlsError> {
            let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .with_root_certificates(roots.clone())
                .with_client_cert_resolver(Arc::new(ClientCert(store.clone())));
            c.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(c))
        };
        Ok(Arc::new(ClusterTls {
            role,
            ca_pem: String::from_utf8_lossy(&ca_pem).into_owned(),
            grpc_client: client(ALPN_GRPC)?,
            wire_client: client(ALPN_WIRE)?,
            server: Arc::new(server),
            server_enroll: Arc::new(server_enroll),
            store,
        }))
    }

    /// This node's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The node's certificate files, kept current (renewals are presented
    /// from the next handshake on).
    pub fn store(&self) -> &Arc<CertStore> {
        &self.store
    }

    /// Opens TLS over `tcp` as a client, for gRPC or the shard wire.
    pub async fn connect(&self, tcp: TcpStream, wire: bool) -> std::io::Result<Conn> {
        let config = if wire { self.wire_client.clone() } else { self.grpc_client.clone() };
        let name =
            ServerName::try_from(NODE_NAME).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let s = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
        Ok(Conn::Tls(Box::new(tokio_rustls::TlsStream::Client(s))))
    }

    /// Accepts TLS over `tcp` as a server; the peer must show a node
    /// certificate of this cluster.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<Conn> {
        let s = tokio_rustls::TlsAcceptor::from(self.server.clone()).accept(tcp).await?;
        Ok(Conn::Tls(Box::new(tokio_rustls::TlsStream::Server(s))))
    }

    /// As [`accept`](Self::accept), but a peer without a certificate is let
    /// in (its connection has no role: it may only enroll).
    pub async fn accept_enroll(&self, tcp: TcpStream) -> std::io::Result<Conn> {
        let s = tokio_rustls::TlsAcceptor::from(self.server_enroll.clone()).accept(tcp).await?;
        Ok(Conn::Tls(Box::new(tokio_rustls::TlsStream::Server(s))))
    }

    /// The cluster CA's certificate, PEM (what a join token pins).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

static IDENTITY: OnceLock<Arc<ClusterTls>> = OnceLock::new();

/// Makes `tls` the identity of every internal connection of this process
/// (once; a second call is refused).
pub fn install(tls: Arc<ClusterTls>) -> Result<(), TlsError> {
    IDENTITY.set(tls).map_err(|_| TlsError::Generate("a cluster identity is already installed".into()))
}

/// The process's cluster identity, if it has one.
pub fn current() -> Option<Arc<ClusterTls>> {
    IDENTITY.get().cloned()
}

/// How long a TLS handshake may take on an internal port.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `addr` (`host:port`) with `TCP_NODELAY`, then TLS when the
/// process has an identity.
pub async fn connect_tcp(addr: &str, wire: bool) -> std::io::Result<Conn> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    match current() {
        None => Ok(Conn::Plain(tcp)),
        Some(tls) => tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.connect(tcp, wire))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?,
    }
}

/// The connector of internal tonic channels: TCP with `TCP_NODELAY`, then
/// TLS with the process's identity.
fn connector() -> impl tower::Service<
    http::Uri,
    Response = hyper_util::rt::TokioIo<Conn>,
    Error = std::io::Error,
    Future = impl std::future::Future<Output = std::io::Result<hyper_util::rt::TokioIo<Conn>>> + Send,
> + Send
+ Clone
+ 'static {
    tower::service_fn(|uri: http::Uri| async move {
        let host = uri.host().unwrap_or("127.0.0.1").trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let conn = connect_tcp(&format!("{host}:{port}"), false).await?;
        Ok(hyper_util::rt::TokioIo::new(conn))
    })
}

/// A tonic channel to `endpoint`, connected lazily: over TLS when the
/// process has an identity, else plain TCP.
pub fn channel(endpoint: tonic::transport::Endpoint) -> tonic::transport::Channel {
    if current().is_none() {
        return endpoint.connect_lazy();
    }
    endpoint.connect_with_connector_lazy(connector())
}

/// As [`channel`], connecting now.
pub async fn connect_channel(
    endpoint: tonic::transport::Endpoint,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    if current().is_none() {
        return endpoint.connect().await;
    }
    endpoint.connect_with_connector(connector()).await
}

/// As [`connect_channel`], to a URL; errors as text.
pub async fn connect_url(url: &str) -> Result<tonic::transport::Channel, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned()).map_err(|e| format!("{url}: {e}"))?;
    connect_channel(endpoint).await.map_err(|e| format!("{url}: {e}"))
}

/// An internal connection: plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum Conn {
    /// Plain TCP (no cluster identity).
    Plain(TcpStream),
    /// TLS, either side.
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Conn {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    /// The ALPN protocol agreed, if TLS.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(s) => s.get_ref().1.alpn_protocol(),
        }
    }

    /// The role of the peer's certificate, if TLS.
    pub fn peer_role(&self) -> Option<Role> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(s) => s.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(role_of),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// What a tonic service can learn of an internal connection.
#[derive(Clone, Copy, Debug)]
pub struct PeerInfo {
    /// The role the peer's certificate names (`None` over plain TCP).
    pub role: Option<Role>,
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        PeerInfo { role: self.peer_role() }
    }
}

/// Accepted connections of an internal gRPC port: TLS handshakes (when the
/// process has an identity) run beside the accept loop, so a slow or silent
/// client holds up no one; failed handshakes are logged and dropped.
pub struct Incoming {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Conn>>,
    task: tokio::task::JoinHandle<()>,
}

impl Incoming {
    /// Accepts from `listener` until the stream is dropped.
    pub fn new(listener: TcpListener) -> Incoming {
        Self::with_enroll(listener, None)
    }

    /// As [`new`](Self::new); with `enroll`, a TLS client without a
    /// certificate is let through the handshake and served only the
    /// enrollment (`crate::enroll`), never this stream's services.
    pub fn with_enroll(listener: TcpListener, enroll: Option<crate::enroll::Handler>) -> Incoming {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let task = tokio::spawn(accept_loop(listener, tx, current(), enroll));
        Incoming { rx, task }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl tokio_stream::Stream for Incoming {
    type Item = std::io::Result<Conn>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

async fn accept_loop(
    listener: TcpListener,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Conn>>,
    tls: Option<Arc<ClusterTls>>,
    enroll: Option<crate::enroll::Handler>,
) {
    let mut handshakes = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => continue,
            _ = tx.closed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let Some(tls) = tls.clone() else {
            if tx.send(Ok(Conn::Plain(tcp))).await.is_err() {
                return;
            }
            continue;
        };
        let tx = tx.clone();
        let enroll = enroll.clone();
        handshakes.spawn(async move {
            let handshake = async {
                match &enroll {
                    Some(_) => tls.accept_enroll(tcp).await,
                    None => tls.accept(tcp).await,
                }
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(conn)) if conn.peer_role().is_none() => match enroll {
                    // No node certificate: the enrollment, and nothing else.
                    Some(h) if conn.alpn() == Some(ALPN_ENROLL) => crate::enroll::serve_conn(conn, h).await,
                    _ => tracing::warn!(%peer, "refused an internal connection: no node certificate"),
                },
                Ok(Ok(conn)) => {
                    let _closed = tx.send(Ok(conn)).await;
                }
                Ok(Err(e)) => tracing::warn!(%peer, error = %e, "refused an internal connection: TLS handshake failed"),
                Err(_) => tracing::warn!(%peer, "refused an internal connection: no TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
            }
        });
    }
}

/// The folder a role keeps its cluster identity in by default.
pub fn default_dir(data: &Path) -> PathBuf {
    data.join("certs")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn node_certificates_name_their_role_and_chain_to_their_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate().unwrap();
        ca.save(&dir.path().join("ca")).unwrap();
        let ca = ClusterCa::load(&dir.path().join("ca")).unwrap();
        for role in Role::ALL {
            let d = dir.path().join(role.as_str());
            ca.issue_into(&d, role, "n1", Duration::from_secs(86400)).unwrap();
            let tls = ClusterTls::load(&d).unwrap();
            assert_eq!(tls.role(), role);
        }
        // Its validity is read back from the DER: a day, back-dated an hour.
        let pem = std::fs::read(dir.path().join("meta/node.pem")).unwrap();
        let leaf = CertificateDer::pem_slice_iter(&pem).next().unwrap().unwrap();
        let (nb, na) = validity(&leaf).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!((na - now - 86400).abs() < 60 && (now - nb - 3600).abs() < 60, "{nb} {na} {now}");
        assert_eq!(validity(b"\x30\x03\x02\x01\x01"), None);
        // A certificate from another CA does not load under this one.
        let other = ClusterCa::generate().unwrap();
        let d = dir.path().join("mixed");
        other.issue_into(&d, Role::Datanode, "x", Duration::from_secs(86400)).unwrap();
        std::fs::copy(dir.path().join("meta/ca.pem"), d.join("ca.pem")).unwrap();
        let e = ClusterTls::load(&d).unwrap_err().to_string();
        assert!(e.contains("is not valid under"), "{e}");
    }

    #[tokio::test]
    async fn peers_of_one_ca_talk_and_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate().unwrap();
        ca.issue_into(&dir.path().join("a"), Role::Meta, "a", Duration::from_secs(86400)).unwrap();
        ca.issue_into(&dir.path().join("b"), Role::Datanode, "b", Duration::from_secs(86400)).unwrap();
        let other = ClusterCa::generate().unwrap();
        other.issue_into(&dir.path().join("c"), Role::Datanode, "c", Duration::from_secs(86400)).unwrap();
        let a = ClusterTls::load(&dir.path().join("a")).unwrap();
        let b = ClusterTls::load(&dir.path().join("b")).unwrap();
        let c = ClusterTls::load(&dir.path().join("c")).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut roles = Vec::new();
            for _ in 0..3 {
                let (tcp, _) = listener.accept().await.unwrap();
                roles.push(a.accept(tcp).await.ok().map(|c| (c.peer_role(), c.alpn().map(<[u8]>::to_vec))));
            }
            roles
        });
        let ok = b.connect(TcpStream::connect(addr).await.unwrap(), true).await;
        assert!(ok.is_ok());
        let foreign = c.connect(TcpStream::connect(addr).await.unwrap(), false).await;
        // Without a certificate at all: a plain rustls client.
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca.cert_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let anon = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let anon = tokio_rustls::TlsConnector::from(Arc::new(anon))
            .connect(ServerName::try_from(NODE_NAME).unwrap(), TcpStream::connect(addr).await.unwrap())
            .await;
        let roles = server.await.unwrap();
        assert_eq!(roles[0], Some((Some(Role::Datanode), Some(ALPN_WIRE.to_vec()))));
        assert_eq!(roles[1], None, "a certificate of another CA is refused");
        assert_eq!(roles[2], None, "a client without a certificate is refused");
        // The foreign client learns it too (TLS 1.3: at its first read at the latest).
        drop((foreign, anon));
    }
}
