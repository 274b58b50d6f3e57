//! Compiles `proto/shoal.proto` with protox (pure Rust), so no system `protoc` is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/shoal.proto");
    let fds = protox::compile(["proto/shoal.proto"], ["proto"])?;
    // Requests carrying secret data get a hand-written, redacting `Debug` (src/redact.rs).
    tonic_prost_build::configure()
        .skip_debug([
            ".shoal.v1.CreateDataRequest",
            ".shoal.v1.UnlockKeyResponse",
            ".shoal.v1.UnlockRequest",
        ])
        .compile_fds(fds)?;
    Ok(())
}
