//! `tessera admin status`, `node …`, `disk …`, `workers`, `heal|rebalance|scrub
//! …` and `meta members`: the cluster's state and the operator's changes to
//! it, through the admin API's cluster calls.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tessera_common::ByteSize;

use super::{Failure, Target, call, ok, print, table};

/// A change to one node or disk.
#[derive(Args, Debug)]
pub(super) struct Change {
    /// The node's or disk's id (`103` or `n103`, `4` or `d4`).
    id: String,
    /// Say what would move and what a failure would then lose; change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand, Debug)]
pub(super) enum NodeCommand {
    /// Every datanode: its host, failure domains, disks and state.
    List,
    /// Drain a datanode: its disks are marked out and the rebalance moves
    /// their shards away (they keep serving reads meanwhile).
    Drain(Change),
    /// Take a drained datanode's disks back in.
    Undrain(Change),
    /// Remove a drained, empty datanode from the cluster map.
    Remove(Change),
    /// Set the placement weight of each of a datanode's disks (0: nothing is placed on them).
    Reweight {
        #[command(flatten)]
        change: Change,
        weight: u64,
    },
    /// Add a datanode: a single-use join token, and the command that starts the node with it.
    Add {
        /// How long the token stays usable (e.g. 30m, 24h; at most 7 days).
        #[arg(long, default_value = "1h")]
        ttl: tessera_common::HumanDuration,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum DiskCommand {
    /// Every disk: its node, state, weight, use.
    List,
    /// Mark a disk out: its shards move away (a drain of one disk).
    Out(Change),
    /// Take a disk back in.
    In(Change),
    /// Set a disk's placement weight (0: nothing is placed on it).
    Reweight {
        #[command(flatten)]
        change: Change,
        weight: u64,
    },
    /// Remove an empty disk from the cluster map.
    Remove(Change),
}

#[derive(Subcommand, Debug)]
pub(super) enum WorkCommand {
    /// This worker on every datanode: state, progress, errors.
    Status {
        /// Keep showing progress until no such worker is busy.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up (exit 1) after this long.
        #[arg(long, default_value = "1h")]
        timeout: tessera_common::HumanDuration,
    },
    /// Limit the worker, live: heal, rebalance and scrub in bytes per
    /// second on every datanode (e.g. 50MiB; 0: each datanode's own
    /// setting); gc in shard files examined per second on each disk, and
    /// lifecycle in versions examined per second (e.g. 500; 0: no limit).
    Throttle { rate: String },
    /// Pause the worker on every datanode (it takes no step until started).
    Pause,
    /// Start a paused worker again.
    #[command(alias = "resume")]
    Start,
}

#[derive(Subcommand, Debug)]
pub(super) enum BucketCommand {
    /// Every bucket: owner, versioning, quota, EC profile.
    List,
    /// One bucket, with what it holds (a count of its records).
    Info { name: String },
    /// A new bucket, owned by the calling key or `--owner`.
    Create {
        name: String,
        #[arg(long)]
        owner: Option<String>,
    },
    /// Delete an empty bucket.
    Delete { name: String },
    /// Limit the bytes a bucket holds (e.g. 100GiB; 0: no quota). Refused
    /// below what it holds already.
    Quota { name: String, size: String },
    /// The EC profile of the bucket's new objects (e.g. 8+3, or `default`).
    SetEc { name: String, profile: String },
}

#[derive(Subcommand, Debug)]
pub(super) enum MetaCommand {
    /// The metadata service's Raft members: leader, term, replication lag.
    Members,
    /// Make a running metadata node a voter: it joins as a learner, catches
    /// up, then votes.
    Add {
        id: u64,
        /// Its metadata URL (http://host:port).
        #[arg(long)]
        addr: String,
    },
    /// Remove a voter (the others go on; the last one cannot be removed).
    Remove { id: String },
    /// Hand the leadership to voter ID (without ID: to the most caught-up
    /// other voter), e.g. before stopping the leader. Requests pause for
    /// about an election timeout meanwhile; none fails.
    TransferLeader { id: Option<u64> },
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

/// Bytes for people: 1023 B, 1.5 KiB, 229.0 GiB.
fn human(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

fn size(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".into(), human)
}

fn members_table(m: &Value) -> String {
    let rows: Vec<Vec<String>> = m["members"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|x| {
            let role = match (x["leader"].as_bool(), x["voter"].as_bool()) {
                (Some(true), _) => "leader",
                (_, Some(true)) => "voter",
                _ => "learner",
            };
            vec![s(&x["id"]), role.into(), s(&x["addr"]), s(&x["matched_index"]), s(&x["lag"]), s(&x["command_level"])]
        })
        .collect();
    format!(
        "term {}, last log index {}, applied {}\n{}",
        s(&m["term"]),
        s(&m["last_log_index"]),
        s(&m["applied_index"]),
        table(&["ID", "ROLE", "ADDRESS", "MATCHED", "LAG", "LEVEL"], &rows)
    )
}

fn nodes_table(nodes: &Value) -> String {
    let rows: Vec<Vec<String>> = nodes
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|n| {
            let disks: Vec<String> =
                n["disks"].as_array().map_or(&[][..], Vec::as_slice).iter().map(|d| d.to_string()).collect();
            vec![
                s(&n["id"]),
                s(&n["host"]),
                format!("{}/{}", s(&n["zone"]), s(&n["rack"])),
                s(&n["state"]),
                format!("{} ({} up)", disks.join(","), s(&n["disks_up"])),
                n["version"].as_str().unwrap_or("?").to_owned(),
                s(&n["addr"]),
            ]
        })
        .collect();
    table(&["NODE", "HOST", "ZONE/RACK", "STATE", "DISKS", "VERSION", "ADDRESS"], &rows)
}

fn disks_table(disks: &Value) -> String {
    let rows: Vec<Vec<String>> = disks
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|d| {
            let used = match (d["used_bytes"].as_u64(), d["capacity_bytes"].as_u64()) {
                (Some(u), Some(c)) if c > 0 => format!("{} / {} ({}%)", human(u), human(c), u * 100 / c),
                _ => "-".into(),
            };
            vec![
                s(&d["id"]),
                s(&d["node"]),
                s(&d["host"]),
                s(&d["state"]),
                format!("{}{}", s(&d["weight"]), if d["weight_fixed"] == json!(true) { " (set)" } else { "" }),
                used,
            ]
        })
        .collect();
    table(&["DISK", "NODE", "HOST", "STATE", "WEIGHT", "USED"], &rows)
}

fn workers_table(w: &Value, only: Option<&str>) -> String {
    let rows: Vec<Vec<String>> = w["workers"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|x| only.is_none_or(|o| x["name"].as_str().is_some_and(|n| n.split(':').next() == Some(o))))
        .map(|x| {
            let err = x["last_error"].as_str().map_or(String::new(), |e| format!(" (last: {e})"));
            vec![s(&x["node"]), s(&x["name"]), s(&x["state"]), s(&x["progress"]), format!("{}{err}", s(&x["errors"]))]
        })
        .collect();
    format!("{}{}", table(&["NODE", "WORKER", "STATE", "PROGRESS", "ERRORS"], &rows), rates_line(w))
}

fn rates_line(w: &Value) -> String {
    let rate = |k: &str| {
        let r = w["rates"][format!("{k}_bytes_per_sec")].as_u64();
        let r = r.map_or("each node's own".to_owned(), |r| format!("{}/s", human(r)));
        if w["rates"][format!("{k}_paused")] == json!(true) { format!("{r} (PAUSED)") } else { r }
    };
    let count = |k: &str, field: &str, unit: &str| {
        let r = w["rates"][field].as_u64().map_or("no limit".to_owned(), |r| format!("{r} {unit}"));
        if w["rates"][format!("{k}_paused")] == json!(true) { format!("{r} (PAUSED)") } else { r }
    };
    format!(
        "rates: heal {}, rebalance {}, scrub {}, gc {}, lifecycle {}\n",
        rate("heal"),
        rate("rebalance"),
        rate("scrub"),
        count("gc", "gc_files_per_sec", "files/s"),
        count("lifecycle", "lifecycle_versions_per_sec", "versions/s")
    )
}

/// The workers in a few lines: per kind, how many are in each state and
/// their errors; then the busy ones and those with errors, one line each.
fn workers_summary(w: &Value) -> String {
    let list = w["workers"].as_array().map_or(&[][..], Vec::as_slice);
    let mut kinds: std::collections::BTreeMap<&str, (std::collections::BTreeMap<&str, usize>, u64)> =
        std::collections::BTreeMap::new();
    for x in list {
        let kind = x["name"].as_str().unwrap_or("?").split(':').next().unwrap_or("?");
        let e = kinds.entry(kind).or_default();
        *e.0.entry(x["state"].as_str().unwrap_or("?")).or_default() += 1;
        e.1 += x["errors"].as_u64().unwrap_or(0);
    }
    let mut out = String::new();
    for (kind, (states, errors)) in &kinds {
        let states: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
        out.push_str(&format!("  {kind}: {}; {errors} errors\n", states.join(", ")));
    }
    for x in list.iter().filter(|x| x["state"] != "idle" || x["last_error"].is_string()) {
        let err = x["last_error"].as_str().map_or(String::new(), |e| format!(" — last error: {e}"));
        out.push_str(&format!(
            "  {} on node {} {}: {}{err}\n",
            s(&x["name"]),
            s(&x["node"]),
            s(&x["state"]),
            s(&x["progress"])
        ));
    }
    out.push_str("  ");
    out.push_str(&rates_line(w));
    out
}

fn status_text(v: &Value) -> String {
    let r = &v["redundancy"];
    let lost: Vec<String> =
        r["lost_disks"].as_array().map_or(&[][..], Vec::as_slice).iter().map(|d| d.to_string()).collect();
    let redundancy = if r["state"] == "full" {
        "full: every disk up and in, no damage reported".to_owned()
    } else {
        format!(
            "DEGRADED: lost disks [{}] holding {}{} shards; {} damage reports awaiting repair",
            lost.join(","),
            if r["shards_on_lost_disks_capped"] == json!(true) { "at least " } else { "" },
            s(&r["shards_on_lost_disks"]),
            s(&r["damage_reports"])
        )
    };
    let leader = v["metadata"]["leader"].as_u64().map_or("NONE".to_owned(), |l| l.to_string());
    format!(
        "cluster {} (map epoch {})\nredundancy: {}\ncapacity: {} used of {}\n\nmetadata: leader {}, {}\ndatanodes:\n{}\ndisks:\n{}\nworkers (each one: tessera admin workers):\n{}",
        s(&v["cluster_id"]),
        s(&v["map_epoch"]),
        redundancy,
        size(&v["capacity"]["used_bytes"]),
        size(&v["capacity"]["total_bytes"]),
        leader,
        members_table(&v["metadata"]),
        nodes_table(&v["nodes"]),
        disks_table(&v["disks"]),
        workers_summary(&v["workers"]),
    )
}

fn plan_text(v: &Value) -> String {
    let p = &v["plan"];
    let mut out = String::new();
    if v["done"] == json!(true) {
        out.push_str("done.\n");
    } else {
        out.push_str("dry run: nothing changed.\n");
    }
    if let Some(why) = p["refused"].as_str() {
        out.push_str(&format!("REFUSED: {why}\n"));
        return out;
    }
    if p.is_null() {
        return out;
    }
    out.push_str(&format!(
        "moves {} of {} shard placements ({} of {} PGs), about {}",
        s(&p["placements_moving"]),
        s(&p["placements_total"]),
        s(&p["pgs_moving"]),
        s(&p["pgs_total"]),
        size(&p["bytes_moving_estimate"]),
    ));
    match p["seconds_estimate"].as_u64() {
        Some(secs) => out.push_str(&format!(", ~{secs} s at the rebalance rate\n")),
        None => out.push_str(" (at each datanode's own rebalance rate)\n"),
    }
    let risk = p["at_risk"].as_array().map_or(&[][..], Vec::as_slice);
    let lossy: Vec<String> = risk
        .iter()
        .filter(|r| r["level"] == "host" || r["level"] == "rack" || r["level"] == "zone")
        .map(|r| format!("{} {} ({} PGs)", s(&r["level"]), s(&r["name"]), s(&r["pgs"])))
        .collect();
    if lossy.is_empty() {
        out.push_str("afterwards any single zone, rack or host can fail without losing data\n");
    } else {
        out.push_str(&format!("afterwards these failures would lose data: {}\n", lossy.join("; ")));
    }
    out
}

async fn change(
    t: &Target,
    method: &str,
    path: &str,
    body: Value,
    dry_run: bool,
    json_out: bool,
) -> Result<(), Failure> {
    let mut body = body;
    body["dry_run"] = json!(dry_run);
    let v = ok(call(t, method, path, body.to_string().as_bytes()).await?)?;
    print(json_out, &v, plan_text);
    match v["plan"]["refused"].as_str() {
        // A dry run of a change that would be refused: exit as the change would.
        Some(why) => Err(Failure::Refused(format!("the change would be refused: {why}"))),
        None => Ok(()),
    }
}

pub(super) async fn status(t: &Target, json_out: bool) -> Result<(), Failure> {
    let v = ok(call(t, "GET", "status", b"").await?)?;
    print(json_out, &v, status_text);
    Ok(())
}

pub(super) async fn node(t: &Target, c: &NodeCommand, json_out: bool) -> Result<(), Failure> {
    let (method, path, ch) = match c {
        NodeCommand::List => {
            let v = ok(call(t, "GET", "nodes", b"").await?)?;
            print(json_out, &v, |v| nodes_table(&v["nodes"]));
            return Ok(());
        }
        NodeCommand::Drain(ch) => ("POST", format!("nodes/{}/out", ch.id), ch),
        NodeCommand::Undrain(ch) => ("POST", format!("nodes/{}/in", ch.id), ch),
        NodeCommand::Remove(ch) => ("DELETE", format!("nodes/{}", ch.id), ch),
        NodeCommand::Reweight { change: ch, weight } => {
            let path = format!("nodes/{}/weight", ch.id);
            return change(t, "PUT", &path, json!({"weight": weight}), ch.dry_run, json_out).await;
        }
        NodeCommand::Add { ttl } => return add_node(t, ttl, json_out).await,
    };
    change(t, method, &path, json!({}), ch.dry_run, json_out).await
}

/// A datanode join token, with the command that starts a node with it
/// (the metadata members' addresses filled in).
async fn add_node(t: &Target, ttl: &tessera_common::HumanDuration, json_out: bool) -> Result<(), Failure> {
    let members = ok(call(t, "GET", "members", b"").await?)?;
    let meta: Vec<&str> = members["members"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(|m| m["addr"].as_str())
        .collect();
    let body = json!({"role": "datanode", "ttl_s": ttl.0.as_secs()});
    let made = ok(call(t, "POST", "join-tokens", body.to_string().as_bytes()).await?)?;
    let token = made["token"].as_str().unwrap_or("");
    let command = format!(
        "tessera datanode --node-id ID --listen HOST:PORT --disk 1:/path/to/disk --meta {} --cluster-certs DIR --join-token {token}",
        meta.join(",")
    );
    let v = json!({"token": token, "ttl_s": ttl.0.as_secs(), "meta": meta, "command": command});
    print(json_out, &v, |_| {
        format!(
            "A single-use join token for one datanode, usable for {}:\n{token}\n\nStart the datanode on its host (an unused node id, its disks, an empty DIR for its certificate):\n  {command}\nIt enrolls with the token, registers its disks, and the rebalance fills them; `tessera admin rebalance status --wait` shows it.\n",
            tessera_common::HumanDuration(ttl.0)
        )
    });
    Ok(())
}

pub(super) async fn disk(t: &Target, c: &DiskCommand, json_out: bool) -> Result<(), Failure> {
    let (method, path, body, ch) = match c {
        DiskCommand::List => {
            let v = ok(call(t, "GET", "disks", b"").await?)?;
            print(json_out, &v, |v| disks_table(&v["disks"]));
            return Ok(());
        }
        DiskCommand::Out(ch) => ("POST", format!("disks/{}/out", ch.id), json!({}), ch),
        DiskCommand::In(ch) => ("POST", format!("disks/{}/in", ch.id), json!({}), ch),
        DiskCommand::Reweight { change: ch, weight } => {
            ("PUT", format!("disks/{}/weight", ch.id), json!({"weight": weight}), ch)
        }
        DiskCommand::Remove(ch) => ("DELETE", format!("disks/{}", ch.id), json!({}), ch),
    };
    change(t, method, &path, body, ch.dry_run, json_out).await
}

pub(super) async fn workers(t: &Target, json_out: bool) -> Result<(), Failure> {
    let v = ok(call(t, "GET", "workers", b"").await?)?;
    print(json_out, &v, |v| workers_table(v, None));
    Ok(())
}

/// `heal`, `rebalance` or `scrub` (`name`) status or throttle.
pub(super) async fn work(t: &Target, name: &str, c: &WorkCommand, json_out: bool) -> Result<(), Failure> {
    match c {
        WorkCommand::Throttle { rate } if !["heal", "rebalance", "scrub"].contains(&name) => {
            let (field, unit) = if name == "gc" {
                ("gc_files_per_sec", "files/s on each disk")
            } else {
                ("lifecycle_versions_per_sec", "versions/s")
            };
            let text = rate.trim().trim_end_matches("/s");
            let n: u64 = match text {
                "off" | "none" => 0,
                t => t.parse().map_err(|_| {
                    Failure::Usage(format!(
                        "{name} is throttled in {unit}: a whole number such as 500 (0 or off: no limit), not {rate:?}"
                    ))
                })?,
            };
            let v = ok(call(t, "PUT", "worker-rates", json!({ field: n }).to_string().as_bytes()).await?)?;
            print(json_out, &v, |v| match v[field].as_u64() {
                Some(r) => format!("{name}: at most {r} {unit}\n"),
                None => format!("{name}: no limit\n"),
            });
            Ok(())
        }
        WorkCommand::Pause | WorkCommand::Start => {
            let paused = matches!(c, WorkCommand::Pause);
            let body = json!({ format!("{name}_paused"): paused });
            let v = ok(call(t, "PUT", "worker-rates", body.to_string().as_bytes()).await?)?;
            print(json_out, &v, |_| format!("{name}: {}\n", if paused { "paused" } else { "started" }));
            Ok(())
        }
        WorkCommand::Throttle { rate } => {
            let r: ByteSize = rate.trim_end_matches("/s").parse().map_err(|e| Failure::Usage(format!("{e}")))?;
            let body = json!({ format!("{name}_bytes_per_sec"): r.0 });
            let v = ok(call(t, "PUT", "worker-rates", body.to_string().as_bytes()).await?)?;
            print(json_out, &v, |v| {
                let set = v[format!("{name}_bytes_per_sec")].as_u64();
                format!(
                    "{name}: {}\n",
                    set.map_or("each datanode's own rate".to_owned(), |r| format!("{}/s", human(r)))
                )
            });
            Ok(())
        }
        WorkCommand::Status { wait: false, .. } => {
            let v = ok(call(t, "GET", "workers", b"").await?)?;
            print(json_out, &v, |v| workers_table(v, Some(name)));
            Ok(())
        }
        WorkCommand::Status { wait: true, timeout } => wait_idle(t, name, timeout.0, json_out).await,
    }
}

/// Polls until no `name` worker is busy (each datanode reports with its
/// heartbeat, so a worker is seen idle three times in a row, a second
/// apart, before this ends),
/// showing each worker's progress line as it changes.
async fn wait_idle(t: &Target, name: &str, timeout: Duration, json_out: bool) -> Result<(), Failure> {
    let start = Instant::now();
    // Rebalancers must also have made a pass over the current map (one
    // that has not noticed a drain yet is idle with nothing done).
    let epoch =
        if name == "rebalance" { ok(call(t, "GET", "status", b"").await?)?["map_epoch"].as_u64() } else { None };
    // For drains: the shards left on disks marked out, their rate and an ETA.
    let mut first_left: Option<(Instant, u64)> = None;
    let mut idle_seen = 0;
    let mut last = String::new();
    // On a terminal, a live bar (shards moved of a drain, with rate and
    // ETA) or a spinner with the workers' progress; elsewhere, a line each
    // time the progress changes.
    let bar = (!json_out && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut bar_is_drain = false;
    loop {
        let v = ok(call(t, "GET", "workers", b"").await?)?;
        let mine: Vec<&Value> = v["workers"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter(|x| x["name"].as_str().is_some_and(|n| n.split(':').next() == Some(name)))
            .collect();
        let busy: Vec<&&Value> = mine.iter().filter(|x| x["state"] == "busy" || x["state"] == "throttled").collect();
        if !json_out {
            let mut line: String = busy
                .iter()
                .map(|x| format!("{} on node {}: {}", s(&x["name"]), s(&x["node"]), s(&x["progress"])))
                .collect::<Vec<_>>()
                .join("; ");
            if name == "rebalance" {
                let st = ok(call(t, "GET", "status", b"").await?)?;
                let left = st["draining"]["shards_left"].as_u64().unwrap_or(0);
                if !st["draining"]["disks"].as_array().is_none_or(Vec::is_empty) {
                    let (t0, n0) = *first_left.get_or_insert((Instant::now(), left));
                    if let Some(b) = &bar {
                        if !bar_is_drain {
                            b.set_style(
                                indicatif::ProgressStyle::with_template(
                                    "{spinner} [{elapsed_precise}] [{wide_bar}] {pos}/{len} shards moved off draining disks, {per_sec}, ETA {eta}\n{wide_msg}",
                                )
                                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                            );
                            bar_is_drain = true;
                        }
                        b.set_length(n0.max(left));
                        b.set_position(n0.saturating_sub(left));
                    }
                    let secs = t0.elapsed().as_secs_f64();
                    let rate = if secs >= 1.0 { n0.saturating_sub(left) as f64 / secs } else { 0.0 };
                    let eta = if rate > 0.0 { format!(", ETA {:.0} s", left as f64 / rate) } else { String::new() };
                    line = format!("{left} shards left on draining disks ({rate:.0}/s{eta}); {line}");
                }
            }
            match &bar {
                Some(b) => b.set_message(line.clone()),
                None if line != last && !line.is_empty() => eprintln!("[{:>4}s] {line}", start.elapsed().as_secs()),
                None => {}
            }
            last = line;
        }
        let behind = epoch.is_some_and(|e| mine.iter().any(|x| pass_epoch(x).is_some_and(|p| p < e)));
        idle_seen = if busy.is_empty() && !behind { idle_seen + 1 } else { 0 };
        if idle_seen >= 3 {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            print(json_out, &v, |v| {
                format!("{name}: done after {} s\n{}", start.elapsed().as_secs(), workers_table(v, Some(name)))
            });
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(Failure::Refused(format!("{name} still busy after {timeout:?}")));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn buckets_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["buckets"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|b| {
            let ec = b["ec"]["k"].as_u64().map_or("default".to_owned(), |k| format!("{k}+{}", s(&b["ec"]["m"])));
            vec![s(&b["name"]), s(&b["owner"]), s(&b["versioning"]), size(&b["quota_bytes"]), ec]
        })
        .collect();
    table(&["BUCKET", "OWNER", "VERSIONING", "QUOTA", "EC"], &rows)
}

fn bucket_text(b: &Value) -> String {
    let u = &b["usage"];
    let ec = b["ec"]["k"].as_u64().map_or("the gateway's default".to_owned(), |k| format!("{k}+{}", s(&b["ec"]["m"])));
    format!(
        "bucket {}, owner {}, versioning {}{}\nEC profile of new objects: {ec}\nobjects: {} ({})\nnoncurrent versions: {} ({})\ndelete markers: {}\nuploads in progress: {} ({})\nquota: {} ({} counted)\n",
        s(&b["name"]),
        s(&b["owner"]),
        s(&b["versioning"]),
        if b["object_lock"] == json!(true) { ", object lock" } else { "" },
        s(&u["objects"]),
        size(&u["bytes"]),
        s(&u["noncurrent_versions"]),
        size(&u["noncurrent_bytes"]),
        s(&u["delete_markers"]),
        s(&u["uploads"]),
        size(&u["upload_bytes"]),
        if b["quota_bytes"].is_null() { "none".to_owned() } else { size(&b["quota_bytes"]) },
        size(&u["quota_counted_bytes"]),
    )
}

pub(super) async fn bucket(t: &Target, c: &BucketCommand, json_out: bool) -> Result<(), Failure> {
    match c {
        BucketCommand::List => {
            let v = ok(call(t, "GET", "buckets", b"").await?)?;
            print(json_out, &v, buckets_table);
        }
        BucketCommand::Info { name } => {
            let v = ok(call(t, "GET", &format!("buckets/{name}"), b"").await?)?;
            print(json_out, &v, bucket_text);
        }
        BucketCommand::Create { name, owner } => {
            let body = json!({"name": name, "owner": owner});
            let v = ok(call(t, "POST", "buckets", body.to_string().as_bytes()).await?)?;
            print(json_out, &v, |v| format!("created {}, owned by {}\n", s(&v["name"]), s(&v["owner"])));
        }
        BucketCommand::Delete { name } => {
            let v = ok(call(t, "DELETE", &format!("buckets/{name}"), b"").await?)?;
            print(json_out, &v, |v| format!("deleted {}\n", s(&v["deleted"])));
        }
        BucketCommand::Quota { name, size: q } => {
            let q: ByteSize = q.parse().map_err(|e| Failure::Usage(format!("{e}")))?;
            let body = json!({"quota_bytes": q.0});
            let v = ok(call(t, "PUT", &format!("buckets/{name}/quota"), body.to_string().as_bytes()).await?)?;
            print(json_out, &v, |v| {
                let quota = if v["quota_bytes"].is_null() { "no quota".to_owned() } else { size(&v["quota_bytes"]) };
                format!("{}: {quota} ({} used)\n", s(&v["bucket"]), size(&v["used_bytes"]))
            });
        }
        BucketCommand::SetEc { name, profile } => {
            let body = if profile == "default" {
                json!({"default": true})
            } else {
                let (k, m) = profile
                    .split_once('+')
                    .and_then(|(k, m)| Some((k.trim().parse::<u64>().ok()?, m.trim().parse::<u64>().ok()?)))
                    .ok_or_else(|| Failure::Usage(format!("{profile}: an EC profile is K+M (e.g. 8+3) or default")))?;
                json!({"k": k, "m": m})
            };
            let v = ok(call(t, "PUT", &format!("buckets/{name}/ec"), body.to_string().as_bytes()).await?)?;
            print(json_out, &v, |v| {
                let ec = v["ec"]["k"]
                    .as_u64()
                    .map_or("the gateway's default".to_owned(), |k| format!("{k}+{}", s(&v["ec"]["m"])));
                format!("{}: new objects are stored with EC {ec}\n", s(&v["bucket"]))
            });
        }
    }
    Ok(())
}

/// The map epoch a rebalancer's progress names ("…, map epoch 7, …").
fn pass_epoch(w: &Value) -> Option<u64> {
    let p = w["progress"].as_str()?;
    let rest = &p[p.find("map epoch ")? + "map epoch ".len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

pub(super) async fn meta(t: &Target, c: &MetaCommand, json_out: bool) -> Result<(), Failure> {
    let v = match c {
        MetaCommand::Members => ok(call(t, "GET", "members", b"").await?)?,
        MetaCommand::Add { id, addr } => {
            let body = json!({"id": id, "addr": addr});
            ok(call(t, "POST", "members", body.to_string().as_bytes()).await?)?
        }
        MetaCommand::Remove { id } => ok(call(t, "DELETE", &format!("members/{id}"), b"").await?)?,
        MetaCommand::TransferLeader { id } => {
            let body = id.map_or_else(|| json!({}), |id| json!({"id": id}));
            ok(call(t, "POST", "leader", body.to_string().as_bytes()).await?)?
        }
    };
    print(json_out, &v, members_table);
    Ok(())
}
