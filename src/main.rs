//! The `tessera` binary: one executable for every role and the admin CLI.
//! Config loading and role wiring only; the work lives in the crates.

mod admin;
mod cert;
mod config;
mod keyring;
mod roles;
mod server;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: small requests allocate and free
/// many short-lived buffers, where glibc's allocator showed as ~14% of the
/// server's CPU in a 4 KiB GET profile.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Operator commands against a running cluster (its admin API).
    Admin(admin::AdminArgs),
    /// Certificates for mutual TLS inside a cluster (a CA, node certificates).
    Cert(cert::CertArgs),
    /// SSE-S3 master keyrings: make one, add a new current key.
    Keyring(keyring::KeyringArgs),
}

/// How a role's options say to log: (format, OTLP endpoint).
macro_rules! logs {
    () => {
        |o| (o.log_format.unwrap_or_default(), o.otlp_endpoint.clone())
    };
}

fn main() -> ExitCode {
    // Transparent huge pages off: mimalloc marks its arenas MADV_HUGEPAGE,
    // and a 2 MiB page is resident in full once any byte of it is touched,
    // so every thread heap and half-used segment cost whole huge pages.
    // Measured (issue 24): the 11-process cluster's summed peak RSS in 16
    // streams of 1 MiB GETs 626 → 381 MiB, `tessera server` 205–262 →
    // 105–171 MiB, throughput within the runs' noise. Best effort: a
    // kernel without the call keeps its default.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    // One crypto provider for every TLS connection of the process.
    tessera_rpc::tls::install_provider();
    match cli.command {
        Command::Server { file, opts } => start("server", resolve(opts, file.config.as_deref()), logs!(), server::run),
        Command::Meta { file, opts } => start("meta", resolve(opts, file.config.as_deref()), logs!(), roles::run_meta),
        Command::Datanode { file, opts } => {
            start("datanode", resolve(opts, file.config.as_deref()), logs!(), roles::run_datanode)
        }
        Command::Gateway { file, opts } => {
            start("gateway", resolve(opts, file.config.as_deref()), logs!(), roles::run_gateway)
        }
        Command::Admin(args) => admin::run(args),
        Command::Cert(args) => cert::run(args),
        Command::Keyring(args) => keyring::run(args),
    }
}

/// Sets up logging and the runtime and runs one role; any error is one
/// line on stderr and exit status 1.
fn start<O, F>(
    name: &str,
    opts: anyhow::Result<O>,
    logs: impl Fn(&O) -> (LogFormat, Option<String>),
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
    let (format, otlp) = logs(&opts);
    if let Some(e) = &otlp
        && !e.starts_with("http://")
    {
        return fail(anyhow::anyhow!("otlp_endpoint `{e}`: only http:// collectors are supported"));
    }
    init_logging(format, otlp.is_some());
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow::anyhow!("cannot start the runtime: {e}")),
    };
    // The OTLP exporter runs beside the role and sends a last batch at exit.
    let (stop_export, export_stop) = tokio::sync::watch::channel(false);
    let exporter = otlp.map(|endpoint| {
        let service = format!("tessera-{name}");
        rt.spawn(tessera_rpc::trace::export_loop(endpoint, service, Duration::from_secs(1), export_stop))
    });
    let result = rt.block_on(run(opts));
    if let Some(exporter) = exporter {
        let _ = stop_export.send(true);
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), exporter).await });
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Logs to stderr; `RUST_LOG` filters (default: warnings, and Tessera's own
/// info). With `otlp`, Tessera's spans also get trace ids and are queued for
/// the exporter, whatever `RUST_LOG` says.
fn init_logging(format: LogFormat, otlp: bool) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,s3s=off,tessera=info"));
    // Colour codes only for a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let traces = otlp.then(|| {
        tessera_rpc::trace::OtlpLayer
            .with_filter(tracing_subscriber::filter::filter_fn(|m| m.is_span() && m.target().starts_with("tessera")))
    });
    let _ = tracing_subscriber::registry().with(fmt.with_filter(filter)).with(traces).try_init();
}
