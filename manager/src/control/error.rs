//! [`ControlError`]: what the Control API refuses before proposing anything. Its gRPC codes are
//! chosen with every other error's, in `From<ManagerError> for Status` (`crate::error`).

use crate::allocator::ipam::SubnetError;
use crate::scheduler::constraint::ConstraintError;
use shoal_image::digest::DigestError;
use shoal_image::reference::ReferenceError;
use shoal_proto::model::{Invalid, TaskState};

/// A request the Control API refuses; nothing was proposed. The text is what users see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    // ---- invalid requests (INVALID_ARGUMENT) ----
    /// A name that is not a valid service, network or alias name.
    #[error(transparent)]
    Name(Invalid),
    /// An image reference Docker would not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A pinned image digest that is not `sha256:<64 hex>`.
    #[error("invalid image digest {0:?}: {1}")]
    ImageDigest(String, DigestError),
    /// A request without a service spec.
    #[error("a service spec is required")]
    NoSpec,
    /// A service spec that does not convert from its wire form.
    #[error(transparent)]
    Spec(Invalid),
    /// A service without an image.
    #[error("an image is required")]
    NoImage,
    /// `--tty` on a `--runtime process` service (only containers get a terminal).
    #[error("--tty is for containers: a --runtime process task gets no terminal (remove --tty, or run an image)")]
    TtyProcess,
    /// `--replicas` above [`crate::MAX_REPLICAS`].
    #[error("--replicas {replicas} is too large (at most {max})")]
    TooManyReplicas {
        /// Replicas asked for.
        replicas: u64,
        /// The limit.
        max: u64,
    },
    /// `service scale` above [`crate::MAX_REPLICAS`].
    #[error("{replicas} replicas is too many (at most {max})")]
    ScaleTooLarge {
        /// Replicas asked for.
        replicas: u64,
        /// The limit.
        max: u64,
    },
    /// An update or rollback setting out of range (`--update-parallelism`, `--update-delay`,
    /// `--update-monitor`, `--update-max-failure-ratio`, `--rollback-failure-action`, …).
    #[error("invalid --{flag}: {why}")]
    UpdateConfig {
        /// The flag, as `swarmctl` spells it.
        flag: String,
        /// What is wrong and what is allowed.
        why: String,
    },
    /// `UpdateService` without the version the client read.
    #[error("an update must name the version of the service it read (read the service, change it, send it back with its version)")]
    NoVersion,
    /// `service rollback` of a service that was never updated.
    #[error("service {0} does not have a previous spec")]
    NoPreviousSpec(String),
    /// An `--env` that is not `KEY=VALUE`.
    #[error("invalid --env {0:?}: expected KEY=VALUE")]
    Env(String),
    /// A placement constraint that does not parse.
    #[error(transparent)]
    Constraint(#[from] ConstraintError),
    /// Ingress-published ports on a DNS round-robin service.
    #[error("port published with ingress mode can't be used with dnsrr mode: publish with mode=host or use --endpoint-mode vip")]
    DnsrrIngress,
    /// A published port without a target.
    #[error("a published port needs a target port (1-65535)")]
    NoTargetPort,
    /// A UDP port published on the overlays' own VXLAN port.
    #[error(
        "port {0}/udp is where every node receives overlay (VXLAN) traffic: publish another port"
    )]
    VxlanPort(u16),
    /// One published port twice in a spec.
    #[error("port {port}/{protocol} is published twice")]
    PortTwice {
        /// The port.
        port: u16,
        /// `tcp` or `udp`.
        protocol: &'static str,
    },
    /// A network a spec attaches to does not exist.
    #[error("network {0} not found; create it with `swarmctl network create -d overlay {0}`")]
    NoSuchNetwork(String),
    /// A spec attaches `ingress`.
    #[error("the ingress network can't be attached directly: publish a port instead")]
    IngressAttached,
    /// A spec attaches one network twice.
    #[error("network {0} is attached twice")]
    AttachedTwice(String),
    /// `host` or `none` with other networks.
    #[error("a task on the {0} network cannot be attached to other networks")]
    NotAlone(String),
    /// An alias on `host` or `none`.
    #[error("the {0} network has no DNS: drop the alias")]
    NoDns(String),
    /// Negative or non-finite resource limits.
    #[error("resource limits must not be negative")]
    NegativeLimits,
    /// `service update` from replicated to global or back.
    #[error("a service's mode (replicated or global) can't be changed")]
    ModeChange,
    /// A name reserved for the networks every cluster has.
    #[error("network name {0:?} is reserved")]
    ReservedNetwork(String),
    /// A network name in use.
    #[error("network with name {0:?} already exists")]
    NetworkExists(String),
    /// `network create -d host|null`.
    #[error("only one instance of the {driver} network is allowed: use the predefined {network} network")]
    SingletonDriver {
        /// The driver asked for.
        driver: &'static str,
        /// The predefined network of that driver.
        network: &'static str,
    },
    /// A `--subnet` that does not parse.
    #[error(transparent)]
    Subnet(#[from] SubnetError),
    /// `--cert-expiry` too short.
    #[error("--cert-expiry must be at least {min_secs} s")]
    CertExpiry {
        /// The shortest validity, in seconds.
        min_secs: u64,
    },
    /// `task exec` without a command.
    #[error("no command: swarmctl task exec TASK -- CMD [ARGS...]")]
    NoCommand,
    /// `image pull` without exactly one reference, `image rm` without any.
    #[error("{0}")]
    ImageArgs(&'static str),
    /// `image load` without `--node`.
    #[error("image load needs a node: swarmctl image load --node NODE [-i FILE]")]
    LoadNeedsNode,
    /// An `image load` the leader gave up streaming (too large, the client broke off).
    #[error(transparent)]
    ImageLoad(#[from] crate::dispatcher::LoadError),
    /// An exec stream whose first message does not say what to run.
    #[error("the first message of an exec stream must carry `start` (the task and command)")]
    ExecNoStart,

    /// A secret or config name Docker would refuse.
    #[error("invalid {kind} name {name:?}: only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]")]
    DataName {
        /// `secret` or `config`.
        kind: &'static str,
        /// The name given.
        name: String,
    },
    /// Empty or too large data (the data itself is never quoted).
    #[error("{kind} data must be larger than 0 and less than {max} bytes (got {size})")]
    DataSize {
        /// `secret` or `config`.
        kind: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A `--secret`/`--config` naming nothing that exists.
    #[error("{kind} {name} not found; create it with `swarmctl {kind} create {name} FILE`")]
    NoSuchData {
        /// `secret` or `config`.
        kind: &'static str,
        /// What the spec named.
        name: String,
    },
    /// A bad `target=` of a `--secret` or `--config`.
    #[error("invalid {kind} target {target:?}: {why}")]
    DataTarget {
        /// `secret` or `config`.
        kind: &'static str,
        /// The target given.
        target: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Two references with one target.
    #[error("duplicate {kind} target for {target} not allowed")]
    DataTargetTwice {
        /// `secret` or `config`.
        kind: &'static str,
        /// The target.
        target: String,
    },
    /// A file mode above 0o7777.
    #[error("invalid {kind} file mode {mode:#o}: at most 0o7777")]
    DataMode {
        /// `secret` or `config`.
        kind: &'static str,
        /// The mode given.
        mode: u32,
    },
    /// Secrets or configs for a `--runtime process` task, which has no file system of its own.
    #[error(
        "--secret and --config need a container (--runtime container): a process task has no file system of its own to hold them"
    )]
    DataNeedsContainer,

    // ---- ALREADY_EXISTS ----
    /// `service create` with a name in use.
    #[error("service with name {0:?} already exists")]
    ServiceExists(String),

    // ---- refused in the current state (FAILED_PRECONDITION) ----
    /// Demoting the only manager.
    #[error("can't demote the last manager of the cluster: promote another node first")]
    LastManager,
    /// Removing a manager.
    #[error("node {0} is a manager: demote it first (`swarmctl node demote {0}`)")]
    RemoveManager(String),
    /// Removing a node that is up, without `--force`.
    #[error("node {0} is up: stop it first, or remove it anyway with --force")]
    NodeUp(String),
    /// Scaling a global service.
    #[error("service {0} is global: scale can only be used with replicated mode")]
    ScaleGlobal(String),
    /// `task exec` into a task that is not running.
    #[error("task {name} is not running (it is {state:?})")]
    TaskNotRunning {
        /// The task's name.
        name: String,
        /// Its state.
        state: TaskState,
    },
    /// `swarm unlock-key` while autolock is off.
    #[error("no unlock key is set")]
    NoUnlockKey,
    /// `swarm unlock` on a manager that is running (not locked).
    #[error("swarm is not locked")]
    NotLocked,
    /// `network inspect --lb` on a network without balancers.
    #[error("network {0} is not an overlay network: it has no service load balancers")]
    NotOverlay(String),

    // ---- lost races (ABORTED) ----
    /// A service kept changing under `service scale`.
    #[error("the service kept changing concurrently; retry")]
    KeptChanging,
    /// The cluster changed under a token or CA rotation.
    #[error("the cluster changed concurrently; retry the rotation")]
    RotationConflict,

    // ---- the task's node did not answer (UNAVAILABLE) ----
    /// `task exec` to a node without a session.
    #[error("the task's node is not connected to the managers; retry when it is Ready")]
    TaskUnreachable,
    /// `task exec` without an answer in time.
    #[error("no answer from the task's node within {secs}s")]
    ExecNoAnswer {
        /// How long the leader waited, in seconds.
        secs: u64,
    },

    // ---- bugs (INTERNAL) ----
    /// An object created a moment ago is not in the store.
    #[error("{0} vanished after create")]
    Vanished(&'static str),
}
