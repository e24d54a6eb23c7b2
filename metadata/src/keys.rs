//! Key encoding of the state machine's column family. Every key starts with
//! a one-byte table tag; within a table keys sort the way listings need.
//!
//! | table | key | value |
//! |---|---|---|
//! | `b` buckets | `b` name | BucketRecord |
//! | `o` objects | `o` len(bucket) bucket key | ObjectRecord |
//! | `v` versions | `v` len(bucket) bucket esc(key) be64(!version_seq) | ObjectRecord of a noncurrent version (newest first) |
//! | `q` null versions | `q` len(bucket) bucket key | be64 version_seq of the key's noncurrent `null` version |
//! | `u` uploads | `u` len(bucket) bucket esc(key) upload_id | UploadRecord |
//! | `p` parts | `p` upload_id be32(part) | PartRecord |
//! | `g` pg index | `g` be32(pg) len(bucket) bucket key | (empty): the pgs of the current versions only |
//! | `x` (retired) | garbage queue of older versions: never read (the collectors work from the disk index); the leader drops what is left (`DropRetired`) | GcEntry |
//! | `i` disk incarnations | `i` be32(disk) | the incarnation (DISK_ID's second line) last registered |
//! | `s` disk index | `s` be32(disk) data id | DiskShard (the shards of that body the disk should hold) |
//! | `c` cluster map | `cmap` | ClusterMap::to_bytes |
//! | `n` datanodes | `n` be64(node id) | DatanodeRecord |
//! | `k` access keys | `k` access key id | AccessKeyRecord |
//! | `y` identity policies | `y` name | PolicyRecord |
//! | `d` damage | `d` data id be32(part) be16(shard) be32(disk) | DamageReport |
//! | `j` join tokens | `j` token id | JoinTokenRecord (deleted when used) |
//! | `c` cluster CA | `cca` | ClusterCa |
//! | `c` dead letters | `cdead` | be64 count of events given up |
//! | `w` webhook targets | `w` name | NotifyTarget |
//! | `e` event outbox | `e` be64(seq) be16(rule) | NotifyEvent (deleted when delivered) |
//!
//! Bucket names are at most 63 bytes, so one length byte prefixes them and a
//! bucket's keys form one contiguous range (range-friendly, for a later
//! split into multi-Raft ranges). `esc` makes a key order-preserving when
//! something follows it: 0x00 becomes 0x00 0xFF and 0x00 0x00 terminates.

/// Table tags.
pub(crate) const BUCKETS: u8 = b'b';
pub(crate) const OBJECTS: u8 = b'o';
pub(crate) const UPLOADS: u8 = b'u';
pub(crate) const PARTS: u8 = b'p';
pub(crate) const VERSIONS: u8 = b'v';
pub(crate) const NULL_VERSIONS: u8 = b'q';
pub(crate) const PG_INDEX: u8 = b'g';
/// The retired garbage queue of older versions (never read; dropped).
pub(crate) const RETIRED_GC: u8 = b'x';
pub(crate) const DATANODES: u8 = b'n';
pub(crate) const ACCESS_KEYS: u8 = b'k';
pub(crate) const POLICIES: u8 = b'y';
pub(crate) const DAMAGE: u8 = b'd';
pub(crate) const DISK_SHARDS: u8 = b's';
pub(crate) const INCARNATIONS: u8 = b'i';

pub(crate) fn damage(data_id: &[u8], part: u32, shard: u16, disk: u32) -> Vec<u8> {
    let mut k = vec![DAMAGE];
    k.extend_from_slice(data_id);
    k.extend_from_slice(&part.to_be_bytes());
    k.extend_from_slice(&shard.to_be_bytes());
    k.extend_from_slice(&disk.to_be_bytes());
    k
}

/// The one key of the cluster map.
pub(crate) const CLUSTER_MAP: &[u8] = b"cmap";
/// The cluster's id (`c` table too).
pub(crate) const CLUSTER_ID: &[u8] = b"cid";
/// The operator's worker rates (`c` table too): a SetWorkerRates.
pub(crate) const WORKER_RATES: &[u8] = b"crates";
/// The id of the root access key (`c` table too): there is one.
pub(crate) const ROOT_KEY: &[u8] = b"croot";
/// The cluster's CA, certificate and key (`c` table too).
pub(crate) const CLUSTER_CA: &[u8] = b"cca";

/// The count of events given up (`c` table too).
pub(crate) const DEAD_LETTERS: &[u8] = b"cdead";
pub(crate) const EVENTS: u8 = b'e';

pub(crate) fn notify_target(name: &str) -> Vec<u8> {
    let mut k = vec![b'w'];
    k.extend_from_slice(name.as_bytes());
    k
}

pub(crate) fn event(seq: u64, rule: u16) -> Vec<u8> {
    let mut k = vec![EVENTS];
    k.extend_from_slice(&seq.to_be_bytes());
    k.extend_from_slice(&rule.to_be_bytes());
    k
}

pub(crate) fn join_token(id: &str) -> Vec<u8> {
    let mut k = vec![b'j'];
    k.extend_from_slice(id.as_bytes());
    k
}

pub(crate) fn datanode(node: u64) -> Vec<u8> {
    let mut k = vec![DATANODES];
    k.extend_from_slice(&node.to_be_bytes());
    k
}

pub(crate) fn policy(name: &str) -> Vec<u8> {
    let mut k = vec![POLICIES];
    k.extend_from_slice(name.as_bytes());
    k
}

pub(crate) fn access_key(id: &str) -> Vec<u8> {
    let mut k = vec![ACCESS_KEYS];
    k.extend_from_slice(id.as_bytes());
    k
}

pub(crate) fn bucket(name: &str) -> Vec<u8> {
    let mut k = vec![BUCKETS];
    k.extend_from_slice(name.as_bytes());
    k
}

fn with_bucket(tag: u8, bucket: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + bucket.len() + 32);
    k.push(tag);
    k.push(bucket.len() as u8);
    k.extend_from_slice(bucket.as_bytes());
    k
}

/// The prefix of all objects of `bucket` (plus `key_prefix`).
pub(crate) fn objects_prefix(bucket: &str, key_prefix: &str) -> Vec<u8> {
    let mut k = with_bucket(OBJECTS, bucket);
    k.extend_from_slice(key_prefix.as_bytes());
    k
}

pub(crate) fn object(bucket: &str, key: &str) -> Vec<u8> {
    objects_prefix(bucket, key)
}

fn escape_into(out: &mut Vec<u8>, key: &str) {
    for &b in key.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
}

/// The prefix of every noncurrent version of exactly `key`.
pub(crate) fn versions_of_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = with_bucket(VERSIONS, bucket);
    escape_into(&mut k, key);
    k.extend_from_slice(&[0, 0]);
    k
}

/// The prefix of every noncurrent version in `bucket`.
pub(crate) fn versions_prefix(bucket: &str) -> Vec<u8> {
    with_bucket(VERSIONS, bucket)
}

/// A noncurrent version of `key` (newer versions sort first).
pub(crate) fn version(bucket: &str, key: &str, seq: u64) -> Vec<u8> {
    let mut k = versions_of_key(bucket, key);
    k.extend_from_slice(&(!seq).to_be_bytes());
    k
}

/// The pointer to `key`'s noncurrent `null` version.
pub(crate) fn null_version(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = with_bucket(NULL_VERSIONS, bucket);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The prefix of all uploads of `bucket` whose key starts with `key_prefix`.
pub(crate) fn uploads_prefix(bucket: &str, key_prefix: &str) -> Vec<u8> {
    let mut k = with_bucket(UPLOADS, bucket);
    escape_into(&mut k, key_prefix);
    k
}

/// The prefix of all uploads of exactly `key`.
pub(crate) fn uploads_of_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = uploads_prefix(bucket, key);
    k.extend_from_slice(&[0, 0]);
    k
}

pub(crate) fn upload(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut k = uploads_of_key(bucket, key);
    k.extend_from_slice(upload_id.as_bytes());
    k
}

/// Splits an upload table key (without the bucket prefix) into key and upload id.
pub(crate) fn split_upload_key(rest: &[u8]) -> Option<(String, String)> {
    let mut key = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        match (rest[i], rest.get(i + 1)) {
            (0, Some(0xff)) => {
                key.push(0);
                i += 2;
            }
            (0, Some(0)) => {
                let id = std::str::from_utf8(&rest[i + 2..]).ok()?.to_owned();
                return Some((String::from_utf8(key).ok()?, id));
            }
            (b, _) => {
                key.push(b);
                i += 1;
            }
        }
    }
    None
}

pub(crate) fn parts_prefix(upload_id: &str) -> Vec<u8> {
    let mut k = vec![PARTS];
    k.extend_from_slice(upload_id.as_bytes());
    k
}

pub(crate) fn part(upload_id: &str, number: u32) -> Vec<u8> {
    let mut k = parts_prefix(upload_id);
    k.extend_from_slice(&number.to_be_bytes());
    k
}

pub(crate) fn pg_prefix(pg: u32) -> Vec<u8> {
    let mut k = vec![PG_INDEX];
    k.extend_from_slice(&pg.to_be_bytes());
    k
}

pub(crate) fn pg_entry(pg: u32, bucket: &str, key: &str) -> Vec<u8> {
    let mut k = pg_prefix(pg);
    k.push(bucket.len() as u8);
    k.extend_from_slice(bucket.as_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// Splits a pg index key into (bucket, key).
pub(crate) fn split_pg_entry(k: &[u8]) -> Option<(String, String)> {
    let rest = k.get(5..)?;
    let blen = *rest.first()? as usize;
    let bucket = std::str::from_utf8(rest.get(1..1 + blen)?).ok()?.to_owned();
    let key = std::str::from_utf8(rest.get(1 + blen..)?).ok()?.to_owned();
    Some((bucket, key))
}

pub(crate) fn incarnation(disk: u32) -> Vec<u8> {
    let mut k = vec![INCARNATIONS];
    k.extend_from_slice(&disk.to_be_bytes());
    k
}

/// The prefix of every index entry of `disk`.
pub(crate) fn disk_shards_prefix(disk: u32) -> Vec<u8> {
    let mut k = vec![DISK_SHARDS];
    k.extend_from_slice(&disk.to_be_bytes());
    k
}

pub(crate) fn disk_shard(disk: u32, data_id: &[u8]) -> Vec<u8> {
    let mut k = disk_shards_prefix(disk);
    k.extend_from_slice(data_id);
    k
}

/// The smallest byte string greater than every string starting with `p`.
pub(crate) fn prefix_successor(p: &[u8]) -> Option<Vec<u8>> {
    let mut s = p.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_keys_sort_by_key_then_id_and_split_back() {
        let ids = ["0192aaaa", "0192bbbb"];
        let mut keys = vec![];
        for key in ["a", "a\0", "a\0b", "ab", "b"] {
            for id in ids {
                keys.push((upload("bkt", key, id), key, id));
            }
        }
        let mut sorted = keys.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(sorted, keys, "encoding preserves (key, id) order");
        let skip = 2 + "bkt".len();
        for (k, key, id) in keys {
            assert_eq!(split_upload_key(&k[skip..]), Some((key.to_owned(), id.to_owned())));
        }
    }

    #[test]
    fn successor_skips_a_whole_prefix() {
        assert_eq!(prefix_successor(b"ab/"), Some(b"ab0".to_vec()));
        assert_eq!(prefix_successor(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff"), None);
        assert_eq!(split_pg_entry(&pg_entry(7, "bkt", "x/y")), Some(("bkt".into(), "x/y".into())));
    }
}
