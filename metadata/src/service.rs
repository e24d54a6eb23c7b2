//! The metadata gRPC service. The only place that maps outcomes to gRPC
//! statuses: a follower answers UNAVAILABLE marked not-leader (with the
//! leader's URL when known); domain rejections travel in replies.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::{BasicNode, Raft};
use tessera_rpc::cluster_tls::Role;
use tessera_rpc::proto::meta::meta_server::{Meta, MetaServer};
use tessera_rpc::proto::meta::*;
use tonic::{Request, Response, Status};

use crate::batcher::WriteBatcher;
use crate::liveness::LivenessTable;
use crate::metrics::{MetaMetrics, result_labels};
use crate::raft::TypeConfig;
use crate::read_index::ReadIndex;
use crate::state::list::ListQuery;
use crate::version::{self, Levels};
use crate::{MetaError, MetaState};

mod leading;
mod transfer;
use leading::{marked, write_error};
use transfer::Handover;
pub(crate) use transfer::Standing;

/// Serves the `tessera.meta.v1.Meta` API of one node.
pub struct MetaService {
    raft: Raft<TypeConfig>,
    /// Group commit of writes; started by the first write (inside the runtime).
    batcher: std::sync::OnceLock<WriteBatcher>,
    /// Shares read-index rounds among concurrent reads (made in the runtime).
    reads: std::sync::OnceLock<Arc<ReadIndex>>,
    state: MetaState,
    node_id: u64,
    liveness: LivenessTable,
    metrics: MetaMetrics,
    /// Command levels: this node's and what it heard from the others.
    levels: Arc<Levels>,
    /// The threads that run state reads.
    read_pool: Arc<crate::read_pool::ReadPool>,
    /// Lifetime of the certificates renewals issue.
    cert_validity: std::time::Duration,
    /// The shortest time any member refuses votes after it heard the
    /// leader (the configured `election_timeout.1`): the leader lease is
    /// half of it.
    lease_base: std::time::Duration,
    /// A leadership transfer under way, and the client writes in flight.
    handover: Handover,
}

/// S3 never lists more than this many entries per page.
const MAX_PAGE: u32 = 1000;
/// Most data ids in one CheckShards call.
const MAX_CHECK_SHARDS: usize = 10_000;

impl MetaService {
    /// The service of node `node_id`, wrapped for a tonic server.
    pub fn server(raft: Raft<TypeConfig>, state: MetaState, node_id: u64, liveness: LivenessTable) -> MetaServer<Self> {
        let levels = Arc::new(Levels::new(crate::version::LEVEL));
        let validity = tessera_rpc::enroll::CERT_VALIDITY;
        let lease_base = std::time::Duration::from_millis(raft.config().election_timeout_max);
        Self::server_with_metrics(raft, state, node_id, liveness, MetaMetrics::default(), levels, validity, lease_base)
    }

    /// [`MetaService::server`], counting into `metrics`; `lease_base`: the
    /// shortest vote-refusal time of any member (see [`MetaService::lease_base`]).
    #[allow(clippy::too_many_arguments)]
    pub fn server_with_metrics(
        raft: Raft<TypeConfig>,
        state: MetaState,
        node_id: u64,
        liveness: LivenessTable,
        metrics: MetaMetrics,
        levels: Arc<Levels>,
        cert_validity: std::time::Duration,
        lease_base: std::time::Duration,
    ) -> MetaServer<Self> {
        let (batcher, reads) = (std::sync::OnceLock::new(), std::sync::OnceLock::new());
        let read_pool = Arc::new(crate::read_pool::ReadPool::sized_for_machine());
        let service = MetaService {
            raft,
            batcher,
            reads,
            state,
            node_id,
            liveness,
            metrics,
            levels,
            read_pool,
            cert_validity,
            lease_base,
            handover: Handover::new(),
        };
        MetaServer::new(service)
            .max_decoding_message_size(tessera_rpc::META_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(tessera_rpc::META_MAX_MESSAGE_BYTES)
    }

    /// The version gate (crate::version): on the leader, refuses a command
    /// some member of the group would not understand. Other nodes let the
    /// write go on to its not-leader answer.
    fn gate(&self, cmd: &Command) -> Result<(), MetaError> {
        let Some(needs) = version::needed(cmd) else {
            return Err(MetaError::InvalidArgument(format!(
                "a command this metadata node does not know (it understands command level {}; is it older \
                 than the client?)",
                self.levels.mine()
            )));
        };
        // Every release understands the base level: nothing to look up
        // for the commands of nearly every request.
        if needs <= version::BASE_LEVEL {
            return Ok(());
        }
        let have = {
            let m = self.raft.metrics();
            let m = m.borrow();
            if m.current_leader != Some(self.node_id) {
                return Ok(());
            }
            self.levels.cluster(self.node_id, m.membership_config.membership().nodes().map(|(id, _)| *id))
        };
        if needs > have {
            return Err(MetaError::NotYetEnabled(format!(
                "this needs metadata command level {needs}, but some metadata node runs an older release \
                 (cluster level {have}); it is enabled once every node is upgraded"
            )));
        }
        Ok(())
    }

    fn status(&self) -> ClusterStatusReply {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| Member { id: *id, addr: node.addr.clone(), voter: voters.contains(id) })
            .collect();
        // The leader knows how far each member's log matches its own.
        let progress = m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .map(|(id, matched)| MemberProgress {
                        id: *id,
                        matched_index: matched.map(|l| l.index),
                        command_level: if *id == self.node_id {
                            Some(self.levels.mine())
                        } else {
                            self.levels.level_of(*id)
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        ClusterStatusReply {
            node_id: self.node_id,
            leader_id: m.current_leader,
            term: m.current_term,
            last_applied: m.last_applied.map_or(0, |l| l.index),
            last_log_index: m.last_log_index.unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index),
            members,
            command_level: self.levels.mine(),
            progress,
        }
    }
}

fn storage(e: MetaError) -> Status {
    tracing::error!(error = %e, "metadata storage failure");
    Status::internal("metadata storage failure")
}

fn failure_of(e: MetaError) -> Result<Failure, Status> {
    match e {
        MetaError::Storage(_) => Err(storage(e)),
        other => Ok(other.to_failure()),
    }
}

fn map_reply(st: &MetaState) -> Result<ClusterMapReply, MetaError> {
    let map = st.cluster_map()?;
    Ok(ClusterMapReply {
        epoch: map.as_ref().map_or(0, |m| m.epoch),
        map: map.map(|m| m.to_bytes()).unwrap_or_default(),
        datanodes: st.datanodes()?,
        usage: Vec::new(),
        cluster_id: st.cluster_id()?,
    })
}

type MapStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<ClusterMapReply, Status>> + Send>>;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn page_size(requested: u32) -> usize {
    requested.min(MAX_PAGE) as usize
}

/// The role of the peer's certificate (over mutual TLS; `None` over plain
/// TCP and in-process calls, which are trusted as the process is).
fn peer_role<T>(req: &Request<T>) -> Option<tessera_rpc::cluster_tls::Role> {
    req.extensions().get::<tessera_rpc::cluster_tls::PeerInfo>().and_then(|p| p.role)
}

/// Refuses a caller whose certificate names a role not in `allowed`.
fn only<T>(req: &Request<T>, allowed: &[tessera_rpc::cluster_tls::Role], what: &str) -> Result<(), Status> {
    match peer_role(req) {
        Some(role) if !allowed.contains(&role) => {
            Err(Status::permission_denied(format!("a {} certificate may not {what}", role.as_str())))
        }
        _ => Ok(()),
    }
}

/// The commands a datanode issues (registration, damage, heal and
/// rebalance records); anything else from a datanode's certificate is
/// refused, so a compromised datanode cannot make keys, delete buckets or
/// rewrite objects.
fn datanode_may_write(op: Option<&command::Op>) -> bool {
    matches!(
        op,
        Some(
            command::Op::RegisterDatanode(_)
                | command::Op::ReportDamage(_)
                | command::Op::ClearDamage(_)
                | command::Op::MoveShard(_)
                | command::Op::RestoreShards(_)
        )
    )
}

#[tonic::async_trait]
impl Meta for MetaService {
    async fn write(&self, req: Request<Command>) -> Result<Response<CommandResult>, Status> {
        let started = std::time::Instant::now();
        if peer_role(&req) == Some(tessera_rpc::cluster_tls::Role::Datanode)
            && !datanode_may_write(req.get_ref().op.as_ref())
        {
            return Err(Status::permission_denied("a datanode certificate may not issue this command"));
        }
        {
            use tessera_rpc::cluster_tls::Role;
            // The CA's key and the consumption of join tokens are metadata
            // nodes' business (enrollment runs on them); tokens are made by
            // metadata nodes and by gateways (the admin API).
            match req.get_ref().op.as_ref() {
                Some(command::Op::SetClusterCa(_) | command::Op::ConsumeJoinToken(_)) => {
                    only(&req, &[Role::Meta], "store the cluster CA or use a join token")?
                }
                Some(command::Op::CreateJoinToken(_)) => only(&req, &[Role::Meta, Role::Gateway], "make join tokens")?,
                _ => {}
            }
        }
        let mut cmd = req.into_inner();
        if matches!(cmd.op, Some(command::Op::Batch(_))) {
            return Err(Status::invalid_argument("batches are formed by the leader, not sent"));
        }
        // Counted in flight (a leadership transfer waits for it), and held
        // while one is under way.
        let _counted = self.handover.admit().await?;
        cmd.now_ms = now_ms();
        self.cut_off()?;
        if let Err(e) = self.gate(&cmd) {
            self.metrics.writes.get_or_create(&result_labels("refused")).inc();
            return Ok(Response::new(CommandResult {
                outcome: Some(command_result::Outcome::Failure(e.to_failure())),
            }));
        }
        let batcher =
            self.batcher.get_or_init(|| WriteBatcher::start(self.raft.clone(), self.metrics.clone(), write_error));
        let result = match batcher.write(cmd).await {
            Ok(r) => r,
            Err(status) => {
                self.metrics.writes.get_or_create(&result_labels("error")).inc();
                return Err(self.name_the_leader(status).await);
            }
        };
        let refused = matches!(result.outcome, Some(command_result::Outcome::Failure(_)));
        self.metrics.writes.get_or_create(&result_labels(if refused { "refused" } else { "ok" })).inc();
        self.metrics.write_seconds.get_or_create(&Vec::new()).observe(started.elapsed().as_secs_f64());
        Ok(Response::new(result))
    }

    async fn get_bucket(&self, req: Request<BucketRequest>) -> Result<Response<BucketReply>, Status> {
        let name = req.into_inner().name;
        let r = self.read(move |st| st.bucket(&name)).await?;
        Ok(Response::new(match r {
            Ok(Some(b)) => BucketReply { digest: crate::state::bucket_digest(&b), bucket: Some(b), failure: None },
            Ok(None) => {
                BucketReply { bucket: None, failure: Some(MetaError::NoSuchBucket.to_failure()), digest: vec![] }
            }
            Err(e) => BucketReply { bucket: None, failure: Some(failure_of(e)?), digest: vec![] },
        }))
    }

    async fn bucket_usage(&self, req: Request<BucketRequest>) -> Result<Response<BucketUsageReply>, Status> {
        let name = req.into_inner().name;
        let r = self.read(move |st| st.bucket_usage(&name)).await?;
        Ok(Response::new(match r {
            Ok(u) => u,
            Err(e) => BucketUsageReply { failure: Some(failure_of(e)?), ..Default::default() },
        }))
    }

    async fn list_buckets(&self, _req: Request<ListBucketsRequest>) -> Result<Response<ListBucketsReply>, Status> {
        let buckets = self.read(|st| st.buckets()).await?.map_err(storage)?;
        Ok(Response::new(ListBucketsReply { buckets }))
    }

    async fn get_object(&self, req: Request<ObjectRequest>) -> Result<Response<ObjectReply>, Status> {
        let r = req.into_inner();
        let missing = if r.version_id.is_empty() { MetaError::NoSuchKey } else { MetaError::NoSuchVersion };
        let got = self.read(move |st| st.object_version(&r.bucket, &r.key, &r.version_id)).await?;
        Ok(Response::new(match got {
            Ok(Some(o)) => ObjectReply { object: Some(o), failure: None },
            Ok(None) => ObjectReply { object: None, failure: Some(missing.to_failure()) },
            Err(e) => ObjectReply { object: None, failure: Some(failure_of(e)?) },
        }))
    }

    async fn get_objects(&self, req: Request<ObjectsRequest>) -> Result<Response<ObjectsReply>, Status> {
        let reqs = req.into_inner().requests;
        if reqs.len() > tessera_rpc::MAX_OBJECTS_PER_READ {
            return Err(Status::invalid_argument(format!(
                "at most {} objects in one read",
                tessera_rpc::MAX_OBJECTS_PER_READ
            )));
        }
        let got = self
            .read(move |st| {
                let mut out = Vec::with_capacity(reqs.len());
                let mut bytes = 0;
                for r in &reqs {
                    let missing = if r.version_id.is_empty() { MetaError::NoSuchKey } else { MetaError::NoSuchVersion };
                    let reply = match st.object_version(&r.bucket, &r.key, &r.version_id) {
                        Ok(Some(o)) => ObjectReply { object: Some(o), failure: None },
                        Ok(None) => ObjectReply { object: None, failure: Some(missing.to_failure()) },
                        Err(e @ MetaError::Storage(_)) => return Err(e),
                        Err(e) => ObjectReply { object: None, failure: Some(e.to_failure()) },
                    };
                    // The rest is left to the caller when the reply would
                    // grow past its budget (one reply always goes).
                    bytes += prost::Message::encoded_len(&reply);
                    if bytes > tessera_rpc::OBJECTS_REPLY_BUDGET && !out.is_empty() {
                        break;
                    }
                    out.push(reply);
                }
                Ok(out)
            })
            .await?;
        match got {
            Ok(replies) => Ok(Response::new(ObjectsReply { replies })),
            Err(e) => Err(storage(e)),
        }
    }

    async fn list_objects(&self, req: Request<ListObjectsRequest>) -> Result<Response<ListObjectsReply>, Status> {
        let r = req.into_inner();
        let q = ListQuery { prefix: r.prefix, delimiter: r.delimiter, after: r.after, max_keys: page_size(r.max_keys) };
        let bucket = r.bucket;
        let got = self.read(move |st| st.list_objects(&bucket, &q)).await?;
        Ok(Response::new(match got {
            Ok(page) => ListObjectsReply {
                objects: page
                    .items
                    .into_iter()
                    .map(|(key, record)| ListedObject { key, record: Some(record) })
                    .collect(),
                common_prefixes: page.common_prefixes,
                is_truncated: page.is_truncated,
                last: page.last,
                failure: None,
            },
            Err(e) => ListObjectsReply { failure: Some(failure_of(e)?), ..Default::default() },
        }))
    }

    async fn list_versions(&self, req: Request<ListVersionsRequest>) -> Result<Response<ListVersionsReply>, Status> {
        let r = req.into_inner();
        let max = page_size(r.max_keys);
        let got = self
            .read(move |st| {
                st.list_versions(
                    &r.bucket,
                    &r.prefix,
                    r.delimiter.as_deref(),
                    r.key_marker.as_deref(),
                    r.version_id_marker.as_deref(),
                    max,
                )
            })
            .await?;
        Ok(Response::new(match got {
            Ok(page) => ListVersionsReply {
                versions: page
                    .versions
                    .into_iter()
                    .map(|(key, record, is_latest)| ListedVersion { key, record: Some(record), is_latest })
                    .collect(),
                common_prefixes: page.common_prefixes,
                is_truncated: page.is_truncated,
                next_key_marker: page.next_key_marker,
                next_version_id_marker: page.next_version_id_marker,
                failure: None,
            },
            Err(e) => ListVersionsReply { failure: Some(failure_of(e)?), ..Default::default() },
        }))
    }

    async fn get_upload(&self, req: Request<UploadRequest>) -> Result<Response<UploadReply>, Status> {
        let r = req.into_inner();
        let got = self.read(move |st| st.upload(&r.bucket, &r.key, &r.upload_id)).await?;
        Ok(Response::new(match got {
            Ok(Some(u)) => UploadReply { upload: Some(u), failure: None },
            Ok(None) => UploadReply { upload: None, failure: Some(MetaError::NoSuchUpload.to_failure()) },
            Err(e) => UploadReply { upload: None, failure: Some(failure_of(e)?) },
        }))
    }

    async fn list_uploads(&self, req: Request<ListUploadsRequest>) -> Result<Response<ListUploadsReply>, Status> {
        let r = req.into_inner();
        let max = page_size(r.max_uploads);
        let got = self
            .read(move |st| {
                st.list_uploads(
                    &r.bucket,
                    &r.prefix,
                    r.delimiter.as_deref(),
                    r.key_marker.as_deref(),
                    r.upload_id_marker.as_deref(),
                    max,
                )
            })
            .await?;
        Ok(Response::new(match got {
            Ok(page) => {
                let (next_key_marker, next_upload_id_marker) = match page.next {
                    Some((k, id)) => (Some(k), Some(id)),
                    None => (None, None),
                };
                ListUploadsReply {
                    uploads: page.uploads,
                    common_prefixes: page.common_prefixes,
                    is_truncated: page.is_truncated,
                    next_key_marker,
                    next_upload_id_marker,
                    failure: None,
                }
            }
            Err(e) => ListUploadsReply { failure: Some(failure_of(e)?), ..Default::default() },
        }))
    }

    async fn list_parts(&self, req: Request<ListPartsRequest>) -> Result<Response<ListPartsReply>, Status> {
        let r = req.into_inner();
        let max = page_size(r.max_parts);
        let got = self.read(move |st| st.list_parts(&r.bucket, &r.key, &r.upload_id, r.after_part, max)).await?;
        Ok(Response::new(match got {
            Ok((parts, is_truncated)) => ListPartsReply { parts, is_truncated, failure: None },
            Err(e) => ListPartsReply { failure: Some(failure_of(e)?), ..Default::default() },
        }))
    }

    async fn get_cluster_map(&self, _req: Request<ClusterMapRequest>) -> Result<Response<ClusterMapReply>, Status> {
        let mut reply = self.read(map_reply).await?.map_err(storage)?;
        reply.usage = self.liveness.usage();
        Ok(Response::new(reply))
    }

    type WatchClusterMapStream = MapStream;

    async fn watch_cluster_map(&self, req: Request<ClusterMapRequest>) -> Result<Response<MapStream>, Status> {
        self.linearize(false).await?;
        let after = req.into_inner().after_epoch;
        let changes = self.state.subscribe_map_changes();
        let stream =
            futures::stream::unfold((changes, self.state.clone(), after), |(mut changes, st, after)| async move {
                loop {
                    let s2 = st.clone();
                    let reply = match tokio::task::spawn_blocking(move || map_reply(&s2)).await {
                        Ok(Ok(r)) => r,
                        Ok(Err(e)) => return Some((Err(storage(e)), (changes, st, after))),
                        Err(e) => return Some((Err(Status::internal(e.to_string())), (changes, st, after))),
                    };
                    if reply.epoch > after {
                        let epoch = reply.epoch;
                        return Some((Ok(reply), (changes, st, epoch)));
                    }
                    if changes.changed().await.is_err() {
                        return None; // the node is shutting down
                    }
                }
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Result<Response<HeartbeatReply>, Status> {
        if let Err(e) = self.require_leader() {
            self.metrics.heartbeats.get_or_create(&result_labels("not_leader")).inc();
            return Err(e);
        }
        self.metrics.heartbeats.get_or_create(&result_labels("ok")).inc();
        self.liveness.record(&req.into_inner());
        let st = self.state.clone();
        let (map, rates) =
            tokio::task::spawn_blocking(move || Ok::<_, MetaError>((st.cluster_map()?, st.worker_rates()?)))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(storage)?;
        Ok(Response::new(HeartbeatReply { epoch: map.map_or(0, |m| m.epoch), rates: Some(rates) }))
    }

    async fn get_access_key(&self, req: Request<AccessKeyRequest>) -> Result<Response<AccessKeyReply>, Status> {
        only(&req, &[Role::Gateway, Role::Meta], "read access keys")?;
        let id = req.into_inner().access_key_id;
        let got = self
            .read(move |st| {
                let Some(key) = st.access_key(&id)? else { return Ok(None) };
                let mut policies = Vec::new();
                for name in &key.policies {
                    policies.extend(st.policy(name)?);
                }
                Ok(Some((key, policies)))
            })
            .await?;
        Ok(Response::new(match got {
            Ok(Some((key, policies))) => AccessKeyReply { key: Some(key), failure: None, policies },
            Ok(None) => AccessKeyReply {
                key: None,
                failure: Some(MetaError::NoSuchAccessKey.to_failure()),
                policies: Vec::new(),
            },
            Err(e) => AccessKeyReply { key: None, failure: Some(failure_of(e)?), policies: Vec::new() },
        }))
    }

    async fn list_access_keys(
        &self,
        req: Request<ListAccessKeysRequest>,
    ) -> Result<Response<ListAccessKeysReply>, Status> {
        only(&req, &[Role::Gateway, Role::Meta], "read access keys")?;
        let keys = self.read(|st| st.access_keys()).await?.map_err(storage)?;
        Ok(Response::new(ListAccessKeysReply { keys }))
    }

    async fn list_policies(&self, req: Request<ListPoliciesRequest>) -> Result<Response<ListPoliciesReply>, Status> {
        only(&req, &[Role::Gateway, Role::Meta], "read policies")?;
        let policies = self.read(|st| st.policies()).await?.map_err(storage)?;
        Ok(Response::new(ListPoliciesReply { policies }))
    }

    async fn list_damage(&self, req: Request<ListDamageRequest>) -> Result<Response<ListDamageReply>, Status> {
        let r = req.into_inner();
        let max = r.max.clamp(1, 10_000) as usize;
        let reports = self.read(move |st| st.damage_reports(max, r.disk)).await?.map_err(storage)?;
        Ok(Response::new(ListDamageReply { reports }))
    }

    async fn check_shards(&self, req: Request<CheckShardsRequest>) -> Result<Response<CheckShardsReply>, Status> {
        let r = req.into_inner();
        if r.data_ids.len() > MAX_CHECK_SHARDS {
            return Err(Status::invalid_argument(format!("at most {MAX_CHECK_SHARDS} data ids per call")));
        }
        let referenced = self.read(move |st| st.shards_referenced(r.disk, &r.data_ids)).await?.map_err(storage)?;
        Ok(Response::new(CheckShardsReply { referenced }))
    }

    async fn list_disk_shards(
        &self,
        req: Request<ListDiskShardsRequest>,
    ) -> Result<Response<ListDiskShardsReply>, Status> {
        let r = req.into_inner();
        let max = (r.max as usize).clamp(1, MAX_CHECK_SHARDS);
        let page = self.read(move |st| st.disk_shards_after(r.disk, &r.after, max)).await?.map_err(storage)?;
        let entries = page.into_iter().map(|(data_id, shard)| DiskShardEntry { data_id, shard: Some(shard) }).collect();
        Ok(Response::new(ListDiskShardsReply { entries }))
    }

    /// The answering node's own view (not forwarded to the leader), so each
    /// node's progress can be watched.
    async fn worker_status(&self, _req: Request<WorkerStatusRequest>) -> Result<Response<WorkerStatusReply>, Status> {
        self.require_leader()?;
        let rates = self.read(|st| st.worker_rates()).await?.map_err(storage)?;
        Ok(Response::new(WorkerStatusReply { workers: self.liveness.workers(), rates: Some(rates) }))
    }

    async fn cluster_status(
        &self,
        _req: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusReply>, Status> {
        Ok(Response::new(self.status()))
    }

    async fn renew_certificate(
        &self,
        req: Request<RenewCertificateRequest>,
    ) -> Result<Response<RenewCertificateReply>, Status> {
        let Some(role) = peer_role(&req) else {
            return Err(Status::permission_denied("a renewal is asked with the node certificate it renews"));
        };
        let r = req.into_inner();
        let ca = self
            .read(|st| st.get::<ClusterCa>(crate::keys::CLUSTER_CA))
            .await?
            .map_err(|e| Status::internal(e.to_string()))?;
        let failure = |m: String| {
            Response::new(RenewCertificateReply {
                chain_pem: String::new(),
                failure: Some(MetaError::InvalidArgument(m).to_failure()),
            })
        };
        let Some(ca) = ca else {
            return Ok(failure(
                "the metadata service keeps no cluster CA (certificates made by hand): renew them by hand".into(),
            ));
        };
        let issued = tessera_rpc::cluster_tls::ClusterCa::from_pems(ca.cert_pem, ca.key_pem)
            .and_then(|ca| ca.issue_for(&r.public_key, role, &r.name, self.cert_validity));
        Ok(match issued {
            Ok(chain_pem) => {
                tracing::info!(role = role.as_str(), name = r.name, "renewed a node certificate");
                Response::new(RenewCertificateReply { chain_pem, failure: None })
            }
            Err(e) => failure(e.to_string()),
        })
    }

    async fn add_learner(&self, req: Request<AddLearnerRequest>) -> Result<Response<ClusterStatusReply>, Status> {
        // Gateways too: the admin API's membership calls.
        only(&req, &[Role::Meta, Role::Gateway], "change the metadata membership")?;
        // openraft validates a change against this node's own membership
        // before it checks leadership, so a lagging follower would refuse a
        // valid change; only the leader may judge it.
        self.require_leader()?;
        let r = req.into_inner();
        self.levels.heard(r.id, r.command_level);
        self.raft.add_learner(r.id, BasicNode::new(r.addr), true).await.map_err(write_error)?;
        Ok(Response::new(self.status()))
    }

    async fn change_membership(
        &self,
        req: Request<ChangeMembershipRequest>,
    ) -> Result<Response<ClusterStatusReply>, Status> {
        only(&req, &[Role::Meta, Role::Gateway], "change the metadata membership")?;
        self.require_leader()?;
        let r = req.into_inner();
        let voters: BTreeSet<u64> = r.voters.into_iter().collect();
        if voters.is_empty() {
            return Err(Status::invalid_argument("a cluster needs at least one voter"));
        }
        let change: openraft::ChangeMembers<u64, BasicNode> =
            if r.add { openraft::ChangeMembers::AddVoterIds(voters) } else { voters.into() };
        self.raft.change_membership(change, false).await.map_err(write_error)?;
        Ok(Response::new(self.status()))
    }

    async fn transfer_leader(
        &self,
        req: Request<TransferLeaderRequest>,
    ) -> Result<Response<ClusterStatusReply>, Status> {
        only(&req, &[Role::Meta, Role::Gateway], "transfer the metadata leadership")?;
        Ok(Response::new(self.transfer_leader(req.into_inner().target).await?))
    }
}
