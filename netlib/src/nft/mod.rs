//! nftables through `nft`'s JSON interface (`nft -j -f -`), the way kube-proxy's nftables mode
//! drives it: a [`Batch`] of commands is built in Rust and applied as one atomic transaction
//! (the kernel commits all of it or nothing). Runs inside a network namespace on a thread that
//! entered it.

pub mod expr;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::netns::NetNs;

/// What went wrong running `nft`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `nft` program is not installed.
    #[error(
        "the nft program was not found: install the nftables package (apt-get install nftables)"
    )]
    Missing,
    /// `nft` refused the transaction; nothing of it was applied.
    #[error("nft {op} failed: {stderr}")]
    Failed {
        /// What was being done (`-j -f -`, `list table ip t`).
        op: String,
        /// What `nft` printed.
        stderr: String,
    },
    /// Running `nft` failed.
    #[error("running nft: {0}")]
    Io(#[from] std::io::Error),
    /// `nft` printed JSON this module does not understand.
    #[error("reading nft's JSON output: {0}")]
    Json(#[from] serde_json::Error),
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] crate::netns::Error),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Address family of a table (`nft add table ip NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `ip`.
    Ip,
    /// `inet`.
    Inet,
}

impl Family {
    /// `ip` or `inet`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Inet => "inet",
        }
    }
}

/// A base chain's hook (`type nat hook prerouting priority dstnat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// `filter`, `nat` or `route`.
    pub ty: &'static str,
    /// `prerouting`, `input`, `forward`, `output`, `postrouting`.
    pub hook: &'static str,
    /// Priority; dstnat = -100, srcnat = 100, mangle = -150, filter = 0.
    pub prio: i32,
}

impl Hook {
    /// `type nat hook prerouting priority dstnat`.
    pub fn nat_prerouting() -> Hook {
        Hook {
            ty: "nat",
            hook: "prerouting",
            prio: -100,
        }
    }
    /// `type nat hook output priority -100`.
    pub fn nat_output() -> Hook {
        Hook {
            ty: "nat",
            hook: "output",
            prio: -100,
        }
    }
    /// `type nat hook postrouting priority srcnat`.
    pub fn nat_postrouting() -> Hook {
        Hook {
            ty: "nat",
            hook: "postrouting",
            prio: 100,
        }
    }
}

/// One transaction: commands in order, applied atomically by [`Nft::apply`]. Each builder
/// method names the `nft` command it stands for.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    cmds: Vec<Value>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// True when there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    fn push(&mut self, verb: &str, obj: &str, body: Value) -> &mut Self {
        self.cmds.push(json!({ verb: { obj: body } }));
        self
    }

    /// `VERB OBJ FAMILY TABLE NAME` for objects named within a table.
    fn named(
        &mut self,
        verb: &str,
        obj: &str,
        family: Family,
        table: &str,
        name: &str,
    ) -> &mut Self {
        self.push(
            verb,
            obj,
            json!({"family": family.as_str(), "table": table, "name": name}),
        )
    }

    /// `add table FAMILY NAME` (no-op when it exists).
    pub fn add_table(&mut self, family: Family, table: &str) -> &mut Self {
        self.push(
            "add",
            "table",
            json!({"family": family.as_str(), "name": table}),
        )
    }

    /// `delete table FAMILY NAME` (fails when absent: add it first in the same batch to make
    /// the pair idempotent, as `nft` scripts do).
    pub fn delete_table(&mut self, family: Family, table: &str) -> &mut Self {
        self.push(
            "delete",
            "table",
            json!({"family": family.as_str(), "name": table}),
        )
    }

    /// `add table; delete table; add table`: the table starts empty in this batch, whether it
    /// was there or not, and the whole batch replaces it atomically.
    pub fn replace_table(&mut self, family: Family, table: &str) -> &mut Self {
        self.add_table(family, table)
            .delete_table(family, table)
            .add_table(family, table)
    }

    /// `add chain FAMILY TABLE NAME { type … hook … priority …; policy accept; }`, or a regular
    /// chain when `hook` is `None` (no-op when it exists).
    pub fn add_chain(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        hook: Option<&Hook>,
    ) -> &mut Self {
        let mut body = json!({"family": family.as_str(), "table": table, "name": chain});
        if let Some(h) = hook {
            body["type"] = json!(h.ty);
            body["hook"] = json!(h.hook);
            body["prio"] = json!(h.prio);
            body["policy"] = json!("accept");
        }
        self.push("add", "chain", body)
    }

    /// `flush chain FAMILY TABLE NAME`.
    pub fn flush_chain(&mut self, family: Family, table: &str, chain: &str) -> &mut Self {
        self.named("flush", "chain", family, table, chain)
    }

    /// `delete chain FAMILY TABLE NAME` (it must be empty and unreferenced).
    pub fn delete_chain(&mut self, family: Family, table: &str, chain: &str) -> &mut Self {
        self.named("delete", "chain", family, table, chain)
    }

    /// `add rule FAMILY TABLE CHAIN EXPR… [comment "…"]`.
    pub fn add_rule(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        exprs: Vec<Value>,
        comment: Option<&str>,
    ) -> &mut Self {
        let mut body =
            json!({"family": family.as_str(), "table": table, "chain": chain, "expr": exprs});
        if let Some(c) = comment {
            body["comment"] = json!(c);
        }
        self.push("add", "rule", body)
    }

    /// `add set FAMILY TABLE NAME { type TYPE; }` (`type` is a string like `ipv4_addr` or an
    /// array for concatenations).
    pub fn add_set(&mut self, family: Family, table: &str, name: &str, ty: Value) -> &mut Self {
        self.push(
            "add",
            "set",
            json!({"family": family.as_str(), "table": table, "name": name, "type": ty}),
        )
    }

    /// `add map FAMILY TABLE NAME { type KEY : VALUE; }` (`value` = `verdict` for a vmap).
    pub fn add_map(
        &mut self,
        family: Family,
        table: &str,
        name: &str,
        key: Value,
        value: &str,
    ) -> &mut Self {
        self.push(
            "add",
            "map",
            json!({"family": family.as_str(), "table": table, "name": name, "type": key, "map": value}),
        )
    }

    /// `add element FAMILY TABLE NAME { ELEM, … }` (map elements are `[key, value]` arrays).
    pub fn add_element(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
        elems: Vec<Value>,
    ) -> &mut Self {
        self.push(
            "add",
            "element",
            json!({"family": family.as_str(), "table": table, "name": set, "elem": elems}),
        )
    }

    /// `delete element FAMILY TABLE NAME { ELEM, … }` (keys only; fails when absent).
    pub fn delete_element(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
        elems: Vec<Value>,
    ) -> &mut Self {
        self.push(
            "delete",
            "element",
            json!({"family": family.as_str(), "table": table, "name": set, "elem": elems}),
        )
    }

    /// `add counter FAMILY TABLE NAME` (a named counter object; no-op when it exists).
    pub fn add_counter(&mut self, family: Family, table: &str, name: &str) -> &mut Self {
        self.named("add", "counter", family, table, name)
    }

    /// `delete counter FAMILY TABLE NAME` (it must be unreferenced).
    pub fn delete_counter(&mut self, family: Family, table: &str, name: &str) -> &mut Self {
        self.named("delete", "counter", family, table, name)
    }

    /// Appends every command of `other`.
    pub fn extend(&mut self, other: Batch) -> &mut Self {
        self.cmds.extend(other.cmds);
        self
    }

    /// The JSON document `nft -j -f -` reads.
    pub fn to_json(&self) -> Value {
        let mut all = vec![json!({"metainfo": {"json_schema_version": 1}})];
        all.extend(self.cmds.iter().cloned());
        json!({ "nftables": all })
    }
}

/// Runs `nft` in one namespace (the caller's own when `None`).
#[derive(Debug, Clone, Default)]
pub struct Nft {
    ns: Option<Arc<NetNs>>,
}

impl Nft {
    /// `nft` in `ns`.
    pub fn new(ns: Option<Arc<NetNs>>) -> Nft {
        Nft { ns }
    }

    /// `nft -j -f -`: applies `batch` as one atomic transaction.
    pub async fn apply(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let input = serde_json::to_vec(&batch.to_json())?;
        self.run(vec!["-j".into(), "-f".into(), "-".into()], Some(input))
            .await
            .map(|_| ())
    }

    /// `nft -j list table FAMILY NAME`; `None` when there is no such table. One `nft` run when
    /// the table exists (the reconcilers' usual case); only when listing it fails is `nft -j
    /// list tables FAMILY` asked whether it exists, rather than reading `nft`'s error text.
    pub async fn list_table(&self, family: Family, table: &str) -> Result<Option<Value>> {
        let args = vec![
            "-j".into(),
            "list".into(),
            "table".into(),
            family.as_str().into(),
            table.into(),
        ];
        let err = match self.run(args, None).await {
            Ok(out) => return Ok(Some(serde_json::from_slice(&out)?)),
            Err(e) => e,
        };
        let args = vec![
            "-j".into(),
            "list".into(),
            "tables".into(),
            family.as_str().into(),
        ];
        let tables: Value = serde_json::from_slice(&self.run(args, None).await?)?;
        if has_table(&tables, table) {
            Err(err)
        } else {
            Ok(None)
        }
    }

    /// `nft -j list ruleset`.
    pub async fn list_ruleset(&self) -> Result<Value> {
        let out = self
            .run(vec!["-j".into(), "list".into(), "ruleset".into()], None)
            .await?;
        Ok(serde_json::from_slice(&out)?)
    }

    /// `nft delete table FAMILY NAME`; absent is not an error.
    pub async fn delete_table(&self, family: Family, table: &str) -> Result<()> {
        let mut b = Batch::new();
        b.add_table(family, table).delete_table(family, table);
        self.apply(&b).await
    }

    async fn run(&self, args: Vec<String>, input: Option<Vec<u8>>) -> Result<Vec<u8>> {
        let work = move || run_nft(&args, input.as_deref());
        match &self.ns {
            Some(ns) => ns.run_async(work).await?,
            None => tokio::task::spawn_blocking(work)
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?,
        }
    }
}

/// Whether `nft -j list tables`'s document names `table`.
fn has_table(doc: &Value, table: &str) -> bool {
    doc.get("nftables")
        .and_then(Value::as_array)
        .is_some_and(|items| {
            items
                .iter()
                .filter_map(|i| i.get("table")?.get("name")?.as_str())
                .any(|name| name == table)
        })
}

/// Runs `nft ARGS…` with `input` on stdin; returns stdout. Blocking: call it on a thread that
/// may block (and that entered the right namespace).
fn run_nft(args: &[String], input: Option<&[u8]>) -> Result<Vec<u8>> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Missing
            } else {
                Error::Io(e)
            }
        })?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(data)?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(Error::Failed {
            op: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr)
                .trim()
                .chars()
                .take(2000)
                .collect(),
        })
    }
}

/// The rules of `chain` in a `nft -j list table` document: each rule's `expr` array and
/// comment, in order.
pub fn rules_of<'a>(doc: &'a Value, chain: &str) -> Vec<(&'a Value, Option<&'a str>)> {
    objects(doc, "rule")
        .filter(|r| r["chain"] == chain)
        .map(|r| (&r["expr"], r["comment"].as_str()))
        .collect()
}

/// Every object of kind `kind` (`table`, `chain`, `rule`, `set`, `map`, `element`) in a
/// `nft -j list …` document.
pub fn objects<'a>(doc: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    doc["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(move |o| o.get(kind))
}

/// Packets counted by the first `counter` statement of a rule's `expr` array.
pub fn counter_packets(exprs: &Value) -> u64 {
    exprs
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|e| {
            e.get("counter")
                .and_then(|c| c.get("packets"))
                .and_then(Value::as_u64)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
