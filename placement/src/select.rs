//! The placement function: PG → ordered k + m disks (see the crate docs for
//! the four steps). [`Placer`] flattens a [`ClusterMap`] once, so placing a
//! PG costs one draw per failure domain plus a short descent.

use serde::{Deserialize, Serialize};
use tessera_common::{DiskId, PgId};

use crate::ClusterMap;
use crate::hash::{mix64, stable_hash64, straw2_draw};

/// A level of the cluster tree, used as the failure domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A zone (datacenter or availability zone).
    Zone = 0,
    /// A rack.
    Rack = 1,
    /// A host (datanode).
    Host = 2,
    /// A single disk.
    Disk = 3,
}

impl Level {
    const ALL: [Level; 4] = [Level::Zone, Level::Rack, Level::Host, Level::Disk];

    fn below(self) -> Option<Level> {
        Level::ALL.get(self as usize + 1).copied()
    }
}

/// What to place: how many shards, and which level they must not share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementRule {
    /// k + m.
    pub shards: usize,
    /// No two shards of a PG share a domain of this level (when enough exist).
    pub failure_domain: Level,
}

impl Default for PlacementRule {
    fn default() -> Self {
        PlacementRule { shards: 6, failure_domain: Level::Host }
    }
}

/// Where one PG's shards go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Disk of each shard position.
    pub disks: Vec<DiskId>,
    /// The failure-domain level actually used.
    pub level: Level,
    /// True when the rule's level had fewer than k + m domains and a lower
    /// level was used: the cluster is too small for the rule it asks for.
    pub fell_back: bool,
    /// True when `out` disks left too few domains and two positions now
    /// share a domain (the spread is worse than `level` promises).
    pub shared_domain: bool,
}

/// Why a PG cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Fewer usable (`in`, positive weight) disks than shards.
    #[error("need {needed} disks, only {available} usable")]
    NotEnoughDisks {
        /// k + m.
        needed: usize,
        /// Disks that are `in` with a positive weight.
        available: usize,
    },
    /// A rule with no shards.
    #[error("a placement rule needs at least one shard")]
    NoShards,
}

#[derive(Debug)]
struct Node {
    item: u64,
    level: Level,
    weight: f64,
    in_weight: f64,
    children: Vec<u32>,
    /// For disks: the id and whether it is `in`.
    disk: Option<(DiskId, bool)>,
    /// Index of this node's ancestor at each level (itself at its own level).
    anc: [u32; 4],
}

/// A cluster map flattened for fast placement under one rule.
#[derive(Debug)]
pub struct Placer {
    nodes: Vec<Node>,
    rule: PlacementRule,
    level: Level,
    /// Node indexes of the failure domains (positive weight) at `level`.
    domains: Vec<u32>,
    /// Max domains per ancestor, for each level above `level`.
    caps: [usize; 4],
    usable_disks: usize,
}

impl Placer {
    /// Flattens `map` for `rule`, and picks the failure-domain level.
    pub fn new(map: &ClusterMap, rule: PlacementRule) -> Result<Self, PlacementError> {
        if rule.shards == 0 {
            return Err(PlacementError::NoShards);
        }
        let mut nodes: Vec<Node> = Vec::new();
        let push =
            |nodes: &mut Vec<Node>, item: u64, level: Level, anc: [u32; 4], disk: Option<(DiskId, bool, u64)>| {
                let idx = nodes.len() as u32;
                let mut anc = anc;
                anc[level as usize] = idx;
                let (weight, in_weight) = match disk {
                    Some((_, is_in, w)) => (w as f64, if is_in { w as f64 } else { 0.0 }),
                    None => (0.0, 0.0),
                };
                nodes.push(Node {
                    item,
                    level,
                    weight,
                    in_weight,
                    children: Vec::new(),
                    disk: disk.map(|(id, i, _)| (id, i)),
                    anc,
                });
                if level != Level::Zone {
                    let parent = anc[level as usize - 1] as usize;
                    nodes[parent].children.push(idx);
                }
                anc
            };
        for z in &map.zones {
            let za = push(&mut nodes, stable_hash64(format!("zone:{}", z.name).as_bytes()), Level::Zone, [0; 4], None);
            for r in &z.racks {
                let ra = push(
                    &mut nodes,
                    stable_hash64(format!("rack:{}/{}", z.name, r.name).as_bytes()),
                    Level::Rack,
                    za,
                    None,
                );
                for h in &r.hosts {
                    let ha = push(&mut nodes, mix64(h.node.get() ^ 0x686f_7374), Level::Host, ra, None);
                    for d in &h.disks {
                        push(
                            &mut nodes,
                            mix64(u64::from(d.id.get()) ^ 0x6469_736b_0000),
                            Level::Disk,
                            ha,
                            Some((d.id, d.state.is_in, d.weight)),
                        );
                    }
                }
            }
        }
        // Sum weights bottom-up: children always come after their parents.
        for i in (0..nodes.len()).rev() {
            if nodes[i].level != Level::Zone {
                let parent = nodes[i].anc[nodes[i].level as usize - 1] as usize;
                let (w, iw) = (nodes[i].weight, nodes[i].in_weight);
                nodes[parent].weight += w;
                nodes[parent].in_weight += iw;
            }
        }
        let count = |level: Level| nodes.iter().filter(|n| n.level == level && n.weight > 0.0).count();
        let mut level = rule.failure_domain;
        while count(level) < rule.shards {
            match level.below() {
                Some(l) => level = l,
                None => break,
            }
        }
        let domains: Vec<u32> = (0..nodes.len() as u32)
            .filter(|&i| nodes[i as usize].level == level && nodes[i as usize].weight > 0.0)
            .collect();
        let mut caps = [usize::MAX; 4];
        for l in Level::ALL.into_iter().filter(|&l| l < level) {
            caps[l as usize] = rule.shards.div_ceil(count(l).max(1));
        }
        let usable_disks = nodes.iter().filter(|n| n.level == Level::Disk && n.in_weight > 0.0).count();
        Ok(Placer { nodes, rule, level, domains, caps, usable_disks })
    }

    /// The failure-domain level in use (lower than the rule's if it fell back).
    pub fn level(&self) -> Level {
        self.level
    }

    /// Whether the map could not honour the rule's failure-domain level.
    pub fn fell_back(&self) -> bool {
        self.level != self.rule.failure_domain
    }

    fn within_caps(&self, candidate: u32, chosen: &[u32]) -> bool {
        let c = &self.nodes[candidate as usize];
        (0..self.level as usize).all(|l| {
            let same = chosen.iter().filter(|&&o| self.nodes[o as usize].anc[l] == c.anc[l]).count();
            same < self.caps[l]
        })
    }

    /// Descends from `node` to a disk by straw2; `only_in` skips `out` disks.
    fn descend(&self, pg: u32, mut node: u32, only_in: bool) -> Option<u32> {
        loop {
            let n = &self.nodes[node as usize];
            if n.level == Level::Disk {
                return (!only_in || n.in_weight > 0.0).then_some(node);
            }
            let weight = |c: &Node| if only_in { c.in_weight } else { c.weight };
            node = n
                .children
                .iter()
                .copied()
                .filter(|&c| weight(&self.nodes[c as usize]) > 0.0)
                .map(|c| (straw2_draw(pg, self.nodes[c as usize].item, weight(&self.nodes[c as usize])), c))
                .max_by(|a, b| a.0.total_cmp(&b.0))?
                .1;
        }
    }

    /// Places `pg`: the disk of every shard position.
    pub fn place(&self, pg: PgId) -> Result<Placement, PlacementError> {
        let n = self.rule.shards;
        if self.usable_disks < n {
            return Err(PlacementError::NotEnoughDisks { needed: n, available: self.usable_disks });
        }
        let pg = pg.get();
        // 1. rank domains by straw2 draw (states ignored).
        let mut ranked: Vec<(f64, u32)> = self
            .domains
            .iter()
            .map(|&d| (straw2_draw(pg, self.nodes[d as usize].item, self.nodes[d as usize].weight), d))
            .collect();
        ranked.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        // 2. the top n within the spread caps, then without them if short.
        let mut chosen: Vec<u32> = Vec::with_capacity(n);
        for pass in 0..2 {
            for &(_, d) in &ranked {
                if chosen.len() == n {
                    break;
                }
                if !chosen.contains(&d) && (pass == 1 || self.within_caps(d, &chosen)) {
                    chosen.push(d);
                }
            }
        }
        // 3. descend each domain to a disk.
        let mut disks: Vec<u32> = chosen.iter().map(|&d| self.descend(pg, d, false).unwrap_or(d)).collect();
        // 4. refill positions whose disk is out, from the next-ranked unused domains.
        let mut used = chosen.clone();
        let mut shared_domain = false;
        for p in 0..n {
            let is_in = self.nodes[disks[p] as usize].disk.is_some_and(|(_, i)| i);
            if is_in {
                continue;
            }
            let current: Vec<u32> =
                (0..n).filter(|&q| q != p).map(|q| self.nodes[disks[q] as usize].anc[self.level as usize]).collect();
            let mut replacement = None;
            'passes: for pass in 0..2 {
                for &(_, d) in &ranked {
                    if used.contains(&d) || self.nodes[d as usize].in_weight <= 0.0 {
                        continue;
                    }
                    if pass == 1 || self.within_caps(d, &current) {
                        used.push(d);
                        replacement = self.descend(pg, d, true);
                        break 'passes;
                    }
                }
            }
            let replacement = match replacement {
                Some(r) => r,
                None => {
                    shared_domain = true;
                    self.least_shared_disk(pg, &disks, &current)
                        .ok_or(PlacementError::NotEnoughDisks { needed: n, available: self.usable_disks })?
                }
            };
            disks[p] = replacement;
        }
        let disks = disks.iter().filter_map(|&d| self.nodes[d as usize].disk.map(|(id, _)| id)).collect::<Vec<_>>();
        if disks.len() != n {
            return Err(PlacementError::NotEnoughDisks { needed: n, available: self.usable_disks });
        }
        Ok(Placement { disks, level: self.level, fell_back: self.fell_back(), shared_domain })
    }

    /// When every domain is in use: an `in` disk not yet used, in the domain
    /// holding the fewest positions, best straw2 draw first.
    fn least_shared_disk(&self, pg: u32, disks: &[u32], current_domains: &[u32]) -> Option<u32> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, nd)| nd.level == Level::Disk && nd.in_weight > 0.0 && !disks.contains(&(*i as u32)))
            .map(|(i, nd)| {
                let load = current_domains.iter().filter(|&&d| d == nd.anc[self.level as usize]).count();
                (load, -straw2_draw(pg, nd.item ^ 0x7368_6172, nd.in_weight), i as u32)
            })
            .min_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
            .map(|(_, _, i)| i)
    }
}
