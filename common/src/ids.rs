//! Identifier newtypes. Ids are never bare integers or strings in signatures.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A text that is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {text:?}")]
pub struct IdParseError {
    /// Which id type was being parsed.
    pub kind: &'static str,
    /// The text that failed.
    pub text: String,
}

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident($int:ty), $kind:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $int);

        impl $name {
            /// The raw number, for encodings and hashing.
            pub fn get(self) -> $int {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let digits = s.strip_prefix($prefix).unwrap_or(s);
                digits.parse::<$int>().map($name).map_err(|_| IdParseError { kind: $kind, text: s.to_owned() })
            }
        }
    };
}

int_id!(
    /// A Tessera node (metadata voter, datanode or gateway); also the Raft node id.
    NodeId(u64), "node", "n"
);
int_id!(
    /// One disk (a directory on a datanode): a placement target. Unique in the cluster.
    DiskId(u32), "disk", "d"
);
int_id!(
    /// A placement group: objects hash into PGs, PGs map to k + m disks.
    PgId(u32), "pg", "pg"
);

/// The id of one stored body (an object version or a multipart part's data):
/// a UUIDv7, so ids sort by creation time. Never reused; an overwrite gets a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DataId(pub Uuid);

impl DataId {
    /// A fresh id, ordered after ids made earlier by this process.
    pub fn new() -> Self {
        DataId(Uuid::now_v7())
    }

    /// The 16 bytes, as folded into block hashes and shard paths.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Rebuilds an id from its bytes.
    pub fn from_bytes(b: [u8; 16]) -> Self {
        DataId(Uuid::from_bytes(b))
    }
}

impl Default for DataId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for DataId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

impl FromStr for DataId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(DataId).map_err(|_| IdParseError { kind: "data", text: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_back() {
        assert_eq!(NodeId(7).to_string(), "n7");
        assert_eq!("n7".parse::<NodeId>(), Ok(NodeId(7)));
        assert_eq!("7".parse::<NodeId>(), Ok(NodeId(7)));
        assert_eq!("d12".parse::<DiskId>(), Ok(DiskId(12)));
        assert_eq!("pg3".parse::<PgId>(), Ok(PgId(3)));
        assert!("dx".parse::<DiskId>().is_err());
        assert!("-1".parse::<NodeId>().is_err());
        let id = DataId::new();
        assert_eq!(id.to_string().parse::<DataId>(), Ok(id));
        assert_eq!(DataId::from_bytes(*id.as_bytes()), id);
        assert!("not-a-uuid".parse::<DataId>().is_err());
    }

    #[test]
    fn data_ids_are_v7_and_ordered() {
        let a = DataId::new();
        let b = DataId::new();
        assert_eq!(a.0.get_version_num(), 7);
        assert!(a < b, "UUIDv7 made later sorts later");
    }
}
