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
