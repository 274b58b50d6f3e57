//! What `service create|update` say about containers: the runtime, the image's entrypoint,
//! user, working directory, terminal and init overrides, and pinning the image's tag to a
//! digest, as the Docker CLI does.

use super::{parse, Ctx};
use clap::ValueEnum;
use shoal_proto::model::{Runtime, ServiceSpec};
use shoal_proto::pb;
use tonic::Code;

/// `--runtime` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeArg {
    /// An OCI container from IMAGE, pulled from its registry (the default).
    Container,
    /// IMAGE names a program on the nodes, run as a plain process.
    Process,
}

impl From<RuntimeArg> for Runtime {
    fn from(r: RuntimeArg) -> Self {
        match r {
            RuntimeArg::Container => Runtime::Container,
            RuntimeArg::Process => Runtime::Process,
        }
    }
}

/// Container flags `service create` and `service update` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ContainerArgs {
    /// Override the image's ENTRYPOINT, as one shell-quoted string ("" resets to the image's).
    #[arg(long, allow_hyphen_values = true, value_name = "\"CMD\"")]
    pub entrypoint: Option<String>,
    /// Username or UID, with an optional group: name, uid, uid:gid, name:group.
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Allocate a pseudo-terminal (-t, --tty=false to remove it).
    #[arg(short = 't', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub tty: Option<bool>,
    /// Run a minimal init as PID 1 that reaps zombies and forwards signals.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub init: Option<bool>,
    /// Do not ask the registry for the image's digest: each node resolves the tag itself.
    #[arg(long)]
    pub no_resolve_image: bool,
}

impl ContainerArgs {
    /// Applies the flags that were given to `spec`.
    pub fn apply(&self, spec: &mut ServiceSpec) -> anyhow::Result<()> {
        if let Some(e) = &self.entrypoint {
            spec.entrypoint = parse::shell_words(e)
                .map_err(|why| anyhow::anyhow!("invalid --entrypoint {e:?}: {why}"))?;
        }
        if let Some(u) = &self.user {
            spec.user = u.clone();
        }
        if let Some(w) = &self.workdir {
            if !w.is_empty() && !w.starts_with('/') {
                anyhow::bail!(
                    "invalid --workdir {w:?}: the working directory must be an absolute path"
                );
            }
            spec.workdir = w.clone();
        }
        if let Some(t) = self.tty {
            spec.tty = t;
        }
        if let Some(i) = self.init {
            spec.init = i;
        }
        Ok(())
    }
}

/// Pins `spec.image` to the digest its registry gives it now (unless the spec is a process, is
/// pinned already, or `--no-resolve-image`). A registry that cannot be asked is not an error:
/// the Docker CLI's warning is printed and each node resolves the tag itself. An image
/// reference that does not parse is.
pub async fn pin(ctx: &mut Ctx, spec: &mut ServiceSpec, no_resolve: bool) -> anyhow::Result<()> {
    if spec.runtime != Runtime::Container || no_resolve || !spec.image_digest.is_empty() {
        return Ok(());
    }
    let req = pb::ResolveImageRequest {
        image: spec.image.clone(),
    };
    match ctx.client.resolve_image(req).await {
        Ok(r) => spec.image_digest = r.into_inner().digest,
        Err(s) if s.code() == Code::InvalidArgument => anyhow::bail!("{}", s.message()),
        Err(s) => {
            tracing::debug!(error = %s.message(), "image digest not resolved");
            let image = &spec.image;
            eprintln!(
                "image {image} could not be accessed on a registry to record\n\
                 its digest. Each node will access {image} independently,\n\
                 possibly leading to different nodes running different\n\
                 versions of the image.\n({})",
                s.message()
            );
        }
    }
    Ok(())
}
