//! Tessera's gateway: the S3 API (s3s), the object write and read pipelines
//! that turn bodies into erasure-coded shards and back, the admin HTTP API
//! and metrics (DESIGN.md §2, §7, §8).
//!
//! May depend on `tessera-common`, `tessera-rpc`, `tessera-ec` and
//! `tessera-placement`; never on the metadata or datanode crates.
//!
//! Not built yet: the S3 front end arrives with the gateway issue. Until
//! then this crate exports nothing, so nothing can mistake it for working.
