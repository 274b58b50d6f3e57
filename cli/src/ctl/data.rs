//! `swarmctl secret create | ls | inspect | rm` and `swarmctl config …`, one set of
//! subcommands for both kinds. A secret's data is never shown (the managers never send it);
//! a config's is, base64-encoded in JSON as Docker's `Spec.Data`.

use super::{json, output, parse, Ctx, Failures};
use crate::client::RpcResultExt;
use anyhow::Context as _;
use base64::Engine as _;
use clap::Subcommand;
use serde_json::{json, Value};
use shoal_proto::model::{data_name_ok, MAX_DATA_BYTES, MAX_DATA_NAME};
use shoal_proto::pb;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;

/// `secret` and `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCmd {
    /// Create one from a file, or from stdin with `-`.
    Create {
        /// Label `key=value` (repeatable).
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = parse::label)]
        labels: Vec<(String, String)>,
        /// Its name.
        name: String,
        /// The file holding the data, or `-` for stdin.
        file: String,
    },
    /// List them.
    #[command(alias = "list")]
    Ls {
        /// Print only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show them in detail (JSON, or a summary with --pretty). Never a secret's data.
    Inspect {
        /// Human-readable summary instead of JSON.
        #[arg(long)]
        pretty: bool,
        /// Names, ids or id prefixes.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove them (refused while a service uses one).
    #[command(alias = "remove")]
    Rm {
        /// Names, ids or id prefixes.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Which kind a [`DataCmd`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `swarmctl secret`.
    Secret,
    /// `swarmctl config`.
    Config,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Config => "config",
        }
    }
}

/// What `ls` and `inspect` show of either kind; `data` only for configs.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    id: String,
    name: String,
    labels: HashMap<String, String>,
    digest: String,
    size: u64,
    created_ms: i64,
    updated_ms: i64,
    version: u64,
    data: Option<Vec<u8>>,
}

impl From<pb::SecretInfo> for Shown {
    fn from(s: pb::SecretInfo) -> Self {
        Shown {
            id: s.id,
            name: s.name,
            labels: s.labels,
            digest: s.digest,
            size: s.size,
            created_ms: s.created_ms,
            updated_ms: s.updated_ms,
            version: s.version,
            data: None,
        }
    }
}

impl From<pb::ConfigInfo> for Shown {
    fn from(c: pb::ConfigInfo) -> Self {
        Shown {
            id: c.id,
            name: c.name,
            labels: c.labels,
            digest: c.digest,
            size: c.size,
            created_ms: c.created_ms,
            updated_ms: c.updated_ms,
            version: c.version,
            data: Some(c.data),
        }
    }
}

/// Checks a name as the managers will (Docker's rule), before reading any data.
pub fn check_name(kind: Kind, name: &str) -> anyhow::Result<()> {
    if !data_name_ok(name) {
        anyhow::bail!(
            "invalid {} name {name:?}: only {MAX_DATA_NAME} [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]",
            kind.word()
        );
    }
    Ok(())
}

/// Reads at most one byte more than the limit from `r`, and refuses empty or too large data
/// without quoting it.
pub fn read_data(kind: Kind, from: &str, r: impl Read) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    r.take(MAX_DATA_BYTES as u64 + 1)
        .read_to_end(&mut data)
        .with_context(|| format!("reading {from}"))?;
    if data.is_empty() || data.len() > MAX_DATA_BYTES {
        anyhow::bail!(
            "{} data must be larger than 0 and less than {MAX_DATA_BYTES} bytes ({from} has {})",
            kind.word(),
            if data.is_empty() {
                "none".to_string()
            } else {
                "more".to_string()
            }
        );
    }
    Ok(data)
}

/// Runs a `secret` or `config` subcommand.
pub async fn run(ctx: &mut Ctx, kind: Kind, cmd: DataCmd) -> anyhow::Result<()> {
    match cmd {
        DataCmd::Create { labels, name, file } => {
            check_name(kind, &name)?;
            let data = if file == "-" {
                read_data(kind, "stdin", std::io::stdin().lock())?
            } else {
                let f = std::fs::File::open(&file).with_context(|| format!("opening {file}"))?;
                read_data(kind, &file, f)?
            };
            let req = pb::CreateDataRequest {
                name,
                labels: labels.into_iter().collect(),
                data,
            };
            let shown: Shown = match kind {
                Kind::Secret => ctx.client.create_secret(req).await.rpc()?.into(),
                Kind::Config => ctx.client.create_config(req).await.rpc()?.into(),
            };
            if ctx.json() {
                ctx.out.json(&to_json(&shown));
            } else {
                ctx.out.line(&shown.id);
            }
            Ok(())
        }
        DataCmd::Ls { quiet } => {
            let mut all = list(ctx, kind).await?;
            all.sort_by(|a, b| output::natural_cmp(&a.name, &b.name));
            if ctx.json() {
                ctx.out
                    .json(&Value::Array(all.iter().map(to_json).collect()));
            } else if quiet {
                for s in &all {
                    ctx.out.line(&s.id);
                }
            } else {
                ctx.out.print(&table(&all, shoal_proto::model::now_ms()));
            }
            Ok(())
        }
        DataCmd::Inspect { pretty, names } => {
            let mut failures = Failures::default();
            let mut found = Vec::new();
            for id in names {
                if let Some(s) = failures.check(get(ctx, kind, id).await) {
                    found.push(s);
                }
            }
            if found.is_empty() {
                return failures.finish();
            }
            if ctx.readable(pretty) {
                let now = shoal_proto::model::now_ms();
                let text: Vec<String> = found.iter().map(|s| pretty_text(s, now)).collect();
                ctx.out.print(&text.join("\n"));
            } else {
                ctx.out
                    .json(&Value::Array(found.iter().map(to_json).collect()));
            }
            failures.finish()
        }
        DataCmd::Rm { names } => {
            let mut failures = Failures::default();
            let mut removed = Vec::new();
            for id in names {
                let req = pb::IdRequest { id: id.clone() };
                let r = match kind {
                    Kind::Secret => ctx.client.remove_secret(req).await.rpc(),
                    Kind::Config => ctx.client.remove_config(req).await.rpc(),
                };
                if failures.check(r).is_some() {
                    if !ctx.json() {
                        ctx.out.line(&id);
                    }
                    removed.push(Value::String(id));
                }
            }
            if ctx.json() {
                ctx.out.json(&Value::Array(removed));
            }
            failures.finish()
        }
    }
}

async fn list(ctx: &mut Ctx, kind: Kind) -> anyhow::Result<Vec<Shown>> {
    Ok(match kind {
        Kind::Secret => ctx
            .client
            .list_secrets(pb::Empty {})
            .await
            .rpc()?
            .secrets
            .into_iter()
            .map(Into::into)
            .collect(),
        Kind::Config => ctx
            .client
            .list_configs(pb::Empty {})
            .await
            .rpc()?
            .configs
            .into_iter()
            .map(Into::into)
            .collect(),
    })
}

async fn get(ctx: &mut Ctx, kind: Kind, id: String) -> anyhow::Result<Shown> {
    let req = pb::IdRequest { id };
    Ok(match kind {
        Kind::Secret => ctx.client.get_secret(req).await.rpc()?.into(),
        Kind::Config => ctx.client.get_config(req).await.rpc()?.into(),
    })
}

/// The `ls` table, as Docker's: `ID NAME CREATED UPDATED`, ids in full (as Docker shows them),
/// times relative to `now_ms`.
pub fn table(all: &[Shown], now_ms: i64) -> String {
    let mut t = output::Table::new(&["ID", "NAME", "CREATED", "UPDATED"]);
    for s in all {
        t.row(vec![
            s.id.clone(),
            s.name.clone(),
            output::ago(now_ms, s.created_ms),
            output::ago(now_ms, s.updated_ms),
        ]);
    }
    t.render()
}

/// `inspect --pretty`: metadata, the digest, and a config's data when it is text.
pub fn pretty_text(s: &Shown, now_ms: i64) -> String {
    let mut o = output::KeyValues::new(12);
    o.kv("ID", &s.id);
    o.kv("Name", &s.name);
    if !s.labels.is_empty() {
        let l: BTreeMap<_, _> = s.labels.iter().collect();
        let l: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v}")).collect();
        o.kv("Labels", &l.join(", "));
    }
    o.kv("Digest", &s.digest);
    o.kv("Size", &format!("{} B", s.size));
    o.kv("Created", &output::ago(now_ms, s.created_ms));
    o.kv("Updated", &output::ago(now_ms, s.updated_ms));
    let mut text = o.into_string();
    if let Some(data) = &s.data {
        text.push_str("Data:\n");
        match std::str::from_utf8(data) {
            Ok(t) => {
                text.push_str(t);
                if !t.ends_with('\n') {
                    text.push('\n');
                }
            }
            Err(_) => text.push_str("(binary; see inspect --format json)\n"),
        }
    }
    text
}

/// `--format json` of either kind (a config's data base64-encoded, as Docker's `Spec.Data`).
pub fn to_json(s: &Shown) -> Value {
    let mut v = json!({
        "id": s.id,
        "name": s.name,
        "labels": json::labels(&s.labels),
        "digest": s.digest,
        "size": s.size,
        "created_ms": s.created_ms,
        "updated_ms": s.updated_ms,
        "version": s.version,
    });
    if let Some(d) = &s.data {
        v["data"] = Value::String(base64::engine::general_purpose::STANDARD.encode(d));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_read_within_limits_and_never_quoted() {
        assert_eq!(read_data(Kind::Secret, "f", &b"pw"[..]).unwrap(), b"pw");
        let e = read_data(Kind::Secret, "f", &b""[..]).unwrap_err();
        assert!(e.to_string().contains("larger than 0"), "{e}");
        let big = vec![b'z'; MAX_DATA_BYTES + 10];
        let e = read_data(Kind::Config, "f", &big[..]).unwrap_err();
        assert!(!e.to_string().contains("zzz"), "{e}");
        assert!(check_name(Kind::Secret, "db_pass").is_ok());
        assert!(check_name(Kind::Secret, "db pass").is_err());
    }

    #[test]
    fn secrets_show_no_data_configs_do() {
        let secret: Shown = pb::SecretInfo {
            id: "abcdefghijklmnopqrstuvwxy".into(),
            name: "db".into(),
            digest: "sha256:00".into(),
            size: 2,
            created_ms: 1000,
            updated_ms: 1000,
            ..Default::default()
        }
        .into();
        assert!(to_json(&secret).get("data").is_none());
        assert!(!pretty_text(&secret, 2000).contains("Data"));
        let t = table(&[secret], 61_000);
        assert!(t.starts_with("ID"), "{t}");
        assert!(
            t.contains("CREATED") && t.contains("UPDATED") && t.contains("db"),
            "{t}"
        );
        let config: Shown = pb::ConfigInfo {
            name: "app".into(),
            data: b"listen 80;".to_vec(),
            ..Default::default()
        }
        .into();
        assert_eq!(to_json(&config)["data"], "bGlzdGVuIDgwOw==");
        assert!(pretty_text(&config, 0).contains("listen 80;"));
    }
}
