//! `tessera admin sse …` and `tessera admin join-token …`: the cluster's
//! encryption keys and joining nodes, through the admin API.

use clap::Subcommand;
use serde_json::json;

use super::{Failure, Target, call, ok, print, table};

#[derive(Subcommand, Debug)]
pub(super) enum SseCommand {
    /// The master key ids the gateway holds, and the current one.
    Status,
    /// Re-wrap every object's data key under the current master key (no data is rewritten).
    Rewrap,
}

#[derive(Subcommand, Debug)]
pub(super) enum JoinTokenCommand {
    /// A single-use token for one new node of `--role` (printed once).
    Create {
        /// meta, datanode or gateway.
        #[arg(long)]
        role: String,
        /// How long it stays usable (e.g. 30m, 24h; at most 7 days).
        #[arg(long, default_value = "1h")]
        ttl: tessera_common::HumanDuration,
    },
}

pub(super) async fn sse(t: &Target, command: &SseCommand, json_out: bool) -> Result<(), Failure> {
    match command {
        SseCommand::Status => {
            let v = ok(call(t, "GET", "sse", b"").await?)?;
            print(json_out, &v, |v| {
                let current = v["current_key"].as_str().unwrap_or("");
                let rows: Vec<Vec<String>> = v["keys"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice)
                    .iter()
                    .filter_map(|k| k.as_str())
                    .map(|k| vec![k.to_owned(), if k == current { "current" } else { "" }.to_owned()])
                    .collect();
                table(&["KEY", ""], &rows)
            });
        }
        SseCommand::Rewrap => {
            let v = ok(call(t, "POST", "sse/rewrap", b"").await?)?;
            print(json_out, &v, |v| {
                format!(
                    "{} records examined, {} re-wrapped under {}\n",
                    v["examined"].as_u64().unwrap_or(0),
                    v["rewrapped"].as_u64().unwrap_or(0),
                    v["current_key"].as_str().unwrap_or("")
                )
            });
        }
    }
    Ok(())
}

pub(super) async fn join_token(t: &Target, command: &JoinTokenCommand, json_out: bool) -> Result<(), Failure> {
    let JoinTokenCommand::Create { role, ttl } = command;
    let body = json!({"role": role, "ttl_s": ttl.0.as_secs()});
    let v = ok(call(t, "POST", "join-tokens", body.to_string().as_bytes()).await?)?;
    print(json_out, &v, |v| format!("{}\n", v["token"].as_str().unwrap_or("")));
    Ok(())
}
