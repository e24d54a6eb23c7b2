//! The `tessera` binary: one executable for every role and the admin CLI.
//! Config loading and role wiring only; the work lives in the crates.

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
    Server,
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
            Command::Server => "the `tessera` binary issue (embedded default)",
            Command::Meta => "the metadata service issue",
            Command::Datanode => "the datanode issue",
            Command::Gateway => "the gateway issue",
            Command::Admin => "the operations issue",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = format!("{:?}", cli.command).to_lowercase();
    eprintln!("tessera {name}: not available yet; it arrives with {}. See README.md.", cli.command.arrives_with());
    ExitCode::from(2)
}
