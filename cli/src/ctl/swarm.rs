//! `swarmctl swarm inspect | join-token | update | ca | unlock | unlock-key` (and `init | join |
//! leave`, in [`super::membership`]).

use super::{json, output, Ctx};
use crate::client::RpcResultExt;
use crate::BadInput;
use clap::{Subcommand, ValueEnum};
use serde_json::json;
use shoal_proto::pb;

/// `swarm` subcommands.
#[derive(Debug, Subcommand)]
pub enum SwarmCmd {
    /// Make a new swarm with this node (its swarmd started with `--idle`, or after `swarm
    /// leave`) as its only manager.
    Init(super::membership::InitArgs),
    /// Join this node (in no swarm) to a swarm as a worker or manager (the token says which).
    Join(super::membership::JoinArgs),
    /// Take this node out of its swarm: its tasks stop and it forgets the swarm. A manager
    /// needs --force.
    Leave {
        /// Leave even as a manager (the last one erases the swarm).
        #[arg(short, long)]
        force: bool,
    },
    /// Show the cluster: id, raft leader and term, node counts, address pool.
    Inspect,
    /// Show (or rotate) the token a new node needs to join.
    JoinToken {
        /// Which kind of node the token admits.
        #[arg(value_enum)]
        role: Role,
        /// Replace the token; the old one stops working (nodes already joined are unaffected).
        #[arg(long)]
        rotate: bool,
        /// Print only the token.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Change cluster settings.
    Update {
        /// Validity of node certificates issued from now on (e.g. 2160h, 90d; at least 10s);
        /// nodes renew at 50–80 % of it.
        #[arg(long, value_parser = parse_expiry)]
        cert_expiry: Option<std::time::Duration>,
        /// Lock managers when they restart: their raft data key is then wrapped under an
        /// unlock key (printed) that `swarmctl swarm unlock` must supply after each restart.
        #[arg(
            long,
            value_name = "true|false",
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true"
        )]
        autolock: Option<bool>,
    },
    /// Unlock a manager restarted while autolock is on. Reads the unlock key from the terminal
    /// (not echoed) or from standard input; it is never taken as an argument.
    Unlock,
    /// Show the unlock key of an autolocked swarm, or rotate it.
    UnlockKey {
        /// Make a new unlock key; every manager re-wraps its key under it, and the old key no
        /// longer unlocks.
        #[arg(long)]
        rotate: bool,
        /// Print only the key.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show the root CA, or rotate it.
    Ca {
        /// Make a new root CA. Certificates of the old root keep working (the new root is
        /// cross-signed by the old) until every node has renewed; join tokens change.
        #[arg(long)]
        rotate: bool,
    },
}

fn parse_expiry(s: &str) -> Result<std::time::Duration, BadInput> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 90d, 2160h, 30m, 60s"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" | "" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("invalid duration {s:?}: unit must be s, m, h or d").into()),
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// Node kinds a join token admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Runs tasks.
    Worker,
    /// Runs tasks and is a raft member.
    Manager,
}

/// Runs a `swarm` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: SwarmCmd) -> anyhow::Result<()> {
    match cmd {
        SwarmCmd::Init(_) | SwarmCmd::Join(_) | SwarmCmd::Leave { .. } => {
            anyhow::bail!("swarm init|join|leave are run by ctl::run before connecting")
        }
        SwarmCmd::Inspect => inspect(ctx).await,
        SwarmCmd::JoinToken {
            role,
            rotate,
            quiet,
        } => join_token(ctx, role, rotate, quiet).await,
        SwarmCmd::Update {
            cert_expiry,
            autolock,
        } => update(ctx, cert_expiry, autolock).await,
        SwarmCmd::Unlock => {
            let key = read_unlock_key()?;
            unlock(ctx, key).await
        }
        SwarmCmd::UnlockKey { rotate, quiet } => unlock_key(ctx, rotate, quiet).await,
        SwarmCmd::Ca { rotate } => {
            let c = if rotate {
                ctx.client.rotate_ca(pb::Empty {}).await.rpc()?
            } else {
                ctx.client.get_cluster(pb::Empty {}).await.rpc()?
            };
            if ctx.json() {
                ctx.out.json(&json::cluster(&c));
            } else {
                ctx.out.print(&ca_text(&c, rotate));
            }
            Ok(())
        }
    }
}

async fn update(
    ctx: &mut Ctx,
    cert_expiry: Option<std::time::Duration>,
    autolock: Option<bool>,
) -> anyhow::Result<()> {
    if cert_expiry.is_none() && autolock.is_none() {
        anyhow::bail!("nothing to update: pass --cert-expiry or --autolock");
    }
    let was_locked = match autolock {
        Some(true) => ctx.client.get_cluster(pb::Empty {}).await.rpc()?.autolock,
        _ => false,
    };
    let req = pb::UpdateClusterRequest {
        cert_expiry_ms: cert_expiry.map(|e| e.as_millis() as u64).unwrap_or(0),
        autolock,
    };
    let c = ctx.client.update_cluster(req).await.rpc()?;
    if ctx.json() {
        ctx.out.json(&json::cluster(&c));
        return Ok(());
    }
    ctx.out.line("Swarm updated.");
    // As `docker swarm update --autolock=true`: the key is shown when autolock is turned on.
    if autolock == Some(true) && !was_locked {
        let r = ctx
            .client
            .get_unlock_key(pb::UnlockKeyRequest { rotate: false })
            .await
            .rpc()?;
        ctx.out.print(&unlock_key_text(&r.key));
    }
    Ok(())
}

/// The instructions printed with an unlock key (Docker's text).
pub fn unlock_key_text(key: &str) -> String {
    format!(
        "To unlock a swarm manager after it restarts, run the `swarmctl swarm unlock`\n\
         command and provide the following key:\n\n    {key}\n\n\
         Please remember to store this key in a password manager, since without it you\n\
         will not be able to restart the manager.\n"
    )
}

async fn unlock_key(ctx: &mut Ctx, rotate: bool, quiet: bool) -> anyhow::Result<()> {
    let r = ctx
        .client
        .get_unlock_key(pb::UnlockKeyRequest { rotate })
        .await
        .rpc()?;
    let key = zeroize::Zeroizing::new(r.key);
    if ctx.json() {
        ctx.out
            .json(&json!({ "unlock_key": &*key, "rotated": rotate }));
    } else if quiet {
        ctx.out.line(&key);
    } else {
        if rotate {
            ctx.out.line("Successfully rotated manager unlock key.\n");
        }
        ctx.out.print(&unlock_key_text(&key));
    }
    Ok(())
}

/// Sends `key` to the manager (`swarm unlock`). Prints nothing on success, as Docker.
pub async fn unlock(ctx: &mut Ctx, key: zeroize::Zeroizing<String>) -> anyhow::Result<()> {
    ctx.client
        .unlock(pb::UnlockRequest {
            key: key.to_string(),
        })
        .await
        .rpc()?;
    Ok(())
}

/// The unlock key typed at the terminal with echo off (`Please enter unlock key: `), or the
/// first line of standard input when it is not a terminal.
fn read_unlock_key() -> anyhow::Result<zeroize::Zeroizing<String>> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let mut line = zeroize::Zeroizing::new(String::new());
    if stdin.is_terminal() {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        eprint!("Please enter unlock key: ");
        let _ = std::io::stderr().flush();
        let saved = tcgetattr(&stdin)?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet)?;
        let read = stdin.lock().read_line(&mut line);
        let restored = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        read?;
        restored?;
    } else {
        stdin.lock().read_line(&mut line)?;
    }
    let key = zeroize::Zeroizing::new(line.trim().to_string());
    if key.is_empty() {
        anyhow::bail!("no unlock key given: type it, or pipe it on standard input");
    }
    Ok(key)
}

/// The human form of `swarm ca`.
pub fn ca_text(c: &pb::Cluster, rotated: bool) -> String {
    if c.ca_digest.is_empty() {
        return "This cluster runs without TLS (--insecure-plaintext): it has no CA.\n".into();
    }
    let mut out = String::new();
    if rotated {
        out.push_str("Root CA rotated: nodes renew their certificates now; join tokens changed (see `swarmctl swarm join-token`).\n");
    }
    out.push_str(&format!("Root CA digest:       {}\n", c.ca_digest));
    out.push_str(&format!(
        "Certificate expiry:   {}\n",
        output::millis(c.cert_expiry_ms)
    ));
    if c.ca_rotating {
        out.push_str(&format!(
            "Rotation:             in progress, {} node(s) still hold a certificate of the old root\n",
            c.ca_rotation_pending
        ));
    }
    out
}

async fn inspect(ctx: &mut Ctx) -> anyhow::Result<()> {
    let c = ctx.client.get_cluster(pb::Empty {}).await.rpc()?;
    if ctx.json() {
        ctx.out.json(&json::cluster(&c));
        return Ok(());
    }
    ctx.out
        .print(&render_cluster(&c, shoal_proto::model::now_ms()));
    Ok(())
}

/// The human form of `swarm inspect`.
pub fn render_cluster(c: &pb::Cluster, now_ms: i64) -> String {
    let leader = if c.raft_leader.is_empty() {
        "(none: no quorum?)"
    } else {
        c.raft_leader.as_str()
    };
    let created = match output::ago(now_ms, c.created_ms) {
        s if s.is_empty() => String::new(),
        s => format!("Created:              {s}\n"),
    };
    format!(
        "ID:                   {}\n{created}\
         Managers:             {}\n\
         Workers:              {}\n\
         Raft:\n \
         Leader:              {leader}\n \
         Term:                {}\n \
         Last applied index:  {}\n\
         Heartbeat period:     {}\n\
         Default address pool: {} (subnets of /{})\n\
         Root CA digest:       {}\n\
         Certificate expiry:   {}\n\
         Autolock:             {}\n",
        c.id,
        c.managers,
        c.workers,
        c.raft_term,
        c.raft_last_applied,
        output::millis(c.heartbeat_period_ms),
        c.default_addr_pool,
        c.subnet_size,
        if c.ca_digest.is_empty() {
            "(no TLS)"
        } else {
            c.ca_digest.as_str()
        },
        output::millis(c.cert_expiry_ms),
        c.autolock,
    )
}

async fn join_token(ctx: &mut Ctx, role: Role, rotate: bool, quiet: bool) -> anyhow::Result<()> {
    let pb_role = match role {
        Role::Worker => pb::NodeRole::Worker,
        Role::Manager => pb::NodeRole::Manager,
    };
    let r = ctx
        .client
        .get_join_token(pb::JoinTokenRequest {
            role: pb_role as i32,
            rotate,
        })
        .await
        .rpc()?;
    let word = match role {
        Role::Worker => "worker",
        Role::Manager => "manager",
    };
    if ctx.json() {
        ctx.out.json(&json!({ "role": word, "token": r.token, "manager_addr": r.manager_addr, "rotated": rotate }));
    } else if quiet {
        ctx.out.line(&r.token);
    } else {
        if rotate {
            ctx.out
                .line(&format!("Successfully rotated {word} join token.\n"));
        }
        ctx.out.print(&join_text(word, &r));
    }
    Ok(())
}

/// The instructions `swarm join-token` prints.
pub fn join_text(word: &str, r: &pb::JoinTokenResponse) -> String {
    let addr = if r.manager_addr.is_empty() {
        "<manager-ip>:2377"
    } else {
        r.manager_addr.as_str()
    };
    format!(
        "To add a {word} to this swarm, run the following command:\n\n    \
         swarmd --join {addr} --token {} --state-dir DIR --listen-addr IP:PORT\n",
        r.token
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_instructions() {
        let r = pb::JoinTokenResponse {
            token: "SWMTKN-1-abc-def".into(),
            manager_addr: "10.0.0.1:2377".into(),
        };
        assert_eq!(
            join_text("worker", &r),
            "To add a worker to this swarm, run the following command:\n\n    \
             swarmd --join 10.0.0.1:2377 --token SWMTKN-1-abc-def --state-dir DIR --listen-addr IP:PORT\n"
        );
    }

    #[test]
    fn cluster_summary() {
        let c = pb::Cluster {
            id: "c1".into(),
            raft_leader: "manager1".into(),
            managers: 3,
            workers: 2,
            heartbeat_period_ms: 500,
            ..Default::default()
        };
        let s = render_cluster(&c, 0);
        assert!(s.contains("Leader:              manager1\n"), "{s}");
        assert!(s.contains("Managers:             3\n"), "{s}");
        assert!(s.contains("Heartbeat period:     500ms\n"), "{s}");
    }
}
