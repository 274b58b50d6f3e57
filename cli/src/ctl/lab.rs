//! `swarmctl lab up | ls | shell | exec | restart | stop | start | ui | down`: the command line
//! of [`crate::lab`]. These verbs
//! build and drive namespaces on this machine; they need no connection to a manager.

use super::Format;
use crate::lab::config::{self, LabSpec, DEFAULT_NAME, DEFAULT_SUBNET};
use crate::lab::exec::What;
use crate::lab::{self, Printer};
use crate::BadInput;
use clap::{Args, Subcommand};
use shoal_proto::model::Ipv4Net;

/// `lab` subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCmd {
    /// Build a lab: one network namespace per node, each running swarmd, joined into a swarm.
    Up {
        /// The lab (`--name`).
        #[command(flatten)]
        name: LabName,
        /// Managers (1 to 7; odd numbers recommended).
        #[arg(long, default_value_t = 3)]
        managers: usize,
        /// Workers (0 to 16).
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// The lab's underlay network: a /24 (or larger) inside 198.18.0.0/15.
        #[arg(long, default_value = DEFAULT_SUBNET, value_parser = parse_subnet)]
        subnet: Ipv4Net,
        /// An OCI image layout whose REPOSITORY:TAG images go into the lab's registry
        /// [default: the demo images of deploy/images.sh, $SHOAL_IMAGE_CACHE/oci or
        /// /var/tmp/shoal-images/oci, when built].
        #[arg(long, value_name = "DIR")]
        images: Option<std::path::PathBuf>,
        /// Start the nodes in no swarm, as Play with Docker's: make it yourself with
        /// `lab exec manager1 swarmctl swarm init` and `swarm join` on the others (or
        /// `docker swarm init|join` with SHOAL_LAB_SWARMD_ARGS=--docker-host=unix://docker.sock).
        #[arg(long)]
        no_swarm: bool,
    },
    /// List labs and whether they run.
    #[command(alias = "list")]
    Ls,
    /// Open a shell on a node (in its network namespace, with swarmctl pointed at it).
    Shell {
        /// The node: manager1, worker2, …
        node: String,
        /// The lab (`--name`).
        #[command(flatten)]
        name: LabName,
    },
    /// Run a command on a node (in its network namespace, with swarmctl pointed at it).
    Exec {
        /// The node: manager1, worker2, …
        node: String,
        /// The lab (`--name`).
        #[command(flatten)]
        name: LabName,
        /// The command and its arguments (after `--`).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        cmd: Vec<String>,
    },
    /// Restart a node's swarmd (SIGTERM, then start it again) and wait until it is Ready.
    Restart {
        /// The node: manager1, worker2, …
        node: String,
        /// The lab (`--name`).
        #[command(flatten)]
        name: LabName,
    },
    /// Stop a node's swarmd: SIGTERM and wait (a clean stop), or with --kill a SIGKILL (a crash).
    Stop {
        /// The node: manager1, worker2, …
        node: String,
        /// The lab (`--name`).
        #[command(flatten)]
        name: LabName,
        /// SIGKILL at once: the node crashes, as in a power cut (for failure drills).
        #[arg(long)]
        kill: bool,
    },
    /// Start a stopped node's swarmd and wait until it is Ready.
    Start {
        /// The node: manager1, worker2, …
        node: String,
        /// The lab (`--name`).
        #[command(flatten)]
        name: LabName,
    },
    /// Serve the lab in a browser: a terminal into every node and a live picture of nodes,
    /// networks, balancers and tasks. Prints the address to open (with its token); `&static=1`
    /// on it gives a one-snapshot view that headless browsers can capture.
    Ui {
        /// The lab (`--name`).
        #[command(flatten)]
        name: LabName,
        /// Address to serve on (loopback; the port picked when 0).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Serve on a non-loopback address too (the terminals are root shells on this host).
        #[arg(long)]
        allow_remote: bool,
    },
    /// Stop every swarmd of a lab and remove its namespaces, links and files.
    #[command(alias = "rm")]
    Down {
        /// The lab (`--name`).
        #[command(flatten)]
        name: LabName,
    },
}

/// `--name LAB`, shared by every verb.
#[derive(Debug, Clone, Args)]
pub struct LabName {
    /// The lab (1 to 8 characters a-z, 0-9): several labs can run side by side.
    #[arg(long = "name", value_name = "LAB", default_value = DEFAULT_NAME, value_parser = parse_name)]
    pub name: String,
}

fn parse_name(s: &str) -> Result<String, BadInput> {
    config::check_name(s).map(|()| s.to_string())
}

fn parse_subnet(s: &str) -> Result<Ipv4Net, BadInput> {
    let net = config::parse_subnet(s)?;
    config::check_subnet(net)?;
    Ok(net)
}

/// The exit code a command run by `lab exec` / `lab shell` ended with, to be passed on by
/// `swarmctl` without a message of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitWith(pub u8);

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the command exited with status {}", self.0)
    }
}

impl std::error::Error for ExitWith {}

/// Runs a `lab` subcommand.
pub async fn run(cmd: LabCmd, format: Format) -> anyhow::Result<()> {
    let mut p = Printer::stdout(format == Format::Json);
    match cmd {
        LabCmd::Up {
            name,
            managers,
            workers,
            subnet,
            images,
            no_swarm,
        } => {
            let spec = LabSpec {
                name: name.name,
                managers,
                workers,
                subnet,
                images,
                no_swarm,
            };
            lab::up::up(spec, &mut p).await
        }
        LabCmd::Ls => lab::ls::ls(&mut p),
        LabCmd::Shell { node, name } => {
            exit(lab::exec::exec(&name.name, &node, What::Shell).await?)
        }
        LabCmd::Exec { node, name, cmd } => {
            exit(lab::exec::exec(&name.name, &node, What::Command(cmd)).await?)
        }
        LabCmd::Restart { node, name } => lab::node::restart(&name.name, &node, &mut p).await,
        LabCmd::Stop { node, name, kill } => lab::node::stop(&name.name, &node, kill, &mut p).await,
        LabCmd::Start { node, name } => lab::node::start(&name.name, &node, &mut p).await,
        LabCmd::Ui {
            name,
            listen,
            allow_remote,
        } => {
            let dir = lab::existing(&name.name)?;
            lab::ui::run(dir, listen, allow_remote).await
        }
        LabCmd::Down { name } => lab::down::down(&name.name, &mut p).await,
    }
}

fn exit(code: i32) -> anyhow::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(ExitWith(code.clamp(1, 255) as u8).into())
    }
}
