//! Enforces the crate dependency table of DESIGN.md §1 from `cargo metadata`:
//! which internal crates each crate may import (for normal, build and dev
//! dependencies alike), and who may link RocksDB. A new workspace crate
//! fails this test until it is added to the table.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// DESIGN.md §1: crate → internal crates it may import. `tessera-md5` (a
/// leaf: the multi-lane MD5 engine, imported by the gateway) is an addition
/// to that table, proposed with the commit that made it.
fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let all = [
        "tessera-common",
        "tessera-ec",
        "tessera-md5",
        "tessera-placement",
        "tessera-rpc",
        "tessera-pipeline",
        "tessera-metadata",
        "tessera-datanode",
        "tessera-gateway",
    ];
    let table: [(&str, &[&str]); 11] = [
        ("tessera-common", &[]),
        ("tessera-ec", &[]),
        ("tessera-md5", &[]),
        ("tessera-placement", &["tessera-common"]),
        ("tessera-rpc", &["tessera-common"]),
        ("tessera-metadata", &["tessera-common", "tessera-rpc", "tessera-placement"]),
        ("tessera-datanode", &["tessera-common", "tessera-rpc", "tessera-ec", "tessera-placement", "tessera-pipeline"]),
        ("tessera-pipeline", &["tessera-common", "tessera-rpc", "tessera-ec", "tessera-placement", "tessera-md5"]),
        (
            "tessera-gateway",
            &["tessera-common", "tessera-rpc", "tessera-ec", "tessera-md5", "tessera-placement", "tessera-pipeline"],
        ),
        ("tessera", &all),
        ("tessera-benches", &all),
    ];
    table.into_iter().map(|(k, v)| (k, v.iter().copied().collect())).collect()
}

/// Crates that may depend on RocksDB (DESIGN.md §1: metadata, and the
/// datanode if it keeps a local index in it).
const ROCKSDB_USERS: [&str; 2] = ["tessera-metadata", "tessera-datanode"];

fn workspace_metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

/// (crate, dependency name, kind) for every declared dependency of every member.
fn edges(meta: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for pkg in meta["packages"].as_array().expect("packages") {
        let name = pkg["name"].as_str().expect("name").to_owned();
        for dep in pkg["dependencies"].as_array().expect("dependencies") {
            let kind = dep["kind"].as_str().unwrap_or("normal").to_owned();
            out.push((name.clone(), dep["name"].as_str().expect("dep name").to_owned(), kind));
        }
    }
    out
}

#[test]
fn internal_dependencies_follow_the_design_table() {
    let meta = workspace_metadata();
    let table = allowed();
    let members: BTreeSet<String> =
        meta["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    for m in &members {
        assert!(table.contains_key(m.as_str()), "workspace crate {m} is not in the dependency table of DESIGN.md §1");
    }
    let mut violations = Vec::new();
    for (krate, dep, kind) in edges(&meta) {
        if dep.starts_with("tessera") && !table[krate.as_str()].contains(dep.as_str()) {
            violations.push(format!("{krate} -> {dep} ({kind})"));
        }
        if dep == "rocksdb" && !ROCKSDB_USERS.contains(&krate.as_str()) {
            violations.push(format!("{krate} -> rocksdb ({kind}): only metadata (and datanode) may link RocksDB"));
        }
    }
    assert!(violations.is_empty(), "dependency rules broken:\n{}", violations.join("\n"));
}

#[test]
fn the_checker_catches_a_forbidden_edge() {
    // Guard against a checker that can never fail: feed it a fake edge.
    let table = allowed();
    assert!(!table["tessera-gateway"].contains("tessera-metadata"));
    assert!(!table["tessera-ec"].contains("tessera-common"));
    assert!(!table["tessera-datanode"].contains("tessera-gateway"));
    let meta = serde_json::json!({ "packages": [
        { "name": "tessera-gateway", "dependencies": [ { "name": "tessera-metadata", "kind": null } ] }
    ]});
    let bad: Vec<_> = edges(&meta).into_iter().filter(|(k, d, _)| !table[k.as_str()].contains(d.as_str())).collect();
    assert_eq!(bad.len(), 1);
}
