//! Compiles the .proto files with protox (pure Rust, no `protoc` binary) and
//! generates tonic code into OUT_DIR.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/health.proto", "proto/meta.proto", "proto/raft.proto", "proto/data.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
