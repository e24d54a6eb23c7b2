//! Which shards a disk lately read around the page cache: a large shard
//! read a second time is read through the cache, so that it is cached for
//! the reads after (admission on the second touch, as in 2Q caches: a
//! stream read once does not push hot shards out of the cache; one read
//! again and again is served from memory).

use std::collections::{HashSet, VecDeque};

use crate::ShardKey;

/// Shards remembered per disk (about 56 bytes each).
pub(crate) const REMEMBERED: usize = 4096;

/// The last [`REMEMBERED`] shards read around the page cache, oldest first.
#[derive(Debug, Default)]
pub(crate) struct RecentShards {
    order: VecDeque<ShardKey>,
    known: HashSet<ShardKey>,
}

impl RecentShards {
    /// Whether `key` was read around the cache lately; remembers it if not
    /// (forgetting the oldest beyond [`REMEMBERED`]).
    pub(crate) fn seen_or_remember(&mut self, key: ShardKey) -> bool {
        if self.known.contains(&key) {
            return true;
        }
        if self.order.len() == REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.known.remove(&old);
        }
        self.order.push_back(key);
        self.known.insert(key);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_common::DataId;

    fn key(i: u32) -> ShardKey {
        ShardKey { data_id: DataId::from_bytes([7; 16]), part: i, shard: 0 }
    }

    #[test]
    fn a_shard_is_seen_on_its_second_read_until_it_is_forgotten() {
        let mut r = RecentShards::default();
        assert!(!r.seen_or_remember(key(0)));
        assert!(r.seen_or_remember(key(0)));
        assert!(r.seen_or_remember(key(0)), "still seen: reads do not forget");
        for i in 1..REMEMBERED as u32 {
            assert!(!r.seen_or_remember(key(i)));
        }
        assert!(r.seen_or_remember(key(0)), "the oldest is still remembered at the limit");
        assert!(!r.seen_or_remember(key(REMEMBERED as u32)));
        assert!(!r.seen_or_remember(key(0)), "forgotten once the limit is passed");
        assert_eq!(r.order.len(), REMEMBERED);
        assert_eq!(r.known.len(), REMEMBERED);
    }
}
