//! `tessera cert`: the cluster's certificate authority and node
//! certificates, as files (see `tessera_rpc::cluster_tls`).
//!
//! ```sh
//! tessera cert ca --dir ./ca                                   # once per cluster
//! tessera cert node --ca ./ca --role datanode --name dn1 --out ./dn1/certs
//! tessera datanode --cluster-certs ./dn1/certs …
//!
//! # or: the bootstrap metadata node makes the CA; nodes join with tokens
//! tessera cert token --role datanode --meta https://meta1:9001 --cluster-certs ./meta1/certs
//! tessera datanode --join-token TSJ1.… --cluster-certs ./dn1/certs …
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use tessera_rpc::cluster_tls::{ClusterCa, Role};

/// Certificates for mutual TLS inside a cluster.
#[derive(Args, Debug)]
pub struct CertArgs {
    #[command(subcommand)]
    command: CertCommand,
}

#[derive(Subcommand, Debug)]
enum CertCommand {
    /// Make a cluster CA: `ca.pem` (give it to every node) and `ca.key` (keep it safe).
    Ca {
        /// Where to write them; must not hold a CA already.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a node certificate: `ca.pem`, `node.pem` and `node.key` in one folder, for `--cluster-certs`.
    Node {
        /// The CA's folder (`ca.pem`, `ca.key`).
        #[arg(long)]
        ca: PathBuf,
        /// What the node is: meta, datanode or gateway.
        #[arg(long)]
        role: Role,
        /// The node's name, for logs (e.g. `dn1`).
        #[arg(long)]
        name: String,
        /// Where to write the three files (replaced if there: a renewal).
        #[arg(long)]
        out: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        valid_days: u64,
    },
    /// Hand a CA made with `tessera cert ca` to the metadata service, so that
    /// nodes can join with tokens and renew their certificates.
    Upload {
        /// The CA's folder (`ca.pem`, `ca.key`).
        #[arg(long)]
        ca: PathBuf,
        /// Metadata node URLs (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        meta: Vec<String>,
        /// The certificate folder of a metadata node of the cluster (its identity signs the call).
        #[arg(long)]
        cluster_certs: PathBuf,
    },
    /// Make a single-use join token for one new node of a role (printed once).
    Token {
        /// What the joining node will be: meta, datanode or gateway.
        #[arg(long)]
        role: Role,
        /// How long the token stays usable (e.g. 30m, 24h).
        #[arg(long, default_value = "1h")]
        ttl: tessera_common::HumanDuration,
        /// Metadata node URLs (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        meta: Vec<String>,
        /// The certificate folder of a metadata node or gateway of the cluster (its identity signs the call).
        #[arg(long)]
        cluster_certs: PathBuf,
    },
}

/// Stores the CA in `dir` in the metadata service, as the metadata node
/// whose identity is in `certs` (refused if the cluster has another CA).
fn upload(dir: &std::path::Path, meta: Vec<String>, certs: &std::path::Path) -> Result<String, String> {
    use tessera_rpc::proto::meta::{self as pb, Command, command, command_result};
    let ca = ClusterCa::load(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tls = tessera_rpc::cluster_tls::ClusterTls::load(certs).map_err(|e| format!("{}: {e}", certs.display()))?;
    if tls.ca_pem().trim() != ca.cert_pem.trim() {
        return Err(format!("{} is not the CA of the certificates in {}", dir.display(), certs.display()));
    }
    tessera_rpc::cluster_tls::install(tls).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = tessera_rpc::MetaClient::new(tessera_rpc::MetaClientConfig::new(meta));
        let set = pb::SetClusterCa {
            ca: Some(pb::ClusterCa { cert_pem: ca.cert_pem.clone(), key_pem: ca.key_pem().to_owned() }),
        };
        let r = client
            .write(Command { now_ms: 0, op: Some(command::Op::SetClusterCa(set)) })
            .await
            .map_err(|e| e.to_string())?;
        match r.outcome {
            Some(command_result::Outcome::Failure(f)) => Err(f.message),
            _ => Ok("the cluster CA is in the metadata service: nodes may join with tokens and renew".to_owned()),
        }
    })
}

/// Makes a join token through the metadata service, as the node whose
/// identity is in `certs`.
fn token(role: Role, ttl: Duration, meta: Vec<String>, certs: &std::path::Path) -> Result<String, String> {
    use tessera_rpc::proto::meta::{Command, CreateJoinToken, command, command_result};
    if ttl.is_zero() || ttl > Duration::from_secs(7 * 86400) {
        return Err("--ttl must be above 0 and at most 7 days".into());
    }
    let tls = tessera_rpc::cluster_tls::ClusterTls::load(certs).map_err(|e| format!("{}: {e}", certs.display()))?;
    let token = tessera_rpc::enroll::JoinToken::generate(tls.ca_pem())?;
    tessera_rpc::cluster_tls::install(tls).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = tessera_rpc::MetaClient::new(tessera_rpc::MetaClientConfig::new(meta));
        let create = CreateJoinToken {
            id: token.id.clone(),
            secret_sha256: token.secret_sha256(),
            role: role.as_str().to_owned(),
            ttl_ms: ttl.as_millis() as u64,
        };
        let r = client
            .write(Command { now_ms: 0, op: Some(command::Op::CreateJoinToken(create)) })
            .await
            .map_err(|e| e.to_string())?;
        match r.outcome {
            Some(command_result::Outcome::Failure(f)) => Err(f.message),
            _ => Ok(token.to_string()),
        }
    })
}

/// Runs `tessera cert …`; errors are one line on stderr and status 1.
pub fn run(args: CertArgs) -> ExitCode {
    let done = match args.command {
        CertCommand::Token { role, ttl, meta, cluster_certs } => token(role, ttl.0, meta, &cluster_certs),
        CertCommand::Upload { ca, meta, cluster_certs } => upload(&ca, meta, &cluster_certs),
        CertCommand::Ca { dir } => {
            if dir.join("ca.key").exists() || dir.join("ca.pem").exists() {
                Err(format!("{} already holds a CA; a new one would split the cluster", dir.display()))
            } else {
                ClusterCa::generate().and_then(|ca| ca.save(&dir)).map_err(|e| e.to_string()).map(|()| {
                    format!("cluster CA written to {} (ca.pem for every node; keep ca.key safe)", dir.display())
                })
            }
        }
        CertCommand::Node { ca, role, name, out, valid_days } => {
            if valid_days == 0 || valid_days > 10 * 365 {
                Err("--valid-days must be 1 to 3650".to_owned())
            } else {
                let valid = Duration::from_secs(valid_days * 86400);
                ClusterCa::load(&ca)
                    .and_then(|ca| ca.issue_into(&out, role, &name, valid))
                    .map_err(|e| e.to_string())
                    .map(|()| format!("{} certificate for {name} written to {}", role.as_str(), out.display()))
            }
        }
    };
    match done {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tessera cert: {e}");
            ExitCode::FAILURE
        }
    }
}
