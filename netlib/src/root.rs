//! Whether this process may change the kernel's network configuration, and the guard that
//! every crate's root tests share.
//!
//! Root tests are marked `#[ignore = "needs root"]`, so a plain `cargo test` reports them as
//! ignored rather than passing without doing anything; run as root, the test script includes
//! them (`cargo test -- --include-ignored`). Each starts with `if !root_or_skip() { return; }`
//! for a run that includes them without root.

/// Whether this process runs as root: effective uid 0, read from `/proc/self/status` (its
/// `Uid:` line lists the real, effective, saved and filesystem uids; proc(5)).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// For a test that needs root: `true` as root. Without root it fails under CI (`CI` set: CI
/// must run the root tests), and otherwise prints `skipped: needs root` and returns `false`.
pub fn root_or_skip() -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "this test needs root, and CI is set: CI must run the root tests as root"
    );
    eprintln!("skipped: needs root");
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_root_agrees_with_the_effective_uid_of_proc_self() {
        // `id -u` prints the effective uid of a child, which inherits this process's.
        let out = std::process::Command::new("id").arg("-u").output();
        if let Ok(out) = out {
            let uid = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert_eq!(super::is_root(), uid == "0");
        }
    }
}
