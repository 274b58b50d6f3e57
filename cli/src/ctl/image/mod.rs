//! `swarmctl image ls | pull | rm | prune | load`: each node's image store, as `docker image …`
//! shows one host's. The managers relay every call to the nodes' agents; a node is named by
//! hostname, id or unique id prefix, and no `--node` means every ready node (`load` needs one).
//! Each node answers for itself: its failure is printed as `Error: NODE: …` and makes the
//! command exit 1, the other nodes' results are printed anyway.

mod print;
#[cfg(test)]
mod tests;

pub use print::{human_size, split_reference};

use super::{Ctx, Failures};
use crate::client::RpcResultExt;
use clap::Subcommand;
use shoal_proto::pb;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

/// Bytes per chunk of `image load`'s stream.
pub const LOAD_CHUNK: usize = 256 * 1024;

/// `image` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// List the images of the nodes' stores.
    #[command(alias = "list")]
    Ls {
        /// Only this node's (hostname, id or id prefix; default: every ready node).
        #[arg(long)]
        node: Option<String>,
        /// Print only image ids.
        #[arg(short, long)]
        quiet: bool,
        /// Show the manifest digests.
        #[arg(long)]
        digests: bool,
        /// Do not truncate ids.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Pull an image from its registry (or the node's mirror for it) into the nodes' stores.
    Pull {
        /// Only onto this node (default: every ready node).
        #[arg(long)]
        node: Option<String>,
        /// The image (`shoal/busybox:1`, `registry:5000/app@sha256:…`).
        image: String,
    },
    /// Remove images from the nodes' stores (an image a task uses is refused).
    #[command(alias = "remove", alias = "rmi")]
    Rm {
        /// Only from this node (default: every ready node).
        #[arg(long)]
        node: Option<String>,
        /// Remove a name of an image in use when the image keeps another name, and an image
        /// by id although several names point at it. An image a task uses is never deleted.
        #[arg(short, long)]
        force: bool,
        /// Image names or ids.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove images no task uses (by default only the unnamed ones).
    Prune {
        /// Only on this node (default: every ready node).
        #[arg(long)]
        node: Option<String>,
        /// Remove every image no task uses, not only the unnamed ones.
        #[arg(short, long)]
        all: bool,
    },
    /// Load images from a `docker save` or OCI layout tar (gzip allowed) into a node's store.
    Load {
        /// The node (hostname, id or id prefix).
        #[arg(long, required = true)]
        node: String,
        /// Read the archive from this file instead of stdin.
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// Do not print the loaded images.
        #[arg(short, long)]
        quiet: bool,
    },
}

fn request(node: Option<String>, images: Vec<String>) -> pb::ImageRequest {
    pb::ImageRequest {
        node: node.unwrap_or_default(),
        images,
        ..Default::default()
    }
}

/// Runs an `image` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: ImageCmd) -> anyhow::Result<()> {
    let report = match cmd {
        ImageCmd::Ls {
            node,
            quiet,
            digests,
            no_trunc,
        } => {
            let r = ctx.client.list_images(request(node, vec![])).await.rpc()?;
            if !ctx.json() {
                let opts = print::LsOptions {
                    quiet,
                    digests,
                    no_trunc,
                };
                ctx.out.print(&print::ls(&r, opts));
            }
            r
        }
        ImageCmd::Pull { node, image } => {
            let r = ctx
                .client
                .pull_image(request(node, vec![image]))
                .await
                .rpc()?;
            if !ctx.json() {
                ctx.out.print(&print::pulled(&r));
            }
            r
        }
        ImageCmd::Rm {
            node,
            force,
            images,
        } => {
            let mut req = request(node, images);
            req.force = force;
            let r = ctx.client.remove_image(req).await.rpc()?;
            if !ctx.json() {
                ctx.out.print(&print::removed(&r, false));
            }
            r
        }
        ImageCmd::Prune { node, all } => {
            let mut req = request(node, vec![]);
            req.all = all;
            let r = ctx.client.prune_images(req).await.rpc()?;
            if !ctx.json() {
                ctx.out.print(&print::removed(&r, true));
            }
            r
        }
        ImageCmd::Load { node, input, quiet } => {
            let r = load(ctx, node, input).await?;
            if !ctx.json() && !quiet {
                ctx.out.print(&print::loaded(&r));
            }
            r
        }
    };
    if ctx.json() {
        ctx.out.json(&print::json(&report));
    }
    node_errors(&report)
}

/// Each node's errors as `Error: NODE: …`; an error if there was any.
fn node_errors(r: &pb::ImageReport) -> anyhow::Result<()> {
    let mut failures = Failures::default();
    for line in print::errors(r) {
        failures.check::<()>(Err(anyhow::anyhow!(line)));
    }
    failures.finish()
}

/// Streams the archive (`input`, or stdin) to the managers in [`LOAD_CHUNK`]s, the first
/// naming the node.
async fn load(
    ctx: &mut Ctx,
    node: String,
    input: Option<PathBuf>,
) -> anyhow::Result<pb::ImageReport> {
    let reader: Box<dyn Read + Send> = match &input {
        Some(p) => Box::new(
            std::fs::File::open(p).map_err(|e| anyhow::anyhow!("open {}: {e}", p.display()))?,
        ),
        None if std::io::stdin().is_terminal() => {
            anyhow::bail!(
                "requested load from stdin, but stdin is a terminal: use -i FILE or a pipe"
            )
        }
        None => Box::new(std::io::stdin()),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    // A blocking reader feeds the stream; a read error ends it early (the node then refuses
    // the short archive) and is reported here instead of the node's complaint.
    let reading = tokio::task::spawn_blocking(move || read_chunks(reader, node, tx));
    let answer = ctx
        .client
        .load_image(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .rpc();
    let read = reading
        .await
        .map_err(|e| anyhow::anyhow!("reading the archive: {e}"))?;
    let name = input.map_or_else(|| "stdin".to_string(), |p| p.display().to_string());
    read.map_err(|e| anyhow::anyhow!("reading {name}: {e}"))?;
    answer
}

/// Sends `reader`'s bytes as chunks, the first carrying `node` (also when the input is empty).
pub fn read_chunks(
    mut reader: impl Read,
    node: String,
    tx: tokio::sync::mpsc::Sender<pb::ImageLoadChunk>,
) -> std::io::Result<()> {
    let mut node = Some(node);
    loop {
        let mut buf = vec![0u8; LOAD_CHUNK];
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 && node.is_none() {
            return Ok(());
        }
        buf.truncate(n);
        let chunk = pb::ImageLoadChunk {
            node: node.take().unwrap_or_default(),
            data: buf,
        };
        if tx.blocking_send(chunk).is_err() || n == 0 {
            // The call ended (its answer says why), or the input was empty.
            return Ok(());
        }
    }
}
