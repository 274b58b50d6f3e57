//! Agent configuration: who the node is, where its managers are, and every timing the agent
//! uses, with today's values as defaults ([`AgentConfig::new`]) and [`AgentConfig::validate`].
//! The components take the part that concerns them ([`AgentConfig::worker_timings`]…).

use std::path::PathBuf;
use std::time::Duration;

use shoal_security::Transport;

use shoal_image::registry::RegistryConfig;

use crate::executor::{oci, process};
use crate::{network, worker};

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The OCI runtime (`--oci-runtime`) is not on this node.
    #[error("agent config: {0}")]
    OciRuntime(#[from] oci::runtime::Error),
    /// A registry flag (`--registry-mirror`, `--insecure-registry`, `--registry-auth`) is wrong.
    #[error("agent config: {0}")]
    Registry(#[from] shoal_image::registry::RegistryError),
    /// `--init-path` names no file.
    #[error("agent config: --init-path {}: {source}", path.display())]
    InitPath {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: std::io::Error,
    },
    /// A period or timeout of zero (a loop would spin, or nothing would ever be waited for).
    #[error("agent config: {field} must be more than zero")]
    Zero {
        /// The field.
        field: &'static str,
    },
    /// A lower bound above its upper bound.
    #[error("agent config: {lower} ({lower_value:?}) must not exceed {upper} ({upper_value:?})")]
    Order {
        /// The lower bound's field.
        lower: &'static str,
        /// Its value.
        lower_value: Duration,
        /// The upper bound's field.
        upper: &'static str,
        /// Its value.
        upper_value: Duration,
    },
    /// A value below what the kernel can take.
    #[error("agent config: {field} must be at least {min:?}")]
    TooShort {
        /// The field.
        field: &'static str,
        /// The least value.
        min: Duration,
    },
}

/// Agent settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This node's id.
    pub node_id: String,
    /// This node's host name (`swarmd --hostname`): tasks on the `host` network see it.
    pub hostname: String,
    /// Managers to try, in order (updated from session messages).
    pub managers: Vec<String>,
    /// Directory for task files and the managers list.
    pub state_dir: PathBuf,
    /// The data plane tasks run in (`--data-plane kernel`); `None` runs them as plain processes.
    pub data_plane: Option<network::DataPlane>,
    /// How connections to managers are secured (mutual TLS with the node's certificate, which
    /// the agent keeps renewed).
    pub transport: Transport,

    // --- containers ---
    /// The OCI runtime containers run with (`--oci-runtime`): `runc`, `crun` or a path.
    pub oci_runtime: String,
    /// The program `--init` containers run as PID 1 (`--init-path`); `None`: looked up
    /// ([`oci::init_program::find`]).
    pub init_path: Option<PathBuf>,
    /// How images are pulled (`--registry-mirror`, `--insecure-registry`, `--registry-auth`).
    pub registry: RegistryConfig,
    /// Longest an image pull may take (waiting for another task's pull of it included).
    pub image_pull_timeout: Duration,
    /// How long an image no container uses stays in the node's store before it is removed.
    pub image_gc_grace: Duration,

    // --- session with the managers ---
    /// Longest a clean stop waits for the managers to take its goodbye.
    pub goodbye_timeout: Duration,
    /// Longest a connection to a manager may take to open.
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive pings on the connection to a manager, this often.
    pub keepalive_interval: Duration,
    /// A keep-alive ping unanswered for this long closes the connection.
    pub keepalive_timeout: Duration,
    /// Pause before following a follower's redirect to the leader.
    pub redirect_delay: Duration,
    /// First pause before trying the next manager after a failed session (doubled after each
    /// failure up to [`AgentConfig::reconnect_backoff_max`]).
    pub reconnect_backoff_min: Duration,
    /// Longest pause between two session attempts.
    pub reconnect_backoff_max: Duration,
    /// Shortest heartbeat period the agent accepts from a manager.
    pub min_heartbeat_period: Duration,
    /// Shortest time a `swarmctl task exec` command gets, whatever it asked.
    pub min_exec_timeout: Duration,
    /// Longest a certificate renewal request may take.
    pub renew_timeout: Duration,
    /// Pause after the n-th failed renewal: n times this...
    pub renew_retry_step: Duration,
    /// ...but never more than this.
    pub renew_retry_max: Duration,
    /// How often pending task statuses are sent again when nothing new happens.
    pub report_resend: Duration,

    // --- tasks and the data plane: each component's own timings ---
    /// The worker's timings (stop grace, balancer drain, sweeps).
    pub worker: worker::Timings,
    /// The process executor's timings (cgroup removal, adopted tasks' polls).
    pub process: process::Timings,
    /// The data plane's timings (IPVS and DNS idle times, upstream DNS timeout).
    pub network: network::Timings,
}

impl AgentConfig {
    /// Defaults for everything but who the node is and where its state is: no data plane,
    /// plain TCP to the managers, and today's timings.
    pub fn new(
        node_id: String,
        hostname: String,
        managers: Vec<String>,
        state_dir: PathBuf,
    ) -> AgentConfig {
        AgentConfig {
            node_id,
            hostname,
            managers,
            state_dir,
            data_plane: None,
            transport: Transport::Plain,
            oci_runtime: "runc".into(),
            init_path: None,
            registry: RegistryConfig::default(),
            image_pull_timeout: oci::images::DEFAULT_PULL_TIMEOUT,
            image_gc_grace: oci::images::DEFAULT_GC_GRACE,
            goodbye_timeout: crate::session::DEFAULT_GOODBYE_TIMEOUT,
            connect_timeout: Duration::from_millis(500),
            keepalive_interval: Duration::from_secs(5),
            keepalive_timeout: Duration::from_secs(3),
            redirect_delay: Duration::from_millis(20),
            reconnect_backoff_min: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_millis(500),
            min_heartbeat_period: Duration::from_millis(50),
            min_exec_timeout: Duration::from_secs(1),
            renew_timeout: Duration::from_secs(10),
            renew_retry_step: Duration::from_secs(1),
            renew_retry_max: Duration::from_secs(10),
            report_resend: crate::reporter::DEFAULT_RESEND,
            worker: worker::Timings::default(),
            process: process::Timings::default(),
            network: network::Timings::default(),
        }
    }

    /// Checks the settings before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("goodbye_timeout", self.goodbye_timeout),
            ("connect_timeout", self.connect_timeout),
            ("keepalive_interval", self.keepalive_interval),
            ("keepalive_timeout", self.keepalive_timeout),
            ("reconnect_backoff_min", self.reconnect_backoff_min),
            ("min_heartbeat_period", self.min_heartbeat_period),
            ("min_exec_timeout", self.min_exec_timeout),
            ("renew_timeout", self.renew_timeout),
            ("renew_retry_step", self.renew_retry_step),
            ("report_resend", self.report_resend),
            ("sweep_period", self.worker.sweep_period),
            ("lb_retry", self.worker.lb_retry),
            ("stop_all_poll", self.worker.stop_all_poll),
            ("cgroup_remove_retry", self.process.cgroup_remove_retry),
            ("adopted_poll", self.process.adopted_poll),
            ("adopted_stop_poll", self.process.adopted_stop_poll),
            ("dns_tcp_idle", self.network.dns_tcp_idle),
            ("dns_upstream_timeout", self.network.dns_upstream_timeout),
            ("image_pull_timeout", self.image_pull_timeout),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(ConfigError::Zero { field });
        }
        for (lower, lower_value, upper, upper_value) in [
            (
                "reconnect_backoff_min",
                self.reconnect_backoff_min,
                "reconnect_backoff_max",
                self.reconnect_backoff_max,
            ),
            (
                "renew_retry_step",
                self.renew_retry_step,
                "renew_retry_max",
                self.renew_retry_max,
            ),
        ] {
            if lower_value > upper_value {
                return Err(ConfigError::Order {
                    lower,
                    lower_value,
                    upper,
                    upper_value,
                });
            }
        }
        // IPVS takes whole seconds, and 0 means "leave it as it is".
        if self.network.ipvs_tcp_idle < Duration::from_secs(1) {
            return Err(ConfigError::TooShort {
                field: "ipvs_tcp_idle",
                min: Duration::from_secs(1),
            });
        }
        self.registry.validate()?;
        if let Some(path) = &self.init_path {
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    return Err(ConfigError::InitPath {
                        path: path.clone(),
                        source: std::io::Error::other("not a file"),
                    })
                }
                Err(source) => {
                    return Err(ConfigError::InitPath {
                        path: path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// The program `--init` containers run as PID 1: `--init-path`, else the one found on
    /// this node; `None` when there is none.
    pub fn init_program(&self) -> Option<PathBuf> {
        self.init_path.clone().or_else(oci::init_program::find)
    }

    /// Checks that the OCI runtime exists (`swarmd` refuses to start without it; the
    /// error names the packages to install).
    pub fn check_oci_runtime(&self) -> Result<oci::runtime::Runtime, ConfigError> {
        Ok(oci::runtime::Runtime::new(
            &self.oci_runtime,
            self.oci_runtime_root(),
        )?)
    }

    /// Where the OCI runtime keeps its containers' state (`--root`).
    pub fn oci_runtime_root(&self) -> PathBuf {
        self.state_dir.join("oci")
    }

    /// The node's image store.
    pub fn image_dir(&self) -> PathBuf {
        self.state_dir.join("images")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AgentConfig {
        AgentConfig::new("n1".into(), "h".into(), vec![], PathBuf::from("/tmp/x"))
    }

    #[test]
    fn defaults_are_valid_and_round_trip_to_the_components() {
        let c = cfg();
        c.validate().unwrap();
        assert_eq!(c.worker, worker::Timings::default());
        assert_eq!(c.process, process::Timings::default());
        assert_eq!(c.network, network::Timings::default());
    }

    #[test]
    fn bad_timings_are_refused_with_the_field() {
        let mut c = cfg();
        c.process.adopted_poll = Duration::ZERO;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "agent config: adopted_poll must be more than zero"
        );
        let mut c = cfg();
        c.reconnect_backoff_max = Duration::from_millis(10);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Order {
                lower: "reconnect_backoff_min",
                ..
            })
        ));
        let mut c = cfg();
        c.network.ipvs_tcp_idle = Duration::from_millis(10);
        assert!(matches!(c.validate(), Err(ConfigError::TooShort { .. })));
        let mut c = cfg();
        c.registry.insecure = vec!["a/b".into()];
        assert!(matches!(c.validate(), Err(ConfigError::Registry(_))));
        let mut c = cfg();
        c.oci_runtime = "no-such-runtime-xyz".into();
        let e = c.check_oci_runtime().unwrap_err();
        assert!(e.to_string().contains("install runc or crun"), "{e}");
        for bad in ["/nonexistent/tini", "/"] {
            let mut c = cfg();
            c.init_path = Some(bad.into());
            let e = c.validate().unwrap_err();
            assert!(
                matches!(e, ConfigError::InitPath { .. }) && e.to_string().contains(bad),
                "{e}"
            );
        }
        let mut c = cfg();
        let me = std::env::current_exe().unwrap();
        c.init_path = Some(me.clone());
        c.validate().unwrap();
        assert_eq!(c.init_program(), Some(me));
    }
}
