//! TLS on the S3 port of a real `tessera server` process: the certificate
//! is chosen by SNI, replaced on disk it is served to new connections
//! without a restart (by the file check, and at once on SIGHUP) while open
//! connections keep working, `aws:SecureTransport` tells HTTPS from the
//! plain port, and bad certificate settings stop the start with one line.
//! (aws-cli and boto3 over HTTPS with `--ca-bundle` run in
//! scripts/test-clients.)

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

const AK: &str = "TSTLSTESTKEY00000001";
const SK: &str = "tls-test-secret-key-000000000000000001";

/// A certificate for `names` written as `<dir>/<stem>.crt` and `.key`;
/// returns its DER.
fn make_cert(dir: &Path, stem: &str, names: &[&str]) -> CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    // The key first: for a moment the pair on disk does not match, which
    // the server must ride out (it keeps the old pair until both agree).
    std::fs::write(dir.join(format!("{stem}.key")), made.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}.crt")), made.cert.pem()).unwrap();
    made.cert.der().clone()
}

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &Path, tls_args: &[String], ports: [u16; 4]) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["server", "--data"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{}", ports[0])])
        .args(["--plain-listen", &format!("127.0.0.1:{}", ports[3])])
        .args(["--meta-listen", &format!("127.0.0.1:{}", ports[1])])
        .args(["--datanode-listen", &format!("127.0.0.1:{}", ports[2])])
        .args(["--disks", "3"])
        .args(tls_args)
        .env("TESSERA_ROOT_ACCESS_KEY", AK)
        .env("TESSERA_ROOT_SECRET_KEY", SK)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Server { child }
}

/// A TLS client trusting exactly `trusted`.
fn connector(trusted: &[CertificateDer<'static>]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in trusted {
        roots.add(c.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Opens a TLS connection naming `sni`; returns it and the leaf the server presented.
async fn open(port: u16, sni: &str, trusted: &[CertificateDer<'static>]) -> (Tls, CertificateDer<'static>) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let tls = connector(trusted).connect(name, tcp).await.unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned();
    (tls, leaf)
}

/// One keep-alive HTTP/1.1 GET on `conn`; returns the status and body.
async fn get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(conn: &mut S, path: &str) -> (u16, Vec<u8>) {
    let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed mid-answer: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        let len: usize =
            head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
        if buf.len() >= end + 4 + len {
            let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
            return (status, buf[end + 4..end + 4 + len].to_vec());
        }
    }
}

async fn wait_ready(plain: u16) {
    let start = Instant::now();
    loop {
        if let Ok(mut c) = tokio::net::TcpStream::connect(("127.0.0.1", plain)).await
            && get(&mut c, "/tessera/health/ready").await.0 == 200
        {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "server not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until a new connection naming `sni` is presented `want`.
async fn until_presented(
    port: u16,
    sni: &str,
    trusted: &[CertificateDer<'static>],
    want: &CertificateDer<'_>,
    within: Duration,
) {
    let start = Instant::now();
    loop {
        if open(port, sni, trusted).await.1 == *want {
            return;
        }
        assert!(start.elapsed() < within, "{sni}: the new certificate was not served within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn files(dir: &Path, stems: &[&str]) -> Vec<String> {
    let list = |ext: &str| {
        stems.iter().map(|s| dir.join(format!("{s}.{ext}")).display().to_string()).collect::<Vec<_>>().join(",")
    };
    vec!["--tls-cert".into(), list("crt"), "--tls-key".into(), list("key")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_picks_by_sni_reloads_certificates_and_sets_secure_transport() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let a1 = make_cert(&certs, "a", &["localhost", "127.0.0.1"]);
    let b1 = make_cert(&certs, "b", &["s3.b.example", "*.s3.b.example"]);
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let mut args = files(&certs, &["a", "b"]);
    args.extend(["--tls-reload-interval".into(), "300ms".into()]);
    let server = start(&dir.path().join("data"), &args, ports);
    let (https, plain) = (ports[0], ports[3]);
    wait_ready(plain).await;
    let a2 = {
        // SNI: each name gets its own certificate; an unknown one the first.
        let trusted = [a1.clone(), b1.clone()];
        assert_eq!(open(https, "localhost", &trusted).await.1, a1);
        assert_eq!(open(https, "s3.b.example", &trusted).await.1, b1);
        assert_eq!(open(https, "video.s3.b.example", &trusted).await.1, b1);
        let (mut conn, _) = open(https, "localhost", &trusted).await;
        assert_eq!(get(&mut conn, "/tessera/health/live").await.0, 200);

        // A plain-HTTP request to the HTTPS port fails its handshake and is closed.
        let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", https)).await.unwrap();
        raw.write_all(b"GET /tessera/health/live HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut sink = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut sink)).await.unwrap();
        assert!(read.is_err() || !String::from_utf8_lossy(&sink).contains("200 OK"), "plain HTTP answered on TLS");

        // Replaced on disk: new connections get the new certificate (the
        // file check), the open one keeps working.
        let a2 = make_cert(&certs, "a", &["localhost", "127.0.0.1"]);
        let trusted = [a1.clone(), a2.clone(), b1.clone()];
        until_presented(https, "localhost", &trusted, &a2, Duration::from_secs(15)).await;
        assert_eq!(get(&mut conn, "/tessera/health/live").await.0, 200, "a connection opened before the reload");
        assert_eq!(open(https, "s3.b.example", &trusted).await.1, b1, "the other name is untouched");
        a2
    };

    // aws:SecureTransport: a bucket readable anonymously over HTTPS only.
    let conf = aws_sdk_s3::Config::builder()
        .endpoint_url(format!("http://127.0.0.1:{plain}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(AK, SK, None, None, "t"))
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    s3.create_bucket().bucket("media").send().await.unwrap();
    s3.put_object()
        .bucket("media")
        .key("seg.ts")
        .body(ByteStream::from(b"segment-bytes".to_vec()))
        .send()
        .await
        .unwrap();
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
        "Resource":"arn:aws:s3:::media/*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#;
    s3.put_bucket_policy().bucket("media").policy(policy).send().await.unwrap();
    let (mut tls, _) = open(https, "localhost", std::slice::from_ref(&a2)).await;
    assert_eq!(get(&mut tls, "/media/seg.ts").await, (200, b"segment-bytes".to_vec()), "anonymous GET over HTTPS");
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", plain)).await.unwrap();
    assert_eq!(get(&mut tcp, "/media/seg.ts").await.0, 403, "anonymous GET over plain HTTP");

    // The admin CLI over HTTPS: with the certificate as its CA bundle it
    // works; with another CA's it refuses the server (exit status 3).
    let admin = |bundle: &Path| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["admin", "key", "list", "--json", "--endpoint", &format!("https://localhost:{https}")])
            .args(["--admin-access-key", AK, "--admin-secret-key", SK, "--ca-bundle"])
            .arg(bundle)
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };
    let out = admin(&certs.join("a.crt"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(AK));
    let out = admin(&certs.join("b.crt"));
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).to_lowercase().contains("certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);

    // Without the file check (an hour between looks), SIGHUP reloads.
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let mut args = files(&certs, &["a"]);
    args.extend(["--tls-reload-interval".into(), "1h".into()]);
    let server = start(&dir.path().join("data2"), &args, ports);
    wait_ready(ports[3]).await;
    let a3 = make_cert(&certs, "a", &["localhost"]);
    let trusted = [a2.clone(), a3.clone()];
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(open(ports[0], "localhost", &trusted).await.1, a2, "no reload without a signal");
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    until_presented(ports[0], "localhost", &trusted, &a3, Duration::from_secs(5)).await;
    drop(server);
}

fn start_fails(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["server", "--data"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with {args:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    err
}

#[test]
fn bad_tls_settings_stop_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    make_cert(dir.path(), "a", &["localhost"]);
    make_cert(dir.path(), "b", &["localhost"]);
    let p = |f: &str| -> PathBuf { dir.path().join(f) };
    let (a_crt, b_key) = (p("a.crt").display().to_string(), p("b.key").display().to_string());
    let e = start_fails(&["--tls-cert", &a_crt, "--tls-key", &b_key]);
    assert!(e.contains("does not belong to the certificate"), "{e}");
    let e = start_fails(&["--tls-cert", &a_crt]);
    assert!(e.contains("one key per certificate"), "{e}");
    let e = start_fails(&["--tls-cert", &b_key, "--tls-key", &b_key]);
    assert!(e.contains("no PEM certificate"), "{e}");
    let e = start_fails(&["--plain-listen", "127.0.0.1:1"]);
    assert!(e.contains("--tls-cert"), "{e}");
    let e = start_fails(&["--tls-self-signed", "--tls-cert", &a_crt, "--tls-key", &b_key]);
    assert!(e.contains("not both"), "{e}");
}
