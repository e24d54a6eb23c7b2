//! Which shard placements move between two maps: the input of rebalancing.
//!
//! The diff is by set: a disk that serves a PG in both maps keeps its shard,
//! even if the new map lists it at another position. Object records name the
//! disk of each of their shard positions, so a rebalancer moves the shard at
//! a leaving disk to an entering one and rewrites that one record entry;
//! nothing else needs to move.

use tessera_common::{DiskId, PgId};

use crate::{ClusterMap, PlacementError, PlacementRule, Placer};

/// One shard position of one PG that must move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardMove {
    /// The PG.
    pub pg: PgId,
    /// The shard position in the old placement.
    pub position: usize,
    /// Where the shard is now.
    pub from: DiskId,
    /// Where it must go.
    pub to: DiskId,
}

/// All moves between two maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapDiff {
    /// The moves, by PG then position.
    pub moves: Vec<ShardMove>,
    /// Shard placements compared (pg_count × shards).
    pub placements: u64,
}

/// Compares the placement of every PG under `old` and `new` (which must have
/// the same pg_count; the smaller is used otherwise).
pub fn diff_maps(old: &ClusterMap, new: &ClusterMap, rule: PlacementRule) -> Result<MapDiff, PlacementError> {
    let (a, b) = (Placer::new(old, rule)?, Placer::new(new, rule)?);
    let mut diff = MapDiff::default();
    for pg in 0..old.pg_count.min(new.pg_count) {
        let pg = PgId(pg);
        let (before, after) = (a.place(pg)?.disks, b.place(pg)?.disks);
        diff.placements += before.len() as u64;
        let leaving: Vec<usize> = (0..before.len()).filter(|&p| !after.contains(&before[p])).collect();
        let mut entering: Vec<usize> = (0..after.len()).filter(|&p| !before.contains(&after[p])).collect();
        let mut unpaired = Vec::new();
        let first = diff.moves.len();
        // Keep positions aligned where the new map has the newcomer at the same place.
        for p in leaving {
            if let Some(i) = entering.iter().position(|&q| q == p) {
                diff.moves.push(ShardMove { pg, position: p, from: before[p], to: after[entering.remove(i)] });
            } else {
                unpaired.push(p);
            }
        }
        for (p, q) in unpaired.into_iter().zip(entering) {
            diff.moves.push(ShardMove { pg, position: p, from: before[p], to: after[q] });
        }
        diff.moves[first..].sort_by_key(|m| m.position);
    }
    Ok(diff)
}
