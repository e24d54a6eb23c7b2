//! `tessera keyring`: the SSE-S3 master keyring file of the gateways.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use tessera_gateway::sse::Keyring;

/// `tessera keyring …`
#[derive(Args, Debug)]
pub struct KeyringArgs {
    #[command(subcommand)]
    command: KeyringCommand,
}

#[derive(Subcommand, Debug)]
enum KeyringCommand {
    /// Makes a new keyring file with one random key (mode 0600; never overwrites).
    New {
        /// The keyring file.
        file: PathBuf,
    },
    /// Adds a new current key; older keys stay to open what they wrapped.
    /// Gateways pick the change up within seconds; `tessera admin sse rewrap`
    /// then moves every object to the new key so old ones can be retired.
    Rotate {
        /// The keyring file.
        file: PathBuf,
    },
    /// Lists the key ids, the current one last (never the keys).
    List {
        /// The keyring file.
        file: PathBuf,
    },
}

pub fn run(args: KeyringArgs) -> ExitCode {
    let r = match args.command {
        KeyringCommand::New { file } => Keyring::create_file(&file).map(|k| {
            println!("made {} with key {}", file.display(), k.current_id());
        }),
        KeyringCommand::Rotate { file } => Keyring::rotate_file(&file).map(|id| {
            println!("{}: new current key {id}", file.display());
        }),
        KeyringCommand::List { file } => Keyring::load(&file).map(|k| {
            let ids: Vec<&str> = k.ids().collect();
            for (i, id) in ids.iter().enumerate() {
                let current = if i + 1 == ids.len() { "  (current)" } else { "" };
                println!("{id}{current}");
            }
        }),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera keyring: {e}");
            ExitCode::FAILURE
        }
    }
}
