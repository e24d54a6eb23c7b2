//! The cluster map: root → zone → rack → host → disk, with weights, disk
//! states and an epoch. Every change goes through a method that bumps the
//! epoch; the metadata service applies those methods through Raft.

use serde::{Deserialize, Serialize};
use tessera_common::{DiskId, NodeId};

/// Version of [`ClusterMap::to_bytes`]; older versions stay decodable.
pub const MAP_FORMAT_VERSION: u16 = 1;

/// Default number of placement groups.
pub const DEFAULT_PG_COUNT: u32 = 1024;

/// Whether a disk answers heartbeats (`up`) and whether placement may use it (`in`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskState {
    /// Heartbeating. A `down` disk keeps its placements (writes skip it).
    pub up: bool,
    /// Placed on. An `out` disk's positions are refilled elsewhere.
    pub is_in: bool,
}

impl DiskState {
    /// Up and in: the normal state.
    pub const HEALTHY: DiskState = DiskState { up: true, is_in: true };
}

/// One disk: a placement target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    /// Cluster-unique id.
    pub id: DiskId,
    /// Relative capacity (conventionally GiB). 0 = never placed on.
    pub weight: u64,
    /// Up/down, in/out.
    pub state: DiskState,
    /// An operator marked the disk out (a drain): it stays out whatever
    /// liveness or a registration says, until marked in again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub marked_out: bool,
    /// An operator set the weight: registrations no longer refresh it from
    /// the disk's capacity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub weight_fixed: bool,
    /// Its datanode reports it full (free space below its reserve): it
    /// keeps its CRUSH positions and serves reads, but writes, heal and
    /// rebalance store nothing new on it until space is freed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
}

impl Disk {
    /// A healthy disk of `weight` that no operator has touched.
    pub fn new(id: DiskId, weight: u64) -> Self {
        Disk { id, weight, state: DiskState::HEALTHY, marked_out: false, weight_fixed: false, full: false }
    }

    /// Whether a shard may be stored here now: up, in, of positive weight
    /// and not full.
    pub fn writable(&self) -> bool {
        self.state.up && self.state.is_in && self.weight > 0 && !self.full
    }
}

/// A datanode and its disks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// The datanode's id.
    pub node: NodeId,
    /// Human-readable name (hostname).
    pub name: String,
    /// Its disks.
    pub disks: Vec<Disk>,
}

/// A rack of hosts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rack {
    /// Name, unique within its zone.
    pub name: String,
    /// Its hosts.
    pub hosts: Vec<Host>,
}

/// A zone (datacenter, availability zone) of racks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    /// Name, unique in the map.
    pub name: String,
    /// Its racks.
    pub racks: Vec<Rack>,
}

/// The whole cluster as placement sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterMap {
    /// Bumped by every change.
    pub epoch: u64,
    /// Number of placement groups; fixed when the cluster is created.
    pub pg_count: u32,
    /// The zones.
    pub zones: Vec<Zone>,
}

/// A change the map refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The disk id is already in the map.
    #[error("disk {0} already exists")]
    DuplicateDisk(DiskId),
    /// The node id is already in the map under another place.
    #[error("node {0} already exists")]
    DuplicateNode(NodeId),
    /// No such disk.
    #[error("no disk {0}")]
    NoSuchDisk(DiskId),
    /// No such host.
    #[error("no node {0}")]
    NoSuchNode(NodeId),
    /// Encoded bytes are not a map of a known version.
    #[error("cannot decode cluster map: {0}")]
    Decode(String),
    /// pg_count must be positive.
    #[error("pg_count must be at least 1")]
    NoPgs,
}

impl ClusterMap {
    /// An empty map at epoch 0.
    pub fn new(pg_count: u32) -> Result<Self, MapError> {
        if pg_count == 0 {
            return Err(MapError::NoPgs);
        }
        Ok(ClusterMap { epoch: 0, pg_count, zones: Vec::new() })
    }

    /// Every disk with its zone, rack and host.
    pub fn disks(&self) -> impl Iterator<Item = (&Zone, &Rack, &Host, &Disk)> {
        self.zones.iter().flat_map(|z| {
            z.racks
                .iter()
                .flat_map(move |r| r.hosts.iter().flat_map(move |h| h.disks.iter().map(move |d| (z, r, h, d))))
        })
    }

    /// Every host.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.zones.iter().flat_map(|z| z.racks.iter().flat_map(|r| r.hosts.iter()))
    }

    /// The disk `id`, if present.
    pub fn disk(&self, id: DiskId) -> Option<&Disk> {
        self.disks().map(|(_, _, _, d)| d).find(|d| d.id == id)
    }

    fn disk_mut(&mut self, id: DiskId) -> Result<&mut Disk, MapError> {
        self.zones
            .iter_mut()
            .flat_map(|z| z.racks.iter_mut().flat_map(|r| r.hosts.iter_mut().flat_map(|h| h.disks.iter_mut())))
            .find(|d| d.id == id)
            .ok_or(MapError::NoSuchDisk(id))
    }

    /// Adds a host (with its disks) under zone/rack, creating them as needed.
    pub fn add_host(&mut self, zone: &str, rack: &str, host: Host) -> Result<(), MapError> {
        if self.hosts().any(|h| h.node == host.node) {
            return Err(MapError::DuplicateNode(host.node));
        }
        for d in &host.disks {
            if self.disk(d.id).is_some() || host.disks.iter().filter(|o| o.id == d.id).count() > 1 {
                return Err(MapError::DuplicateDisk(d.id));
            }
        }
        let zi = match self.zones.iter().position(|z| z.name == zone) {
            Some(i) => i,
            None => {
                self.zones.push(Zone { name: zone.to_owned(), racks: Vec::new() });
                self.zones.len() - 1
            }
        };
        let z = &mut self.zones[zi];
        let ri = match z.racks.iter().position(|r| r.name == rack) {
            Some(i) => i,
            None => {
                z.racks.push(Rack { name: rack.to_owned(), hosts: Vec::new() });
                z.racks.len() - 1
            }
        };
        z.racks[ri].hosts.push(host);
        self.epoch += 1;
        Ok(())
    }

    /// Adds a disk to an existing host.
    pub fn add_disk(&mut self, node: NodeId, disk: Disk) -> Result<(), MapError> {
        if self.disk(disk.id).is_some() {
            return Err(MapError::DuplicateDisk(disk.id));
        }
        let host = self
            .zones
            .iter_mut()
            .flat_map(|z| z.racks.iter_mut().flat_map(|r| r.hosts.iter_mut()))
            .find(|h| h.node == node)
            .ok_or(MapError::NoSuchNode(node))?;
        host.disks.push(disk);
        self.epoch += 1;
        Ok(())
    }

    /// Removes a disk from the map entirely.
    pub fn remove_disk(&mut self, id: DiskId) -> Result<(), MapError> {
        self.disk(id).ok_or(MapError::NoSuchDisk(id))?;
        for z in &mut self.zones {
            for r in &mut z.racks {
                for h in &mut r.hosts {
                    h.disks.retain(|d| d.id != id);
                }
            }
        }
        self.epoch += 1;
        Ok(())
    }

    /// Removes a host and its disks; empty racks and zones go too.
    pub fn remove_host(&mut self, node: NodeId) -> Result<(), MapError> {
        if !self.hosts().any(|h| h.node == node) {
            return Err(MapError::NoSuchNode(node));
        }
        for z in &mut self.zones {
            for r in &mut z.racks {
                r.hosts.retain(|h| h.node != node);
            }
            z.racks.retain(|r| !r.hosts.is_empty());
        }
        self.zones.retain(|z| !z.racks.is_empty());
        self.epoch += 1;
        Ok(())
    }

    /// Sets a disk's state; bumps the epoch only if it changed. A disk an
    /// operator marked out stays out.
    pub fn set_disk_state(&mut self, id: DiskId, mut state: DiskState) -> Result<(), MapError> {
        let d = self.disk_mut(id)?;
        state.is_in &= !d.marked_out;
        if d.state != state {
            d.state = state;
            self.epoch += 1;
        }
        Ok(())
    }

    /// Sets a disk's weight from its capacity (a registration); bumps the
    /// epoch only if it changed. A weight an operator set is kept.
    pub fn set_disk_weight(&mut self, id: DiskId, weight: u64) -> Result<(), MapError> {
        let d = self.disk_mut(id)?;
        if d.weight != weight && !d.weight_fixed {
            d.weight = weight;
            self.epoch += 1;
        }
        Ok(())
    }

    /// Marks a disk full or not (its datanode's report); bumps the epoch
    /// only if it changed.
    pub fn set_disk_full(&mut self, id: DiskId, full: bool) -> Result<(), MapError> {
        let d = self.disk_mut(id)?;
        if d.full != full {
            d.full = full;
            self.epoch += 1;
        }
        Ok(())
    }

    /// An operator's weight: set, and kept from then on.
    pub fn reweight(&mut self, id: DiskId, weight: u64) -> Result<(), MapError> {
        let d = self.disk_mut(id)?;
        if d.weight != weight || !d.weight_fixed {
            d.weight = weight;
            d.weight_fixed = true;
            self.epoch += 1;
        }
        Ok(())
    }

    /// An operator marks a disk out (a drain) or back in. Marked in, it is
    /// `in` (liveness takes a disk silent past `disk_out_after` out again).
    pub fn mark_out(&mut self, id: DiskId, out: bool) -> Result<(), MapError> {
        let d = self.disk_mut(id)?;
        let state = DiskState { up: d.state.up, is_in: !out };
        if d.marked_out != out || d.state != state {
            d.marked_out = out;
            d.state = state;
            self.epoch += 1;
        }
        Ok(())
    }

    /// The disks of host `node`.
    pub fn host_disks(&self, node: NodeId) -> Result<Vec<DiskId>, MapError> {
        let h = self.hosts().find(|h| h.node == node).ok_or(MapError::NoSuchNode(node))?;
        Ok(h.disks.iter().map(|d| d.id).collect())
    }

    /// The versioned encoding: 2 bytes of format version, then JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAP_FORMAT_VERSION.to_le_bytes().to_vec();
        // Serializing plain structs of strings and numbers to a Vec cannot fail.
        serde_json::to_writer(&mut out, self).unwrap_or_else(|e| unreachable!("map serialization: {e}"));
        out
    }

    /// Decodes [`ClusterMap::to_bytes`] output of any known version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MapError> {
        if bytes.len() < 2 {
            return Err(MapError::Decode("too short".into()));
        }
        match u16::from_le_bytes([bytes[0], bytes[1]]) {
            1 => {
                let map: ClusterMap =
                    serde_json::from_slice(&bytes[2..]).map_err(|e| MapError::Decode(e.to_string()))?;
                if map.pg_count == 0 {
                    return Err(MapError::NoPgs);
                }
                Ok(map)
            }
            v => Err(MapError::Decode(format!("unknown format version {v}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(node: u64, disks: &[u32]) -> Host {
        Host {
            node: NodeId(node),
            name: format!("h{node}"),
            disks: disks.iter().map(|&d| Disk::new(DiskId(d), 100)).collect(),
        }
    }

    #[test]
    fn changes_bump_the_epoch_and_refuse_duplicates() {
        let mut m = ClusterMap::new(64).unwrap();
        m.add_host("z1", "r1", host(1, &[1, 2])).unwrap();
        m.add_host("z1", "r2", host(2, &[3])).unwrap();
        assert_eq!(m.epoch, 2);
        assert_eq!(m.add_host("z2", "r1", host(1, &[9])), Err(MapError::DuplicateNode(NodeId(1))));
        assert_eq!(m.add_host("z2", "r1", host(3, &[3])), Err(MapError::DuplicateDisk(DiskId(3))));
        assert_eq!(m.add_host("z2", "r1", host(3, &[7, 7])), Err(MapError::DuplicateDisk(DiskId(7))));
        m.add_disk(NodeId(2), Disk::new(DiskId(4), 50)).unwrap();
        assert_eq!(m.add_disk(NodeId(9), Disk::new(DiskId(5), 1)), Err(MapError::NoSuchNode(NodeId(9))));
        assert_eq!(m.epoch, 3);
        m.set_disk_state(DiskId(4), DiskState { up: false, is_in: true }).unwrap();
        m.set_disk_state(DiskId(4), DiskState { up: false, is_in: true }).unwrap();
        assert_eq!(m.epoch, 4, "no-op changes do not bump");
        m.set_disk_weight(DiskId(1), 200).unwrap();
        m.remove_disk(DiskId(4)).unwrap();
        assert_eq!(m.remove_disk(DiskId(4)), Err(MapError::NoSuchDisk(DiskId(4))));
        m.remove_host(NodeId(2)).unwrap();
        assert_eq!(m.zones[0].racks.len(), 1, "empty rack removed");
        assert_eq!(m.epoch, 7);
        assert_eq!(m.disks().count(), 2);
    }

    #[test]
    fn operator_marks_and_weights_outlast_liveness_and_registrations() {
        let mut m = ClusterMap::new(64).unwrap();
        m.add_host("z", "r", host(1, &[1, 2])).unwrap();
        let before = m.to_bytes();
        assert!(!String::from_utf8_lossy(&before).contains("marked_out"), "untouched disks encode as before");
        m.mark_out(DiskId(1), true).unwrap();
        assert_eq!(m.disk(DiskId(1)).unwrap().state, DiskState { up: true, is_in: false });
        // Liveness or a registration saying healthy keeps it out.
        m.set_disk_state(DiskId(1), DiskState::HEALTHY).unwrap();
        assert_eq!(m.disk(DiskId(1)).unwrap().state, DiskState { up: true, is_in: false });
        m.set_disk_state(DiskId(1), DiskState { up: false, is_in: true }).unwrap();
        assert_eq!(m.disk(DiskId(1)).unwrap().state, DiskState { up: false, is_in: false });
        // Marked in while down: in (placement keeps it; liveness decides).
        m.mark_out(DiskId(1), false).unwrap();
        assert_eq!(m.disk(DiskId(1)).unwrap().state, DiskState { up: false, is_in: true });
        m.reweight(DiskId(2), 7).unwrap();
        m.set_disk_weight(DiskId(2), 500).unwrap();
        assert_eq!(m.disk(DiskId(2)).unwrap().weight, 7, "a registration keeps the operator's weight");
        assert_eq!(m.host_disks(NodeId(1)).unwrap(), vec![DiskId(1), DiskId(2)]);
        let decoded = ClusterMap::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(decoded, m);
        assert!(ClusterMap::from_bytes(&before).unwrap().disks().all(|(_, _, _, d)| !d.marked_out));
    }

    #[test]
    fn encoding_round_trips_and_checks_version() {
        let mut m = ClusterMap::new(256).unwrap();
        m.add_host("a", "r", host(1, &[1])).unwrap();
        let b = m.to_bytes();
        assert_eq!(&b[..2], &[1, 0]);
        assert_eq!(ClusterMap::from_bytes(&b).unwrap(), m);
        let mut future = b.clone();
        future[0] = 9;
        assert!(matches!(ClusterMap::from_bytes(&future), Err(MapError::Decode(_))));
        assert!(ClusterMap::from_bytes(&[1]).is_err());
        assert!(ClusterMap::from_bytes(&[1, 0, b'{']).is_err());
        assert!(ClusterMap::from_bytes(b"\x01\x00{\"epoch\":1,\"pg_count\":0,\"zones\":[]}").is_err());
        assert!(ClusterMap::from_bytes(b"\x01\x00{\"epoch\":1,\"pg_count\":4,\"zones\":[],\"x\":1}").is_err());
    }
}
