//! The web console in a real browser: Debian's Chromium, driven through
//! ChromeDriver (the W3C WebDriver protocol) against a cluster's gateway.
//! The test logs in with an access key (and is refused with a wrong
//! secret), reads the cluster's status, browses a bucket, uploads a file,
//! shares an object by a presigned URL that then works without a key,
//! deletes an object, creates an access key that then works, and pauses the
//! rebalancers; each view is screenshotted and the elements it must show
//! are checked to be displayed inside the screenshot.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use serde_json::{Value, json};
use support::{Cluster, add_key};

const ROOT: &str = "ROOTKEY00000000000001";
const ROOT_SECRET: &str = "root-secret-00000000000000000";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session in headless Chromium.
struct Browser {
    driver: std::process::Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
    shots: std::path::PathBuf,
}

/// One WebDriver exchange: (status, the answer's JSON). ChromeDriver
/// keeps the connection open after answering, so the answer is read by its
/// Content-Length.
async fn webdriver(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let exchange = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buf.len() >= end + 4 + len {
                    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
                    return (status, serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap_or(Value::Null));
                }
            }
            let mut chunk = [0u8; 65536];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "WebDriver closed the connection mid-answer");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), exchange).await.expect("WebDriver did not answer in 60 s")
}

impl Browser {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = webdriver(self.addr, method, path, body.as_ref()).await;
        assert_eq!(status, 200, "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver does not run: scripts/setup installs Debian's chromium-driver");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let profile = tempfile::tempdir().unwrap();
        let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
        std::fs::create_dir_all(&shots).unwrap();
        let mut b = Browser { driver, addr, session: String::new(), _profile: profile, shots };
        let start = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok()
                && webdriver(addr, "GET", "/status", None).await.1["value"]["ready"] == true
            {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--window-size=1280,1000",
                         format!("--user-data-dir={}", b._profile.path().display())],
            },
        }}});
        let made = b.call("POST", "/session", Some(caps)).await;
        b.session = made["sessionId"].as_str().unwrap().to_owned();
        b
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}/{rest}", self.session)
    }

    async fn go(&self, url: &str) {
        self.call("POST", &self.path("url"), Some(json!({"url": url}))).await;
    }

    /// The first element `css` finds, waiting up to 20 s for it to be displayed.
    async fn find(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            let body = json!({"using": "css selector", "value": css});
            let (status, out) = webdriver(self.addr, "POST", &self.path("element"), Some(&body)).await;
            if status == 200 {
                let id = out["value"][ELEMENT].as_str().unwrap().to_owned();
                if self.call("GET", &self.path(&format!("element/{id}/displayed")), None).await == true {
                    return id;
                }
            }
            if start.elapsed() > Duration::from_secs(20) {
                let error = self.text("#error").await;
                panic!("no displayed element {css} after 20 s (error banner: {error:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An element's text, without waiting ("" when there is none).
    async fn text(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';";
        let v = self.call("POST", &self.path("execute/sync"), Some(json!({"script": script, "args": [css]}))).await;
        v.as_str().unwrap_or("").to_owned()
    }

    /// Waits up to 20 s for `css`'s text to contain `want`.
    async fn wait_text(&self, css: &str, want: &str) -> String {
        let start = Instant::now();
        loop {
            let t = self.text(css).await;
            if t.contains(want) {
                return t;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{css} never showed {want:?}; it shows {t:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call("POST", &self.path(&format!("element/{id}/click")), Some(json!({}))).await;
    }

    async fn type_in(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call("POST", &self.path(&format!("element/{id}/clear")), Some(json!({}))).await;
        self.call("POST", &self.path(&format!("element/{id}/value")), Some(json!({"text": text}))).await;
    }

    async fn value(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call("GET", &self.path(&format!("element/{id}/property/value")), None).await.as_str().unwrap().to_owned()
    }

    /// Accepts the page's confirm() dialog once it is open.
    async fn accept_dialog(&self) {
        let start = Instant::now();
        loop {
            let (status, _) = webdriver(self.addr, "POST", &self.path("alert/accept"), Some(&json!({}))).await;
            if status == 200 {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no dialog opened");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Screenshots the window into `name`.png and checks that every
    /// element of `expected` is displayed, with a size, inside it.
    async fn screenshot(&self, name: &str, expected: &[&str]) {
        let png = self.call("GET", &self.path("screenshot"), None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}: not a PNG");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap()) as f64;
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap()) as f64;
        assert!(width >= 800.0 && height >= 600.0, "{name}: a {width}x{height} screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), &png).unwrap();
        for css in expected {
            let id = self.find(css).await;
            let r = self.call("GET", &self.path(&format!("element/{id}/rect")), None).await;
            let (x, y, w, h) = (
                r["x"].as_f64().unwrap(),
                r["y"].as_f64().unwrap(),
                r["width"].as_f64().unwrap(),
                r["height"].as_f64().unwrap(),
            );
            assert!(w > 0.0 && h > 0.0, "{name}: {css} has no size");
            assert!(
                x >= 0.0 && y >= 0.0 && x < width && y < height,
                "{name}: {css} at ({x}, {y}) is outside the {width}x{height} screenshot"
            );
        }
    }

    async fn stop(mut self) {
        webdriver(self.addr, "DELETE", &format!("/session/{}", self.session), None).await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_in_chromium() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let root = add_key(&cluster, ROOT, ROOT_SECRET, true).await;
    root.create_bucket().bucket("media").send().await.unwrap();
    for key in ["seg1.ts", "hls/index.m3u8"] {
        root.put_object().bucket("media").key(key).body(ByteStream::from_static(b"#EXTM3U")).send().await.unwrap();
    }
    let gw = cluster.endpoint(0);
    let b = Browser::start().await;

    // A wrong secret is refused with S3's code; nothing else opens.
    b.go(&format!("{gw}/tessera/console")).await;
    b.type_in("#access-key", ROOT).await;
    b.type_in("#secret-key", "not-the-secret").await;
    b.click("#login").await;
    b.wait_text("#login-error", "SignatureDoesNotMatch").await;
    assert_eq!(b.text("#status-summary").await, "");

    // Status: members, datanodes and disks.
    b.type_in("#secret-key", ROOT_SECRET).await;
    b.click("#login").await;
    b.wait_text("#status-summary", "leader 1").await;
    b.wait_text("#disks tbody", "in").await;
    let disks = b
        .call(
            "POST",
            &b.path("execute/sync"),
            Some(json!({
        "script": "return document.querySelectorAll('#disks tbody tr').length;", "args": []})),
        )
        .await;
    assert_eq!(disks, 6);
    b.wait_text("#nodes tbody", "1/1").await;
    assert!(!b.text("#nodes tbody").await.contains("1/2"), "each datanode has one disk");
    assert!(b.text("#redundancy").await.contains("full redundancy"));
    b.screenshot("status", &["#members", "#nodes", "#disks", "#redundancy", "#nav"]).await;

    // Buckets, then the object browser: a folder and an object.
    b.click("#nav button[data-view=buckets]").await;
    b.click("a.bucket[data-bucket=media]").await;
    b.wait_text("#objects tbody", "seg1.ts").await;
    b.wait_text("#objects tbody", "hls/").await;
    b.wait_text("#bucket-usage", "2 objects").await;
    b.screenshot("browser", &["#objects", "#upload-file", "#crumbs", "span.object[data-key='seg1.ts']"]).await;

    // Upload a file from disk.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clip.ts");
    let clip = support::bytes(300_000, 7);
    std::fs::write(&file, &clip).unwrap();
    let input = b.find("#upload-file").await;
    b.call("POST", &b.path(&format!("element/{input}/value")), Some(json!({"text": file.to_str().unwrap()}))).await;
    b.click("#upload").await;
    b.wait_text("#upload-state", "1 uploaded").await;
    b.wait_text("#objects tbody", "clip.ts").await;
    assert_eq!(support::get_all(&root, "media", "clip.ts").await, clip);
    b.wait_text("#bucket-usage", "3 objects").await;

    // Share it: the presigned URL works with no key at all.
    b.click("tr:has(span.object[data-key='clip.ts']) button.share").await;
    let url = b.value("#share-url").await;
    assert!(url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=604800"), "{url}");
    let target = url.strip_prefix(&gw).unwrap();
    let (status, _, body) = support::raw_http(cluster.gateway_addrs[0], "GET", target, &[], b"").await;
    assert_eq!(status, 200);
    assert_eq!(body, clip);
    b.screenshot("share", &["#share-url", "#objects"]).await;

    // Delete an object (after the confirm dialog).
    b.click("tr:has(span.object[data-key='seg1.ts']) button.delete").await;
    b.accept_dialog().await;
    let start = Instant::now();
    while root.head_object().bucket("media").key("seg1.ts").send().await.is_ok() {
        assert!(start.elapsed() < Duration::from_secs(20), "seg1.ts was not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A new key, shown once, that then works.
    b.click("#nav button[data-view=keys]").await;
    b.wait_text("#keys tbody", ROOT).await;
    b.type_in("#key-description", "made in the console").await;
    b.click("#create-key").await;
    b.wait_text("#keys tbody", "made in the console").await;
    let (id, secret) = (b.text("#new-access-key").await, b.text("#new-secret").await);
    assert_eq!(secret.len(), 40, "{secret:?}");
    let made = cluster.client_with(0, &id, &secret);
    made.list_buckets().send().await.unwrap();
    b.screenshot("keys", &["#keys", "#new-key", "#key-form"]).await;

    // Background work: pause the rebalancers; the API says so.
    b.click("#nav button[data-view=workers]").await;
    b.wait_text("#work tbody", "rebalance").await;
    b.screenshot("workers", &["#work", "#workers", "button.pause[data-kind=rebalance]"]).await;
    b.click("button.pause[data-kind=rebalance]").await;
    b.wait_text("#work tbody", "Start").await;
    let w = support::admin_call(&cluster, "GET", "workers", b"", (ROOT, ROOT_SECRET)).await;
    assert_eq!(w.1["rates"]["rebalance_paused"], true, "{}", w.1);

    // Log out: the login form again, and the secret gone from the tab.
    b.click("#logout").await;
    b.find("#access-key").await;
    let stored = b
        .call(
            "POST",
            &b.path("execute/sync"),
            Some(json!({
        "script": "return sessionStorage.getItem('tessera-creds');", "args": []})),
        )
        .await;
    assert_eq!(stored, Value::Null);

    b.stop().await;
    cluster.shutdown().await;
}
