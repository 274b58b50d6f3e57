//! Compiles `proto/shoal.proto` with protox (pure Rust), so no system `protoc` is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/shoal.proto");
    let fds = protox::compile(["proto/shoal.proto"], ["proto"])?;
    // Messages carrying secret data or keys get a hand-written, redacting `Debug` (src/lib.rs).
    tonic_prost_build::configure()
        .skip_debug([
            ".shoal.v1.CreateDataRequest",
            ".shoal.v1.UnlockKeyResponse",
            ".shoal.v1.UnlockRequest",
            ".shoal.v1.TaskData",
            ".shoal.v1.SwarmJoinRequest",
        ])
        .compile_fds(fds)?;
    Ok(())
}
