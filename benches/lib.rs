//! Tessera's benchmarks live in this package's `[[bench]]` targets
//! (`ec.rs`, `placement.rs`); this library is empty. Run them with
//! `cargo bench -p tessera-benches --bench <name>`.
