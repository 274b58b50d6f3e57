//! Finding the `swarmd` and `swarmctl` binaries the tests drive.

use std::path::PathBuf;

/// The directory holding the binaries: `$SHOAL_BIN_DIR`, or the cargo target directory of the
/// running test (`…/debug/deps/control_plane-1234` → `…/debug`).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SHOAL_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("the path of the running test executable");
    let mut dir = exe
        .parent()
        .expect("the test executable's directory")
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// The path of binary `name` (`swarmd`, `swarmctl`); panics with what to do if it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    if !p.is_file() {
        panic!(
            "{name} not found at {}: run `cargo build --workspace --bins` first \
             (with the same CARGO_TARGET_DIR), or point SHOAL_BIN_DIR at the binaries",
            p.display()
        );
    }
    p
}
