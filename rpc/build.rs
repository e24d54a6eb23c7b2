//! Compiles the .proto files with protox (pure Rust, no `protoc` binary) and
//! generates tonic code into OUT_DIR.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/health.proto", "proto/meta.proto", "proto/raft.proto", "proto/data.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    // Shard frames travel as `bytes::Bytes`: zero-copy slices instead of a Vec per frame.
    tonic_prost_build::configure().bytes(".tessera.data.v1").compile_fds(fds)?;
    Ok(())
}
