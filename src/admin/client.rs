//! The admin CLI's HTTP client: one SigV4-signed call to a gateway's admin
//! API (plain or over TLS), its answer parsed, and the API's refusals
//! turned into the CLI's failures.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_common::amz_date;

use super::{Failure, Target};

/// Path segments percent-encoded as SigV4's canonical URI wants them.
pub(super) fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Sends one signed admin call; the answer's status and JSON.
pub(super) async fn call(t: &Target, method: &str, path: &str, body: &[u8]) -> Result<(u16, Value), Failure> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (tls, rest) = match (t.endpoint.strip_prefix("http://"), t.endpoint.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => {
            return Err(Failure::Usage(format!(
                "{}: an endpoint is http://host:port or https://host:port",
                t.endpoint
            )));
        }
    };
    let host = rest.trim_end_matches('/').to_owned();
    let connector = if tls { Some(tls_connector(t.ca_bundle.as_deref())?) } else { None };
    let path = format!("/tessera/admin/v1/{path}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let date = amz_date(now);
    let hash = hex::encode(Sha256::digest(body));
    let signed = tessera_common::sigv4::SignedRequest {
        method,
        path: &path,
        query: "",
        host: &host,
        date: &date,
        payload_hash: &hash,
    };
    let auth = tessera_common::sigv4::authorization(&t.access_key, &t.secret_key, &signed);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nx-amz-date: {date}\r\nx-amz-content-sha256: {hash}\r\nauthorization: {auth}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(&host).await?;
        let mut conn: Box<dyn Stream> = match &connector {
            None => Box::new(tcp),
            Some(c) => {
                let name = host_name(&host);
                let name = rustls::pki_types::ServerName::try_from(name.to_owned())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                Box::new(c.connect(name, tcp).await?)
            }
        };
        conn.write_all(head.as_bytes()).await?;
        conn.write_all(body).await?;
        let mut buf = Vec::new();
        conn.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .map_err(|_| Failure::Unreachable(format!("{}: no answer in 60 s", t.endpoint)))?
        .map_err(|e| Failure::Unreachable(format!("{}: {e}", t.endpoint)))?;
    let (status, body) = parse_response(&buf).ok_or_else(|| Failure::Unreachable("a malformed HTTP answer".into()))?;
    let value = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    Ok((status, value))
}

/// A connection the admin call runs over: TCP, or TLS over TCP.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// The host part of `host:port` (an IPv6 address without its brackets).
fn host_name(host: &str) -> &str {
    let h = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    h.trim_start_matches('[').trim_end_matches(']')
}

/// A TLS client trusting `ca_bundle`'s certificates, else the system's.
fn tls_connector(ca_bundle: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector, Failure> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    match ca_bundle {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| Failure::Usage(format!("CA bundle {}: {e}", path.display())))?
                .filter_map(Result::ok)
                .collect();
            if certs.is_empty() {
                return Err(Failure::Usage(format!("CA bundle {}: no PEM certificate in it", path.display())));
            }
            roots.add_parsable_certificates(certs);
        }
        None => {
            // Debian's bundle; other systems name a bundle with --ca-bundle.
            for path in ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"] {
                if let Ok(iter) = CertificateDer::pem_file_iter(path) {
                    roots.add_parsable_certificates(iter.filter_map(Result::ok));
                    break;
                }
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(tessera_rpc::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Usage(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)))
}

/// Status and body of one HTTP/1.1 response (with a length, chunked, or
/// to the end of the connection).
pub(super) fn parse_response(buf: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = &buf[end + 4..];
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(h, v)| {
            h.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some((status, out));
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// The answer's JSON when the call succeeded; the API's message otherwise.
pub(super) fn ok(answer: (u16, Value)) -> Result<Value, Failure> {
    let (status, v) = answer;
    match status {
        200..=299 => Ok(v),
        500.. => Err(Failure::Unreachable(format!("the gateway failed ({status}): {}", message(&v)))),
        _ => Err(Failure::Refused(format!("refused ({status}): {}", message(&v)))),
    }
}

pub(super) fn message(v: &Value) -> String {
    match (v["error"]["code"].as_str(), v["error"]["message"].as_str()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        _ => match v.as_str() {
            // An S3-style XML error (a signature or access refusal).
            Some(xml) => {
                let field =
                    |t: &str| xml.split(&format!("<{t}>")).nth(1).and_then(|s| s.split(&format!("</{t}>")).next());
                match (field("Code"), field("Message")) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    _ => xml.to_owned(),
                }
            }
            None => v.to_string(),
        },
    }
}
