//! Docker's rules for turning an image's config and a service's overrides into the process a
//! container runs (moby's `daemon/create.go` merge and swarmkit's container adapter):
//! - an explicit entrypoint (`--entrypoint`, swarm's `ContainerSpec.Command`) replaces the
//!   image's and drops the image's `Cmd`;
//! - non-empty args (`service create IMAGE ARGS…`) replace `Cmd`;
//! - env merges by key, the service winning, image order first; a `PATH` is added when neither
//!   has one;
//! - the working directory defaults to the image's, then `/`, and must be absolute;
//! - the user defaults to the image's; empty means root (`0`).

#[cfg(test)]
mod tests;
mod user;

pub use user::{resolve_user, resolve_user_in_root, ExecUser, UserError};

use crate::store::ImageConfig;

/// The `PATH` a container gets when neither image nor service sets one (moby's
/// `system.DefaultPathEnv` on Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a service says about the process, on top of the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--entrypoint`: replaces the image's entrypoint and drops its `Cmd`.
    pub entrypoint: Option<Vec<String>>,
    /// The args after the image: replace `Cmd` when non-empty.
    pub args: Vec<String>,
    /// `--env KEY=VALUE`, winning over the image's by key.
    pub env: Vec<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--workdir`.
    pub workdir: Option<String>,
}

/// The process to run in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// argv, entrypoint first.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    /// Absolute working directory.
    pub cwd: String,
    /// The user spec to resolve against the rootfs ([`resolve_user_in_root`]); `0` for root.
    pub user: String,
}

/// Why no process could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// Neither image nor service names a program.
    #[error("no command specified")]
    NoCommand,
    /// A relative working directory.
    #[error("the working directory '{0}' is invalid, it needs to be an absolute path")]
    RelativeWorkdir(String),
}

/// Merges `image` and `over` by Docker's rules.
pub fn merge(image: &ImageConfig, over: &Overrides) -> Result<Process, MergeError> {
    let (entrypoint, cmd) = match &over.entrypoint {
        Some(ep) => (ep.clone(), over.args.clone()),
        None if !over.args.is_empty() => (image.entrypoint.clone(), over.args.clone()),
        None => (image.entrypoint.clone(), image.cmd.clone()),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(MergeError::NoCommand);
    }
    let env = merge_env(&image.env, &over.env);
    let cwd = match over
        .workdir
        .as_deref()
        .filter(|w| !w.is_empty())
        .or(Some(image.working_dir.as_str()).filter(|w| !w.is_empty()))
    {
        Some(w) if w.starts_with('/') => w.to_string(),
        Some(w) => return Err(MergeError::RelativeWorkdir(w.to_string())),
        None => "/".to_string(),
    };
    let user = over
        .user
        .as_deref()
        .filter(|u| !u.is_empty())
        .unwrap_or(&image.user);
    let user = if user.is_empty() {
        "0".to_string()
    } else {
        user.to_string()
    };
    Ok(Process {
        args,
        env,
        cwd,
        user,
    })
}

fn key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

/// Image env then service env; a later entry replaces an earlier one with the same key in
/// place; `PATH` added when missing.
pub fn merge_env(image: &[String], service: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in image.iter().chain(service) {
        match out.iter_mut().find(|o| key(o) == key(e)) {
            Some(slot) => *slot = e.clone(),
            None => out.push(e.clone()),
        }
    }
    if !out.iter().any(|e| key(e) == "PATH") {
        out.push(format!("PATH={DEFAULT_PATH}"));
    }
    out
}
