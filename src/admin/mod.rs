//! `tessera admin`: the operator's CLI. It talks only to the admin API of a
//! gateway (`/tessera/admin/v1/`, docs/admin-api.md), signing each call
//! with SigV4 as an S3 client would.
//!
//! Where it connects and as whom, first found wins: the flags
//! (`--endpoint`, `--admin-access-key`, `--admin-secret-key`), the variables
//! `TESSERA_ENDPOINT`, `TESSERA_ACCESS_KEY`/`TESSERA_SECRET_KEY` (then
//! `TESSERA_ROOT_ACCESS_KEY`/`TESSERA_ROOT_SECRET_KEY`), then an alias of
//! the profile file `~/.config/tessera/admin.toml` (`--alias`, else the one
//! named `default`), then `http://127.0.0.1:9000`.
//!
//! Exit status: 0 done; 1 the cluster refused the call (the message says
//! why); 2 a usage error (bad arguments, no credentials); 3 the gateway could
//! not be reached or failed.

mod client;
mod cluster;
mod import;
mod ops;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tessera_common::{HumanDuration, amz_date};

use client::{call, encode_segment, ok};

/// Operator commands against a running cluster, through its admin API.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The gateway's URL (http://host:port or https://host:port).
    #[arg(long, env = "TESSERA_ENDPOINT", global = true)]
    endpoint: Option<String>,
    /// PEM file of the certificate authorities to trust for an https:// endpoint (a self-signed server's cert.pem) [default: the system's].
    #[arg(long, env = "TESSERA_CA_BUNDLE", global = true)]
    ca_bundle: Option<PathBuf>,
    /// The access key calls are signed with (root, or a key allowed admin:* actions).
    #[arg(long, env = "TESSERA_ACCESS_KEY", global = true)]
    admin_access_key: Option<String>,
    /// Its secret.
    #[arg(long, env = "TESSERA_SECRET_KEY", hide_env_values = true, global = true)]
    admin_secret_key: Option<String>,
    /// An alias of the profile file (~/.config/tessera/admin.toml) [default: `default`].
    #[arg(long, env = "TESSERA_ALIAS", global = true)]
    alias: Option<String>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Access keys (users, as `mc admin user` calls them): list, info, create, disable, enable, expire, attach, detach, delete.
    #[command(alias = "user")]
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Named identity policies: list, info, put, delete.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Aliases of the profile file: set, list, remove.
    Alias {
        #[command(subcommand)]
        command: AliasCommand,
    },
    /// Server-side encryption: the gateway's SSE-S3 keys, rewrap after a rotation.
    Sse {
        #[command(subcommand)]
        command: cluster::SseCommand,
    },
    /// Join tokens: `create --role R [--ttl 1h]` prints a single-use token for one new node.
    JoinToken {
        #[command(subcommand)]
        command: cluster::JoinTokenCommand,
    },
    /// The cluster at a glance: metadata members, datanodes, disks, redundancy, workers.
    Status,
    /// Datanodes: list, drain, undrain, remove (--dry-run shows what would move).
    Node {
        #[command(subcommand)]
        command: ops::NodeCommand,
    },
    /// Disks: list, out, in, reweight, remove (--dry-run shows what would move).
    Disk {
        #[command(subcommand)]
        command: ops::DiskCommand,
    },
    /// Every background worker of every datanode, and the operator's rates.
    Workers,
    /// The heal workers: status [--wait], throttle RATE.
    Heal {
        #[command(subcommand)]
        command: ops::WorkCommand,
    },
    /// The rebalance workers (drains, new disks): status [--wait], throttle RATE.
    Rebalance {
        #[command(subcommand)]
        command: ops::WorkCommand,
    },
    /// The scrub workers: status [--wait], throttle RATE.
    Scrub {
        #[command(subcommand)]
        command: ops::WorkCommand,
    },
    /// Buckets: list, info (usage), create, delete, quota, set-ec.
    Bucket {
        #[command(subcommand)]
        command: ops::BucketCommand,
    },
    /// The garbage collectors: status [--wait], throttle FILES/s (shard
    /// files examined per second on each disk), pause, start.
    Gc {
        #[command(subcommand)]
        command: ops::WorkCommand,
    },
    /// The metadata leader's lifecycle worker: status [--wait], throttle
    /// VERSIONS/s, pause, start.
    Lifecycle {
        #[command(subcommand)]
        command: ops::WorkCommand,
    },
    /// Copy buckets from another S3 store (MinIO, Garage, AWS): resumable, verified.
    Import(import::ImportArgs),
    /// The metadata service: members, add, remove, transfer-leader.
    Meta {
        #[command(subcommand)]
        command: ops::MetaCommand,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Every key (secrets are never shown again).
    List,
    /// One key.
    Info { id: String },
    /// A new key; its secret is printed once. With --access-key and --secret,
    /// a key moved from another S3 store keeps its credentials.
    Create {
        #[arg(long)]
        description: Option<String>,
        /// Attach this policy (repeatable).
        #[arg(long = "policy")]
        policies: Vec<String>,
        /// The access key id to create (default: a fresh one).
        #[arg(long, requires = "secret")]
        access_key: Option<String>,
        /// Its secret (default: a fresh one).
        #[arg(long, requires = "access_key")]
        secret: Option<String>,
        /// Refuse the key after this long (e.g. 30d, 12h).
        #[arg(long)]
        expires: Option<HumanDuration>,
    },
    /// Refuse the key until it is enabled again.
    Disable { id: String },
    /// Accept a disabled key again.
    Enable { id: String },
    /// Refuse the key after DURATION from now (e.g. 30d), or `never`.
    Expire { id: String, duration: String },
    /// Attach policies to a key.
    Attach {
        id: String,
        #[arg(required = true)]
        policies: Vec<String>,
    },
    /// Detach policies from a key.
    Detach {
        id: String,
        #[arg(required = true)]
        policies: Vec<String>,
    },
    /// Delete a key.
    Delete { id: String },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Every policy.
    List,
    /// One policy's document.
    Info { name: String },
    /// Create or replace a policy from a JSON file (`-`: standard input).
    #[command(alias = "create")]
    Put { name: String, file: PathBuf },
    /// Delete a policy (refused while a key has it attached).
    Delete { name: String },
}

#[derive(Subcommand, Debug)]
enum AliasCommand {
    /// Save an alias: where a cluster is and the key to call it with.
    Set {
        name: String,
        endpoint: String,
        access_key: String,
        secret_key: String,
        /// The CA bundle to trust for this https:// endpoint.
        #[arg(long = "alias-ca-bundle")]
        ca_bundle: Option<PathBuf>,
    },
    /// The saved aliases (secrets left out).
    List,
    /// Forget an alias.
    Remove { name: String },
}

/// Why a command failed, and the exit status it means.
enum Failure {
    /// The cluster refused the call (status 1).
    Refused(String),
    /// Bad arguments or no credentials (status 2).
    Usage(String),
    /// The gateway could not be reached or failed (status 3).
    Unreachable(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Usage(format!("{e:#}"))
    }
}

/// Runs `tessera admin`.
pub fn run(args: AdminArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Unreachable(e.to_string()))
        .and_then(|rt| rt.block_on(dispatch(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(m)) => {
            eprintln!("tessera admin: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(m)) => {
            eprintln!("tessera admin: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Unreachable(m)) => {
            eprintln!("tessera admin: {m}");
            ExitCode::from(3)
        }
    }
}

// ------------------------------------------------------------- profile

/// One alias of the profile file.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
struct Alias {
    endpoint: String,
    access_key: String,
    secret_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_bundle: Option<PathBuf>,
}

#[derive(serde::Serialize, serde::Deserialize, Default, Debug)]
struct Profile {
    #[serde(default)]
    aliases: BTreeMap<String, Alias>,
}

fn profile_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set"))?).join(".config"),
    };
    Ok(base.join("tessera").join("admin.toml"))
}

fn load_profile() -> anyhow::Result<Profile> {
    let path = profile_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("{} does not parse", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Profile::default()),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

fn save_profile(p: &Profile) -> anyhow::Result<()> {
    let path = profile_path()?;
    let dir = path.parent().ok_or_else(|| anyhow!("no folder for {}", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    crate::server::write_private(&path, &toml::to_string(p)?)?;
    Ok(())
}

/// Where to connect and as whom.
struct Target {
    endpoint: String,
    access_key: String,
    secret_key: String,
    ca_bundle: Option<PathBuf>,
}

fn target(args: &AdminArgs) -> Result<Target, Failure> {
    let profile = load_profile()?;
    let alias = match &args.alias {
        Some(name) => Some(
            profile
                .aliases
                .get(name)
                .cloned()
                .ok_or_else(|| Failure::Usage(format!("no alias {name} in the profile")))?,
        ),
        None => profile.aliases.get("default").cloned(),
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let endpoint = args
        .endpoint
        .clone()
        .or_else(|| alias.as_ref().map(|a| a.endpoint.clone()))
        .unwrap_or_else(|| "http://127.0.0.1:9000".to_owned());
    let access_key = args
        .admin_access_key
        .clone()
        .or_else(|| env("TESSERA_ROOT_ACCESS_KEY"))
        .or_else(|| alias.as_ref().map(|a| a.access_key.clone()));
    let secret_key = args
        .admin_secret_key
        .clone()
        .or_else(|| env("TESSERA_ROOT_SECRET_KEY"))
        .or_else(|| alias.as_ref().map(|a| a.secret_key.clone()));
    let ca_bundle = args
        .ca_bundle
        .clone()
        .or_else(|| alias.as_ref().and_then(|a| a.ca_bundle.clone()))
        .or_else(|| env("AWS_CA_BUNDLE").map(PathBuf::from));
    match (access_key, secret_key) {
        (Some(access_key), Some(secret_key)) => Ok(Target { endpoint, access_key, secret_key, ca_bundle }),
        _ => Err(Failure::Usage(
            "no credentials: give --admin-access-key and --admin-secret-key, TESSERA_ACCESS_KEY and TESSERA_SECRET_KEY, or an alias (tessera admin alias set)".into(),
        )),
    }
}

// ------------------------------------------------------------- commands

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .try_into()
        .unwrap_or(u64::MAX)
}

fn expiry(d: &HumanDuration) -> u64 {
    now_ms().saturating_add(d.0.as_millis().try_into().unwrap_or(u64::MAX))
}

fn when(ms: u64) -> String {
    if ms == 0 {
        return "never".into();
    }
    let date = amz_date(ms / 1000);
    format!("{}-{}-{} {}:{}", &date[..4], &date[4..6], &date[6..8], &date[9..11], &date[11..13])
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn key_rows(keys: &[Value]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let policies: Vec<&str> =
                k["policies"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            let state = match (k["root"].as_bool(), k["disabled"].as_bool()) {
                (Some(true), _) => "root",
                (_, Some(true)) => "disabled",
                _ => "enabled",
            };
            vec![
                k["access_key"].as_str().unwrap_or("").to_owned(),
                state.to_owned(),
                when(k["expires_ms"].as_u64().unwrap_or(0)),
                if policies.is_empty() { "-".to_owned() } else { policies.join(",") },
                k["description"].as_str().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    table(&["ACCESS KEY", "STATE", "EXPIRES", "POLICIES", "DESCRIPTION"], &rows)
}

fn print(json_out: bool, v: &Value, human: impl FnOnce(&Value) -> String) {
    if json_out {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
    } else {
        print!("{}", human(v));
    }
}

async fn dispatch(args: AdminArgs) -> Result<(), Failure> {
    let json_out = args.json;
    match &args.command {
        AdminCommand::Alias { command } => alias(command, json_out),
        AdminCommand::Key { command } => {
            let t = target(&args)?;
            key(&t, command, json_out).await
        }
        AdminCommand::Policy { command } => {
            let t = target(&args)?;
            policy(&t, command, json_out).await
        }
        AdminCommand::Sse { command } => {
            let t = target(&args)?;
            cluster::sse(&t, command, json_out).await
        }
        AdminCommand::JoinToken { command } => {
            let t = target(&args)?;
            cluster::join_token(&t, command, json_out).await
        }
        AdminCommand::Status => ops::status(&target(&args)?, json_out).await,
        AdminCommand::Node { command } => ops::node(&target(&args)?, command, json_out).await,
        AdminCommand::Disk { command } => ops::disk(&target(&args)?, command, json_out).await,
        AdminCommand::Workers => ops::workers(&target(&args)?, json_out).await,
        AdminCommand::Heal { command } => ops::work(&target(&args)?, "heal", command, json_out).await,
        AdminCommand::Rebalance { command } => ops::work(&target(&args)?, "rebalance", command, json_out).await,
        AdminCommand::Scrub { command } => ops::work(&target(&args)?, "scrub", command, json_out).await,
        AdminCommand::Gc { command } => ops::work(&target(&args)?, "gc", command, json_out).await,
        AdminCommand::Lifecycle { command } => ops::work(&target(&args)?, "lifecycle", command, json_out).await,
        AdminCommand::Meta { command } => ops::meta(&target(&args)?, command, json_out).await,
        AdminCommand::Import(a) => import::import(&target(&args)?, a, json_out).await,
        AdminCommand::Bucket { command } => ops::bucket(&target(&args)?, command, json_out).await,
    }
}

async fn key(t: &Target, command: &KeyCommand, json_out: bool) -> Result<(), Failure> {
    let patch = |id: &str, body: Value| {
        let path = format!("keys/{}", encode_segment(id));
        async move { ok(call(t, "PATCH", &path, body.to_string().as_bytes()).await?) }
    };
    let one = |v: &Value| key_rows(std::slice::from_ref(v));
    match command {
        KeyCommand::List => {
            let v = ok(call(t, "GET", "keys", b"").await?)?;
            print(json_out, &v, |v| key_rows(v["keys"].as_array().map_or(&[][..], Vec::as_slice)));
        }
        KeyCommand::Info { id } => {
            let v = ok(call(t, "GET", &format!("keys/{}", encode_segment(id)), b"").await?)?;
            print(json_out, &v, one);
        }
        KeyCommand::Create { description, policies, access_key, secret, expires } => {
            let mut body = json!({"policies": policies});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let (Some(a), Some(s)) = (access_key, secret) {
                body["access_key"] = json!(a);
                body["secret_key"] = json!(s);
            }
            if let Some(e) = expires {
                body["expires_ms"] = json!(expiry(e));
            }
            let v = ok(call(t, "POST", "keys", body.to_string().as_bytes()).await?)?;
            print(json_out, &v, |v| {
                format!(
                    "access key: {}\nsecret key: {}\n(the secret is shown this once: keep it now)\n",
                    v["access_key"].as_str().unwrap_or(""),
                    v["secret_key"].as_str().unwrap_or("")
                )
            });
        }
        KeyCommand::Disable { id } => print(json_out, &patch(id, json!({"disabled": true})).await?, one),
        KeyCommand::Enable { id } => print(json_out, &patch(id, json!({"disabled": false})).await?, one),
        KeyCommand::Expire { id, duration } => {
            let at = if duration == "never" {
                0
            } else {
                let d: HumanDuration =
                    duration.parse().map_err(|e| Failure::Usage(format!("{duration}: {e} (or `never`)")))?;
                expiry(&d)
            };
            print(json_out, &patch(id, json!({"expires_ms": at})).await?, one);
        }
        KeyCommand::Attach { id, policies } | KeyCommand::Detach { id, policies } => {
            let current = ok(call(t, "GET", &format!("keys/{}", encode_segment(id)), b"").await?)?;
            let mut now: Vec<String> = current["policies"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            if matches!(command, KeyCommand::Attach { .. }) {
                for p in policies {
                    if !now.contains(p) {
                        now.push(p.clone());
                    }
                }
            } else {
                if let Some(missing) = policies.iter().find(|p| !now.contains(p)) {
                    return Err(Failure::Refused(format!("policy {missing} is not attached to {id}")));
                }
                now.retain(|p| !policies.contains(p));
            }
            print(json_out, &patch(id, json!({"policies": now})).await?, one);
        }
        KeyCommand::Delete { id } => {
            let v = ok(call(t, "DELETE", &format!("keys/{}", encode_segment(id)), b"").await?)?;
            print(json_out, &v, |_| format!("deleted {id}\n"));
        }
    }
    Ok(())
}

async fn policy(t: &Target, command: &PolicyCommand, json_out: bool) -> Result<(), Failure> {
    match command {
        PolicyCommand::List | PolicyCommand::Info { .. } => {
            let v = ok(call(t, "GET", "policies", b"").await?)?;
            let all = v["policies"].as_array().cloned().unwrap_or_default();
            if let PolicyCommand::Info { name } = command {
                let p = all
                    .iter()
                    .find(|p| p["name"].as_str() == Some(name))
                    .ok_or_else(|| Failure::Refused(format!("NoSuchPolicy: no policy {name}")))?;
                print(json_out, p, |p| format!("{}\n", p["document"].as_str().unwrap_or("")));
                return Ok(());
            }
            print(json_out, &v, |_| {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|p| {
                        vec![p["name"].as_str().unwrap_or("").to_owned(), when(p["created_ms"].as_u64().unwrap_or(0))]
                    })
                    .collect();
                table(&["NAME", "CREATED"], &rows)
            });
        }
        PolicyCommand::Put { name, file } => {
            let mut doc = Vec::new();
            if file.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut doc).map_err(|e| Failure::Usage(format!("standard input: {e}")))?;
            } else {
                doc = std::fs::read(file).map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?;
            }
            let v = ok(call(t, "PUT", &format!("policies/{}", encode_segment(name)), &doc).await?)?;
            print(json_out, &v, |_| format!("policy {name} stored\n"));
        }
        PolicyCommand::Delete { name } => {
            let v = ok(call(t, "DELETE", &format!("policies/{}", encode_segment(name)), b"").await?)?;
            print(json_out, &v, |_| format!("deleted {name}\n"));
        }
    }
    Ok(())
}

fn alias(command: &AliasCommand, json_out: bool) -> Result<(), Failure> {
    let mut p = load_profile()?;
    match command {
        AliasCommand::Set { name, endpoint, access_key, secret_key, ca_bundle } => {
            if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                return Err(Failure::Usage(format!(
                    "{endpoint}: an endpoint is http://host:port or https://host:port"
                )));
            }
            let alias = Alias {
                endpoint: endpoint.clone(),
                access_key: access_key.clone(),
                secret_key: secret_key.clone(),
                ca_bundle: ca_bundle.clone(),
            };
            p.aliases.insert(name.clone(), alias);
            save_profile(&p)?;
            println!("alias {name} saved in {}", profile_path()?.display());
        }
        AliasCommand::List => {
            let list: Vec<Value> = p
                .aliases
                .iter()
                .map(|(n, a)| json!({"name": n, "endpoint": a.endpoint, "access_key": a.access_key}))
                .collect();
            let v = json!({"aliases": list});
            print(json_out, &v, |_| {
                let rows: Vec<Vec<String>> =
                    p.aliases.iter().map(|(n, a)| vec![n.clone(), a.endpoint.clone(), a.access_key.clone()]).collect();
                table(&["ALIAS", "ENDPOINT", "ACCESS KEY"], &rows)
            });
        }
        AliasCommand::Remove { name } => {
            if p.aliases.remove(name).is_none() {
                return Err(Failure::Usage(format!("no alias {name}")));
            }
            save_profile(&p)?;
            println!("alias {name} removed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::client::{message, parse_response};
    use super::*;

    #[test]
    fn responses_parse_with_a_length_or_chunked() {
        let plain = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), Some((201, b"{}".to_vec())));
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((200, b"{\"a\":1}".to_vec())));
        assert_eq!(parse_response(b"garbage"), None);
    }

    #[test]
    fn dates_and_tables() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_796_515_200), "20261206T000000Z");
        assert_eq!(when(0), "never");
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    LONGER\nxyz  1\n");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn errors_read_from_json_or_xml() {
        let j = json!({"error": {"code": "DeleteConflict", "message": "in use"}});
        assert_eq!(message(&j), "DeleteConflict: in use");
        let x = Value::String("<Error><Code>AccessDenied</Code><Message>no</Message></Error>".into());
        assert_eq!(message(&x), "AccessDenied: no");
    }
}
