//! Every admin call in one table: method, path template and the action a
//! caller's policy must allow. Requests are routed by this table, and
//! docs/admin-openapi.json is checked against it (a unit test below), so
//! the document cannot name a call the gateway does not serve, or miss one.

use http::Method;

/// (method, path under `/tessera/admin/v1/`, action). A `{…}` segment
/// matches any one non-empty segment.
pub const CALLS: &[(&str, &str, &str)] = &[
    ("GET", "keys", "admin:ListKeys"),
    ("GET", "keys/{id}", "admin:ListKeys"),
    ("POST", "keys", "admin:CreateKey"),
    ("PATCH", "keys/{id}", "admin:UpdateKey"),
    ("DELETE", "keys/{id}", "admin:DeleteKey"),
    ("GET", "policies", "admin:ListPolicies"),
    ("PUT", "policies/{name}", "admin:PutPolicy"),
    ("DELETE", "policies/{name}", "admin:DeletePolicy"),
    ("GET", "sse", "admin:SseStatus"),
    ("POST", "sse/rewrap", "admin:RewrapKeys"),
    ("POST", "join-tokens", "admin:CreateJoinToken"),
    ("PUT", "bucket-ttl/{bucket}", "admin:PutBucketTtl"),
    ("GET", "bucket-ttl/{bucket}", "admin:GetBucketTtl"),
    ("GET", "lifecycle", "admin:LifecycleStatus"),
    ("PUT", "notify-targets/{name}", "admin:PutNotifyTarget"),
    ("DELETE", "notify-targets/{name}", "admin:DeleteNotifyTarget"),
    ("GET", "notify", "admin:NotifyStatus"),
    ("GET", "status", "admin:ClusterStatus"),
    ("GET", "nodes", "admin:ClusterStatus"),
    ("GET", "disks", "admin:ClusterStatus"),
    ("GET", "members", "admin:ClusterStatus"),
    ("POST", "members", "admin:ChangeMembership"),
    ("DELETE", "members/{id}", "admin:ChangeMembership"),
    ("POST", "leader", "admin:ChangeMembership"),
    ("GET", "workers", "admin:WorkerStatus"),
    ("PUT", "worker-rates", "admin:SetWorkerRates"),
    ("POST", "nodes/{id}/out", "admin:MarkOut"),
    ("POST", "nodes/{id}/in", "admin:MarkOut"),
    ("POST", "disks/{id}/out", "admin:MarkOut"),
    ("POST", "disks/{id}/in", "admin:MarkOut"),
    ("PUT", "disks/{id}/weight", "admin:Reweight"),
    ("PUT", "nodes/{id}/weight", "admin:Reweight"),
    ("DELETE", "nodes/{id}", "admin:RemoveDisks"),
    ("DELETE", "disks/{id}", "admin:RemoveDisks"),
    ("GET", "buckets", "admin:ListBuckets"),
    ("GET", "buckets/{bucket}", "admin:BucketInfo"),
    ("POST", "buckets", "admin:CreateBucket"),
    ("DELETE", "buckets/{bucket}", "admin:DeleteBucket"),
    ("PUT", "buckets/{bucket}/quota", "admin:SetBucketQuota"),
    ("PUT", "buckets/{bucket}/ec", "admin:SetBucketEc"),
];

/// A request matched to its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Matched {
    pub action: &'static str,
    /// The call's path template, e.g. `nodes/{id}/out`.
    pub template: &'static str,
    /// The `{…}` segments' values, in order.
    pub params: Vec<String>,
}

/// The call `method` and `rest` (the path after the prefix; one trailing
/// slash allowed) make, if any.
pub(super) fn find(method: &Method, rest: &str) -> Option<Matched> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let got: Vec<&str> = rest.split('/').collect();
    CALLS.iter().filter(|(m, _, _)| *m == method.as_str()).find_map(|&(_, template, action)| {
        let want: Vec<&str> = template.split('/').collect();
        if want.len() != got.len() {
            return None;
        }
        let mut params = Vec::new();
        for (w, g) in want.iter().zip(&got) {
            if w.starts_with('{') {
                if g.is_empty() {
                    return None;
                }
                params.push((*g).to_owned());
            } else if w != g {
                return None;
            }
        }
        Some(Matched { action, template, params })
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn requests_find_their_calls() {
        let m = find(&Method::POST, "nodes/103/out").unwrap();
        assert_eq!((m.action, m.template, m.params), ("admin:MarkOut", "nodes/{id}/out", vec!["103".to_owned()]));
        assert_eq!(find(&Method::GET, "keys/").unwrap().template, "keys");
        assert_eq!(find(&Method::GET, "keys/AK").unwrap().params, ["AK"]);
        assert_eq!(find(&Method::POST, "sse/rewrap").unwrap().action, "admin:RewrapKeys");
        assert!(find(&Method::GET, "keys/a/b").is_none());
        assert!(find(&Method::DELETE, "keys").is_none());
        assert!(find(&Method::GET, "").is_none());
        assert!(find(&Method::GET, "keys//").is_none());
        assert!(find(&Method::POST, "nodes/3/sideways").is_none());
    }

    #[test]
    fn every_call_is_unique() {
        let set: BTreeSet<(&str, &str)> = CALLS.iter().map(|(m, p, _)| (*m, *p)).collect();
        assert_eq!(set.len(), CALLS.len());
    }

    /// docs/admin-openapi.json names exactly these calls, each with its
    /// action, a summary and its answers.
    #[test]
    fn the_openapi_document_matches_the_calls() {
        let doc: serde_json::Value = serde_json::from_str(include_str!("../../../docs/admin-openapi.json")).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            let rest = path.strip_prefix("/tessera/admin/v1/").unwrap_or_else(|| panic!("{path}"));
            for (method, op) in ops.as_object().unwrap() {
                let method = method.to_uppercase();
                let action = op["x-tessera-action"].as_str().unwrap_or_else(|| panic!("{method} {path}: no action"));
                assert!(op["summary"].is_string(), "{method} {path}: no summary");
                assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}: no responses");
                let call = CALLS.iter().find(|(m, p, _)| *m == method && *p == rest);
                let (_, _, want) = call.unwrap_or_else(|| panic!("{method} {path} is documented but not served"));
                assert_eq!(action, *want, "{method} {path}");
                for p in rest.split('/').filter(|s| s.starts_with('{')) {
                    let name = p.trim_matches(|c| c == '{' || c == '}');
                    let params = op["parameters"].as_array().map_or(&[][..], Vec::as_slice);
                    assert!(
                        params.iter().any(|x| x["name"] == name && x["in"] == "path"),
                        "{method} {path}: path parameter {name} not described"
                    );
                }
                documented.insert((method, rest.to_owned()));
            }
        }
        for (m, p, _) in CALLS {
            assert!(documented.contains(&((*m).to_owned(), (*p).to_owned())), "{m} {p} is served but not documented");
        }
    }
}
