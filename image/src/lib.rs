//! Container images for Shoal: Docker's reference grammar, pulls from registries (mirrors,
//! insecure registries, credentials), a per-node content-addressed store with each image's
//! layers unpacked once into a read-only root, a layer unpacker that refuses archives trying
//! to escape it, and Docker's rules for merging an image's config with a service's overrides.
//!
//! This crate knows nothing of Shoal's model (like `netlib`): the agent maps its tasks onto it.
//!
//! - [`reference`]: `nginx` is `docker.io/library/nginx:latest`.
//! - [`registry`]: the [`registry::Client`] (on `oci-client`; the module doc says why).
//! - [`store`]: the [`store::Store`] (`pull`, `load`, `list`, `inspect`, `remove`, `prune`,
//!   `root`, `config`).
//! - [`unpack`]: the layer unpacker, [`unpack::apply_layer`].
//! - [`merge`]: the process to run, [`merge::merge`] and [`merge::resolve_user`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod digest;
pub mod merge;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;

#[cfg(test)]
mod testutil;

pub use digest::{Digest, DigestError, ImageId};
pub use reference::{Reference, ReferenceError};
pub use store::{Healthcheck, Image, ImageConfig, Progress, Store, StoreError};
