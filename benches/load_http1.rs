//! The load tool's second client: plain hyper HTTP/1.1, one keep-alive
//! connection per stream (TCP_NODELAY on), requests signed with SigV4 and
//! UNSIGNED-PAYLOAD. It shares nothing with aws-sdk-s3's connection pool,
//! retry loop or body handling, so a server that is fast for one client and
//! slow for the other shows up as two different figures.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;

/// Where to send requests and with which key.
#[derive(Clone)]
pub struct Http1 {
    /// `host:port` of the endpoint.
    host: String,
    /// TLS for an `https://` endpoint.
    tls: Option<tokio_rustls::TlsConnector>,
    access_key: String,
    secret_key: String,
}

/// One keep-alive connection; reopened when the server closes it.
pub struct Conn {
    target: Http1,
    send: Option<SendRequest<Full<Bytes>>>,
}

/// A path as SigV4's canonical URI wants it (`/` kept between segments).
fn encode_path(s: &str) -> String {
    encode(s, b"-._~/")
}

/// Percent-encodes every byte but ASCII letters, digits and `keep`.
fn encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Http1 {
    /// A client for `endpoint` (`http://host:port`, or `https://host:port`
    /// trusting the certificates in `ca_bundle`).
    pub fn new(
        endpoint: &str,
        access_key: &str,
        secret_key: &str,
        ca_bundle: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let (rest, tls) = match (endpoint.strip_prefix("http://"), endpoint.strip_prefix("https://")) {
            (Some(rest), _) => (rest, None),
            (_, Some(rest)) => {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject as _;
                let bundle = ca_bundle.context("an https:// endpoint needs --ca-bundle")?;
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(bundle)? {
                    roots.add(c?)?;
                }
                let config = rustls::ClientConfig::builder_with_provider(tessera_rpc::tls::provider())
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                (rest, Some(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))))
            }
            _ => bail!("{endpoint}: an endpoint is http:// or https://"),
        };
        let host = rest.trim_end_matches('/').to_owned();
        Ok(Self { host, tls, access_key: access_key.to_owned(), secret_key: secret_key.to_owned() })
    }

    /// A connection of its own (opened at its first request).
    pub fn conn(&self) -> Conn {
        Conn { target: self.clone(), send: None }
    }

    /// A signed request; `query` is the canonical query string (sorted,
    /// encoded), sent as it is.
    fn request(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Bytes,
    ) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let date = tessera_common::amz_date(now);
        let hash = "UNSIGNED-PAYLOAD";
        let signed = tessera_common::sigv4::SignedRequest {
            method,
            path,
            query,
            host: &self.host,
            date: &date,
            payload_hash: hash,
        };
        let auth = tessera_common::sigv4::authorization(&self.access_key, &self.secret_key, &signed);
        Ok(hyper::Request::builder()
            .method(method)
            .uri(if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") })
            .header("host", &self.host)
            .header("x-amz-date", date)
            .header("x-amz-content-sha256", hash)
            .header("authorization", auth)
            .header("content-length", body.len())
            .body(Full::new(body))?)
    }
}

impl Conn {
    async fn sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        let open = match &mut self.send {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !open {
            let tcp = tokio::net::TcpStream::connect(&self.target.host).await.context("connect")?;
            tcp.set_nodelay(true)?;
            let send = match &self.target.tls {
                None => {
                    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    send
                }
                Some(tls) => {
                    let host = self.target.host.rsplit_once(':').map_or(self.target.host.as_str(), |(h, _)| h);
                    let name = rustls::pki_types::ServerName::try_from(host.to_owned())?;
                    let stream = tls.connect(name, tcp).await.context("TLS handshake")?;
                    let (send, conn) =
                        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    send
                }
            };
            self.send = Some(send);
        }
        self.send.as_mut().context("no connection")
    }

    /// PUT `body` at `bucket/key`.
    pub async fn put(&mut self, bucket: &str, key: &str, body: Bytes) -> anyhow::Result<()> {
        let req = self.target.request("PUT", &encode_path(&format!("/{bucket}/{key}")), "", body)?;
        let resp = self.sender().await?.send_request(req).await.context("PUT")?;
        let status = resp.status();
        let text = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("PUT {bucket}/{key}: {status} {}", String::from_utf8_lossy(&text));
        }
        Ok(())
    }

    /// GET `bucket/key`, comparing every byte with `want` as it arrives.
    pub async fn get_compare(&mut self, bucket: &str, key: &str, want: &[u8]) -> anyhow::Result<()> {
        let req = self.target.request("GET", &encode_path(&format!("/{bucket}/{key}")), "", Bytes::new())?;
        let resp = self.sender().await?.send_request(req).await.context("GET")?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let text = body.collect().await?.to_bytes();
            bail!("GET {bucket}/{key}: {status} {}", String::from_utf8_lossy(&text));
        }
        let mut at = 0usize;
        while let Some(frame) = body.frame().await {
            if let Ok(chunk) = frame.context("GET body")?.into_data() {
                if want.get(at..at + chunk.len()) != Some(&chunk[..]) {
                    bail!("GET {bucket}/{key} returned different bytes at {at}");
                }
                at += chunk.len();
            }
        }
        if at != want.len() {
            bail!("GET {bucket}/{key} returned {at} of {} bytes", want.len());
        }
        Ok(())
    }
}

impl Conn {
    /// One ListObjectsV2 page of up to 1,000 keys under `prefix`, after
    /// `start_after` or from a continuation token: the keys it held and the
    /// next page's token. The XML is not parsed into objects, only the
    /// `<Key>` elements counted and the token picked out, so the client
    /// spends little of the machine's CPU on it.
    pub async fn list_page(
        &mut self,
        bucket: &str,
        prefix: &str,
        from: ListFrom<'_>,
    ) -> anyhow::Result<(u64, Option<String>)> {
        let mut params =
            vec![("list-type", "2".to_owned()), ("max-keys", "1000".to_owned()), ("prefix", encode(prefix, b"-._~"))];
        match from {
            ListFrom::StartAfter(k) => params.push(("start-after", encode(k, b"-._~"))),
            ListFrom::Token(t) => params.push(("continuation-token", encode(t, b"-._~"))),
        }
        params.sort();
        let query = params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let req = self.target.request("GET", &encode_path(&format!("/{bucket}")), &query, Bytes::new())?;
        let resp = self.sender().await?.send_request(req).await.context("LIST")?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        let text = std::str::from_utf8(&body).context("LIST reply is not UTF-8")?;
        if !status.is_success() {
            bail!("LIST {bucket}: {status} {text}");
        }
        let keys = text.matches("<Key>").count() as u64;
        let token = text
            .split_once("<NextContinuationToken>")
            .and_then(|(_, rest)| rest.split_once("</NextContinuationToken>"))
            .map(|(t, _)| t.to_owned());
        Ok((keys, token))
    }
}

/// Where a listed page starts.
pub enum ListFrom<'a> {
    /// After this key.
    StartAfter(&'a str),
    /// Where the previous page's continuation token says.
    Token(&'a str),
}
