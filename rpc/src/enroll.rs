//! Joining a cluster with a join token.
//!
//! A join token, `TSJ1.<id>.<secret>.<ca sha-256>`, is made by a metadata
//! node or a gateway (the admin API) and stored in the metadata service as
//! its id, the SHA-256 of its secret, the role it is for and when it
//! expires. A new node given a token generates its own P-256 key and calls
//! a metadata node's port over TLS without a certificate; it trusts the
//! server only if the server's chain contains the CA whose hash the token
//! names (so a token cannot be replayed against a rogue "metadata node").
//! The metadata node consumes the token through Raft — a second use, an
//! expired token or one for another role is refused — and signs a node
//! certificate for the public key with the CA the metadata service keeps.
//! The node writes `ca.pem`, `node.pem` and `node.key` and starts with
//! them like any other node. Connections without a certificate reach only
//! this endpoint: every other service of the port still demands one.
//!
//! The exchange is one HTTP/1.1 request (`POST /tessera/enroll`, JSON) on
//! the connection's ALPN `http/1.1`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::cluster_tls::{ALPN_ENROLL, ClusterCa, Conn, NODE_NAME, Role};
use crate::proto::meta::{Command, ConsumeJoinToken, command, command_result};

/// How long an enrolled node's certificate is valid.
pub const CERT_VALIDITY: Duration = Duration::from_secs(365 * 86400);
/// Largest enrollment request.
const MAX_REQUEST: usize = 16 * 1024;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A join token as given to a new node.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Names the token in the metadata service.
    pub id: String,
    /// Proves the holder; only its hash is stored.
    pub secret: String,
    /// SHA-256 of the cluster CA certificate (DER) the node must find.
    pub ca_sha256: [u8; 32],
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken").field("id", &self.id).finish_non_exhaustive()
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// SHA-256 of the first certificate of `ca_pem` (DER).
pub fn ca_fingerprint(ca_pem: &str) -> Result<[u8; 32], String> {
    let der = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .next()
        .ok_or("no certificate in the CA file")?
        .map_err(|e| format!("the CA file does not parse: {e}"))?;
    Ok(sha256(&der))
}

impl JoinToken {
    /// A new token for the cluster whose CA is `ca_pem`.
    pub fn generate(ca_pem: &str) -> Result<JoinToken, String> {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 24];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| "no randomness")?;
        aws_lc_rs::rand::fill(&mut secret).map_err(|_| "no randomness")?;
        Ok(JoinToken {
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            secret: B64.encode(secret),
            ca_sha256: ca_fingerprint(ca_pem)?,
        })
    }

    /// Parses `TSJ1.<id>.<secret>.<ca sha-256 hex>`.
    pub fn parse(s: &str) -> Result<JoinToken, String> {
        let bad = || "not a join token (TSJ1.<id>.<secret>.<ca hash>)".to_owned();
        let mut p = s.trim().split('.');
        let (Some("TSJ1"), Some(id), Some(secret), Some(hash), None) =
            (p.next(), p.next(), p.next(), p.next(), p.next())
        else {
            return Err(bad());
        };
        if id.is_empty() || secret.is_empty() || hash.len() != 64 {
            return Err(bad());
        }
        let mut ca_sha256 = [0u8; 32];
        for (i, b) in ca_sha256.iter_mut().enumerate() {
            *b = u8::from_str_radix(hash.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
        }
        Ok(JoinToken { id: id.to_owned(), secret: secret.to_owned(), ca_sha256 })
    }

    /// The SHA-256 of the secret: what the metadata service stores.
    pub fn secret_sha256(&self) -> Vec<u8> {
        sha256(self.secret.as_bytes()).to_vec()
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hash: String = self.ca_sha256.iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "TSJ1.{}.{}.{hash}", self.id, self.secret)
    }
}

// ------------------------------------------------------------ the server

type HandlerFn =
    dyn Fn(Value) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send>> + Send + Sync;

/// What a metadata node does with an enrollment: consume the token, sign.
#[derive(Clone)]
pub struct Handler(Arc<HandlerFn>);

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("enroll::Handler")
    }
}

/// The handler of a metadata node: the token is consumed through `meta`
/// (Raft: single use), and the CA the answer carries signs the node's key.
pub fn handler(meta: crate::MetaClient, validity: Duration) -> Handler {
    Handler(Arc::new(move |req: Value| {
        let meta = meta.clone();
        Box::pin(async move {
            let field = |n: &str| req[n].as_str().map(str::to_owned).ok_or(format!("the request lacks {n}"));
            let (id, secret, role_name, name) = (field("token_id")?, field("secret")?, field("role")?, field("name")?);
            let role: Role = role_name.parse()?;
            let public_key = B64.decode(field("public_key")?).map_err(|_| "the public key is not base64url")?;
            let consume = ConsumeJoinToken {
                id: id.clone(),
                secret_sha256: sha256(secret.as_bytes()).to_vec(),
                role: role.as_str().to_owned(),
            };
            let cmd = Command { now_ms: 0, op: Some(command::Op::ConsumeJoinToken(consume)) };
            let r = meta.write(cmd).await.map_err(|e| format!("the metadata service: {e}"))?;
            let ca = match r.outcome {
                Some(command_result::Outcome::ClusterCa(ca)) => ca,
                Some(command_result::Outcome::Failure(f)) => return Err(f.message),
                other => return Err(format!("unexpected answer {other:?}")),
            };
            let ca = ClusterCa::from_pems(ca.cert_pem, ca.key_pem).map_err(|e| e.to_string())?;
            let chain = ca.issue_for(&public_key, role, &name, validity).map_err(|e| e.to_string())?;
            tracing::info!(token = %id, role = role.as_str(), name, "a node enrolled");
            Ok(json!({"chain_pem": chain, "ca_pem": ca.cert_pem}))
        })
    }))
}

/// Serves one enrollment on `conn` (a TLS connection without a client
/// certificate), then closes it.
pub async fn serve_conn(mut conn: Conn, handler: Handler) {
    let answer = match read_request(&mut conn).await {
        Ok(body) => match serde_json::from_slice::<Value>(&body) {
            Ok(req) => match (handler.0)(req).await {
                Ok(v) => (200, v),
                Err(e) => {
                    tracing::warn!(error = %e, "an enrollment was refused");
                    (403, json!({"error": e}))
                }
            },
            Err(e) => (400, json!({"error": format!("the request is not JSON: {e}")})),
        },
        Err(e) => (400, json!({"error": e})),
    };
    let body = answer.1.to_string();
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        answer.0,
        if answer.0 == 200 { "OK" } else { "Refused" },
        body.len()
    );
    let _ = conn.write_all(head.as_bytes()).await;
    let _ = conn.write_all(body.as_bytes()).await;
    let _ = conn.shutdown().await;
}

/// Reads `POST /tessera/enroll` with a Content-Length body; the body.
async fn read_request(conn: &mut Conn) -> Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_REQUEST {
            return Err("the request head is too long".into());
        }
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .map_err(|_| "no request within 10 s")?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection closed before the request".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    if !head.starts_with("POST /tessera/enroll ") {
        return Err("only POST /tessera/enroll is served to a node without a certificate".into());
    }
    let len = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or("no content-length")?;
    if len > MAX_REQUEST {
        return Err("the request is too long".into());
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .map_err(|_| "the body stalled")?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the body was cut short".into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Ok(body)
}

// ------------------------------------------------------------ the client

/// Accepts a server whose chain holds the CA the token pins, and whose
/// certificate that CA signed for the node name.
#[derive(Debug)]
struct PinnedCa {
    pin: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let ca = intermediates.iter().find(|c| sha256(c) == self.pin).ok_or_else(|| {
            rustls::Error::General("the server's chain does not hold the CA the join token names".into())
        })?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let v = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Why an enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// Final: the token was refused, or the server is not of the token's
    /// cluster (the token was not shown to it), or the answer is unusable.
    #[error("{0}")]
    Refused(String),
    /// No metadata node answered (they may be starting): worth retrying.
    #[error("no metadata node answered the enrollment: {0}")]
    Unreachable(String),
}

/// Enrolls as a node of `role` named `name` with `token` at the first of
/// `urls` (metadata nodes' URLs) that answers, and writes the identity
/// into `dir` (`ca.pem`, `node.pem`, `node.key`).
pub async fn enroll(urls: &[String], token: &JoinToken, role: Role, name: &str, dir: &Path) -> Result<(), EnrollError> {
    let refused = EnrollError::Refused;
    let key = rcgen::KeyPair::generate().map_err(|e| refused(e.to_string()))?;
    let request = json!({
        "token_id": token.id,
        "secret": token.secret,
        "role": role.as_str(),
        "name": name,
        "public_key": B64.encode(key.public_key_raw()),
    })
    .to_string();
    let provider = crate::tls::provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| refused(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa { pin: token.ca_sha256, provider }))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_ENROLL.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut errors = Vec::new();
    for url in urls {
        let addr = url.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let name = ServerName::try_from(NODE_NAME).map_err(|e| e.to_string())?;
            let mut tls = match connector.connect(name, tcp).await {
                Ok(t) => t,
                // Not this cluster's metadata node: the token is not shown to it.
                Err(e) if e.to_string().contains("does not hold the CA") => {
                    return Ok(Err(refused(format!(
                        "{url}: the server's chain does not hold the CA the join token names"
                    ))));
                }
                Err(e) => return Err(format!("TLS: {e}")),
            };
            let head = format!(
                "POST /tessera/enroll HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                request.len()
            );
            tls.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
            tls.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
            let mut answer = Vec::new();
            tls.read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
            Ok::<Result<Vec<u8>, EnrollError>, String>(Ok(answer))
        };
        let answer = match tokio::time::timeout(Duration::from_secs(30), attempt).await {
            Ok(Ok(Ok(a))) => a,
            Ok(Ok(Err(e))) => return Err(e),
            Ok(Err(e)) => {
                errors.push(format!("{url}: {e}"));
                continue;
            }
            Err(_) => {
                errors.push(format!("{url}: no answer within 30 s"));
                continue;
            }
        };
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        if !head.starts_with("HTTP/1.1 200") {
            // A refusal (used, expired) is the same on every metadata node.
            return Err(refused(format!("{url} refused the join token: {}", v["error"].as_str().unwrap_or(head))));
        }
        let (Some(chain), Some(ca)) = (v["chain_pem"].as_str(), v["ca_pem"].as_str()) else {
            return Err(refused(format!("{url} answered without a certificate")));
        };
        if ca_fingerprint(ca).map_err(refused)? != token.ca_sha256 {
            return Err(refused(format!("{url} answered with another CA than the join token names")));
        }
        std::fs::create_dir_all(dir).map_err(|e| refused(format!("{}: {e}", dir.display())))?;
        let write = |f: &str, b: &str, mode| {
            crate::tls::write_file(&dir.join(f), b.as_bytes(), mode).map_err(|e| refused(e.to_string()))
        };
        write("ca.pem", ca, 0o644)?;
        write("node.key", &key.serialize_pem(), 0o600)?;
        write("node.pem", chain, 0o644)?;
        return Ok(());
    }
    Err(EnrollError::Unreachable(errors.join("; ")))
}

// ------------------------------------------------------------ renewal

/// When the certificate in `dir/node.pem` should be renewed: two thirds
/// into its lifetime (unix seconds), and the lifetime.
fn renewal_due(dir: &Path) -> Result<(i64, i64), String> {
    let pem = std::fs::read(dir.join("node.pem")).map_err(|e| format!("node.pem: {e}"))?;
    let leaf = CertificateDer::pem_slice_iter(&pem).next().ok_or("node.pem holds no certificate")?;
    let leaf = leaf.map_err(|e| format!("node.pem: {e}"))?;
    let (nb, na) = crate::cluster_tls::validity(&leaf).ok_or("node.pem: no validity")?;
    Ok((nb + (na - nb) * 2 / 3, na - nb))
}

/// Renews the certificate in `dir` once: a new key, a certificate for it
/// from the metadata service (asked with the current one), both written
/// (the node's certificate watcher presents them from the next handshake).
pub async fn renew_once(dir: &Path, name: &str, meta: &crate::MetaClient) -> Result<(), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let r = meta.renew_certificate(key.public_key_raw().to_vec(), name).await.map_err(|e| e.to_string())?;
    if let Some(f) = r.failure {
        return Err(f.message);
    }
    // The new chain must end in the CA this node already trusts.
    let ca = std::fs::read_to_string(dir.join("ca.pem")).map_err(|e| format!("ca.pem: {e}"))?;
    let pin = ca_fingerprint(&ca)?;
    if !CertificateDer::pem_slice_iter(r.chain_pem.as_bytes()).filter_map(Result::ok).any(|c| sha256(&c) == pin) {
        return Err("the renewed certificate is not of this cluster's CA".into());
    }
    let write = |f: &str, b: &str, mode| crate::tls::write_file(&dir.join(f), b.as_bytes(), mode);
    write("node.key", &key.serialize_pem(), 0o600).map_err(|e| e.to_string())?;
    write("node.pem", &r.chain_pem, 0o644).map_err(|e| e.to_string())?;
    Ok(())
}

/// Renews the certificate in `dir` two thirds into each lifetime, until
/// `stop`; a failed renewal is logged and retried (a thirtieth of the
/// lifetime later, at most an hour), while the old certificate lasts.
pub async fn renew_loop(
    dir: std::path::PathBuf,
    name: String,
    meta: crate::MetaClient,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let (wait, lifetime) = match renewal_due(&dir) {
            Ok((due, lifetime)) => (Duration::from_secs(due.saturating_sub(now).max(0) as u64), lifetime),
            Err(e) => {
                tracing::warn!(error = %e, "certificate renewal: cannot read the certificate");
                (Duration::from_secs(3600), 0)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if lifetime == 0 {
            continue;
        }
        match renew_once(&dir, &name, &meta).await {
            Ok(()) => tracing::info!(dir = %dir.display(), "renewed this node's certificate"),
            Err(e) => {
                tracing::warn!(error = %e, "certificate renewal failed; retrying");
                let retry = Duration::from_secs((lifetime as u64 / 30).clamp(1, 3600));
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_print_and_parse() {
        let ca = ClusterCa::generate().unwrap();
        let t = JoinToken::generate(&ca.cert_pem).unwrap();
        let s = t.to_string();
        assert!(s.starts_with("TSJ1."), "{s}");
        assert_eq!(JoinToken::parse(&s).unwrap(), t);
        assert_eq!(t.ca_sha256, ca_fingerprint(&ca.cert_pem).unwrap());
        for bad in ["", "TSJ1.a.b", "TSJ2.a.b.00", &s.replace("TSJ1", "TSJ0"), &format!("{s}.x"), &s[..s.len() - 2]] {
            assert!(JoinToken::parse(bad).is_err(), "{bad}");
        }
        assert!(!format!("{t:?}").contains(&t.secret), "Debug shows no secret");
    }
}
