//! `tessera server` as a user runs it: a real process on a temp data dir,
//! driven by aws-sdk-s3; generated credentials printed once and reused;
//! SIGTERM shuts down cleanly; a restart keeps every object and every
//! bucket notification not yet delivered.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;

mod support;

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(files(&p)) } else { out.push(p) }
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server {
    child: Child,
    s3: u16,
}

/// A failed assertion must not leave the server running.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &std::path::Path, ports: [u16; 3], disks: usize) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["server", "--data"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{}", ports[0])])
        .args(["--meta-listen", &format!("127.0.0.1:{}", ports[1])])
        .args(["--datanode-listen", &format!("127.0.0.1:{}", ports[2])])
        .args(["--disks", &disks.to_string()])
        .env_remove("TESSERA_ROOT_ACCESS_KEY")
        .env_remove("TESSERA_ROOT_SECRET_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Server { child, s3: ports[0] }
}

/// Reads the banner up to the credentials; returns the lines.
fn banner(server: &mut Server) -> Vec<String> {
    use std::io::BufRead as _;
    let out = server.child.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(out).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Ready.");
        lines.push(line);
        if done {
            break;
        }
    }
    lines
}

fn stop(mut server: Server) {
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let start = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "tessera server exited with {status}");
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "tessera server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn client(port: u16, ak: &str, sk: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ak, sk, None, None, "t"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_server_runs_stops_and_restarts_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ports = [free_port(), free_port(), free_port()];
    let mut server = start(&data, ports, 4);
    let lines = banner(&mut server);
    let text = lines.join("\n");
    assert!(text.contains("erasure code: 2+2"), "{text}");
    // Transparent huge pages are off for the process (its memory; issue 24).
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    assert!(status.lines().any(|l| l.split_whitespace().eq(["THP_enabled:", "0"])), "{status}");
    let creds = std::fs::read_to_string(data.join("root-credentials")).unwrap();
    let mut it = creds.lines();
    let (ak, sk) = (it.next().unwrap().to_owned(), it.next().unwrap().to_owned());
    assert!(text.contains(&ak) && text.contains(&sk), "generated credentials are printed once");
    let c = client(server.s3, &ak, &sk);
    c.create_bucket().bucket("keep").send().await.unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    c.put_object().bucket("keep").key("big").body(ByteStream::from(big.clone())).send().await.unwrap();
    c.put_object().bucket("keep").key("small").body(ByteStream::from(b"small".to_vec())).send().await.unwrap();
    stop(server);

    // Restart: same credentials (not printed again), same objects.
    let mut server = start(&data, ports, 4);
    let text = banner(&mut server).join("\n");
    assert!(!text.contains(&sk), "the secret is printed only when generated");
    let c = client(server.s3, &ak, &sk);
    let got = c.get_object().bucket("keep").key("big").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), big);
    let got = c.get_object().bucket("keep").key("small").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), b"small");

    // The gateway reads its own datanode in-process; damage there is decoded
    // around (EC 2+2: one shard corrupt and one deleted leave two), and with
    // three shards gone the answer is 503, never wrong bytes.
    let shards: Vec<std::path::PathBuf> = (1..=4).flat_map(|d| files(&data.join(format!("disk{d}/shards")))).collect();
    assert_eq!(shards.len(), 4, "one shard file per disk: {shards:?}");
    let mut raw = std::fs::read(&shards[0]).unwrap();
    // Inside the first block (after the 64-byte header and the block's
    // hash): no stripe then has two good shards once a third is gone. (A
    // flip in the last block would leave the first stripes readable: the
    // answer would start, then break off, never carrying wrong bytes.)
    let at = 2000;
    raw[at] ^= 0x10;
    std::fs::write(&shards[0], raw).unwrap();
    std::fs::remove_file(&shards[1]).unwrap();
    let got = c.get_object().bucket("keep").key("big").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), big);
    let got = c.get_object().bucket("keep").key("big").range("bytes=1000000-1999999").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), &big[1_000_000..2_000_000]);
    std::fs::remove_file(&shards[2]).unwrap();
    let e = c.get_object().bucket("keep").key("big").send().await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(503), "{e:?}");
    stop(server);

    // A port in use is a one-line error and a non-zero exit.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["server", "--data"])
        .arg(dir.path().join("other"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen") && err.lines().count() == 1, "{err}");
}

/// A signed admin API call to the server on `port`: (status, JSON).
async fn admin(port: u16, method: &str, path: &str, body: &[u8], who: (&str, &str)) -> (u16, serde_json::Value) {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let path = format!("/tessera/admin/v1/{path}");
    let signed = support::sig::signed_headers(method, &addr.to_string(), &path, "", body, who.0, who.1);
    let len = body.len().to_string();
    let mut headers: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    headers.push(("content-length", &len));
    let (status, _, out) = support::raw_http(addr, method, &path, &headers, body).await;
    (status, serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null))
}

/// Bucket notifications are kept in the metadata service until delivered:
/// events of writes made while the webhook is down survive a `kill -9` of
/// the server and reach the webhook once both are back, each once after
/// de-duplication by sequencer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_events_survive_a_kill_and_a_restart() {
    use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ports = [free_port(), free_port(), free_port()];
    let hook_port = free_port(); // nothing listens there yet
    let mut server = start(&data, ports, 4);
    banner(&mut server);
    let creds = std::fs::read_to_string(data.join("root-credentials")).unwrap();
    let mut it = creds.lines();
    let (ak, sk) = (it.next().unwrap().to_owned(), it.next().unwrap().to_owned());
    let body = format!(r#"{{"url":"http://127.0.0.1:{hook_port}/events"}}"#);
    let (st, out) = admin(server.s3, "PUT", "notify-targets/hook", body.as_bytes(), (&ak, &sk)).await;
    assert_eq!(st, 200, "{out}");
    let c = client(server.s3, &ak, &sk);
    c.create_bucket().bucket("feed").send().await.unwrap();
    let queue = QueueConfiguration::builder()
        .queue_arn("arn:tessera:sqs::hook:webhook")
        .events(Event::S3ObjectCreated)
        .build()
        .unwrap();
    let cfg = NotificationConfiguration::builder().queue_configurations(queue).build();
    c.put_bucket_notification_configuration().bucket("feed").notification_configuration(cfg).send().await.unwrap();
    for k in ["a", "b", "c"] {
        c.put_object().bucket("feed").key(k).body(ByteStream::from_static(b"x")).send().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // a few failed posts
    drop(server); // kill -9

    // The webhook comes up, then the server.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", hook_port)).await.unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let seen = got.clone();
    let hook = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
                    && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&buf[end + 4..])
                {
                    seen.lock().unwrap().push(v);
                    break;
                }
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        }
    });
    let mut server = start(&data, ports, 4);
    banner(&mut server);
    let start_at = Instant::now();
    loop {
        let keys: std::collections::BTreeMap<String, String> = got
            .lock()
            .unwrap()
            .iter()
            .map(|v| {
                let o = &v["Records"][0]["s3"]["object"];
                (
                    o["sequencer"].as_str().unwrap_or_default().to_owned(),
                    o["key"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let mut keys: Vec<String> = keys.into_values().collect();
        keys.sort();
        if keys.len() >= 3 {
            assert_eq!(keys, ["a", "b", "c"], "every event once after de-duplication");
            break;
        }
        assert!(start_at.elapsed() < Duration::from_secs(30), "after the restart the webhook holds {keys:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The deliveries are counted in the metrics.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", server.s3).parse().unwrap();
    let (_, _, text) = support::raw_http(addr, "GET", "/tessera/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&text);
    let delivered = text
        .lines()
        .find_map(|l| l.strip_prefix("tessera_metadata_notify_events_total{result=\"delivered\"} "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(delivered.is_some_and(|n| n >= 3), "delivered: {delivered:?}");
    hook.abort();
    stop(server);
}
