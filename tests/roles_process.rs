//! The cluster roles as processes: bad input at start-up is one clear line
//! on stderr and a non-zero exit, never a panic; and a small real cluster
//! (3 metadata nodes joined with `--join`, 1 datanode, 1 gateway) serves S3,
//! health and metrics, survives losing one metadata node, and stops on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tessera() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA_") {
            c.env_remove(k);
        }
    }
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs to completion (bounded) and returns the output.
fn run(cmd: &mut Command) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.wait_with_output().unwrap()
}

/// Asserts a one-line error containing `want` and exit status 1 (after
/// the warning `--insecure-cluster` prints, when given).
fn fails_with(out: Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {err}");
    assert!(!err.contains("panicked"), "a panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty() && !l.contains("WARNING, INSECURE")).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].contains(want), "`{want}` expected in: {err}");
}

#[test]
fn bad_start_up_input_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();

    // An unknown key in the config file.
    let cfg = dir.path().join("gw.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nmeta = [\"http://127.0.0.1:1\"]\nlisen = 3\n").unwrap();
    fails_with(run(tessera().args(["gateway", "--config"]).arg(&cfg)), "line 3: unknown field `lisen`");

    // A bad value in a flag is clap's error (exit 2), still no panic.
    let out = run(tessera().args(["gateway", "--ec", "4-2", "--meta", "http://127.0.0.1:1"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an erasure code"));

    // A required setting missing.
    fails_with(run(tessera().args(["meta"])), "--node-id (TESSERA_NODE_ID) is required");

    // An unreachable metadata address (nothing listens on the port).
    let dead = format!("http://127.0.0.1:{}", free_port());
    let disk = format!("1:{}", dir.path().join("d1").display());
    let http = format!("127.0.0.1:{}", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    // A datanode that would reach the metadata service at `dead`.
    let datanode = |extra: &[&str]| {
        let mut c = tessera();
        c.args(["datanode", "--node-id", "1", "--disk", &disk, "--meta", &dead, "--listen", &listen])
            .args(["--http-listen", &http, "--startup-timeout", "1s"])
            .args(extra);
        run(&mut c)
    };
    let started = Instant::now();
    fails_with(datanode(&["--insecure-cluster"]), "cannot reach the metadata service");
    assert!(started.elapsed() < Duration::from_secs(10), "gave up after {:?}", started.elapsed());
    // A metadata address that is not a URL.
    fails_with(
        run(tessera().args(["gateway", "--meta", "127.0.0.1:9001", "--listen", "127.0.0.1:0", "--insecure-cluster"])),
        "is not a metadata address",
    );
    // A cluster role without a certificate, unless told to run insecure.
    fails_with(
        run(tessera().args(["gateway", "--meta", &dead, "--listen", "127.0.0.1:0"])),
        "give --cluster-certs DIR",
    );
    // A certificate of another role.
    let ca = dir.path().join("ca");
    assert!(run(tessera().args(["cert", "ca", "--dir"]).arg(&ca)).status.success());
    fails_with(run(tessera().args(["cert", "ca", "--dir"]).arg(&ca)), "already holds a CA");
    let gw_certs = dir.path().join("gw-certs");
    let made = run(tessera()
        .args(["cert", "node", "--role", "gateway", "--name", "g", "--ca"])
        .arg(&ca)
        .arg("--out")
        .arg(&gw_certs));
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let gw_certs = gw_certs.display().to_string();
    fails_with(datanode(&["--cluster-certs", &gw_certs]), "is a gateway certificate; this node is a datanode");

    // A data folder that cannot be created or written.
    fails_with(run(tessera().args(["server", "--data", "/proc/tessera-cannot-write"])), "data folder");

    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    fails_with(run(tessera().args(["gateway", "--listen", &addr, "--meta", &dead])), "cannot listen on");
    let data = dir.path().join("server");
    let out = run(tessera().args(["server", "--data"]).arg(&data).args(["--listen", &addr]));
    fails_with(out, "cannot listen on");

    // Precedence: flags > TESSERA_* > file > defaults, seen through which
    // (taken) address the gateway fails to bind.
    let taken2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr2 = taken2.local_addr().unwrap().to_string();
    let cfg = dir.path().join("precedence.toml");
    std::fs::write(&cfg, format!("listen = \"{addr}\"\nmeta = [\"{dead}\"]\n")).unwrap();
    let gw = || {
        let mut c = tessera();
        c.args(["gateway", "--config"]).arg(&cfg);
        c
    };
    fails_with(run(&mut gw()), &format!("cannot listen on {addr} "));
    fails_with(run(gw().env("TESSERA_LISTEN", &addr2)), &format!("cannot listen on {addr2} "));
    fails_with(run(gw().env("TESSERA_LISTEN", &addr2).args(["--listen", &addr])), &format!("cannot listen on {addr} "));
    // TESSERA_CONFIG names the file too.
    let mut c = tessera();
    fails_with(run(c.arg("gateway").env("TESSERA_CONFIG", &cfg)), &format!("cannot listen on {addr} "));
}

/// A child process killed (and reaped) on drop, so a failed assertion
/// leaves nothing running.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn spawn(cmd: &mut Command, log: &std::path::Path) -> Proc {
        let f = std::fs::File::create(log).unwrap();
        Proc(cmd.stdout(f.try_clone().unwrap()).stderr(f).spawn().unwrap())
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status().unwrap();
        assert!(sent.success());
        let start = Instant::now();
        loop {
            if let Some(st) = self.0.try_wait().unwrap() {
                return st;
            }
            assert!(start.elapsed() < Duration::from_secs(40), "no exit 40 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

fn wait_ready(addr: &str, what: &str) {
    let start = Instant::now();
    while http_get(addr, "/tessera/health/ready").map(|r| r.0) != Some(200) {
        assert!(start.elapsed() < Duration::from_secs(60), "{what} not ready on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An S3 client for the gateway at `addr` (plain HTTP, path style).
fn s3_client(addr: &str, ak: &str, sk: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{Credentials, Region};
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .endpoint_url(format!("http://{addr}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ak, sk, None, None, "test"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

fn metric(addr: &str, name: &str) -> Option<f64> {
    let (_, body) = http_get(addr, "/tessera/metrics")?;
    body.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_metadata_cluster_with_a_datanode_and_a_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let grpc: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let ops: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let urls: Vec<String> = grpc.iter().map(|a| format!("http://{a}")).collect();
    let (ak, sk) = ("TSROLESTEST", "roles-test-secret-key");
    // Mutual TLS inside: a CA and a certificate per node (`tessera cert`).
    let ca = p("ca");
    assert!(run(tessera().args(["cert", "ca", "--dir"]).arg(&ca)).status.success());
    let certs = |role: &str, name: &str| {
        let out = p(&format!("certs-{name}"));
        let made = run(tessera()
            .args(["cert", "node", "--role", role, "--name", name, "--ca"])
            .arg(&ca)
            .arg("--out")
            .arg(&out));
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        out
    };
    let mut metas = Vec::new();
    for i in 0..3 {
        let mut c = tessera();
        c.args(["meta", "--node-id", &(i + 1).to_string(), "--listen", &grpc[i], "--http-listen", &ops[i]])
            .args(["--log-format", "json"])
            .arg("--data")
            .arg(p(&format!("meta{i}")))
            .arg("--cluster-certs")
            .arg(certs("meta", &format!("meta{i}")))
            .args(["--raft-heartbeat", "100ms", "--election-timeout-min", "400ms", "--election-timeout-max", "800ms"]);
        if i == 0 {
            c.arg("--bootstrap").env("TESSERA_ROOT_ACCESS_KEY", ak).env("TESSERA_ROOT_SECRET_KEY", sk);
        } else {
            c.args(["--join", &urls[0]]);
        }
        metas.push(Proc::spawn(&mut c, &p(&format!("meta{i}.log"))));
    }
    // Every node ready, and node 1 sees three voters.
    for (i, a) in ops.iter().enumerate() {
        wait_ready(a, &format!("meta{}", i + 1));
    }
    // A client that never finishes its request headers on a health/metrics
    // port is cut off (checked beside the rest of the test).
    let stalled = {
        let addr = ops[1].clone();
        std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /tessera/metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let started = Instant::now();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            started.elapsed()
        })
    };
    let start = Instant::now();
    while metric(&ops[0], "tessera_metadata_raft_voters ") != Some(3.0) {
        assert!(start.elapsed() < Duration::from_secs(60), "three voters expected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The hand-made CA goes into the metadata service (then renewals and
    // join tokens work); another CA is refused there.
    let upload = |ca: &std::path::Path| {
        run(tessera()
            .args(["cert", "upload", "--meta", &urls.join(","), "--ca"])
            .arg(ca)
            .arg("--cluster-certs")
            .arg(p("certs-meta0")))
    };
    let up = upload(&ca);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    assert!(upload(&ca).status.success(), "uploading the same CA again is harmless");
    let other_ca = p("second-ca");
    assert!(run(tessera().args(["cert", "ca", "--dir"]).arg(&other_ca)).status.success());
    fails_with(upload(&other_ca), "is not the CA of the certificates");

    // A datanode with 7 disks (so EC 4+2 can place on one host, and still
    // after one disk is drained) and a gateway.
    let dn_http = format!("127.0.0.1:{}", free_port());
    let mut dn = tessera();
    let dn_listen = format!("127.0.0.1:{}", free_port());
    dn.args(["datanode", "--node-id", "1", "--listen", &dn_listen]).args([
        "--http-listen",
        &dn_http,
        "--meta",
        &urls.join(","),
        "--scrub-interval",
        "1s",
    ]);
    dn.arg("--cluster-certs").arg(certs("datanode", "dn1"));
    for d in 1..=7 {
        dn.arg("--disk").arg(format!("{d}:{}", p(&format!("disk{d}")).display()));
    }
    let dn = Proc::spawn(&mut dn, &p("datanode.log"));
    wait_ready(&dn_http, "datanode");
    let gw_addr = format!("127.0.0.1:{}", free_port());
    let cfg = p("gateway.toml");
    let gw_certs = certs("gateway", "gw1");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"{gw_addr}\"\nmeta = {urls:?}\nec = \"4+2\"\nhedge_timeout = \"1s\"\ncluster_certs = {:?}\n",
            gw_certs.display().to_string()
        ),
    )
    .unwrap();
    let gw = Proc::spawn(tessera().args(["gateway", "--config"]).arg(&cfg), &p("gateway.log"));
    wait_ready(&gw_addr, "gateway");

    let s3 = s3_client(&gw_addr, ak, sk);
    s3.create_bucket().bucket("roles").send().await.unwrap();
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    s3.put_object().bucket("roles").key("obj").body(body.clone().into()).send().await.unwrap();
    let got = s3.get_object().bucket("roles").key("obj").send().await.unwrap().body.collect().await.unwrap();
    assert_eq!(got.into_bytes().as_ref(), body.as_slice());

    // Metrics on every role.
    let put = metric(&gw_addr, "tessera_gateway_requests_total{op=\"PutObject\",status=\"200\"} ");
    assert_eq!(put, Some(1.0));
    assert!(metric(&gw_addr, "tessera_gateway_bytes_in_total ").unwrap() >= 3_000_000.0);
    assert!(metric(&gw_addr, "tessera_gateway_bytes_out_total ").unwrap() >= 3_000_000.0);
    assert!(metric(&dn_http, "tessera_datanode_shard_puts_total{result=\"ok\"} ").unwrap() >= 5.0);
    let start = Instant::now();
    while metric(&dn_http, "tessera_datanode_scrub_passes_total{disk=\"1\"} ").unwrap_or(0.0) < 1.0 {
        assert!(start.elapsed() < Duration::from_secs(30), "the scrubber never finished a pass");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let commit = metric(&ops[0], "tessera_metadata_raft_commit_index ").unwrap();
    assert!(commit >= 5.0, "commit index {commit}");

    // `tessera admin` through the gateway: the cluster's state, and a
    // metadata voter removed and added back.
    let admin = |args: &[&str]| {
        let out = run(tessera()
            .args(["admin", "--endpoint", &format!("http://{gw_addr}"), "--admin-access-key", ak])
            .args(["--admin-secret-key", sk])
            .args(args));
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    };
    let (status, out, err) = admin(&["--json", "status"]);
    assert_eq!(status, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let members = v["metadata"]["members"].as_array().unwrap();
    assert_eq!(members.iter().filter(|m| m["voter"] == true).count(), 3, "{v}");
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["disks"].as_array().unwrap().len(), 7, "{v}");
    let leader = v["metadata"]["leader"].as_u64().unwrap();
    let other = (1..=3u64).find(|&i| i != leader).unwrap();
    let (status, out, err) = admin(&["meta", "remove", &other.to_string()]);
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(out.lines().filter(|l| l.contains(" voter ") || l.contains(" leader ")).count(), 2, "{out}");
    let (status, out, err) = admin(&["meta", "add", &other.to_string(), "--addr", &urls[other as usize - 1]]);
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(out.lines().filter(|l| l.contains(" voter ") || l.contains(" leader ")).count(), 3, "{out}");
    let (status, _, err) = admin(&["meta", "remove", "9"]);
    assert_eq!(status, 1);
    assert!(err.contains("NoSuchMember"), "{err}");
    let (status, _, err) = admin(&["meta", "add", "9", "--addr", "http://127.0.0.1:1"]);
    assert_eq!(status, 1);
    assert!(err.contains("MemberUnreachable"), "{err}");
    let start = Instant::now();
    while metric(&ops[0], "tessera_metadata_raft_voters ") != Some(3.0) {
        assert!(start.elapsed() < Duration::from_secs(30), "three voters again expected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The leadership handed to another voter while S3 writes go on through
    // the gateway: none fails, and the named voter leads.
    let leader_of = |out: &str| {
        let v: serde_json::Value = serde_json::from_str(out).unwrap();
        v["metadata"]["leader"].as_u64()
    };
    let (_, out, _) = admin(&["--json", "status"]);
    let leader = leader_of(&out).unwrap();
    let target = (1..=3u64).find(|&i| i != leader).unwrap();
    let stop_puts = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let puts = {
        let (s3, stop) = (s3.clone(), stop_puts.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let key = format!("during-transfer-{n}");
                s3.put_object().bucket("roles").key(&key).body(vec![n as u8; 1000].into()).send().await.unwrap();
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, out, err) = tokio::task::block_in_place(|| admin(&["meta", "transfer-leader", &target.to_string()]));
    assert_eq!(status, 0, "{out}{err}");
    let row = out.lines().find(|l| l.split_whitespace().next() == Some(&target.to_string())).unwrap();
    assert!(row.contains(" leader "), "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_puts.store(true, std::sync::atomic::Ordering::SeqCst);
    let written_during = puts.await.unwrap();
    assert!(written_during > 0);
    for n in (0..written_during).step_by(7) {
        let key = format!("during-transfer-{n}");
        let got = s3.get_object().bucket("roles").key(&key).send().await.unwrap().body.collect().await.unwrap();
        assert_eq!(got.into_bytes().as_ref(), vec![n as u8; 1000].as_slice(), "{key}");
    }
    let (_, out, _) = admin(&["--json", "status"]);
    assert_eq!(leader_of(&out), Some(target), "{out}");
    let (status, _, err) = admin(&["meta", "transfer-leader", "9"]);
    assert_eq!(status, 1);
    assert!(err.contains("NoSuchMember"), "{err}");

    // A disk drained from the command line across processes: the dry run
    // names what moves, the rebalancer moves it (`--wait` ends when it is
    // done), the disk is then removable and every object reads back.
    let mut written = vec![("obj".to_owned(), body.clone())];
    for i in 0..12u32 {
        let b: Vec<u8> = (0..150_000u32).map(|j| (j.wrapping_mul(31).wrapping_add(i * 7)) as u8).collect();
        let key = format!("drain-{i}");
        s3.put_object().bucket("roles").key(&key).body(b.clone().into()).send().await.unwrap();
        written.push((key, b));
    }
    let (status, out, err) = admin(&["--json", "disk", "out", "1", "--dry-run"]);
    assert_eq!(status, 0, "{out}{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["done"], false, "{plan}");
    assert!(plan["plan"]["placements_moving"].as_u64().unwrap() > 0, "{plan}");
    let (status, out, err) = admin(&["disk", "remove", "1"]);
    assert_eq!(status, 1, "a disk holding shards is not removed: {out}{err}");
    assert!(err.contains("NotDrained"), "{err}");
    let (status, out, err) = admin(&["disk", "out", "1"]);
    assert_eq!(status, 0, "{out}{err}");
    let (status, out, err) = admin(&["rebalance", "status", "--wait", "--timeout", "120s"]);
    assert_eq!(status, 0, "{out}{err}");
    let (status, out, err) = admin(&["disk", "remove", "1"]);
    assert_eq!(status, 0, "the drained disk is removed: {out}{err}");
    let (status, out, err) = admin(&["--json", "status"]);
    assert_eq!(status, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["disks"].as_array().unwrap().len(), 6, "{v}");
    assert_eq!(v["redundancy"]["state"], "full", "{v}");
    for (key, want) in &written {
        let got = s3.get_object().bucket("roles").key(key).send().await.unwrap().body.collect().await.unwrap();
        assert_eq!(got.into_bytes().as_ref(), want.as_slice(), "{key} after the drain");
    }

    // `node add`: a datanode join token and the command that uses it; a
    // datanode started that way joins (its disks appear in the status).
    let (status, out, err) = admin(&["--json", "node", "add", "--ttl", "10m"]);
    assert_eq!(status, 0, "{out}{err}");
    let add: serde_json::Value = serde_json::from_str(&out).unwrap();
    let token = add["token"].as_str().unwrap().to_owned();
    let command = add["command"].as_str().unwrap();
    assert!(command.contains(&format!("--join-token {token}")) && command.contains(&urls[0]), "{command}");
    let dn2_http = format!("127.0.0.1:{}", free_port());
    let dn2_listen = format!("127.0.0.1:{}", free_port());
    let mut dn2 = tessera();
    dn2.args(["datanode", "--node-id", "2", "--listen", &dn2_listen, "--http-listen", &dn2_http])
        .args(["--meta", &urls.join(","), "--join-token", &token, "--cluster-certs"])
        .arg(p("dn2-certs"))
        .arg("--disk")
        .arg(format!("8:{}", p("disk8").display()));
    let dn2 = Proc::spawn(&mut dn2, &p("datanode2.log"));
    wait_ready(&dn2_http, "the added datanode");
    let start = Instant::now();
    loop {
        let (_, out, _) = admin(&["--json", "status"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        if v["nodes"].as_array().unwrap().len() == 2 && v["disks"].as_array().unwrap().len() == 7 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the added datanode never registered: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(dn2.terminate().success(), "the added datanode exits cleanly on SIGTERM");

    // Nodes without a certificate of this cluster's CA get nowhere: a
    // datanode with another CA's certificate, and one speaking plain text,
    // cannot reach the metadata service; raw plain-text connections to the
    // metadata and datanode ports are answered with a TLS alert, never HTTP/2.
    let other = p("other-ca");
    assert!(run(tessera().args(["cert", "ca", "--dir"]).arg(&other)).status.success());
    let foreign = p("foreign-certs");
    let made = run(tessera()
        .args(["cert", "node", "--role", "datanode", "--name", "x", "--ca"])
        .arg(&other)
        .arg("--out")
        .arg(&foreign));
    assert!(made.status.success());
    let rogue = |extra: &[&str], certs: Option<&std::path::Path>| {
        let mut c = tessera();
        c.args(["datanode", "--node-id", "9", "--disk"])
            .arg(format!("99:{}", p("rogue-disk").display()))
            .args(["--meta", &urls.join(","), "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(["--startup-timeout", "2s"])
            .args(extra);
        if let Some(d) = certs {
            c.arg("--cluster-certs").arg(d);
        }
        run(&mut c)
    };
    fails_with(rogue(&[], Some(&foreign)), "cannot reach the metadata service");
    fails_with(rogue(&["--insecure-cluster"], None), "cannot reach the metadata service");
    let meta_log = std::fs::read_to_string(p("meta0.log")).unwrap()
        + &std::fs::read_to_string(p("meta1.log")).unwrap()
        + &std::fs::read_to_string(p("meta2.log")).unwrap();
    assert!(meta_log.contains("refused an internal connection"), "no refusal logged:\n{meta_log}");
    // A TLS client with the foreign certificate, straight at the datanode's
    // shard wire and a metadata node: the handshake fails at the server, and
    // the client learns it at its first read.
    let foreign_id = tessera_rpc::cluster_tls::ClusterTls::load(&foreign).unwrap();
    for target in [dn_listen.clone(), grpc[1].clone()] {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let tcp = tokio::net::TcpStream::connect(&target).await.unwrap();
        let outcome = async {
            let mut conn = foreign_id.connect(tcp, true).await?;
            conn.write_all(tessera_rpc::wire::PREFACE).await?;
            conn.flush().await?;
            let mut b = [0u8; 1];
            conn.read(&mut b).await
        };
        let r = tokio::time::timeout(Duration::from_secs(15), outcome).await.unwrap();
        assert!(r.is_err() || matches!(r, Ok(0)), "{target}: a foreign certificate was served: {r:?}");
    }
    for target in [grpc[0].clone(), dn_listen.clone()] {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(&target).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert_eq!(answer.first(), Some(&0x15), "{target}: not a TLS alert: {answer:?}");
    }

    let waited = stalled.join().unwrap();
    assert!(waited < Duration::from_secs(20), "a stalled request held the connection for {waited:?}");
    // Losing one metadata node (the leader, if it is node 1) keeps the cluster serving.
    let mut metas = metas.into_iter();
    let first = metas.next().unwrap();
    assert!(first.terminate().success(), "meta1 exits cleanly on SIGTERM");
    s3.put_object().bucket("roles").key("after").body(b"still here".to_vec().into()).send().await.unwrap();
    let got = s3.get_object().bucket("roles").key("obj").send().await.unwrap().body.collect().await.unwrap();
    assert_eq!(got.into_bytes().as_ref(), body.as_slice());

    // A client's mistake (a wrong secret) is its own business: no ERROR line.
    let wrong = s3_client(&gw_addr, ak, "not-the-secret");
    let e = wrong.get_object().bucket("roles").key("obj").send().await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert!(gw.terminate().success(), "gateway exits cleanly on SIGTERM");
    let log = std::fs::read_to_string(p("gateway.log")).unwrap();
    assert!(!log.contains("ERROR"), "a client's mistake was logged as an error:\n{log}");
    // Not a terminal: plain text, no colour codes.
    assert!(!log.contains('\u{1b}'), "colour codes in a log file:\n{log}");
    // `--log-format json`: the log lines (not the start-up banner) are JSON objects.
    let log = std::fs::read_to_string(p("meta1.log")).unwrap();
    let json: Vec<serde_json::Value> =
        log.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        json.iter().any(|v| v["fields"]["message"] == "metadata node serving"),
        "a JSON line for `metadata node serving` expected in:\n{log}"
    );
    assert!(dn.terminate().success(), "datanode exits cleanly on SIGTERM");
    for m in metas {
        assert!(m.terminate().success(), "meta exits cleanly on SIGTERM");
    }
}

/// Joining with tokens: the bootstrap metadata node makes the cluster's CA
/// (kept in the metadata service); `tessera cert token` and the admin API
/// make single-use tokens; a datanode, a gateway and a second metadata node
/// enroll with theirs and serve; a token used twice, one for another role,
/// an expired one and one naming another CA are refused, and the refused
/// nodes hold no certificate. Certificates (made to live 12 s here) are
/// renewed before they expire: a datanode restarted after its first
/// certificate expired starts with the renewed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_with_single_use_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let (grpc, ops) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let url = format!("http://{grpc}");
    let (ak, sk) = ("TSJOINTEST", "join-test-secret-key");
    let meta1 = Proc::spawn(
        tessera()
            .args(["meta", "--node-id", "1", "--bootstrap", "--listen", &grpc, "--http-listen", &ops])
            .arg("--data")
            .arg(p("meta1"))
            .arg("--cluster-certs")
            .arg(p("meta1-certs"))
            .args(["--cert-validity", "12s"])
            .env("TESSERA_ROOT_ACCESS_KEY", ak)
            .env("TESSERA_ROOT_SECRET_KEY", sk),
        &p("meta1.log"),
    );
    wait_ready(&ops, "meta1");
    assert!(p("meta1-certs/node.pem").exists() && !p("meta1-certs/ca.key").exists(), "no CA key on disk");
    let token = |role: &str, ttl: &str| {
        let out = run(tessera()
            .args(["cert", "token", "--role", role, "--ttl", ttl, "--meta", &url, "--cluster-certs"])
            .arg(p("meta1-certs")));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let dn1_listen = format!("127.0.0.1:{}", free_port());
    let datanode_at = |id: &str, token: &str, certs: &str, http: &str| {
        let listen = if id == "1" { dn1_listen.clone() } else { format!("127.0.0.1:{}", free_port()) };
        let mut c = tessera();
        c.args(["datanode", "--node-id", id, "--listen", &listen])
            .args(["--http-listen", http, "--meta", &url, "--join-token", token])
            .args(["--startup-timeout", "5s"])
            .arg("--cluster-certs")
            .arg(p(certs));
        for d in 1..=6 {
            c.arg("--disk").arg(format!("{}{d}:{}", id, p(&format!("{certs}-disk{d}")).display()));
        }
        c
    };
    let datanode = |id: &str, token: &str, certs: &str| datanode_at(id, token, certs, "127.0.0.1:0");

    // A datanode joins with its token.
    let t1 = token("datanode", "1h");
    assert!(t1.starts_with("TSJ1."), "{t1}");
    let dn_http = format!("127.0.0.1:{}", free_port());
    let dn1 = Proc::spawn(&mut datanode_at("1", &t1, "dn1-certs", &dn_http), &p("dn1.log"));
    let enrolled = Instant::now();
    if std::panic::catch_unwind(|| wait_ready(&dn_http, "datanode 1")).is_err() {
        panic!("datanode 1 not ready:\n{}", std::fs::read_to_string(p("dn1.log")).unwrap_or_default());
    }
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(p("dn1-certs/node.key")).unwrap().permissions().mode() & 0o777, 0o600);

    // The same token again (stolen, replayed): refused, and nothing is kept.
    fails_with(run(&mut datanode("2", &t1, "dn2-certs")), "refused the join token");
    assert!(!p("dn2-certs/node.pem").exists());
    // A token for another role, an expired one, one naming another CA.
    fails_with(run(&mut datanode("2", &token("gateway", "1h"), "dn2-certs")), "refused the join token");
    let short = token("datanode", "1s");
    std::thread::sleep(Duration::from_millis(1500));
    fails_with(run(&mut datanode("2", &short, "dn2-certs")), "refused the join token");
    let t = token("datanode", "1h");
    let foreign = format!("{}{}", &t[..t.len() - 64], "0".repeat(64));
    fails_with(run(&mut datanode("2", &foreign, "dn2-certs")), "does not hold the CA");
    assert!(!p("dn2-certs/node.pem").exists());
    // …and the token the last attempt did not reveal still works.
    let dn2_http = format!("127.0.0.1:{}", free_port());
    let dn2 = Proc::spawn(&mut datanode_at("2", &t, "dn2-certs", &dn2_http), &p("dn2.log"));
    wait_ready(&dn2_http, "datanode 2");

    // A gateway joins; its admin API makes a token a second metadata node joins with.
    let gw_addr = format!("127.0.0.1:{}", free_port());
    let gw = Proc::spawn(
        tessera()
            .args(["gateway", "--listen", &gw_addr, "--meta", &url, "--ec", "4+2", "--join-token"])
            .arg(token("gateway", "10m"))
            .arg("--cluster-certs")
            .arg(p("gw-certs")),
        &p("gw.log"),
    );
    wait_ready(&gw_addr, "gateway");
    let s3 = s3_client(&gw_addr, ak, sk);
    s3.create_bucket().bucket("joined").send().await.unwrap();
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    s3.put_object().bucket("joined").key("obj").body(body.clone().into()).send().await.unwrap();
    let got = s3.get_object().bucket("joined").key("obj").send().await.unwrap().body.collect().await.unwrap();
    assert_eq!(got.into_bytes().as_ref(), body.as_slice());
    let admin = run(tessera()
        .args(["admin", "--endpoint", &format!("http://{gw_addr}"), "--admin-access-key", ak])
        .args(["--admin-secret-key", sk, "join-token", "create", "--role", "meta", "--ttl", "10m"]));
    assert!(admin.status.success(), "{}", String::from_utf8_lossy(&admin.stderr));
    let meta_token = String::from_utf8(admin.stdout).unwrap().trim().to_owned();
    let (grpc2, ops2) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let meta2 = Proc::spawn(
        tessera()
            .args(["meta", "--node-id", "2", "--listen", &grpc2, "--http-listen", &ops2, "--join", &url])
            .args(["--join-token", &meta_token])
            .arg("--data")
            .arg(p("meta2"))
            .arg("--cluster-certs")
            .arg(p("meta2-certs")),
        &p("meta2.log"),
    );
    wait_ready(&ops2, "meta2");
    let start = Instant::now();
    while metric(&ops, "tessera_metadata_raft_voters ") != Some(2.0) {
        assert!(start.elapsed() < Duration::from_secs(60), "meta2 did not become a voter");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Renewal: dn1's first certificate is replaced before it expires; once
    // it has expired, dn1 restarted starts (and registers) with the new one.
    let first = std::fs::read(p("dn1-certs/node.pem")).unwrap();
    while std::fs::read(p("dn1-certs/node.pem")).unwrap() == first {
        assert!(enrolled.elapsed() < Duration::from_secs(12), "dn1's certificate was not renewed before it expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(13).saturating_sub(enrolled.elapsed())).await;
    assert!(dn1.terminate().success());
    let mut again = tessera();
    again
        .args(["datanode", "--node-id", "1", "--listen", &dn1_listen])
        .args(["--http-listen", &dn_http, "--meta", &url, "--startup-timeout", "5s", "--cluster-certs"])
        .arg(p("dn1-certs"));
    for d in 1..=6 {
        again.arg("--disk").arg(format!("1{d}:{}", p(&format!("dn1-certs-disk{d}")).display()));
    }
    let dn1 = Proc::spawn(&mut again, &p("dn1-again.log"));
    if std::panic::catch_unwind(|| wait_ready(&dn_http, "datanode 1 again")).is_err() {
        panic!("dn1 did not restart:\n{}", std::fs::read_to_string(p("dn1-again.log")).unwrap_or_default());
    }
    // The gateway (renewed too) reads the shards of both datanodes again.
    let start = Instant::now();
    loop {
        match s3.get_object().bucket("joined").key("obj").send().await {
            Ok(r) => {
                assert_eq!(r.body.collect().await.unwrap().into_bytes().as_ref(), body.as_slice());
                break;
            }
            Err(e) => assert!(start.elapsed() < Duration::from_secs(20), "no read after the renewals: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for proc in [gw, dn1, dn2, meta2, meta1] {
        assert!(proc.terminate().success());
    }
}
