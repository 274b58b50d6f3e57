//! Shoal command-line crate.
