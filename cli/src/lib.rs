//! Shoal command-line crate.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod addr;
pub mod client;
pub mod ctl;
pub mod docker;
pub mod input;
pub mod lab;

pub use input::BadInput;
