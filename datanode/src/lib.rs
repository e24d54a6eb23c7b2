//! Tessera's datanode: durable shard files on local disks, the datanode gRPC
//! service, and the workers that keep its disks whole (scrub, heal,
//! rebalance, garbage collection) (DESIGN.md §5, §7).
//!
//! May depend on `tessera-common`, `tessera-rpc`, `tessera-ec` and
//! `tessera-placement`; never on the metadata or gateway crates.
//!
//! Not built yet: the service arrives with the datanode issue. Until then
//! this crate exports nothing, so nothing can mistake it for working.
