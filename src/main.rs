//! The `tessera` binary: one executable for every role and the admin CLI.
//! Config loading and role wiring only; the work lives in the crates.

mod config;
mod roles;
mod server;

use std::future::Future;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use config::{ConfigFile, DatanodeOptions, GatewayOptions, LogFormat, MetaOptions, ServerOptions, resolve};

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
    Server {
        #[command(flatten)]
        file: ConfigFile,
        #[command(flatten)]
        opts: ServerOptions,
    },
    /// A metadata (Raft) node.
    Meta {
        #[command(flatten)]
        file: ConfigFile,
        #[command(flatten)]
        opts: MetaOptions,
    },
    /// A datanode serving local disks.
    Datanode {
        #[command(flatten)]
        file: ConfigFile,
        #[command(flatten)]
        opts: DatanodeOptions,
    },
    /// An S3 gateway.
    Gateway {
        #[command(flatten)]
        file: ConfigFile,
        #[command(flatten)]
        opts: GatewayOptions,
    },
    /// Operator commands against a running cluster.
    Admin,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Server { file, opts } => {
            start("server", resolve(opts, file.config.as_deref()), |o| o.log_format, server::run)
        }
        Command::Meta { file, opts } => {
            start("meta", resolve(opts, file.config.as_deref()), |o| o.log_format, roles::run_meta)
        }
        Command::Datanode { file, opts } => {
            start("datanode", resolve(opts, file.config.as_deref()), |o| o.log_format, roles::run_datanode)
        }
        Command::Gateway { file, opts } => {
            start("gateway", resolve(opts, file.config.as_deref()), |o| o.log_format, roles::run_gateway)
        }
        Command::Admin => {
            eprintln!("tessera admin: not available yet; it arrives with the operations issue. See README.md.");
            ExitCode::from(2)
        }
    }
}

/// Sets up logging and the runtime and runs one role; any error is one
/// line on stderr and exit status 1.
fn start<O, F>(
    name: &str,
    opts: anyhow::Result<O>,
    log_format: impl Fn(&O) -> Option<LogFormat>,
    run: impl FnOnce(O) -> F,
) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    let fail = |e: anyhow::Error| {
        // `{:#}` joins the cause chain on one line.
        eprintln!("tessera {name}: {}", format!("{e:#}").replace('\n', " "));
        ExitCode::FAILURE
    };
    let opts = match opts {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    init_logging(log_format(&opts).unwrap_or_default());
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow::anyhow!("cannot start the runtime: {e}")),
    };
    match rt.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Logs to stderr; `RUST_LOG` filters (default: warnings, and Tessera's own info).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,tessera=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
