//! Commands on the cluster map, datanode records, access keys and damage reports.

use tessera_common::{DiskId, NodeId};
use tessera_placement::{ClusterMap, DEFAULT_PG_COUNT, Disk, DiskState, Host};
use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::{
    AccessKeyRecord, ClearDamage, CreateAccessKey, DamageReport, DatanodeRecord, DeleteAccessKey, DeletePolicy,
    DiskShard, Done, MarkOut, PutPolicy, RegisterDatanode, RemoveDisks, ReportDamage, Reweight, SetDiskFull,
    SetDiskState, UpdateAccessKey,
};

use super::MetaState;
use super::apply::Writes;
use crate::MetaError;
use crate::keys;
use crate::record::encode;

const GIB: u64 = 1 << 30;

fn invalid(msg: impl Into<String>) -> MetaError {
    MetaError::InvalidArgument(msg.into())
}

fn map_error(e: tessera_placement::MapError) -> MetaError {
    invalid(e.to_string())
}

/// Placement weight of a disk: its capacity in GiB, at least 1.
fn weight(capacity_bytes: u64) -> u64 {
    (capacity_bytes / GIB).max(1)
}

fn store_map(map: &ClusterMap, w: &mut Writes) {
    w.put(keys::CLUSTER_MAP.to_vec(), map.to_bytes());
}

pub(crate) fn register_datanode(
    st: &MetaState,
    now: u64,
    c: &RegisterDatanode,
    w: &mut Writes,
) -> Result<Outcome, MetaError> {
    let mut node = c.node.clone().ok_or_else(|| invalid("registration without a node"))?;
    // The first registration names the cluster; a disk whose folder carries
    // another cluster's id is not this cluster's disk.
    let cluster = match st.cluster_id()? {
        id if !id.is_empty() => id,
        _ => {
            if !c.cluster_id.is_empty() {
                w.put(keys::CLUSTER_ID.to_vec(), c.cluster_id.as_bytes().to_vec());
            }
            c.cluster_id.clone()
        }
    };
    for d in &node.disks {
        if !d.cluster_id.is_empty() && !cluster.is_empty() && d.cluster_id != cluster {
            return Err(invalid(format!(
                "disk {}'s folder belongs to another Tessera cluster ({}; this one is {cluster}): not accepted; \
                 give this cluster an empty folder",
                d.id, d.cluster_id
            )));
        }
    }
    if node.node_id == 0 || node.addr.is_empty() || node.disks.is_empty() {
        return Err(invalid("a datanode needs an id, an address and at least one disk"));
    }
    let mut ids: Vec<u32> = node.disks.iter().map(|d| d.id).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|p| p[0] == p[1]) {
        return Err(invalid("disk ids of a datanode must be distinct"));
    }
    // A disk whose folder was formatted anew (an empty folder where the disk
    // should be mounted, a disk from another cluster) claims an id this
    // cluster knows with another incarnation: refused, unless the operator
    // said to accept it as a new, empty disk (its shards are then healed).
    for d in &node.disks {
        if d.incarnation.is_empty() {
            continue; // a datanode from before incarnations
        }
        let k = keys::incarnation(d.id);
        let known = st.db().get_pinned_cf(crate::db::cf(st.db(), crate::db::CF_SM)?, &k)?.map(|v| v.to_vec());
        match known {
            Some(known) if known != d.incarnation.as_bytes() && !d.format => {
                return Err(invalid(format!(
                    "disk {} is not the disk this cluster knows by that id (its folder was formatted anew: \
                     not mounted, wiped, or from another cluster); if it replaces that disk, start the \
                     datanode with --format {} to accept it as a new, empty disk",
                    d.id, d.id
                )));
            }
            Some(known) if known == d.incarnation.as_bytes() => {}
            _ => w.put(k, d.incarnation.as_bytes().to_vec()),
        }
    }
    let mut map = st.cluster_map()?.unwrap_or(ClusterMap::new(DEFAULT_PG_COUNT).map_err(map_error)?);
    let nid = NodeId(node.node_id);
    for d in &node.disks {
        if let Some((_, _, owner, _)) = map.disks().find(|(_, _, _, disk)| disk.id == DiskId(d.id))
            && owner.node != nid
        {
            return Err(invalid(format!("disk {} belongs to node {}", d.id, owner.node)));
        }
    }
    let known = map.hosts().any(|h| h.node == nid);
    if known {
        // A restart: disks come back up and in; new disks join; capacities refresh.
        for d in &node.disks {
            let id = DiskId(d.id);
            if map.disk(id).is_some() {
                map.set_disk_state(id, DiskState::HEALTHY).map_err(map_error)?;
                map.set_disk_weight(id, weight(d.capacity_bytes)).map_err(map_error)?;
            } else {
                map.add_disk(nid, Disk::new(id, weight(d.capacity_bytes))).map_err(map_error)?;
            }
        }
    } else {
        let disks = node.disks.iter().map(|d| Disk::new(DiskId(d.id), weight(d.capacity_bytes))).collect();
        let host = Host { node: nid, name: node.host.clone(), disks };
        map.add_host(&node.zone, &node.rack, host).map_err(map_error)?;
    }
    node.registered_ms = now;
    store_map(&map, w);
    w.put(keys::datanode(node.node_id), encode(&node));
    Ok(Outcome::Done(Done {}))
}

/// The disks an operator's command names: one disk, or every disk of `node`.
fn named_disks(map: &ClusterMap, disk: u32, node: u64) -> Result<Vec<DiskId>, MetaError> {
    match (disk, node) {
        (0, 0) => Err(invalid("name a disk or a node")),
        (d, 0) => map.disk(DiskId(d)).map(|_| vec![DiskId(d)]).ok_or_else(|| invalid(format!("no disk {d}"))),
        (0, n) => map.host_disks(NodeId(n)).map_err(map_error),
        _ => Err(invalid("name a disk or a node, not both")),
    }
}

pub(crate) fn mark_out(st: &MetaState, c: &MarkOut, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut map = st.cluster_map()?.ok_or_else(|| invalid("no cluster map yet"))?;
    for d in named_disks(&map, c.disk, c.node)? {
        map.mark_out(d, c.out).map_err(map_error)?;
    }
    store_map(&map, w);
    Ok(Outcome::Done(Done {}))
}

pub(crate) fn reweight(st: &MetaState, c: &Reweight, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut map = st.cluster_map()?.ok_or_else(|| invalid("no cluster map yet"))?;
    map.reweight(DiskId(c.disk), c.weight).map_err(map_error)?;
    store_map(&map, w);
    Ok(Outcome::Done(Done {}))
}

pub(crate) fn remove_disks(st: &MetaState, c: &RemoveDisks, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut map = st.cluster_map()?.ok_or_else(|| invalid("no cluster map yet"))?;
    let disks = named_disks(&map, c.disk, c.node)?;
    for d in &disks {
        let held = st.disk_shards_after(d.get(), &[], 1)?;
        if !held.is_empty() {
            return Err(invalid(format!(
                "disk {d} still holds shards that records place there; mark it out and wait for the \
                 rebalance to empty it before removing it"
            )));
        }
    }
    if c.node != 0 {
        map.remove_host(NodeId(c.node)).map_err(map_error)?;
        w.delete(keys::datanode(c.node));
    } else {
        for d in &disks {
            map.remove_disk(*d).map_err(map_error)?;
        }
    }
    for d in &disks {
        w.delete(keys::incarnation(d.get()));
    }
    store_map(&map, w);
    Ok(Outcome::Done(Done {}))
}

pub(crate) fn set_disk_state(st: &MetaState, c: &SetDiskState, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut map = st.cluster_map()?.ok_or_else(|| invalid("no cluster map yet"))?;
    map.set_disk_state(DiskId(c.disk), DiskState { up: c.up, is_in: c.is_in }).map_err(map_error)?;
    store_map(&map, w);
    Ok(Outcome::Done(Done {}))
}

pub(crate) fn set_disk_full(st: &MetaState, c: &SetDiskFull, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut map = st.cluster_map()?.ok_or_else(|| invalid("no cluster map yet"))?;
    map.set_disk_full(DiskId(c.disk), c.full).map_err(map_error)?;
    store_map(&map, w);
    Ok(Outcome::Done(Done {}))
}

fn valid_access_key_id(id: &str) -> bool {
    (3..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub(crate) fn create_access_key(
    st: &MetaState,
    now: u64,
    c: &CreateAccessKey,
    w: &mut Writes,
) -> Result<Outcome, MetaError> {
    let mut key = c.key.clone().ok_or_else(|| invalid("no key given"))?;
    if !valid_access_key_id(&key.access_key_id) {
        return Err(invalid("an access key id is 3 to 128 letters and digits"));
    }
    if key.secret_key.len() < 8 || key.secret_key.len() > 128 {
        return Err(invalid("a secret key is 8 to 128 characters"));
    }
    if st.access_key(&key.access_key_id)?.is_some() {
        return Err(invalid("access key id already exists"));
    }
    key.created_ms = now;
    if key.root {
        // One root key: a new one revokes the one before (a rotated
        // TESSERA_ROOT_ACCESS_KEY leaves no old key behind).
        let raw = st.db().get_pinned_cf(crate::db::cf(st.db(), crate::db::CF_SM)?, keys::ROOT_KEY)?;
        let before = raw.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        if !before.is_empty() && before != key.access_key_id && st.access_key(&before)?.is_some_and(|k| k.root) {
            w.delete(keys::access_key(&before));
        }
        w.put(keys::ROOT_KEY.to_vec(), key.access_key_id.as_bytes().to_vec());
    }
    w.put(keys::access_key(&key.access_key_id), encode(&key));
    Ok(Outcome::Done(Done {}))
}

pub(crate) fn put_policy(st: &MetaState, now: u64, c: &PutPolicy, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut p = c.policy.clone().ok_or_else(|| invalid("no policy given"))?;
    let name_ok = (1..=128).contains(&p.name.len())
        && p.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if !name_ok {
        return Err(invalid("a policy name is 1 to 128 letters, digits and +=,.@_-"));
    }
    if p.document.is_empty() || p.document.len() > 20 * 1024 {
        return Err(invalid("a policy document is 1 byte to 20 KiB"));
    }
    p.created_ms = st.policy(&p.name)?.map_or(now, |old| old.created_ms);
    w.put(keys::policy(&p.name), encode(&p));
    Ok(Outcome::Done(Done {}))
}

pub(crate) fn delete_policy(st: &MetaState, c: &DeletePolicy, w: &mut Writes) -> Result<Outcome, MetaError> {
    st.policy(&c.name)?.ok_or_else(|| invalid("no such policy"))?;
    w.delete(keys::policy(&c.name));
    Ok(Outcome::Done(Done {}))
}

pub(crate) fn update_access_key(st: &MetaState, c: &UpdateAccessKey, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut key = st.access_key(&c.access_key_id)?.ok_or(MetaError::NoSuchAccessKey)?;
    if key.root && (c.disabled || c.expires_ms != 0) {
        return Err(invalid("the root key cannot be disabled or expire"));
    }
    key.policies = c.policies.clone();
    key.disabled = c.disabled;
    key.expires_ms = c.expires_ms;
    w.put(keys::access_key(&key.access_key_id), encode(&key));
    Ok(Outcome::Done(Done {}))
}

pub(crate) fn delete_access_key(st: &MetaState, c: &DeleteAccessKey, w: &mut Writes) -> Result<Outcome, MetaError> {
    st.access_key(&c.access_key_id)?.ok_or(MetaError::NoSuchAccessKey)?;
    w.delete(keys::access_key(&c.access_key_id));
    Ok(Outcome::Done(Done {}))
}

pub(crate) fn report_damage(now: u64, c: &ReportDamage, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut r = c.report.clone().ok_or_else(|| invalid("no report given"))?;
    if r.data_id.len() != 16 {
        return Err(invalid("a data id is 16 bytes"));
    }
    let shard = u16::try_from(r.shard).map_err(|_| invalid("shard index out of range"))?;
    r.reported_ms = now;
    w.put(keys::damage(&r.data_id, r.part, shard, r.disk), encode(&r));
    Ok(Outcome::Done(Done {}))
}

pub(crate) fn clear_damage(c: &ClearDamage, w: &mut Writes) -> Result<Outcome, MetaError> {
    let shard = u16::try_from(c.shard).map_err(|_| invalid("shard index out of range"))?;
    w.delete(keys::damage(&c.data_id, c.part, shard, c.disk));
    Ok(Outcome::Done(Done {}))
}

impl MetaState {
    /// Damaged shards reported by datanodes, oldest data ids first; only
    /// `disk`'s when given.
    pub fn damage_reports(&self, max: usize, disk: Option<u32>) -> Result<Vec<DamageReport>, MetaError> {
        let mut out = Vec::new();
        for (_, v) in self.scan(&[keys::DAMAGE])? {
            let r: DamageReport = crate::record::decode(&v)?;
            if disk.is_none_or(|d| d == r.disk) {
                out.push(r);
                if out.len() == max {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Whether some record (an object, or a part of an upload in progress)
    /// references shards of each data id on `disk`.
    pub fn shards_referenced(&self, disk: u32, data_ids: &[Vec<u8>]) -> Result<Vec<bool>, MetaError> {
        let cf = crate::db::cf(self.db(), crate::db::CF_SM)?;
        data_ids.iter().map(|id| Ok(self.db().get_pinned_cf(cf, keys::disk_shard(disk, id))?.is_some())).collect()
    }

    /// The disk index of `disk`: every data id it should hold shards of,
    /// in id order.
    pub fn disk_shards(&self, disk: u32) -> Result<Vec<(Vec<u8>, DiskShard)>, MetaError> {
        let prefix = keys::disk_shards_prefix(disk);
        self.scan(&prefix)?.iter().map(|(k, v)| Ok((k[prefix.len()..].to_vec(), crate::record::decode(v)?))).collect()
    }

    /// Up to `max` entries of `disk`'s index after data id `after` (empty:
    /// from the start), in data id order.
    pub fn disk_shards_after(
        &self,
        disk: u32,
        after: &[u8],
        max: usize,
    ) -> Result<Vec<(Vec<u8>, DiskShard)>, MetaError> {
        let prefix = keys::disk_shards_prefix(disk);
        let mut start = keys::disk_shard(disk, after);
        if !after.is_empty() {
            start.push(0);
        }
        let cf = crate::db::cf(self.db(), crate::db::CF_SM)?;
        let mut out = Vec::new();
        for item in self.db().iterator_cf(cf, rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) || out.len() == max {
                break;
            }
            out.push((k[prefix.len()..].to_vec(), crate::record::decode(&v)?));
        }
        Ok(out)
    }

    /// The operator's worker rates (all 0 when never set).
    pub fn worker_rates(&self) -> Result<tessera_rpc::proto::meta::SetWorkerRates, MetaError> {
        Ok(self.get(keys::WORKER_RATES)?.unwrap_or_default())
    }

    /// The cluster's id (empty until the first datanode registered).
    pub fn cluster_id(&self) -> Result<String, MetaError> {
        let raw = self.db().get_pinned_cf(crate::db::cf(self.db(), crate::db::CF_SM)?, keys::CLUSTER_ID)?;
        Ok(raw.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default())
    }

    /// The cluster map, once a datanode has registered.
    pub fn cluster_map(&self) -> Result<Option<ClusterMap>, MetaError> {
        let raw = self.db().get_pinned_cf(crate::db::cf(self.db(), crate::db::CF_SM)?, keys::CLUSTER_MAP)?;
        raw.map(|b| ClusterMap::from_bytes(&b).map_err(|e| MetaError::Storage(format!("cluster map: {e}")))).transpose()
    }

    /// Every registered datanode, by id.
    pub fn datanodes(&self) -> Result<Vec<DatanodeRecord>, MetaError> {
        self.scan(&[keys::DATANODES])?.iter().map(|(_, v)| crate::record::decode(v)).collect()
    }

    /// An access key with its secret.
    pub fn access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>, MetaError> {
        self.get(&keys::access_key(id))
    }

    /// Every access key, by id, secrets left out.
    pub fn access_keys(&self) -> Result<Vec<AccessKeyRecord>, MetaError> {
        let mut keys: Vec<AccessKeyRecord> =
            self.scan(&[keys::ACCESS_KEYS])?.iter().map(|(_, v)| crate::record::decode(v)).collect::<Result<_, _>>()?;
        for k in &mut keys {
            k.secret_key.clear();
        }
        Ok(keys)
    }

    /// Every named identity policy, by name.
    pub fn policies(&self) -> Result<Vec<tessera_rpc::proto::meta::PolicyRecord>, MetaError> {
        self.scan(&[keys::POLICIES])?.iter().map(|(_, v)| crate::record::decode(v)).collect()
    }

    /// A named identity policy.
    pub fn policy(&self, name: &str) -> Result<Option<tessera_rpc::proto::meta::PolicyRecord>, MetaError> {
        self.get(&keys::policy(name))
    }
}
