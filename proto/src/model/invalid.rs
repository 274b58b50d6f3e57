//! Why a name, a port or a wire object is not valid: the model's one error type. Its text is
//! what users see (`swarmctl` prints it; the managers return it in `InvalidArgument`).

use super::ids::NameKind;

/// Input the model refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// An empty service or network name.
    #[error("{0} name must not be empty")]
    EmptyName(NameKind),
    /// A name of more than 63 characters.
    #[error("{kind} name {name:?} is longer than 63 characters")]
    LongName {
        /// Service or network.
        kind: NameKind,
        /// The name as given.
        name: String,
    },
    /// A name with characters outside Docker's rule.
    #[error(
        "invalid {kind} name {name:?}: use letters, digits, '-' and '_'{}, starting with a letter or digit",
        if *allow_dot { ", '.'" } else { "" }
    )]
    NameChars {
        /// Service or network.
        kind: NameKind,
        /// The name as given.
        name: String,
        /// Whether `.` is allowed (networks).
        allow_dot: bool,
    },
    /// A `--publish` spec that does not parse.
    #[error("invalid --publish {input:?}: {why} (expected [PUBLISHED:]TARGET[/tcp|udp][,mode=host|ingress])")]
    Publish {
        /// The spec as given.
        input: String,
        /// What is wrong with it.
        why: String,
    },
    /// A port number on the wire outside 1–65535.
    #[error("{what} port {value} is out of range 1-65535")]
    PortRange {
        /// `target` or `published`.
        what: &'static str,
        /// The number received.
        value: u32,
    },
    /// A health check the model refuses (bounds, an empty command, Docker's test form).
    #[error("invalid health check: {0}")]
    Health(String),
    /// A `--stop-drain` above [`super::MAX_STOP_DRAIN`].
    #[error("--stop-drain {0}: must be at most 10m")]
    StopDrain(String),
}
