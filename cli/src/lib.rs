//! Shoal command-line crate.
#![forbid(unsafe_code)]

pub mod client;
pub mod ctl;
pub mod lab;
