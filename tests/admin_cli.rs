//! `tessera admin` (the real binary) against a cluster's admin API: keys
//! and policies made, shown, limited and removed from the command line,
//! credentials from flags, variables or a profile alias, tables or JSON,
//! and exit statuses that mean something (1 refused, 2 usage, 3
//! unreachable).

#![allow(clippy::unwrap_used)]

mod support;

use aws_sdk_s3::primitives::ByteStream;
use support::{Cluster, add_key, code, denied};

const ROOT: &str = "ROOTKEY00000000000001";
const ROOT_SECRET: &str = "root-secret-00000000000000000";

struct Cli {
    home: tempfile::TempDir,
    endpoint: String,
}

impl Cli {
    /// Runs `tessera admin ARGS` (blocking, off the runtime's threads);
    /// (status, stdout, stderr).
    async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.arg("admin").args(args).env_clear().env("HOME", self.home.path()).env("PATH", "/usr/bin:/bin");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    /// As root, through flags.
    async fn root(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["--endpoint", &self.endpoint, "--admin-access-key", ROOT, "--admin-secret-key", ROOT_SECRET];
        all.extend_from_slice(args);
        self.run(&all, &[]).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_and_policies_from_the_command_line() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let root = add_key(&cluster, ROOT, ROOT_SECRET, true).await;
    root.create_bucket().bucket("media").send().await.unwrap();
    root.put_object().bucket("media").key("a.ts").body(ByteStream::from_static(b"segment")).send().await.unwrap();
    let cli = Cli { home: tempfile::tempdir().unwrap(), endpoint: cluster.endpoint(0) };

    // A policy from a file, a key with it attached: the secret printed once.
    let policy = cli.home.path().join("readonly.json");
    std::fs::write(
        &policy,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}"#,
    )
    .unwrap();
    let (status, out, err) = cli.root(&["policy", "create", "readonly", policy.to_str().unwrap()]).await;
    assert_eq!(status, 0, "{out}{err}");
    // `put` is the same command (a policy is replaced whole).
    let (status, out, err) = cli.root(&["policy", "put", "readonly", policy.to_str().unwrap()]).await;
    assert_eq!(status, 0, "{out}{err}");
    let (status, out, err) =
        cli.root(&["--json", "key", "create", "--description", "player", "--policy", "readonly"]).await;
    assert_eq!(status, 0, "{out}{err}");
    let made: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (id, secret) = (made["access_key"].as_str().unwrap(), made["secret_key"].as_str().unwrap());
    let reader = cluster.client_with(0, id, secret);
    assert_eq!(support::get_all(&reader, "media", "a.ts").await, b"segment");
    denied(reader.put_object().bucket("media").key("b.ts").body(ByteStream::from_static(b"x")).send().await);

    // The table lists it (never a secret); --json is the API's document.
    let (status, out, _) = cli.root(&["key", "list"]).await;
    assert_eq!(status, 0);
    assert!(out.starts_with("ACCESS KEY"), "{out}");
    assert_eq!(cli.root(&["user", "list"]).await.1, out, "`user` is `key`, as in mc admin user");
    let line = out.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("enabled") && line.contains("readonly") && line.contains("player"), "{line}");
    assert!(out.lines().any(|l| l.starts_with(ROOT) && l.contains("root")), "{out}");
    assert!(!out.contains(secret) && !out.contains(ROOT_SECRET));
    let (_, out, _) = cli.root(&["--json", "key", "list"]).await;
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 3, "{listed}");

    // A migrated key keeps its credentials; disabled, it is refused; enabled, served.
    let (status, out, err) = cli
        .root(&["key", "create", "--access-key", "MIGRATED000000000001", "--secret", "from-minio-secret-000000000"])
        .await;
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("from-minio-secret-000000000") && out.contains("shown this once"), "{out}");
    let migrated = cluster.client_with(0, "MIGRATED000000000001", "from-minio-secret-000000000");
    migrated.create_bucket().bucket("moved").send().await.unwrap();
    assert_eq!(cli.root(&["key", "disable", "MIGRATED000000000001"]).await.0, 0);
    assert_eq!(code(&migrated.list_buckets().send().await.unwrap_err()), "InvalidAccessKeyId");
    assert_eq!(cli.root(&["key", "enable", "MIGRATED000000000001"]).await.0, 0);
    migrated.list_buckets().send().await.unwrap();
    let (status, out, _) = cli.root(&["key", "expire", "MIGRATED000000000001", "30d"]).await;
    assert_eq!(status, 0);
    assert!(!out.contains("never"), "{out}");
    assert_eq!(cli.root(&["key", "expire", "MIGRATED000000000001", "soon"]).await.0, 2);

    // Attach and detach; a policy in use cannot be deleted (exit 1, the reason said).
    assert_eq!(cli.root(&["key", "attach", "MIGRATED000000000001", "readonly"]).await.0, 0);
    let (status, _, err) = cli.root(&["policy", "delete", "readonly"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("DeleteConflict") && err.contains(id), "{err}");
    assert_eq!(cli.root(&["key", "detach", "MIGRATED000000000001", "readonly"]).await.0, 0);
    let (status, _, err) = cli.root(&["key", "detach", "MIGRATED000000000001", "readonly"]).await;
    assert_eq!(status, 1, "{err}");

    // An alias in the profile file; variables; a key that is not an admin's.
    let (status, _, err) = cli.run(&["alias", "set", "default", &cli.endpoint, ROOT, ROOT_SECRET], &[]).await;
    assert_eq!(status, 0, "{err}");
    let profile = cli.home.path().join(".config/tessera/admin.toml");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&profile).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(cli.run(&["key", "info", id], &[]).await.0, 0, "the default alias");
    let (status, _, err) =
        cli.run(&["key", "list"], &[("TESSERA_ACCESS_KEY", id), ("TESSERA_SECRET_KEY", secret)]).await;
    assert_eq!(status, 1, "a plain key is refused");
    assert!(err.contains("AccessDenied"), "{err}");

    // The root key stays; unknown keys, wrong secrets, no cluster, no credentials.
    let (status, _, err) = cli.root(&["key", "delete", ROOT]).await;
    assert_eq!(status, 1);
    assert!(err.contains("root key"), "{err}");
    assert_eq!(cli.root(&["key", "delete", "NOSUCHKEY00000000000"]).await.0, 1);
    let (status, _, err) = cli
        .run(
            &[
                "--endpoint",
                &cli.endpoint,
                "--admin-access-key",
                ROOT,
                "--admin-secret-key",
                "wrong-000000",
                "key",
                "list",
            ],
            &[],
        )
        .await;
    assert_eq!(status, 1);
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");
    let (status, _, _) = cli.run(&["--endpoint", "http://127.0.0.1:1", "--alias", "default", "key", "list"], &[]).await;
    assert_eq!(status, 3, "nothing listens there");
    assert_eq!(cli.run(&["alias", "remove", "default"], &[]).await.0, 0);
    let (status, _, err) = cli.run(&["key", "list"], &[]).await;
    assert_eq!(status, 2);
    assert!(err.contains("no credentials"), "{err}");
    assert_eq!(cli.root(&["key", "delete", id]).await.0, 0);
    assert_eq!(code(&reader.list_buckets().send().await.unwrap_err()), "InvalidAccessKeyId");
    cluster.shutdown().await;
}

/// Every shard set the records of `keys` in `bucket` point at: (pg, disks).
async fn shard_sets(cluster: &Cluster, bucket: &str, keys: &[String]) -> Vec<(u32, Vec<u32>)> {
    use tessera_rpc::proto::meta::body::Kind;
    let mut out = Vec::new();
    for k in keys {
        let rec = cluster.meta_client.get_object(bucket, k).await.unwrap().object.unwrap();
        if let Some(Kind::Shards(s)) = rec.body.and_then(|b| b.kind) {
            out.push((s.pg, s.disks));
        }
    }
    out
}

/// `tessera admin status`, `node`, `disk`, `rebalance`, `heal` and `meta`
/// against a cluster of 7 datanodes: the state shown as a table and as
/// JSON; a drain whose dry run predicts the moves that then happen, waited
/// for with `rebalance status --wait`, after which the node is removable
/// and every object reads back; refusals (a drain that would leave too few
/// disks for EC 4+2, removing a node that holds shards, unknown ids, a key
/// that is not an admin's) change nothing and exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_state_and_a_drain_from_the_command_line() {
    // Rebalancers idle for an hour between passes here: a drain must wake
    // them (a new map epoch does).
    let mut cluster = Cluster::start_with(support::Options { datanodes: 7, gateways: 1, ..Default::default() }).await;
    let root = add_key(&cluster, ROOT, ROOT_SECRET, true).await;
    add_key(&cluster, "PLAINKEY000000000001", "plain-secret-000000000000", false).await;
    root.create_bucket().bucket("media").send().await.unwrap();
    let mut objects = Vec::new();
    for i in 0..24u64 {
        let data = support::bytes(if i % 4 == 0 { (2 << 20) + 5 } else { 150 << 10 }, i);
        let key = format!("seg{i:03}.ts");
        root.put_object().bucket("media").key(&key).body(ByteStream::from(data.clone())).send().await.unwrap();
        objects.push((key, data));
    }
    let keys: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    let cli = Cli { home: tempfile::tempdir().unwrap(), endpoint: cluster.endpoint(0) };

    // One screen, and the same as JSON.
    let (status, out, err) = cli.root(&["status"]).await;
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("redundancy: full") && out.contains("metadata: leader 1"), "{out}");
    for n in 0..7 {
        assert!(out.contains(&format!("host-{n}")), "host-{n} missing: {out}");
    }
    let (status, out, _) = cli.root(&["--json", "status"]).await;
    assert_eq!(status, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 7, "{v}");
    assert!(v["nodes"].as_array().unwrap().iter().all(|n| n["version"] == env!("CARGO_PKG_VERSION")), "{v}");
    assert!(v["disks"].as_array().unwrap().iter().all(|d| d["state"] == "in" && d["used_bytes"].is_u64()), "{v}");
    assert_eq!(v["metadata"]["leader"], 1);
    assert_eq!(v["metadata"]["members"][0]["leader"], true);
    assert!(
        v["workers"]["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["name"].as_str().unwrap().starts_with("rebalance"))
    );

    // Bad input changes nothing and exits 1 with the reason.
    let epoch = cluster.map().await.epoch;
    let (status, _, err) = cli.root(&["node", "drain", "999"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("NoSuchNode"), "{err}");
    let (status, _, err) = cli.root(&["disk", "out", "d99"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("NoSuchDisk"), "{err}");
    let (status, _, err) = cli.root(&["node", "remove", "103"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("NotDrained") && err.contains("media/"), "{err}");
    let plain = [("TESSERA_ACCESS_KEY", "PLAINKEY000000000001"), ("TESSERA_SECRET_KEY", "plain-secret-000000000000")];
    let (status, _, err) = cli.run(&["--endpoint", &cli.endpoint, "node", "drain", "103"], &plain).await;
    assert_eq!(status, 1);
    assert!(err.contains("AccessDenied"), "{err}");
    assert_eq!(cli.root(&["disk", "reweight", "4", "lots"]).await.0, 2, "a weight is a number");
    assert_eq!(cluster.map().await.epoch, epoch, "a refused call changed the map");

    // The dry run: what would move, and that no single failure would lose data.
    let (status, out, err) = cli.root(&["--json", "node", "drain", "103", "--dry-run"]).await;
    assert_eq!(status, 0, "{out}{err}");
    let dry: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(dry["done"], false);
    let plan = &dry["plan"];
    assert!(plan["placements_moving"].as_u64().unwrap() > 0, "{plan}");
    assert!(plan["at_risk"].as_array().unwrap().iter().all(|r| r["level"] != "host"), "{plan}");
    assert_eq!(cluster.map().await.epoch, epoch, "a dry run changed the map");
    let (_, human, _) = cli.root(&["node", "drain", "103", "--dry-run"]).await;
    assert!(human.starts_with("dry run: nothing changed.") && human.contains("PGs"), "{human}");

    // The drain, waited for: the node's disk is empty when the wait ends,
    // and exactly the predicted shard positions moved.
    let before = shard_sets(&cluster, "media", &keys).await;
    // Paused rebalancers move nothing until started.
    let (status, out, err) = cli.root(&["rebalance", "pause"]).await;
    assert_eq!(status, 0, "{out}{err}");
    // Datanodes learn it with their next heartbeat (every 200 ms here).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (status, out, err) = cli.root(&["node", "drain", "103"]).await;
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.starts_with("done."), "{out}");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(!cluster.meta_client.list_disk_shards(4, Vec::new(), 1).await.unwrap().is_empty(), "moved while paused");
    let (_, out, _) = cli.root(&["rebalance", "status"]).await;
    assert!(out.contains("paused by the operator") && out.contains("(PAUSED)"), "{out}");
    let (_, out, _) = cli.root(&["--json", "status"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["draining"]["disks"], serde_json::json!([4]), "{v}");
    let left = cluster.meta_client.list_disk_shards(4, Vec::new(), 10_000).await.unwrap().len();
    assert_eq!(v["draining"]["shards_left"], left, "{v}");
    assert_eq!(cli.root(&["rebalance", "start"]).await.0, 0);
    let (status, out, err) = cli.root(&["rebalance", "status", "--wait", "--timeout", "120s"]).await;
    assert_eq!(status, 0, "{out}{err}");
    assert!(err.contains("shards left on draining disks"), "no drain progress shown: {err}");
    assert!(out.contains("rebalance: done"), "{out}");
    assert!(cluster.meta_client.list_disk_shards(4, Vec::new(), 1).await.unwrap().is_empty(), "disk 4 not empty");
    let after = shard_sets(&cluster, "media", &keys).await;
    let moved: u64 =
        before.iter().zip(&after).map(|((_, a), (_, b))| a.iter().zip(b).filter(|(x, y)| x != y).count() as u64).sum();
    let predicted: u64 = before.iter().map(|(pg, _)| plan["moves_by_pg"][pg.to_string()].as_u64().unwrap_or(0)).sum();
    assert!(predicted > 0, "no object of the test lies in a moving PG: {plan}");
    assert_eq!(moved, predicted, "the dry run predicted {predicted} moved positions; {moved} moved");
    for (key, data) in &objects {
        assert_eq!(&support::get_all(&root, "media", key).await, data, "{key}");
    }
    let (status, out, err) = cli.root(&["node", "remove", "103"]).await;
    assert_eq!(status, 0, "{out}{err}");
    let (_, out, _) = cli.root(&["node", "list"]).await;
    assert!(out.starts_with("NODE") && !out.contains("host-3") && out.contains("host-6"), "{out}");

    // Six datanodes left for 4 + 2 shards: one more drain cannot be placed.
    let epoch = cluster.map().await.epoch;
    let (status, _, err) = cli.root(&["disk", "out", "5"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("WouldLoseRedundancy") && err.contains("4+2"), "{err}");
    let (status, out, _) = cli.root(&["disk", "out", "5", "--dry-run"]).await;
    assert_eq!(status, 1, "a dry run of a refused change exits as the change would");
    assert!(out.contains("REFUSED"), "{out}");
    assert_eq!(cluster.map().await.epoch, epoch);

    // A node's weight: 0 is refused the same way; another is planned for
    // every disk of the node, then set.
    let (status, _, err) = cli.root(&["node", "reweight", "104", "0"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("WouldLoseRedundancy"), "{err}");
    assert_eq!(cluster.map().await.epoch, epoch);
    let (status, out, err) = cli.root(&["--json", "node", "reweight", "104", "300", "--dry-run"]).await;
    assert_eq!(status, 0, "{out}{err}");
    let dry: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (dry["done"].clone(), dry["disks"].clone()),
        (serde_json::json!(false), serde_json::json!([5])),
        "{dry}"
    );
    assert_eq!(cluster.map().await.epoch, epoch);
    let (status, out, err) = cli.root(&["node", "reweight", "104", "300"]).await;
    assert_eq!(status, 0, "{out}{err}");
    let (_, out, _) = cli.root(&["--json", "disk", "list"]).await;
    let disks: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d5 = disks["disks"].as_array().unwrap().iter().find(|d| d["id"] == 5).unwrap();
    assert_eq!(d5["weight"], 300, "{d5}");

    // Adding a node needs join tokens, which need cluster TLS (this
    // cluster has none; tests/roles_process.rs adds one with TLS).
    let (status, out, err) = cli.root(&["node", "add"]).await;
    assert_ne!(status, 0, "{out}{err}");
    assert!(err.contains("no CA to join"), "{err}");

    // The collectors and the lifecycle worker are paused and started
    // (they have no byte rate to throttle).
    for kind in ["gc", "lifecycle"] {
        let (status, out, err) = cli.root(&[kind, "pause"]).await;
        assert_eq!(status, 0, "{out}{err}");
        assert_eq!(out, format!("{kind}: paused\n"));
        let (status, _, err) = cli.root(&[kind, "throttle", "1MiB/s"]).await;
        assert_eq!(status, 2);
        assert!(err.contains("a whole number such as 500"), "{err}");
    }
    // Their paces, in files (each disk) and versions a second.
    let (status, out, err) = cli.root(&["gc", "throttle", "400/s"]).await;
    assert_eq!((status, out.as_str()), (0, "gc: at most 400 files/s on each disk\n"), "{err}");
    let (status, out, err) = cli.root(&["lifecycle", "throttle", "250"]).await;
    assert_eq!((status, out.as_str()), (0, "lifecycle: at most 250 versions/s\n"), "{err}");
    let start = std::time::Instant::now();
    loop {
        let (_, out, _) = cli.root(&["--json", "workers"]).await;
        let w: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mine: Vec<&serde_json::Value> = w["workers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| ["gc", "lifecycle"].contains(&x["name"].as_str().unwrap().split(':').next().unwrap()))
            .collect();
        if mine.len() >= 7 && mine.iter().all(|x| x["progress"] == "paused by the operator") {
            assert_eq!(
                (w["rates"]["gc_paused"].clone(), w["rates"]["lifecycle_paused"].clone()),
                (true.into(), true.into())
            );
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "gc and lifecycle never said they were paused: {w}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, out, _) = cli.root(&["workers"]).await;
    assert!(out.contains("gc 400 files/s (PAUSED), lifecycle 250 versions/s (PAUSED)"), "{out}");
    for kind in ["gc", "lifecycle"] {
        assert_eq!(cli.root(&[kind, "start"]).await.0, 0);
    }
    let (_, out, _) = cli.root(&["--json", "workers"]).await;
    let w: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((w["rates"]["gc_paused"].clone(), w["rates"]["lifecycle_paused"].clone()), (false.into(), false.into()));
    assert_eq!(
        (w["rates"]["gc_files_per_sec"].clone(), w["rates"]["lifecycle_versions_per_sec"].clone()),
        (400.into(), 250.into())
    );
    // The workers themselves say they are paced (datanodes with their next
    // heartbeat, the lifecycle worker at its next step).
    let start = std::time::Instant::now();
    loop {
        let (_, out, _) = cli.root(&["--json", "workers"]).await;
        let w: serde_json::Value = serde_json::from_str(&out).unwrap();
        let says = |kind: &str, what: &str| {
            w["workers"].as_array().unwrap().iter().any(|x| {
                x["name"].as_str().unwrap().split(':').next() == Some(kind)
                    && x["progress"].as_str().is_some_and(|p| p.contains(what))
            })
        };
        if says("gc", "at most 400 files/s") && says("lifecycle", "at most 250 versions/s") {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "the paces never showed: {w}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for kind in ["gc", "lifecycle"] {
        let (status, out, _) = cli.root(&[kind, "throttle", "off"]).await;
        assert_eq!((status, out), (0, format!("{kind}: no limit\n")));
    }

    // Rates, live; the metadata members.
    let (status, out, _) = cli.root(&["heal", "throttle", "10MiB/s"]).await;
    assert_eq!(status, 0);
    assert!(out.contains("heal: 10"), "{out}");
    let (_, out, _) = cli.root(&["--json", "workers"]).await;
    let w: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(w["rates"]["heal_bytes_per_sec"], 10 << 20, "{w}");
    assert!(w["rates"]["rebalance_bytes_per_sec"].is_null(), "{w}");
    let (status, out, _) = cli.root(&["meta", "members"]).await;
    assert_eq!(status, 0);
    assert!(out.contains("leader") && out.contains("LAG"), "{out}");
    let (status, out, _) = cli.root(&["gc", "status"]).await;
    assert_eq!(status, 0);
    assert!(out.lines().filter(|l| l.contains("gc:")).count() >= 6, "a collector per disk: {out}");
    let (status, out, _) = cli.root(&["lifecycle", "status"]).await;
    assert_eq!(status, 0);
    assert!(out.lines().any(|l| l.contains("lifecycle")), "{out}");
    assert_eq!(cli.root(&["gc", "throttle", "1MiB"]).await.0, 2, "the collector has no rate");

    // A datanode stops: its disk is lost, and status counts the shards on it.
    let held = cluster.meta_client.list_disk_shards(1, Vec::new(), 10_000).await.unwrap().len();
    assert!(held > 0);
    cluster.stop_datanode(0).await;
    let started = std::time::Instant::now();
    let v = loop {
        let (_, out, _) = cli.root(&["--json", "status"]).await;
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        if v["redundancy"]["state"] == "degraded" {
            break v;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "never degraded: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(v["redundancy"]["lost_disks"], serde_json::json!([1]), "{v}");
    assert_eq!(v["redundancy"]["shards_on_lost_disks"], held, "{v}");
    assert_eq!(v["redundancy"]["shards_on_lost_disks_capped"], false, "{v}");
    let (_, out, _) = cli.root(&["status"]).await;
    assert!(out.contains(&format!("DEGRADED: lost disks [1] holding {held} shards")), "{out}");
    cluster.shutdown().await;
}

/// The EC profile of an object's body.
async fn ec_of(cluster: &Cluster, bucket: &str, key: &str) -> (u32, u32) {
    use tessera_rpc::proto::meta::body::Kind;
    let rec = cluster.meta_client.get_object(bucket, key).await.unwrap().object.unwrap();
    match rec.body.and_then(|b| b.kind) {
        Some(Kind::Shards(s)) => s.ec.map(|e| (e.k, e.m)).unwrap(),
        other => panic!("{key} is not sharded: {other:?}"),
    }
}

/// `tessera admin bucket …`: buckets made and listed, their usage counted,
/// a quota refused below the usage and then enforced on PUTs through S3
/// (400 QuotaExceeded) until objects are deleted, an EC profile per bucket
/// that new objects get, and the refusals (a taken or bad name, too many
/// shards for the disks, a bucket that is not empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buckets_quotas_and_ec_profiles_from_the_command_line() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let root = add_key(&cluster, ROOT, ROOT_SECRET, true).await;
    let cli = Cli { home: tempfile::tempdir().unwrap(), endpoint: cluster.endpoint(0) };

    let (status, out, err) = cli.root(&["bucket", "create", "media"]).await;
    assert_eq!(status, 0, "{out}{err}");
    let (status, _, err) = cli.root(&["bucket", "create", "media"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("BucketAlreadyExists"), "{err}");
    let (status, _, err) = cli.root(&["bucket", "create", "Bad_Name"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("InvalidBucketName"), "{err}");

    let put = |key: &'static str, len: usize, seed: u64| {
        root.put_object().bucket("media").key(key).body(ByteStream::from(support::bytes(len, seed))).send()
    };
    for (i, key) in ["a.ts", "b.ts", "c.ts"].into_iter().enumerate() {
        put(key, 300 << 10, i as u64).await.unwrap();
    }
    put("index.m3u8", 10 << 10, 9).await.unwrap();
    let (status, out, _) = cli.root(&["--json", "bucket", "info", "media"]).await;
    assert_eq!(status, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["usage"]["objects"], 4, "{v}");
    assert_eq!(v["usage"]["bytes"], (900 << 10) + (10 << 10), "{v}");
    assert_eq!(v["owner"], ROOT);

    // A quota below the usage is refused; one above it is enforced.
    let (status, _, err) = cli.root(&["bucket", "quota", "media", "500KiB"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("QuotaBelowUsage"), "{err}");
    assert_eq!(cli.root(&["bucket", "quota", "media", "1MiB"]).await.0, 0);
    put("d.ts", 100 << 10, 4).await.unwrap();
    let e = put("e.ts", 100 << 10, 5).await.unwrap_err();
    assert_eq!(code(&e), "QuotaExceeded");
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 400);
    assert!(root.head_object().bucket("media").key("e.ts").send().await.is_err(), "a refused body was stored");
    root.delete_object().bucket("media").key("a.ts").send().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await; // the gateway counts again
    put("e.ts", 100 << 10, 5).await.unwrap();
    let (_, out, _) = cli.root(&["bucket", "info", "media"]).await;
    assert!(out.contains("quota: 1.0 MiB"), "{out}");
    assert_eq!(cli.root(&["bucket", "quota", "media", "0"]).await.0, 0);
    put("f.ts", 600 << 10, 6).await.unwrap();

    // EC profiles of new objects.
    assert_eq!(ec_of(&cluster, "media", "f.ts").await, (4, 2));
    let (status, out, err) = cli.root(&["bucket", "set-ec", "media", "2+1"]).await;
    assert_eq!(status, 0, "{out}{err}");
    put("g.ts", 300 << 10, 7).await.unwrap();
    assert_eq!(ec_of(&cluster, "media", "g.ts").await, (2, 1));
    assert_eq!(support::get_all(&root, "media", "g.ts").await, support::bytes(300 << 10, 7));
    let (status, _, err) = cli.root(&["bucket", "set-ec", "media", "9+9"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("NotEnoughDisks"), "{err}");
    assert_eq!(cli.root(&["bucket", "set-ec", "media", "nine"]).await.0, 2);
    assert_eq!(cli.root(&["bucket", "set-ec", "media", "default"]).await.0, 0);
    put("h.ts", 300 << 10, 8).await.unwrap();
    assert_eq!(ec_of(&cluster, "media", "h.ts").await, (4, 2));

    let (_, out, _) = cli.root(&["bucket", "list"]).await;
    assert!(out.starts_with("BUCKET") && out.lines().any(|l| l.starts_with("media")), "{out}");
    let (status, _, err) = cli.root(&["bucket", "delete", "media"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("BucketNotEmpty"), "{err}");
    assert_eq!(cli.root(&["bucket", "create", "scratch"]).await.0, 0);
    assert_eq!(cli.root(&["bucket", "delete", "scratch"]).await.0, 0);
    assert_eq!(cli.root(&["bucket", "info", "scratch"]).await.0, 1);
    cluster.shutdown().await;
}

/// `admin_listen`: the admin API and the console only on a port of their
/// own (which serves S3 too, for the console's object browser); the S3
/// port answers 404 for them and goes on serving S3.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_api_and_console_on_a_port_of_their_own() {
    let admin_addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cluster = Cluster::start_with(support::Options {
        gateways: 1,
        gateway: Box::new(move |g| g.admin_listen = Some(admin_addr)),
        ..Default::default()
    })
    .await;
    let root = add_key(&cluster, ROOT, ROOT_SECRET, true).await;
    root.create_bucket().bucket("media").send().await.unwrap();

    let on_s3_port = Cli { home: tempfile::tempdir().unwrap(), endpoint: cluster.endpoint(0) };
    let (status, out, err) = on_s3_port.root(&["status"]).await;
    assert_ne!(status, 0, "the S3 port served an admin call: {out}{err}");
    assert!(err.contains("404"), "{err}");
    let (status, _, body) = support::raw_http(cluster.gateway_addrs[0], "GET", "/tessera/console/", &[], b"").await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("admin port"));

    let on_admin_port = Cli { home: tempfile::tempdir().unwrap(), endpoint: format!("http://{admin_addr}") };
    let (status, out, err) = on_admin_port.root(&["status"]).await;
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("metadata: leader 1"), "{out}");
    let (status, _, body) = support::raw_http(admin_addr, "GET", "/tessera/console/", &[], b"").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("console.js"));

    // S3 on both ports.
    let via_admin =
        aws_sdk_s3::Client::from_conf(root.config().to_builder().endpoint_url(format!("http://{admin_addr}")).build());
    via_admin.put_object().bucket("media").key("a").body(ByteStream::from_static(b"both")).send().await.unwrap();
    assert_eq!(support::get_all(&root, "media", "a").await, b"both");
    cluster.shutdown().await;
}
