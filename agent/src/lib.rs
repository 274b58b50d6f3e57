//! Shoal agent.
