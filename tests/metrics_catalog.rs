//! The metrics catalog (docs/metrics.md) is the registries' own list: every
//! metric the gateway, metadata and datanode roles register is in it with
//! its type, and it lists nothing else; the alert rules and the Grafana
//! dashboard under deploy/ use only metrics from it.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use tessera_common::metrics::MetricsRegistry;

fn root(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// Exposed name (counters with `_total`) → type, from the registries.
fn exposed() -> BTreeMap<String, String> {
    let r = MetricsRegistry::new();
    tessera_gateway::metrics::GatewayMetrics::register(&r);
    tessera_metadata::MetaMetrics::register(&r);
    tessera_datanode::DatanodeMetrics::register(&r);
    r.catalog()
        .into_iter()
        .map(|(name, kind)| {
            let name = if kind == "counter" { format!("{name}_total") } else { name };
            (name, kind.to_owned())
        })
        .collect()
}

/// Name → type, from the catalog's tables.
fn catalog() -> BTreeMap<String, String> {
    root("docs/metrics.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `tessera_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (format!("tessera_{}", cells[0].trim_end_matches('`')), cells[1].to_owned())
        })
        .collect()
}

/// Every `tessera_…` metric name in `text`.
fn names_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("tessera_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_catalog_lists_every_registered_metric_and_nothing_else() {
    let (exposed, catalog) = (exposed(), catalog());
    assert!(exposed.len() > 40, "{exposed:?}");
    for (name, kind) in &exposed {
        assert_eq!(catalog.get(name), Some(kind), "{name} ({kind}) is not in docs/metrics.md as a {kind}");
    }
    for name in catalog.keys() {
        assert!(exposed.contains_key(name), "docs/metrics.md lists {name}, which no role registers");
    }
}

#[test]
fn alerts_and_the_dashboard_use_only_catalogued_metrics() {
    let catalog = catalog();
    let known = |n: &str| {
        catalog.contains_key(n)
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| n.strip_suffix(s).is_some_and(|base| catalog.get(base).is_some_and(|k| k == "histogram")))
    };
    let alerts = root("deploy/prometheus-alerts.yml");
    let dashboard = root("deploy/grafana-dashboard.json");
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    assert!(parsed["panels"].as_array().unwrap().len() >= 10);
    for (file, text) in [("alerts", &alerts), ("dashboard", &dashboard)] {
        let names = names_in(text);
        assert!(names.len() > 10, "{file}");
        for n in names {
            assert!(known(&n), "{file} uses {n}, which is not in docs/metrics.md");
        }
    }
    // Every alert the docs describe is in the rules file, and only those.
    let documented: Vec<String> = root("docs/metrics.md").lines().filter_map(alert_name).collect();
    let defined: Vec<String> =
        alerts.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).map(str::to_owned).collect();
    assert_eq!(documented, defined);
}

fn alert_name(line: &str) -> Option<String> {
    let name = line.strip_prefix("| `Tessera")?.split('`').next()?;
    Some(format!("Tessera{name}"))
}
