//! The metadata crate's error type: domain outcomes the gateway maps to S3
//! errors, and storage failures that are fatal for this node.

use tessera_rpc::proto::meta::{Failure, failure::Code};

/// What a metadata operation can answer besides success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// The bucket does not exist.
    #[error("no such bucket")]
    NoSuchBucket,
    /// Another owner has this bucket name.
    #[error("bucket already exists")]
    BucketAlreadyExists,
    /// The caller already owns this bucket.
    #[error("bucket already owned by you")]
    BucketAlreadyOwnedByYou,
    /// The bucket still has objects.
    #[error("bucket not empty")]
    BucketNotEmpty,
    /// The bucket name breaks S3's naming rules.
    #[error("invalid bucket name: {0}")]
    InvalidBucketName(&'static str),
    /// The key is empty or longer than 1024 bytes.
    #[error("invalid key: {0}")]
    KeyTooLong(&'static str),
    /// The object does not exist.
    #[error("no such key")]
    NoSuchKey,
    /// An If-Match / If-None-Match condition did not hold.
    #[error("precondition failed")]
    PreconditionFailed,
    /// The multipart upload does not exist (or was completed or aborted).
    #[error("no such upload")]
    NoSuchUpload,
    /// A part named in a completion is missing or its ETag differs.
    #[error("invalid part: {0}")]
    InvalidPart(String),
    /// The completion's part list is not in ascending order.
    #[error("part list is not in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than 5 MiB.
    #[error("part {0} is smaller than the 5 MiB minimum")]
    EntityTooSmall(u32),
    /// The completed object would exceed the 5 TiB S3 maximum.
    #[error("the object would be {0} bytes, above the 5 TiB maximum")]
    EntityTooLarge(u64),
    /// The access key does not exist.
    #[error("no such access key")]
    NoSuchAccessKey,
    /// The command needs a newer release than some metadata node runs.
    #[error("not yet enabled: {0}")]
    NotYetEnabled(String),
    /// A well-formed version id that no version of the key has.
    #[error("the specified version does not exist")]
    NoSuchVersion,
    /// The version asked for is a delete marker (GET/HEAD by version id).
    #[error("the specified method is not allowed against this resource")]
    MethodNotAllowed,
    /// The version is under retention or legal hold (object lock).
    #[error("access denied because object protected by object lock: {0}")]
    ObjectLocked(String),
    /// The bucket's state forbids the change (e.g. suspending versioning
    /// of a bucket with object lock).
    #[error("invalid bucket state: {0}")]
    InvalidBucketState(String),
    /// The bucket's record changed since the writer read it (a PutObject
    /// carrying the digest of an older record): nothing was applied.
    #[error("the bucket's configuration changed since the write was decided")]
    BucketChanged,
    /// Any other malformed request.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// RocksDB failed or returned bytes that do not decode: fatal for this
    /// node; never silently repaired.
    #[error("metadata storage failure: {0}")]
    Storage(String),
}

impl MetaError {
    /// The wire form, for results carried through Raft and gRPC.
    pub fn to_failure(&self) -> Failure {
        let code = match self {
            MetaError::NoSuchBucket => Code::NoSuchBucket,
            MetaError::BucketAlreadyExists => Code::BucketAlreadyExists,
            MetaError::BucketAlreadyOwnedByYou => Code::BucketAlreadyOwnedByYou,
            MetaError::BucketNotEmpty => Code::BucketNotEmpty,
            MetaError::InvalidBucketName(_) => Code::InvalidBucketName,
            MetaError::KeyTooLong(_) => Code::KeyTooLong,
            MetaError::NoSuchKey => Code::NoSuchKey,
            MetaError::PreconditionFailed => Code::PreconditionFailed,
            MetaError::NoSuchUpload => Code::NoSuchUpload,
            MetaError::InvalidPart(_) => Code::InvalidPart,
            MetaError::InvalidPartOrder => Code::InvalidPartOrder,
            MetaError::EntityTooSmall(_) => Code::EntityTooSmall,
            MetaError::EntityTooLarge(_) => Code::EntityTooLarge,
            MetaError::InvalidArgument(_) => Code::InvalidArgument,
            MetaError::NotYetEnabled(_) => Code::NotYetEnabled,
            MetaError::NoSuchAccessKey => Code::NoSuchAccessKey,
            MetaError::NoSuchVersion => Code::NoSuchVersion,
            MetaError::MethodNotAllowed => Code::MethodNotAllowed,
            MetaError::ObjectLocked(_) => Code::ObjectLocked,
            MetaError::InvalidBucketState(_) => Code::InvalidBucketState,
            MetaError::BucketChanged => Code::BucketChanged,
            MetaError::Storage(_) => Code::Unspecified,
        };
        Failure { code: code as i32, message: self.to_string() }
    }

    /// Rebuilds an error from its wire form. Details that only live in the
    /// message (which part, which rule) come back as text.
    pub fn from_failure(f: &Failure) -> Self {
        let msg = f.message.clone();
        match Code::try_from(f.code).unwrap_or(Code::Unspecified) {
            Code::NoSuchBucket => MetaError::NoSuchBucket,
            Code::BucketAlreadyExists => MetaError::BucketAlreadyExists,
            Code::BucketAlreadyOwnedByYou => MetaError::BucketAlreadyOwnedByYou,
            Code::BucketNotEmpty => MetaError::BucketNotEmpty,
            Code::InvalidBucketName => MetaError::InvalidBucketName("refused by the metadata service"),
            Code::KeyTooLong => MetaError::KeyTooLong("refused by the metadata service"),
            Code::NoSuchKey => MetaError::NoSuchKey,
            Code::PreconditionFailed => MetaError::PreconditionFailed,
            Code::NoSuchUpload => MetaError::NoSuchUpload,
            Code::InvalidPart => MetaError::InvalidPart(msg),
            Code::InvalidPartOrder => MetaError::InvalidPartOrder,
            Code::EntityTooSmall => MetaError::EntityTooSmall(0),
            Code::EntityTooLarge => MetaError::EntityTooLarge(0),
            Code::InvalidArgument => MetaError::InvalidArgument(msg),
            Code::NotYetEnabled => MetaError::NotYetEnabled(msg),
            Code::NoSuchAccessKey => MetaError::NoSuchAccessKey,
            Code::NoSuchVersion => MetaError::NoSuchVersion,
            Code::MethodNotAllowed => MetaError::MethodNotAllowed,
            Code::ObjectLocked => MetaError::ObjectLocked(msg),
            Code::InvalidBucketState => MetaError::InvalidBucketState(msg),
            Code::BucketChanged => MetaError::BucketChanged,
            Code::Unspecified => MetaError::Storage(msg),
        }
    }
}

impl From<rocksdb::Error> for MetaError {
    fn from(e: rocksdb::Error) -> Self {
        MetaError::Storage(e.to_string())
    }
}
