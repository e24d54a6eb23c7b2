//! CORS in a real browser: a page served from one origin fetches, in
//! headless Chromium (Debian's package, installed by scripts/setup), from a
//! public bucket on the gateway's origin. Where the bucket's CORS rules
//! allow the page's origin the browser lets the script read the object, a
//! range of it and the exposed headers (and a preflighted request passes);
//! a method the rules do not allow, and a bucket whose rules name another
//! origin, are blocked by the browser — the server's answer alone decides.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use support::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `page` to every request on a loopback port until dropped.
async fn serve_page(page: String) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let page = page.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = conn.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_on_another_origin_reads_only_what_cors_allows() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    let seg = support::bytes(200_000, 11);
    for bucket in ["vod", "closed"] {
        c.create_bucket().bucket(bucket).send().await.unwrap();
        c.put_object().bucket(bucket).key("seg.ts").body(ByteStream::from(seg.clone())).send().await.unwrap();
        let public = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
        );
        c.put_bucket_policy().bucket(bucket).policy(public).send().await.unwrap();
    }
    let gateway = cluster.endpoint(0);
    let page = format!(
        r#"<!doctype html><html><body><pre id="out">pending</pre><script>
const gw = "{gateway}";
async function attempt(url, init, read) {{
  try {{ const r = await fetch(url, init); return await read(r); }} catch (e) {{ return "blocked"; }}
}}
(async () => {{
  const out = {{}};
  out.get = await attempt(gw + "/vod/seg.ts", {{}}, async r => r.status + ":" + (await r.arrayBuffer()).byteLength);
  out.range = await attempt(gw + "/vod/seg.ts", {{headers: {{"Range": "bytes=100-199"}}}},
    async r => r.status + ":" + (await r.arrayBuffer()).byteLength + ":" + r.headers.get("Content-Range") + ":" + (r.headers.get("ETag") !== null));
  out.preflighted = await attempt(gw + "/vod/seg.ts", {{headers: {{"x-amz-meta-player": "p"}}}}, async r => String(r.status));
  out.put = await attempt(gw + "/vod/evil.ts", {{method: "PUT", body: "evil"}}, async r => String(r.status));
  out.other = await attempt(gw + "/closed/seg.ts", {{}}, async r => String(r.status));
  document.getElementById("out").textContent = JSON.stringify(out);
}})();
</script></body></html>"#
    );
    let (port, server) = serve_page(page).await;
    let origin = format!("http://127.0.0.1:{port}");
    c.put_bucket_cors().bucket("vod").cors_configuration(support::player_cors(&origin)).send().await.unwrap();
    c.put_bucket_cors()
        .bucket("closed")
        .cors_configuration(support::player_cors("https://elsewhere.example"))
        .send()
        .await
        .unwrap();

    let profile = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{origin}/"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chromium does not run: scripts/setup installs Debian's chromium");
    // The page's fetches run while Chromium is up; wait without blocking
    // the runtime (the gateway and the page server run on it).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = child.wait_with_output().unwrap();
    server.abort();
    let dom = String::from_utf8_lossy(&out.stdout);
    let json = dom
        .split("<pre id=\"out\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or_else(|| panic!("no result in the page: {dom}\n{}", String::from_utf8_lossy(&out.stderr)));
    let got: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(got["get"], "200:200000", "{got}");
    assert_eq!(got["range"], "206:100:bytes 100-199/200000:true", "{got}");
    assert_eq!(got["preflighted"], "200", "{got}");
    assert_eq!(got["put"], "blocked", "{got}");
    assert_eq!(got["other"], "blocked", "{got}");
    let e = c.head_object().bucket("vod").key("evil.ts").send().await.unwrap_err();
    assert_eq!(support::status(&e), 404, "the blocked PUT stored nothing");
    cluster.shutdown().await;
}
