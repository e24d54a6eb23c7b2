//! The admin API, cluster part: the state of the cluster at a glance, the
//! operator's changes to datanodes and disks (drain, return, reweight,
//! remove) with a dry run that says what would move and which failures
//! would then lose data, the background workers and their rates, and the
//! metadata members (docs/admin-api.md).
//!
//! | method and path                          | action                  |
//! |------------------------------------------|-------------------------|
//! | `GET    status`, `nodes`, `disks`, `members` | `admin:ClusterStatus` |
//! | `GET    workers`                         | `admin:WorkerStatus`    |
//! | `PUT    worker-rates`                    | `admin:SetWorkerRates`  |
//! | `POST   nodes/ID/out`, `nodes/ID/in`     | `admin:MarkOut`         |
//! | `POST   disks/ID/out`, `disks/ID/in`     | `admin:MarkOut`         |
//! | `PUT    disks/ID/weight`                 | `admin:Reweight`        |
//! | `DELETE nodes/ID`, `disks/ID`            | `admin:RemoveDisks`     |
//! | buckets: see [`super::buckets`]          |                         |
//!
//! A change's body may say `{"dry_run": true}`: nothing is changed and the
//! answer is the plan. A change that would leave the cluster unable to
//! place every object's k + m shards is refused (409) with the reason, and
//! nothing is changed.

use std::collections::{BTreeMap, HashMap};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_common::{DiskId, NodeId, PgId};
use tessera_placement::{ClusterMap, Level, PlacementRule, Placer, diff_maps};
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::{
    ClusterMapReply, ClusterStatusReply, MarkOut, RemoveDisks, Reweight, SetWorkerRates, WorkerStatusReply,
};

use super::calls::Matched;
#[cfg(test)]
use super::calls::find;
use super::{AdminRoute, Answer, fail, unavailable};

/// Shards counted at most per lost disk for the status (the count is a
/// bound beyond it).
const LOST_SHARDS_COUNTED: usize = 100_000;

/// A call on the cluster part of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Call {
    Status,
    Nodes,
    Disks,
    Members,
    Workers,
    SetRates,
    /// Mark a node's disks (`node`) or one disk out or back in.
    Mark {
        node: bool,
        id: String,
        out: bool,
    },
    /// A disk's weight, or every disk's of a node (`node`).
    Reweight {
        node: bool,
        id: String,
    },
    Remove {
        node: bool,
        id: String,
    },
    Buckets,
    BucketInfo {
        bucket: String,
    },
    CreateBucket,
    DeleteBucket {
        bucket: String,
    },
    SetQuota {
        bucket: String,
    },
    SetEc {
        bucket: String,
    },
    AddMember,
    RemoveMember {
        id: String,
    },
    TransferLeader,
}

/// The cluster call a matched request is (`None`: a call of the API's
/// other parts).
pub(super) fn call_of(method: &Method, m: &Matched) -> Option<Call> {
    let p = |i: usize| m.params.get(i).cloned().unwrap_or_default();
    Some(match (method.as_str(), m.template) {
        (_, "status") => Call::Status,
        ("GET", "nodes") => Call::Nodes,
        ("GET", "disks") => Call::Disks,
        ("GET", "members") => Call::Members,
        ("POST", "members") => Call::AddMember,
        ("DELETE", "members/{id}") => Call::RemoveMember { id: p(0) },
        ("POST", "leader") => Call::TransferLeader,
        (_, "workers") => Call::Workers,
        (_, "worker-rates") => Call::SetRates,
        (_, "nodes/{id}/out") => Call::Mark { node: true, id: p(0), out: true },
        (_, "nodes/{id}/in") => Call::Mark { node: true, id: p(0), out: false },
        (_, "disks/{id}/out") => Call::Mark { node: false, id: p(0), out: true },
        (_, "disks/{id}/in") => Call::Mark { node: false, id: p(0), out: false },
        (_, "disks/{id}/weight") => Call::Reweight { node: false, id: p(0) },
        (_, "nodes/{id}/weight") => Call::Reweight { node: true, id: p(0) },
        ("DELETE", "nodes/{id}") => Call::Remove { node: true, id: p(0) },
        ("DELETE", "disks/{id}") => Call::Remove { node: false, id: p(0) },
        ("GET", "buckets") => Call::Buckets,
        ("POST", "buckets") => Call::CreateBucket,
        ("GET", "buckets/{bucket}") => Call::BucketInfo { bucket: p(0) },
        ("DELETE", "buckets/{bucket}") => Call::DeleteBucket { bucket: p(0) },
        (_, "buckets/{bucket}/quota") => Call::SetQuota { bucket: p(0) },
        (_, "buckets/{bucket}/ec") => Call::SetEc { bucket: p(0) },
        _ => return None,
    })
}

pub(super) fn bad(m: impl std::fmt::Display) -> Answer {
    fail(StatusCode::BAD_REQUEST, "InvalidArgument", m)
}

/// The cluster's map, datanodes and disk usage, decoded.
pub(super) struct MapView {
    reply: ClusterMapReply,
    map: Option<ClusterMap>,
}

impl MapView {
    pub(super) fn map(&self) -> Result<&ClusterMap, Answer> {
        self.map.as_ref().ok_or_else(|| {
            fail(StatusCode::CONFLICT, "NoClusterMap", "no datanode has registered yet: there is no cluster map")
        })
    }
}

impl AdminRoute {
    pub(super) async fn map_view(&self) -> Result<MapView, Answer> {
        let reply = self.meta.get_cluster_map().await.map_err(unavailable)?;
        let map = if reply.map.is_empty() {
            None
        } else {
            Some(ClusterMap::from_bytes(&reply.map).map_err(|e| {
                fail(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", format!("the cluster map: {e}"))
            })?)
        };
        Ok(MapView { reply, map })
    }

    /// The placement rule of new objects (the gateway's EC profile).
    fn rule(&self) -> PlacementRule {
        PlacementRule { shards: self.ec.k + self.ec.m, failure_domain: Level::Host }
    }

    pub(super) async fn cluster(&self, caller: &str, call: Call, body: &[u8]) -> Result<Answer, Answer> {
        let doc: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body).map_err(|e| fail(StatusCode::BAD_REQUEST, "MalformedJSON", e))?
        };
        let dry_run = doc["dry_run"].as_bool().unwrap_or(false);
        match call {
            Call::Status => self.status().await,
            Call::Nodes => Ok(Answer(StatusCode::OK, json!({"nodes": nodes_json(&self.map_view().await?)}))),
            Call::Disks => Ok(Answer(StatusCode::OK, json!({"disks": disks_json(&self.map_view().await?)}))),
            Call::Members => {
                let st = self.meta.cluster_status().await.map_err(unavailable)?;
                Ok(Answer(StatusCode::OK, members_json(&st)))
            }
            Call::Workers => {
                let w = self.meta.worker_status().await.map_err(unavailable)?;
                Ok(Answer(StatusCode::OK, workers_json(&w)))
            }
            Call::SetRates => self.set_rates(&doc).await,
            Call::Mark { node, id, out } => self.mark(node, &id, out, dry_run).await,
            Call::Reweight { node, id } => self.reweight(node, &id, &doc, dry_run).await,
            Call::Remove { node, id } => self.remove(node, &id, dry_run).await,
            Call::Buckets => self.buckets().await,
            Call::BucketInfo { bucket } => self.bucket_info(&bucket).await,
            Call::CreateBucket => self.create_bucket(caller, &doc).await,
            Call::DeleteBucket { bucket } => self.delete_bucket(&bucket).await,
            Call::SetQuota { bucket } => self.set_quota(&bucket, &doc).await,
            Call::SetEc { bucket } => self.set_ec(&bucket, &doc).await,
            Call::AddMember => self.add_member(&doc).await,
            Call::RemoveMember { id } => self.remove_member(&id).await,
            Call::TransferLeader => self.transfer_leader(&doc).await,
        }
    }

    /// `{"id", "addr"}`: a running metadata node joins as a learner,
    /// catches up and becomes a voter. It must answer at `addr` as node
    /// `id` first; nothing changes otherwise.
    async fn add_member(&self, doc: &Value) -> Result<Answer, Answer> {
        let id = doc["id"].as_u64().filter(|&i| i > 0).ok_or_else(|| bad("id is the node's id (a number above 0)"))?;
        let addr = doc["addr"].as_str().filter(|a| a.starts_with("http://") || a.starts_with("https://"));
        let addr = addr.ok_or_else(|| bad("addr is the node's metadata URL (http://host:port or https://…)"))?;
        let st = self.meta.cluster_status().await.map_err(unavailable)?;
        if st.members.iter().any(|m| m.id == id && m.voter) {
            return Err(fail(StatusCode::CONFLICT, "MemberExists", format!("node {id} is a voter already")));
        }
        let probe_cfg = tessera_rpc::MetaClientConfig {
            call_timeout: std::time::Duration::from_secs(3),
            deadline: std::time::Duration::from_secs(5),
            ..tessera_rpc::MetaClientConfig::new(vec![addr.to_owned()])
        };
        let probe = tessera_rpc::MetaClient::new(probe_cfg).cluster_status().await.map_err(|e| {
            fail(StatusCode::CONFLICT, "MemberUnreachable", format!("no metadata node answers at {addr}: {e}"))
        })?;
        if probe.node_id != id {
            return Err(fail(
                StatusCode::CONFLICT,
                "MemberUnreachable",
                format!("the node at {addr} is node {}, not {id}", probe.node_id),
            ));
        }
        let learner = tokio::time::timeout(std::time::Duration::from_secs(120), self.meta.add_learner(id, addr, 0));
        match learner.await {
            Ok(r) => r.map_err(|e| fail(StatusCode::CONFLICT, "MembershipRefused", e))?,
            Err(_) => {
                return Err(fail(
                    StatusCode::GATEWAY_TIMEOUT,
                    "MemberNotCaughtUp",
                    format!("node {id} is a learner but did not catch up within 120 s; call again to promote it"),
                ));
            }
        };
        let st =
            self.meta.add_voters(vec![id]).await.map_err(|e| fail(StatusCode::CONFLICT, "MembershipRefused", e))?;
        Ok(Answer(StatusCode::OK, members_json(&st)))
    }

    /// Removes a voter: the others go on as the voting members.
    async fn remove_member(&self, id: &str) -> Result<Answer, Answer> {
        let not_found = || fail(StatusCode::NOT_FOUND, "NoSuchMember", format!("no metadata voter {id}"));
        let id: NodeId = id.parse().map_err(|_| not_found())?;
        let st = self.meta.cluster_status().await.map_err(unavailable)?;
        let voters: Vec<u64> = st.members.iter().filter(|m| m.voter).map(|m| m.id).collect();
        if !voters.contains(&id.get()) {
            return Err(not_found());
        }
        let rest: Vec<u64> = voters.into_iter().filter(|&v| v != id.get()).collect();
        if rest.is_empty() {
            return Err(fail(StatusCode::CONFLICT, "LastVoter", "the last voter cannot be removed"));
        }
        let st =
            self.meta.change_membership(rest).await.map_err(|e| fail(StatusCode::CONFLICT, "MembershipRefused", e))?;
        Ok(Answer(StatusCode::OK, members_json(&st)))
    }

    /// `{"id"}` (or `{}`: the most caught-up other voter): the metadata
    /// leadership moves to that voter; the members as the old leader then
    /// sees them.
    async fn transfer_leader(&self, doc: &Value) -> Result<Answer, Answer> {
        let target = match &doc["id"] {
            Value::Null => 0,
            v => v.as_u64().filter(|&i| i > 0).ok_or_else(|| bad("id is a metadata voter's id (a number above 0)"))?,
        };
        let st = self.meta.transfer_leader(target).await.map_err(|e| match e {
            tessera_rpc::MetaClientError::Refused(s) if s.code() == tonic::Code::NotFound => {
                fail(StatusCode::NOT_FOUND, "NoSuchMember", s.message())
            }
            tessera_rpc::MetaClientError::Refused(s) => fail(StatusCode::CONFLICT, "TransferFailed", s.message()),
            e => unavailable(e),
        })?;
        Ok(Answer(StatusCode::OK, members_json(&st)))
    }

    /// Everything an operator looks at first, in one document.
    async fn status(&self) -> Result<Answer, Answer> {
        let (st, view, workers) = tokio::join!(self.meta.cluster_status(), self.map_view(), self.meta.worker_status());
        let st = st.map_err(unavailable)?;
        let view = view?;
        let workers = workers.map_err(unavailable)?;
        let damage = self.meta.list_damage(10_000).await.map_err(unavailable)?.reports.len();
        let disks = disks_json(&view);
        let lost: Vec<u32> = view.map.as_ref().map_or_else(Vec::new, |m| {
            m.disks()
                .filter(|(_, _, _, d)| !d.state.up || (!d.state.is_in && !d.marked_out))
                .map(|d| d.3.id.get())
                .collect()
        });
        let (mut on_lost, mut capped) = (0usize, false);
        for &d in &lost {
            let (n, more) = self.count_shards(d).await?;
            on_lost += n;
            capped |= more;
        }
        // Disks an operator marked out: what their drain has left to move.
        let draining: Vec<u32> = view.map.as_ref().map_or_else(Vec::new, |m| {
            m.disks().filter(|(_, _, _, d)| d.marked_out && d.state.up).map(|d| d.3.id.get()).collect()
        });
        let (mut left, mut left_capped) = (0usize, false);
        for &d in &draining {
            let (n, more) = self.count_shards(d).await?;
            left += n;
            left_capped |= more;
        }
        let (capacity, used) =
            view.reply.usage.iter().fold((0u64, 0u64), |(c, u), d| (c + d.capacity_bytes, u + d.used_bytes));
        let redundancy = if lost.is_empty() && damage == 0 { "full" } else { "degraded" };
        Ok(Answer(
            StatusCode::OK,
            json!({
                "cluster_id": view.reply.cluster_id,
                "map_epoch": view.reply.epoch,
                "metadata": members_json(&st),
                "nodes": nodes_json(&view),
                "disks": disks,
                "capacity": {"total_bytes": capacity, "used_bytes": used},
                "redundancy": {
                    "state": redundancy,
                    "lost_disks": lost,
                    "shards_on_lost_disks": on_lost,
                    "shards_on_lost_disks_capped": capped,
                    "damage_reports": damage,
                },
                "draining": {"disks": draining, "shards_left": left, "shards_left_capped": left_capped},
                "workers": workers_json(&workers),
            }),
        ))
    }

    /// Shards the disk index places on `disk`, counted up to
    /// [`LOST_SHARDS_COUNTED`]; true when there are more.
    async fn count_shards(&self, disk: u32) -> Result<(usize, bool), Answer> {
        const PAGE: u32 = 10_000;
        let (mut n, mut after) = (0usize, Vec::new());
        loop {
            let page = self.meta.list_disk_shards(disk, after.clone(), PAGE).await.map_err(unavailable)?;
            n += page.len();
            match page.last() {
                Some(e) if page.len() == PAGE as usize => {
                    if n >= LOST_SHARDS_COUNTED {
                        return Ok((n, true));
                    }
                    after = e.data_id.to_vec();
                }
                _ => return Ok((n, false)),
            }
        }
    }

    async fn set_rates(&self, doc: &Value) -> Result<Answer, Answer> {
        let now = self.meta.worker_status().await.map_err(unavailable)?.rates.unwrap_or_default();
        let field = |name: &str, current: u64| -> Result<u64, Answer> {
            match doc.get(name) {
                None | Some(Value::Null) => Ok(current),
                Some(v) => v.as_u64().ok_or_else(|| {
                    bad(if name.ends_with("_bytes_per_sec") {
                        format!("{name} is a number of bytes per second (0: each datanode's own)")
                    } else {
                        format!("{name} is a number per second (0: no limit)")
                    })
                }),
            }
        };
        let flag = |name: &str, current: bool| -> Result<bool, Answer> {
            match doc.get(name) {
                None | Some(Value::Null) => Ok(current),
                Some(v) => v.as_bool().ok_or_else(|| bad(format!("{name} is true or false"))),
            }
        };
        let known = [
            "heal_bytes_per_sec",
            "rebalance_bytes_per_sec",
            "scrub_bytes_per_sec",
            "heal_paused",
            "rebalance_paused",
            "scrub_paused",
            "gc_paused",
            "lifecycle_paused",
            "gc_files_per_sec",
            "lifecycle_versions_per_sec",
        ];
        if let Some(k) = doc.as_object().and_then(|o| o.keys().find(|k| !known.contains(&k.as_str()))) {
            return Err(bad(format!("unknown field {k}; the fields are {}", known.join(", "))));
        }
        let rates = SetWorkerRates {
            heal_bytes_per_sec: field("heal_bytes_per_sec", now.heal_bytes_per_sec)?,
            rebalance_bytes_per_sec: field("rebalance_bytes_per_sec", now.rebalance_bytes_per_sec)?,
            scrub_bytes_per_sec: field("scrub_bytes_per_sec", now.scrub_bytes_per_sec)?,
            heal_paused: flag("heal_paused", now.heal_paused)?,
            rebalance_paused: flag("rebalance_paused", now.rebalance_paused)?,
            scrub_paused: flag("scrub_paused", now.scrub_paused)?,
            gc_paused: flag("gc_paused", now.gc_paused)?,
            lifecycle_paused: flag("lifecycle_paused", now.lifecycle_paused)?,
            gc_files_per_sec: field("gc_files_per_sec", now.gc_files_per_sec)?,
            lifecycle_versions_per_sec: field("lifecycle_versions_per_sec", now.lifecycle_versions_per_sec)?,
        };
        self.write(Op::SetWorkerRates(rates)).await?;
        Ok(Answer(StatusCode::OK, rates_json(&rates)))
    }

    /// The disks a call names (a node's, or one disk), checked against the
    /// map, and the (disk, node) pair an operator command names them by.
    fn named(map: &ClusterMap, node: bool, id: &str) -> Result<(Vec<DiskId>, u32, u64), Answer> {
        let what = if node { "node" } else { "disk" };
        let not_found = || {
            let code = if node { "NoSuchNode" } else { "NoSuchDisk" };
            fail(StatusCode::NOT_FOUND, code, format!("no {what} {id} in the cluster map"))
        };
        if node {
            let n: NodeId = id.parse().map_err(|_| not_found())?;
            let disks = map.host_disks(n).map_err(|_| not_found())?;
            Ok((disks, 0, n.get()))
        } else {
            let d: DiskId = id.parse().map_err(|_| not_found())?;
            map.disk(d).ok_or_else(not_found)?;
            Ok((vec![d], d.get(), 0))
        }
    }

    async fn mark(&self, node: bool, id: &str, out: bool, dry_run: bool) -> Result<Answer, Answer> {
        let view = self.map_view().await?;
        let map = view.map()?;
        let (disks, disk, node_id) = Self::named(map, node, id)?;
        let mut after = map.clone();
        for d in &disks {
            after.mark_out(*d, out).map_err(bad)?;
        }
        let plan = self.plan(&view, &after).await?;
        if !dry_run {
            if let Some(why) = plan["refused"].as_str() {
                return Err(fail(StatusCode::CONFLICT, "WouldLoseRedundancy", why));
            }
            self.write(Op::MarkOut(MarkOut { disk, node: node_id, out })).await?;
        }
        Ok(Answer(StatusCode::OK, json!({"done": !dry_run, "disks": ids(&disks), "out": out, "plan": plan})))
    }

    /// Sets one disk's weight, or each disk's of a node: one plan for the
    /// whole change, checked before any disk changes.
    async fn reweight(&self, node: bool, id: &str, doc: &Value, dry_run: bool) -> Result<Answer, Answer> {
        let weight = doc["weight"].as_u64().ok_or_else(|| bad("weight is a number (0: never placed on)"))?;
        let view = self.map_view().await?;
        let map = view.map()?;
        let (disks, _, _) = Self::named(map, node, id)?;
        let mut after = map.clone();
        for d in &disks {
            after.reweight(*d, weight).map_err(bad)?;
        }
        let plan = self.plan(&view, &after).await?;
        if !dry_run {
            if let Some(why) = plan["refused"].as_str() {
                return Err(fail(StatusCode::CONFLICT, "WouldLoseRedundancy", why));
            }
            for d in &disks {
                self.write(Op::Reweight(Reweight { disk: d.get(), weight })).await?;
            }
        }
        Ok(Answer(StatusCode::OK, json!({"done": !dry_run, "disks": ids(&disks), "weight": weight, "plan": plan})))
    }

    async fn remove(&self, node: bool, id: &str, dry_run: bool) -> Result<Answer, Answer> {
        let view = self.map_view().await?;
        let map = view.map()?;
        let (disks, disk, node_id) = Self::named(map, node, id)?;
        // Removal needs the disks empty: a drain first. Say which still hold shards.
        let mut holding = Vec::new();
        for d in &disks {
            let page = self.meta.list_disk_shards(d.get(), Vec::new(), 1).await.map_err(unavailable)?;
            if let Some(e) = page.first() {
                let s = e.shard.clone().unwrap_or_default();
                holding.push(format!("disk {} (e.g. {}/{})", d.get(), s.bucket, s.key));
            }
        }
        if !holding.is_empty() {
            return Err(fail(
                StatusCode::CONFLICT,
                "NotDrained",
                format!(
                    "{} still hold shards that records place there; mark {} out, wait for the rebalance to empty it, then remove it",
                    holding.join(", "),
                    if node { "the node" } else { "the disk" }
                ),
            ));
        }
        if !dry_run {
            self.write(Op::RemoveDisks(RemoveDisks { disk, node: node_id }))
                .await
                .map_err(|a| if a.0 == StatusCode::BAD_REQUEST { Answer(StatusCode::CONFLICT, a.1) } else { a })?;
        }
        Ok(Answer(StatusCode::OK, json!({"done": !dry_run, "removed": ids(&disks)})))
    }

    /// What changing the map from `view` to `after` would do: the shard
    /// placements that move (and an estimate of their bytes and time at the
    /// current rebalance rate), and, after the change, which single zone,
    /// rack or host failure would take more than m shards of some PGs (the
    /// objects there would lose data). `refused` is set when the new map
    /// cannot place k + m shards.
    async fn plan(&self, view: &MapView, after: &ClusterMap) -> Result<Value, Answer> {
        let before = view.map()?;
        let rule = self.rule();
        let diff = match diff_maps(before, after, rule) {
            Ok(d) => d,
            Err(e) => {
                return Ok(json!({
                    "refused": format!(
                        "after this change objects of EC {}+{} could not be placed on {} distinct disks: {e}",
                        self.ec.k, self.ec.m, rule.shards
                    ),
                }));
            }
        };
        // Bytes: each moving placement carries its disk's used bytes spread
        // over the placements it holds.
        let placer = Placer::new(before, rule).map_err(bad)?;
        let mut held: HashMap<DiskId, u64> = HashMap::new();
        for pg in 0..before.pg_count {
            if let Ok(p) = placer.place(PgId(pg)) {
                for d in p.disks {
                    *held.entry(d).or_default() += 1;
                }
            }
        }
        let used: HashMap<u32, u64> = view.reply.usage.iter().map(|u| (u.disk, u.used_bytes)).collect();
        let bytes: u64 = diff
            .moves
            .iter()
            .map(|mv| used.get(&mv.from.get()).copied().unwrap_or(0) / held.get(&mv.from).copied().unwrap_or(1).max(1))
            .sum();
        let mut by_pg: BTreeMap<u32, u64> = BTreeMap::new();
        for mv in &diff.moves {
            *by_pg.entry(mv.pg.0).or_default() += 1;
        }
        let rate =
            self.meta.worker_status().await.map(|w| w.rates.unwrap_or_default().rebalance_bytes_per_sec).unwrap_or(0);
        let seconds = (rate > 0).then(|| bytes.div_ceil(rate));
        Ok(json!({
            "placements_moving": diff.moves.len(),
            "placements_total": diff.placements,
            "pgs_moving": by_pg.len(),
            "moves_by_pg": by_pg.iter().map(|(pg, n)| (pg.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "pgs_total": before.pg_count,
            "bytes_moving_estimate": bytes,
            "rebalance_bytes_per_sec": (rate > 0).then_some(rate),
            "seconds_estimate": seconds,
            "at_risk": at_risk(after, rule, self.ec.m),
        }))
    }
}

/// After a change: for each zone, rack and host whose failure would take
/// more than `m` shards of some PGs, how many PGs (objects there would
/// lose data). Empty: any single such failure is survived.
fn at_risk(map: &ClusterMap, rule: PlacementRule, m: usize) -> Value {
    let Ok(placer) = Placer::new(map, rule) else { return json!([]) };
    let mut domain_of: HashMap<DiskId, [String; 3]> = HashMap::new();
    for (z, r, h, d) in map.disks() {
        domain_of.insert(d.id, [z.name.clone(), format!("{}/{}", z.name, r.name), h.name.clone()]);
    }
    let mut count: BTreeMap<(usize, String), u64> = BTreeMap::new();
    for pg in 0..map.pg_count {
        let Ok(p) = placer.place(PgId(pg)) else { continue };
        for (level, _) in ["zone", "rack", "host"].iter().enumerate() {
            let mut per: HashMap<&str, usize> = HashMap::new();
            for d in &p.disks {
                if let Some(names) = domain_of.get(d) {
                    *per.entry(names[level].as_str()).or_default() += 1;
                }
            }
            for (name, n) in per {
                if n > m {
                    *count.entry((level, name.to_owned())).or_default() += 1;
                }
            }
        }
    }
    let levels = ["zone", "rack", "host"];
    Value::Array(
        count.into_iter().map(|((l, name), pgs)| json!({"level": levels[l], "name": name, "pgs": pgs})).collect(),
    )
}

fn ids(disks: &[DiskId]) -> Vec<u32> {
    disks.iter().map(|d| d.get()).collect()
}

fn rates_json(r: &SetWorkerRates) -> Value {
    let v = |x: u64| (x > 0).then_some(x);
    json!({
        "heal_bytes_per_sec": v(r.heal_bytes_per_sec),
        "rebalance_bytes_per_sec": v(r.rebalance_bytes_per_sec),
        "scrub_bytes_per_sec": v(r.scrub_bytes_per_sec),
        "heal_paused": r.heal_paused,
        "rebalance_paused": r.rebalance_paused,
        "scrub_paused": r.scrub_paused,
        "gc_paused": r.gc_paused,
        "lifecycle_paused": r.lifecycle_paused,
        "gc_files_per_sec": v(r.gc_files_per_sec),
        "lifecycle_versions_per_sec": v(r.lifecycle_versions_per_sec),
    })
}

fn workers_json(w: &WorkerStatusReply) -> Value {
    let list: Vec<Value> = w
        .workers
        .iter()
        .map(|r| {
            json!({
                "node": r.node_id,
                "name": r.name,
                "state": r.state,
                "progress": r.progress,
                "steps": r.steps,
                "errors": r.errors,
                "last_error": (!r.last_error.is_empty()).then_some(&r.last_error),
                "reported_ms": r.reported_ms,
            })
        })
        .collect();
    json!({"workers": list, "rates": rates_json(&w.rates.unwrap_or_default())})
}

fn members_json(st: &ClusterStatusReply) -> Value {
    let progress: HashMap<u64, _> = st.progress.iter().map(|p| (p.id, p)).collect();
    let members: Vec<Value> = st
        .members
        .iter()
        .map(|m| {
            let p = progress.get(&m.id);
            let matched = p.and_then(|p| p.matched_index);
            json!({
                "id": m.id,
                "addr": m.addr,
                "voter": m.voter,
                "leader": st.leader_id == Some(m.id),
                "matched_index": matched,
                "lag": matched.map(|i| st.last_log_index.saturating_sub(i)),
                "command_level": p.and_then(|p| p.command_level),
            })
        })
        .collect();
    json!({
        "leader": st.leader_id,
        "term": st.term,
        "last_log_index": st.last_log_index,
        "applied_index": st.last_applied,
        "snapshot_index": st.snapshot_index,
        "members": members,
    })
}

fn disks_json(view: &MapView) -> Vec<Value> {
    let Some(map) = &view.map else { return Vec::new() };
    let usage: HashMap<u32, _> = view.reply.usage.iter().map(|u| (u.disk, u)).collect();
    map.disks()
        .map(|(z, r, h, d)| {
            let u = usage.get(&d.id.get());
            let state = if !d.state.up {
                "down"
            } else if d.marked_out {
                "draining"
            } else if !d.state.is_in {
                "out"
            } else if d.full {
                "full"
            } else {
                "in"
            };
            json!({
                "id": d.id.get(),
                "node": h.node.0,
                "host": h.name,
                "rack": r.name,
                "zone": z.name,
                "state": state,
                "up": d.state.up,
                "in": d.state.is_in,
                "marked_out": d.marked_out,
                "full": d.full,
                "weight": d.weight,
                "weight_fixed": d.weight_fixed,
                "capacity_bytes": u.map(|u| u.capacity_bytes),
                "used_bytes": u.map(|u| u.used_bytes),
                "healthy": u.map(|u| u.healthy),
            })
        })
        .collect()
}

fn nodes_json(view: &MapView) -> Vec<Value> {
    let Some(map) = &view.map else { return Vec::new() };
    let records: HashMap<u64, _> = view.reply.datanodes.iter().map(|d| (d.node_id, d)).collect();
    map.disks()
        .fold(BTreeMap::<u64, (String, String, String, Vec<u32>, usize)>::new(), |mut acc, (z, r, h, d)| {
            let e =
                acc.entry(h.node.0).or_insert_with(|| (z.name.clone(), r.name.clone(), h.name.clone(), Vec::new(), 0));
            e.3.push(d.id.get());
            e.4 += usize::from(d.state.up);
            acc
        })
        .into_iter()
        .map(|(id, (zone, rack, host, disks, up))| {
            let rec = records.get(&id);
            json!({
                "id": id,
                "addr": rec.map(|r| r.addr.clone()),
                "zone": zone,
                "rack": rack,
                "host": host,
                "disks": disks,
                "disks_up": up,
                "state": if up == 0 { "down" } else if up < disks.len() { "degraded" } else { "up" },
                "registered_ms": rec.map(|r| r.registered_ms),
                "version": rec.map(|r| r.version.clone()).filter(|v| !v.is_empty()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_calls_map_to_actions() {
        let r = |m: Method, p: &str| find(&m, p).and_then(|x| call_of(&m, &x).map(|c| (x.action, c)));
        assert_eq!(r(Method::GET, "status"), Some(("admin:ClusterStatus", Call::Status)));
        assert_eq!(r(Method::GET, "nodes/"), Some(("admin:ClusterStatus", Call::Nodes)));
        assert_eq!(r(Method::GET, "workers"), Some(("admin:WorkerStatus", Call::Workers)));
        assert_eq!(
            r(Method::POST, "nodes/3/out"),
            Some(("admin:MarkOut", Call::Mark { node: true, id: "3".into(), out: true }))
        );
        assert_eq!(
            r(Method::POST, "disks/7/in"),
            Some(("admin:MarkOut", Call::Mark { node: false, id: "7".into(), out: false }))
        );
        assert_eq!(
            r(Method::PUT, "disks/7/weight"),
            Some(("admin:Reweight", Call::Reweight { node: false, id: "7".into() }))
        );
        assert_eq!(
            r(Method::PUT, "nodes/103/weight"),
            Some(("admin:Reweight", Call::Reweight { node: true, id: "103".into() }))
        );
        assert_eq!(
            r(Method::DELETE, "nodes/2"),
            Some(("admin:RemoveDisks", Call::Remove { node: true, id: "2".into() }))
        );
        assert_eq!(r(Method::POST, "buckets"), Some(("admin:CreateBucket", Call::CreateBucket)));
        assert_eq!(
            r(Method::PUT, "buckets/media/quota"),
            Some(("admin:SetBucketQuota", Call::SetQuota { bucket: "media".into() }))
        );
        assert_eq!(r(Method::POST, "nodes/3/sideways"), None);
        assert_eq!(r(Method::DELETE, "status"), None);
        assert_eq!(r(Method::GET, "nodes/3/out"), None);
        // Calls of the API's other parts are not cluster calls.
        let keys = find(&Method::GET, "keys").unwrap();
        assert_eq!(call_of(&Method::GET, &keys), None);
    }

    /// Every call of the table that is a cluster call is answered by one
    /// (none falls through to the key and policy part unanswered).
    #[test]
    fn every_cluster_template_has_its_call() {
        for (m, template, _) in super::super::calls::CALLS {
            let method: Method = m.parse().unwrap();
            let path = template.replace("{id}", "3").replace("{bucket}", "b").replace("{name}", "n");
            let matched = find(&method, &path).unwrap();
            let is_cluster = ["status", "nodes", "disks", "members", "leader", "workers", "worker-rates", "buckets"]
                .iter()
                .any(|p| template.split('/').next() == Some(*p));
            assert_eq!(call_of(&method, &matched).is_some(), is_cluster, "{m} {template}");
        }
    }

    /// Three hosts of two disks each, EC 2+1 (3 shards): one host holds at
    /// most one shard of a PG, so no single failure loses data; with one
    /// host's disks out, two hosts are left for three shards and a host
    /// failure would take two (> m = 1) of some PGs.
    #[test]
    fn at_risk_names_the_domains_whose_failure_would_lose_data() {
        use tessera_placement::{Disk, Host};
        let mut map = ClusterMap::new(64).unwrap();
        for h in 1..=3u64 {
            let disks = (0..2).map(|i| Disk::new(DiskId((h * 10 + i) as u32), 100)).collect();
            map.add_host("z", "r", Host { node: NodeId(h), name: format!("h{h}"), disks }).unwrap();
        }
        let rule = PlacementRule { shards: 3, failure_domain: Level::Host };
        let risk = at_risk(&map, rule, 1);
        let hosts: Vec<&Value> = risk.as_array().unwrap().iter().filter(|r| r["level"] == "host").collect();
        assert!(hosts.is_empty(), "{risk}");
        // The zone and rack hold every shard: their failure loses everything.
        assert!(risk.as_array().unwrap().iter().any(|r| r["level"] == "zone" && r["pgs"] == 64), "{risk}");

        for d in map.host_disks(NodeId(3)).unwrap() {
            map.mark_out(d, true).unwrap();
        }
        let risk = at_risk(&map, rule, 1);
        let hosts: Vec<&Value> = risk.as_array().unwrap().iter().filter(|r| r["level"] == "host").collect();
        assert!(!hosts.is_empty(), "{risk}");
        assert!(hosts.iter().all(|r| r["name"] != "h3"), "h3 holds nothing after its drain: {risk}");
    }
}
