//! Tessera's metadata service: the single source of truth for buckets,
//! objects, multipart uploads, the cluster map, datanode liveness and access
//! keys, kept in an openraft state machine on RocksDB (DESIGN.md §3, §6).
//!
//! May depend on `tessera-common`, `tessera-rpc` and `tessera-placement`;
//! never on the datanode or gateway crates.
//!
//! Not built yet: the service arrives with the metadata issue. Until then
//! this crate exports nothing, so nothing can mistake it for working.
