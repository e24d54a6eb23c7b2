//! The `tessera` binary: one executable for every role and the admin CLI.
//! Config loading and role wiring only; the work lives in the crates.

mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tessera: an erasure-coded, Raft-consistent, S3-compatible object store.
#[derive(Parser, Debug)]
#[command(name = "tessera", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// All roles in one process, data in a local folder (the embedded default).
    Server(server::ServerArgs),
    /// A metadata (Raft) node.
    Meta,
    /// A datanode serving local disks.
    Datanode,
    /// An S3 gateway.
    Gateway,
    /// Operator commands against a running cluster.
    Admin,
}

impl Command {
    /// The issue that builds this command, for the "not yet" message.
    fn arrives_with(&self) -> &'static str {
        match self {
            Command::Server(_) => "the `tessera` binary issue (embedded default)",
            Command::Meta => "the metadata service issue",
            Command::Datanode => "the datanode issue",
            Command::Gateway => "the gateway issue",
            Command::Admin => "the operations issue",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => {
            init_logging();
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("tessera server: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(server::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tessera server: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        other => {
            let name = format!("{other:?}").to_lowercase();
            eprintln!("tessera {name}: not available yet; it arrives with {}. See README.md.", other.arrives_with());
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr; `RUST_LOG` filters (default: warnings, and Tessera's own info).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,tessera=info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
