//! Where a write goes when some of its placement's disks are `down` (or
//! `full`).
//!
//! A `down` disk keeps its CRUSH positions (it may come back within
//! `disk_out_after`), and so does a `full` one (space may be freed), but a
//! write cannot store a shard there. Rather than
//! fail for want of a quorum, each down position of the write moves to an
//! up disk, and the object's record names the disks actually used:
//!
//! 1. an up disk on a host the placement does not use yet (a distinct
//!    failure domain), the best straw2 draw first;
//! 2. else the up disk holding the fewest shards of this write so far,
//!    ties broken by the straw2 draw, so PGs spread their extra shards.
//!
//! Positions on up disks never move. Heal and rebalance restore the CRUSH
//! layout later.

use std::collections::HashMap;

use tessera_common::{DiskId, NodeId, PgId};

use crate::{ClusterMap, straw2_draw};

/// The disks a write of `pg` stores its shards on: `placed` (the CRUSH
/// answer), with every position on a disk that is not up and in moved to an
/// up one as described in the module docs. `None` when no disk is up.
pub fn write_targets(map: &ClusterMap, pg: PgId, placed: &[DiskId]) -> Option<Vec<DiskId>> {
    let mut host_of: HashMap<DiskId, NodeId> = HashMap::new();
    let mut usable: Vec<(DiskId, NodeId, f64)> = Vec::new();
    for (_, _, h, d) in map.disks() {
        host_of.insert(d.id, h.node);
        if d.writable() {
            usable.push((d.id, h.node, straw2_draw(pg.get(), u64::from(d.id.get()), d.weight as f64)));
        }
    }
    let ok: std::collections::HashSet<DiskId> = usable.iter().map(|(d, _, _)| *d).collect();
    let is_usable = |d: DiskId| ok.contains(&d);
    if placed.iter().all(|d| is_usable(*d)) {
        return Some(placed.to_vec());
    }
    if usable.is_empty() {
        return None;
    }
    // Best draw first: a deterministic order per PG.
    usable.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    let mut out = placed.to_vec();
    let mut count: HashMap<DiskId, usize> = HashMap::new();
    let mut hosts: Vec<NodeId> = Vec::new();
    for d in placed.iter().filter(|d| is_usable(**d)) {
        *count.entry(*d).or_default() += 1;
        if let Some(h) = host_of.get(d) {
            hosts.push(*h);
        }
    }
    for slot in out.iter_mut() {
        if is_usable(*slot) {
            continue;
        }
        let fresh = usable.iter().find(|(_, h, _)| !hosts.contains(h));
        let pick = match fresh {
            Some((d, _, _)) => *d,
            None => {
                let least = usable.iter().map(|(d, _, _)| count.get(d).copied().unwrap_or(0)).min().unwrap_or(0);
                // `usable` is in draw order, so the first with the least count wins.
                usable.iter().find(|(d, _, _)| count.get(d).copied().unwrap_or(0) == least).map(|(d, _, _)| *d)?
            }
        };
        *slot = pick;
        *count.entry(pick).or_default() += 1;
        if let Some(h) = host_of.get(&pick) {
            hosts.push(*h);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Disk, DiskState, Host, PlacementRule, Placer};
    use std::collections::HashSet;

    /// `hosts` hosts with `disks` disks each; disk ids 1.., host h's disks
    /// consecutive.
    fn map(hosts: u32, disks: u32) -> ClusterMap {
        let mut m = ClusterMap::new(256).unwrap();
        for h in 0..hosts {
            let host = Host {
                node: NodeId(u64::from(h) + 1),
                name: format!("h{h}"),
                disks: (0..disks).map(|d| Disk::new(DiskId(h * disks + d + 1), 100)).collect(),
            };
            m.add_host("z", "r", host).unwrap();
        }
        m
    }

    fn host_of(disk: DiskId, disks: u32) -> u32 {
        (disk.get() - 1) / disks
    }

    #[test]
    fn a_healthy_placement_is_unchanged() {
        let m = map(6, 1);
        let placed: Vec<DiskId> = (1..=6).map(DiskId).collect();
        assert_eq!(write_targets(&m, PgId(3), &placed), Some(placed));
    }

    #[test]
    fn down_positions_move_to_up_disks_and_nothing_else_moves() {
        for (hosts, disks) in [(6, 1), (6, 2), (8, 1), (3, 2)] {
            let mut m = map(hosts, disks);
            let placer = Placer::new(&m, PlacementRule { shards: 6, failure_domain: crate::Level::Host }).unwrap();
            // Two hosts down.
            for d in 1..=2 * disks {
                m.set_disk_state(DiskId(d), DiskState { up: false, is_in: true }).unwrap();
            }
            let mut per_disk_max = 0;
            for pg in 0..256 {
                let placed = placer.place(PgId(pg)).unwrap().disks;
                let got = write_targets(&m, PgId(pg), &placed).unwrap();
                assert_eq!(got.len(), placed.len());
                for (p, g) in placed.iter().zip(&got) {
                    let down = host_of(*p, disks) < 2;
                    assert!(if down { p != g } else { p == g }, "pg {pg}: {placed:?} -> {got:?}");
                    assert!(host_of(*g, disks) >= 2, "pg {pg}: a shard went to a down host");
                }
                // Spread: with spare hosts, every shard on its own host;
                // else no disk takes more than its share.
                let used_hosts: HashSet<u32> = got.iter().map(|d| host_of(*d, disks)).collect();
                let up_hosts = hosts - 2;
                assert_eq!(used_hosts.len(), (up_hosts as usize).min(6), "pg {pg}: {got:?}");
                let mut count: HashMap<DiskId, usize> = HashMap::new();
                for d in &got {
                    *count.entry(*d).or_default() += 1;
                }
                per_disk_max = per_disk_max.max(*count.values().max().unwrap());
                assert_eq!(write_targets(&m, PgId(pg), &placed), Some(got), "deterministic");
            }
            let up_disks = ((hosts - 2) * disks) as usize;
            assert!(per_disk_max <= 6usize.div_ceil(up_disks).max(1) + 1, "{hosts}x{disks}: {per_disk_max}");
        }
    }

    #[test]
    fn out_disks_are_avoided_too_and_no_up_disk_is_none() {
        let mut m = map(2, 1);
        m.set_disk_state(DiskId(1), DiskState { up: true, is_in: false }).unwrap();
        assert_eq!(write_targets(&m, PgId(0), &[DiskId(1), DiskId(2)]), Some(vec![DiskId(2), DiskId(2)]));
        m.set_disk_state(DiskId(2), DiskState { up: false, is_in: true }).unwrap();
        assert_eq!(write_targets(&m, PgId(0), &[DiskId(1), DiskId(2)]), None);
    }

    #[test]
    fn full_disks_are_written_around_like_down_ones() {
        let mut m = map(7, 1);
        let placed: Vec<DiskId> = (1..=6).map(DiskId).collect();
        m.set_disk_full(DiskId(3), true).unwrap();
        let got = write_targets(&m, PgId(5), &placed).unwrap();
        assert_eq!(got, vec![DiskId(1), DiskId(2), DiskId(7), DiskId(4), DiskId(5), DiskId(6)]);
        assert!(!crate::usable(&m, DiskId(3)));
        // Space freed: the CRUSH answer again, and the epoch moved each time.
        let epoch = m.epoch;
        m.set_disk_full(DiskId(3), false).unwrap();
        assert_eq!(m.epoch, epoch + 1);
        m.set_disk_full(DiskId(3), false).unwrap();
        assert_eq!(m.epoch, epoch + 1, "no change, no new epoch");
        assert_eq!(write_targets(&m, PgId(5), &placed), Some(placed));
    }
}
