//! Which shard positions of one stored body are not where the current map
//! wants them, and where each must go: the plan a rebalancer carries out.
//!
//! A body's record names the disk of each position. After a map change
//! (a disk or host added, marked out, removed, reweighted) or a write that
//! went around `down` disks ([`crate::write_targets`]), those disks differ
//! from CRUSH's answer for the body's PG. Compared by set, like
//! [`crate::diff_maps`]: a disk CRUSH still wants keeps its shard even at
//! another position; only the rest move, each to a wanted disk the body
//! does not use yet. Two positions on one disk (a write around down hosts)
//! count once: the second moves.

use std::collections::HashSet;

use tessera_common::DiskId;

use crate::ClusterMap;

/// One position to move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    /// The shard position.
    pub position: usize,
    /// The disk the record names for it now.
    pub from: DiskId,
    /// Where CRUSH wants it.
    pub to: DiskId,
}

/// The moves that bring `current` (a record's disks, by position) to
/// `target` (CRUSH's answer for its PG): every position whose disk is not
/// wanted, or shares a disk with an earlier position, paired with a wanted
/// disk the body does not use — the one at its own position when that is
/// free, else the first free one. Moves to a disk `usable` refuses (down,
/// full) are left out: they wait for the next plan.
pub fn plan_moves(current: &[DiskId], target: &[DiskId], usable: impl Fn(DiskId) -> bool) -> Vec<Move> {
    if current.len() != target.len() {
        return Vec::new();
    }
    let wanted: HashSet<DiskId> = target.iter().copied().collect();
    let mut kept: HashSet<DiskId> = HashSet::new();
    let mut misplaced = Vec::new();
    for (p, d) in current.iter().enumerate() {
        if !(wanted.contains(d) && kept.insert(*d)) {
            misplaced.push(p);
        }
    }
    let mut free: Vec<DiskId> = Vec::new();
    for d in target {
        if !kept.contains(d) && !free.contains(d) {
            free.push(*d);
        }
    }
    let mut moves = Vec::new();
    let mut rest = Vec::new();
    for p in misplaced {
        match free.iter().position(|d| *d == target[p]) {
            Some(i) => moves.push(Move { position: p, from: current[p], to: free.remove(i) }),
            None => rest.push(p),
        }
    }
    for (p, to) in rest.into_iter().zip(free) {
        moves.push(Move { position: p, from: current[p], to });
    }
    moves.retain(|m| usable(m.to));
    moves.sort_by_key(|m| m.position);
    moves
}

/// Whether placement may store shards on `disk` now: present, up, in, of
/// positive weight and not full ([`crate::Disk::writable`]).
pub fn usable(map: &ClusterMap, disk: DiskId) -> bool {
    map.disk(disk).is_some_and(|d| d.writable())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u32]) -> Vec<DiskId> {
        v.iter().map(|&d| DiskId(d)).collect()
    }

    fn mv(position: usize, from: u32, to: u32) -> Move {
        Move { position, from: DiskId(from), to: DiskId(to) }
    }

    #[test]
    fn a_body_where_crush_wants_it_stays() {
        assert_eq!(plan_moves(&ids(&[1, 2, 3]), &ids(&[1, 2, 3]), |_| true), vec![]);
        // Same set, another order: nothing moves.
        assert_eq!(plan_moves(&ids(&[3, 1, 2]), &ids(&[1, 2, 3]), |_| true), vec![]);
    }

    #[test]
    fn only_unwanted_positions_move_aligned_where_possible() {
        // Disk 2 left; 9 entered at the same position.
        assert_eq!(plan_moves(&ids(&[1, 2, 3]), &ids(&[1, 9, 3]), |_| true), vec![mv(1, 2, 9)]);
        // Two leave; the one at its own position pairs there, the other takes the rest.
        assert_eq!(plan_moves(&ids(&[1, 2, 3, 4]), &ids(&[7, 1, 8, 4]), |_| true), vec![mv(1, 2, 7), mv(2, 3, 8)]);
    }

    #[test]
    fn shared_disks_spread_and_unusable_targets_wait() {
        // A write around two down hosts put positions 1 and 3 on disks already used.
        let current = ids(&[1, 3, 3, 1]);
        let target = ids(&[1, 2, 3, 4]);
        assert_eq!(plan_moves(&current, &target, |_| true), vec![mv(2, 3, 2), mv(3, 1, 4)]);
        // Disk 4 still down: only the move to 2 happens now.
        assert_eq!(plan_moves(&current, &target, |d| d != DiskId(4)), vec![mv(2, 3, 2)]);
        // Width mismatch: no plan.
        assert_eq!(plan_moves(&ids(&[1, 2]), &ids(&[1, 2, 3]), |_| true), vec![]);
    }

    #[test]
    fn the_plan_reaches_the_target_set() {
        // Property over small random cases: after the moves, the body uses
        // each wanted disk exactly once.
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for _ in 0..2000 {
            let width = 1 + next(8) as usize;
            let mut target: Vec<DiskId> = Vec::new();
            while target.len() < width {
                let d = DiskId(next(20) as u32);
                if !target.contains(&d) {
                    target.push(d);
                }
            }
            let current: Vec<DiskId> = (0..width).map(|_| DiskId(next(20) as u32)).collect();
            let mut after = current.clone();
            for m in plan_moves(&current, &target, |_| true) {
                assert_eq!(after[m.position], m.from);
                after[m.position] = m.to;
            }
            let mut a = after.clone();
            let mut t = target.clone();
            a.sort();
            t.sort();
            assert_eq!(a, t, "{current:?} -> {target:?} gave {after:?}");
        }
    }
}
