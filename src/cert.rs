//! `tessera cert`: the cluster's certificate authority and node
//! certificates, as files (see `tessera_rpc::cluster_tls`).
//!
//! ```sh
//! tessera cert ca --dir ./ca                                   # once per cluster
//! tessera cert node --ca ./ca --role datanode --name dn1 --out ./dn1/certs
//! tessera datanode --cluster-certs ./dn1/certs …
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
}

/// Runs `tessera cert …`; errors are one line on stderr and status 1.
pub fn run(args: CertArgs) -> ExitCode {
    let done = match args.command {
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
