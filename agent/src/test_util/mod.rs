//! Helpers shared by the agent's root tests (each marked `#[ignore = "needs root"]`).

/// True when the test may run: root. Without root it is skipped with a message, except under
/// CI (`CI` set), where a missing root is a failure: CI must run these tests.
pub fn root() -> bool {
    shoal_netlib::root::root_or_skip()
}

pub mod registry;
