//! Error codes an operator sees (admin CLI, logs, health endpoints).
//! S3 error codes are the gateway's business and live there.

use std::fmt;

/// A stable, greppable code for operator-facing failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The configuration is invalid or unsafe.
    ConfigInvalid,
    /// A disk failed a write or fsync and was taken out of service.
    DiskFailed,
    /// A disk has no space left.
    DiskFull,
    /// Fewer shard writes than the write quorum succeeded.
    QuorumLost,
    /// The metadata cluster has no leader reachable.
    NoLeader,
    /// A node did not answer in time.
    NodeUnreachable,
    /// Stored data failed an integrity check.
    DataCorrupt,
    /// A persisted structure has a format version this build cannot read.
    UnsupportedFormat,
    /// A bug: an invariant did not hold.
    Internal,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and documentation.
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::ConfigInvalid,
        ErrorCode::DiskFailed,
        ErrorCode::DiskFull,
        ErrorCode::QuorumLost,
        ErrorCode::NoLeader,
        ErrorCode::NodeUnreachable,
        ErrorCode::DataCorrupt,
        ErrorCode::UnsupportedFormat,
        ErrorCode::Internal,
    ];

    /// The code as printed: `TESSERA_` + upper snake case.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ConfigInvalid => "TESSERA_CONFIG_INVALID",
            ErrorCode::DiskFailed => "TESSERA_DISK_FAILED",
            ErrorCode::DiskFull => "TESSERA_DISK_FULL",
            ErrorCode::QuorumLost => "TESSERA_QUORUM_LOST",
            ErrorCode::NoLeader => "TESSERA_NO_LEADER",
            ErrorCode::NodeUnreachable => "TESSERA_NODE_UNREACHABLE",
            ErrorCode::DataCorrupt => "TESSERA_DATA_CORRUPT",
            ErrorCode::UnsupportedFormat => "TESSERA_UNSUPPORTED_FORMAT",
            ErrorCode::Internal => "TESSERA_INTERNAL",
        }
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::QuorumLost | ErrorCode::NoLeader | ErrorCode::NodeUnreachable)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_prefixed() {
        let names: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert!(
            names.iter().all(|n| n.starts_with("TESSERA_") && n.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        );
        let retryable: Vec<_> = ErrorCode::ALL.iter().filter(|c| c.is_retryable()).collect();
        assert_eq!(retryable, [&ErrorCode::QuorumLost, &ErrorCode::NoLeader, &ErrorCode::NodeUnreachable]);
    }
}
