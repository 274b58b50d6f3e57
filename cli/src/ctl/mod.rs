//! `swarmctl`: the command-line client of the Control API. One module per command family; every
//! command prints a Docker-style table (or message) by default and JSON with `--format json`;
//! `inspect` prints JSON by default and a readable view with `--format table` (or `--pretty`).

pub mod data;
pub mod exec;
pub mod image;
pub mod json;
pub mod lab;
pub mod membership;
pub mod names;
pub mod network;
pub mod node;
pub mod output;
pub mod parse;
pub mod progress;
pub mod service;
pub mod swarm;
pub mod task;
pub mod time;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
pub(crate) mod fake_images;
#[cfg(test)]
mod tests;

use crate::client::{self, DEFAULT_HOST};
use clap::{Parser, Subcommand};
pub use output::{Format, Out};

/// The help heading of the flags every command takes; `--help` lists them after the command's
/// own, as Docker does.
const GLOBAL_OPTIONS: &str = "Global Options";

/// Shoal's client: manage a cluster of swarmd nodes.
#[derive(Debug, Parser)]
#[command(name = "swarmctl", version, propagate_version = true)]
pub struct Cli {
    /// The manager to talk to: unix:///PATH/swarmd.sock or tcp://IP:PORT.
    #[arg(long, global = true, env = "SWARM_HOST", default_value = DEFAULT_HOST, help_heading = GLOBAL_OPTIONS)]
    pub host: String,
    /// For tcp:// hosts: the directory with the certificate to present (a manager's
    /// `<state-dir>/certificates`; default /var/lib/shoal/certificates when it exists).
    #[arg(long, global = true, env = "SWARM_CERT_DIR", help_heading = GLOBAL_OPTIONS)]
    pub cert_dir: Option<std::path::PathBuf>,
    /// For tcp:// hosts: plain gRPC, for clusters made with `swarmd --insecure-plaintext`.
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS)]
    pub insecure_plaintext: bool,
    /// Output format (default: table; `inspect` prints JSON unless given `--format table`).
    #[arg(long, global = true, value_enum, help_heading = GLOBAL_OPTIONS)]
    pub format: Option<Format>,
    /// Linearizable reads: the manager confirms with a quorum that its answer holds every
    /// write acknowledged before the command (raft read index), or fails. Without it, a
    /// manager answers from its own store, which may lag the leader.
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS)]
    pub consistent: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Command families.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cluster-wide information and join tokens.
    #[command(subcommand)]
    Swarm(swarm::SwarmCmd),
    /// Manage nodes.
    #[command(subcommand)]
    Node(node::NodeCmd),
    /// Manage services.
    #[command(subcommand)]
    Service(service::ServiceCmd),
    /// Manage networks.
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// Inspect tasks.
    #[command(subcommand)]
    Task(task::TaskCmd),
    /// Manage secrets (stored in the managers' raft log; never shown back).
    #[command(subcommand)]
    Secret(data::DataCmd),
    /// Manage configs.
    #[command(subcommand)]
    Config(data::DataCmd),
    /// Manage the nodes' images (list, pull, remove, prune, load).
    #[command(subcommand)]
    Image(image::ImageCmd),
    /// A cluster of network namespaces on this machine, every node a real swarmd.
    #[command(subcommand)]
    Lab(lab::LabCmd),
}

/// What every command works with.
pub struct Ctx {
    /// The Control API.
    pub client: client::Control,
    /// How to reach other managers (`service logs -f` fails over to them); `None`: only
    /// `client`.
    pub dial: Option<client::ClientConfig>,
    /// `--format`, `None` when not given (inspect commands tell that apart from `table`).
    pub format: Option<Format>,
    /// Where results go (errors go to stderr).
    pub out: Out,
}

impl Ctx {
    /// Whether `--format json` was given.
    pub fn json(&self) -> bool {
        self.format == Some(Format::Json)
    }

    /// Whether an `inspect` prints its readable view: with `--pretty` or an explicit
    /// `--format table`; JSON otherwise, as Docker's inspect does by default.
    pub fn readable(&self, pretty: bool) -> bool {
        match self.format {
            Some(Format::Json) => false,
            Some(Format::Table) => true,
            None => pretty,
        }
    }
}

impl Ctx {
    /// Node id → hostname, for the NODE columns and log prefixes.
    pub async fn hostnames(
        &mut self,
    ) -> Result<std::collections::HashMap<String, String>, tonic::Status> {
        let nodes = self
            .client
            .list_nodes(shoal_proto::pb::Empty {})
            .await?
            .into_inner()
            .nodes;
        Ok(nodes.into_iter().map(|n| (n.id, n.hostname)).collect())
    }
}

/// Marks an error whose details were already printed (one `Error:` line per failed argument of
/// `rm a b c`); the binary only has to exit 1.
#[derive(Debug)]
pub struct AlreadyReported;

impl std::fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("some operations failed")
    }
}

impl std::error::Error for AlreadyReported {}

/// Runs the parsed command line against the manager named by `--host`.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // The lab verbs drive namespaces on this machine: no manager to connect to.
    if let Command::Lab(c) = cli.command {
        return lab::run(c, cli.format.unwrap_or(Format::Table)).await;
    }
    let cfg = client::ClientConfig {
        cert_dir: cli.cert_dir.clone(),
        plaintext: cli.insecure_plaintext,
        consistent: cli.consistent,
        ..Default::default()
    };
    // Membership: the node's own NodeLifecycle, served whether it is in a swarm or not.
    if let Command::Swarm(c) = cli.command {
        match c {
            swarm::SwarmCmd::Init(a) => return membership::init(&cli.host, &cfg, a).await,
            swarm::SwarmCmd::Join(a) => return membership::join(&cli.host, &cfg, a).await,
            swarm::SwarmCmd::Leave { force } => {
                return membership::leave(&cli.host, &cfg, force).await
            }
            c => return run_connected(&cli.host, cfg, cli.format, Command::Swarm(c)).await,
        }
    }
    run_connected(&cli.host, cfg, cli.format, cli.command).await
}

/// Connects to the Control API at `host` and runs `command`.
async fn run_connected(
    host: &str,
    cfg: client::ClientConfig,
    format: Option<Format>,
    command: Command,
) -> anyhow::Result<()> {
    let client = client::connect_control(host, &cfg).await?;
    let mut ctx = Ctx {
        client,
        dial: Some(cfg),
        format,
        out: Out::stdout(),
    };
    dispatch(&mut ctx, command).await
}

/// Runs one command with an existing context.
pub async fn dispatch(ctx: &mut Ctx, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Swarm(c) => swarm::run(ctx, c).await,
        Command::Node(c) => node::run(ctx, c).await,
        Command::Service(c) => service::run(ctx, c).await,
        Command::Network(c) => network::run(ctx, c).await,
        Command::Task(c) => task::run(ctx, c).await,
        Command::Secret(c) => data::run(ctx, data::Kind::Secret, c).await,
        Command::Config(c) => data::run(ctx, data::Kind::Config, c).await,
        Command::Image(c) => image::run(ctx, c).await,
        Command::Lab(c) => lab::run(c, ctx.format.unwrap_or(Format::Table)).await,
    }
}

/// Collects the failures of a command applied to several arguments: each is printed at once as
/// `Error: …` (Docker does the same), and the command fails at the end if any did.
#[derive(Debug, Default)]
pub struct Failures(usize);

impl Failures {
    /// Records `r`'s error, if any, and passes its value on.
    pub fn check<T>(&mut self, r: anyhow::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("Error: {e:#}");
                self.0 += 1;
                None
            }
        }
    }

    /// How many failed so far.
    pub fn count(&self) -> usize {
        self.0
    }

    /// `Err(AlreadyReported)` if anything failed.
    pub fn finish(self) -> anyhow::Result<()> {
        if self.0 == 0 {
            Ok(())
        } else {
            Err(AlreadyReported.into())
        }
    }
}
