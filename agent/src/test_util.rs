//! Helpers shared by the agent's root tests.

/// True when the test may run: root. Without root it is skipped with a message, except under
/// CI (`CI` set), where a missing root is a failure: CI must run these tests.
pub fn root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the agent's root tests need root and CI must run them"
    );
    eprintln!("skipped: needs root");
    false
}
