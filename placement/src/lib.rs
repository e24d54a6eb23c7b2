//! Placement for Tessera: the cluster map and a CRUSH-like function from a
//! placement group to an ordered list of k + m disks. Pure: no I/O, no clock.
//!
//! Owns: [`ClusterMap`] (root → zone → rack → host → disk, weights, states,
//! epoch, a versioned encoding), [`pg_of`], the straw2 [`Placer`], and
//! [`diff_maps`] (which shard placements move between two maps). Depends only
//! on `tessera-common`.
//!
//! ```text
//!  (bucket, key) ──hash──► pg ──Placer::place──► [disk; k+m]
//!                                   │
//!   1. rank the failure domains (hosts by default) by straw2 draw ln(u)/w
//!   2. take the top k+m, at most ⌈(k+m)/#ancestors⌉ per zone and per rack
//!   3. descend each chosen domain to a disk by straw2
//!   4. a position whose disk is `out` is refilled from the next-ranked
//!      unused domain; every other position keeps its disk
//! ```
//!
//! Steps 1–3 ignore disk states, so marking a disk `out` (or back `in`)
//! moves only the positions on that disk. Adding or removing a domain changes
//! the chosen set by one domain per affected PG: straw2's draws are
//! independent per domain, so the top-(k+m) set admits the newcomer or
//! drops the leaver and nothing else.

mod around;
mod diff;
mod hash;
mod map;
mod moves;
mod select;

pub use around::write_targets;
pub use diff::{MapDiff, ShardMove, diff_maps};
pub use hash::{pg_of, pg_of_part, stable_hash64, straw2_draw};
pub use map::{ClusterMap, DEFAULT_PG_COUNT, Disk, DiskState, Host, MAP_FORMAT_VERSION, MapError, Rack, Zone};
pub use moves::{Move, plan_moves, usable};
pub use select::{Level, Placement, PlacementError, PlacementRule, Placer};
