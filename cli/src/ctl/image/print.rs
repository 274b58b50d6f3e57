//! What `swarmctl image …` prints, from the managers' per-node reports (pure, for tests).

use crate::ctl::output::{natural_cmp, Table};
use serde_json::{json, Value};
use shoal_proto::pb;

/// `image ls`'s flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct LsOptions {
    /// Image ids only.
    pub quiet: bool,
    /// A DIGEST column.
    pub digests: bool,
    /// Full ids.
    pub no_trunc: bool,
}

/// `nginx:1` → (`nginx`, `1`, ``); `localhost:5000/app@sha256:…` → (`localhost:5000/app`,
/// `<none>`, `sha256:…`); as `docker images` splits a name into REPOSITORY and TAG.
pub fn split_reference(r: &str) -> (String, String, String) {
    let (name, digest) = match r.split_once('@') {
        Some((n, d)) => (n, d.to_string()),
        None => (r, String::new()),
    };
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (
            name[..slash + i].to_string(),
            name[slash + i + 1..].to_string(),
            digest,
        ),
        None => (name.to_string(), "<none>".into(), digest),
    }
}

/// Docker's `units.HumanSize`: decimal units, three significant digits (`1.23MB`, `142MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    // %.3g: three significant digits, trailing zeros dropped.
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[unit])
}

/// An image id as `docker images` shows it: 12 hex digits, or the whole `sha256:…`.
fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        return id.to_string();
    }
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

fn nodes_sorted(r: &pb::ImageReport) -> Vec<&pb::ImageNodeReport> {
    let mut nodes: Vec<&pb::ImageNodeReport> = r.nodes.iter().collect();
    nodes.sort_by(|a, b| natural_cmp(&a.hostname, &b.hostname));
    nodes
}

fn in_use(users: &[String]) -> String {
    match users {
        [] => "-".into(),
        [u] if u.is_empty() => "yes".into(),
        us => us
            .iter()
            .map(|u| {
                if u.is_empty() {
                    "(container)"
                } else {
                    u.as_str()
                }
            })
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// `image ls`: one row per name of each image per node (an unnamed image: one `<none>` row).
pub fn ls(r: &pb::ImageReport, o: LsOptions) -> String {
    if o.quiet {
        let mut seen = std::collections::HashSet::new();
        let mut s = String::new();
        for n in nodes_sorted(r) {
            for i in &n.images {
                let id = short_id(&i.id, o.no_trunc);
                if seen.insert(id.clone()) {
                    s.push_str(&id);
                    s.push('\n');
                }
            }
        }
        return s;
    }
    let mut header = vec!["NODE", "REPOSITORY", "TAG"];
    if o.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "SIZE", "IN USE BY"]);
    let mut t = Table::new(&header);
    for n in nodes_sorted(r) {
        let mut rows: Vec<Vec<String>> = Vec::new();
        for i in &n.images {
            let names: Vec<(String, String, String)> = if i.references.is_empty() {
                vec![("<none>".into(), "<none>".into(), String::new())]
            } else {
                i.references.iter().map(|r| split_reference(r)).collect()
            };
            for (repo, tag, digest) in names {
                let mut row = vec![n.hostname.clone(), repo, tag];
                if o.digests {
                    let d = if digest.is_empty() {
                        i.digest.clone()
                    } else {
                        digest
                    };
                    row.push(if d.is_empty() { "<none>".into() } else { d });
                }
                row.extend([
                    short_id(&i.id, o.no_trunc),
                    human_size(i.size),
                    in_use(&i.used_by),
                ]);
                rows.push(row);
            }
        }
        rows.sort_by(|a, b| natural_cmp(&a[1], &b[1]).then_with(|| natural_cmp(&a[2], &b[2])));
        for row in rows {
            t.row(row);
        }
    }
    t.render()
}

/// `image pull`: a line per node that has the image now.
pub fn pulled(r: &pb::ImageReport) -> String {
    let mut s = String::new();
    for n in nodes_sorted(r) {
        for i in n.images.iter().filter(|_| n.error.is_empty()) {
            let name = i.references.first().cloned().unwrap_or_default();
            s.push_str(&format!(
                "{}: {name}: Pull complete\n{}: Digest: {}\n{}: Image ID: {} ({})\n",
                n.hostname,
                n.hostname,
                i.digest,
                n.hostname,
                short_id(&i.id, false),
                human_size(i.size)
            ));
        }
    }
    s
}

/// `image rm` (Docker's `Untagged:` / `Deleted:` lines per node) and `image prune` (the
/// same in lowercase, then the total reclaimed).
pub fn removed(r: &pb::ImageReport, prune: bool) -> String {
    let mut s = String::new();
    let (untagged, deleted) = if prune {
        ("untagged", "deleted")
    } else {
        ("Untagged", "Deleted")
    };
    let mut total = 0;
    for n in nodes_sorted(r) {
        total += n.reclaimed;
        for d in &n.deleted {
            if !d.untagged.is_empty() {
                s.push_str(&format!("{}: {untagged}: {}\n", n.hostname, d.untagged));
            }
            if !d.deleted.is_empty() {
                s.push_str(&format!("{}: {deleted}: {}\n", n.hostname, d.deleted));
            }
        }
    }
    if prune {
        if !s.is_empty() {
            s = format!("Deleted Images:\n{s}\n");
        }
        s.push_str(&format!("Total reclaimed space: {}\n", human_size(total)));
    }
    s
}

/// `image load`: Docker's `Loaded image: NAME` (`Loaded image ID: sha256:…` when unnamed).
pub fn loaded(r: &pb::ImageReport) -> String {
    let mut s = String::new();
    for n in nodes_sorted(r) {
        for i in &n.images {
            if i.references.is_empty() {
                s.push_str(&format!("Loaded image ID: {}\n", i.id));
            }
            for name in &i.references {
                s.push_str(&format!("Loaded image: {name}\n"));
            }
        }
    }
    s
}

/// Each node's failures: `NODE: message` (a node's own error, and `rm`'s per-image ones).
pub fn errors(r: &pb::ImageReport) -> Vec<String> {
    let mut out = Vec::new();
    for n in nodes_sorted(r) {
        if !n.error.is_empty() {
            out.push(format!("{}: {}", n.hostname, n.error));
        }
        out.extend(n.errors.iter().map(|e| format!("{}: {e}", n.hostname)));
    }
    out
}

/// The report as `--format json` prints it: one object per node.
pub fn json(r: &pb::ImageReport) -> Value {
    let nodes: Vec<Value> = nodes_sorted(r)
        .into_iter()
        .map(|n| {
            let images: Vec<Value> = n
                .images
                .iter()
                .map(|i| {
                    json!({
                        "Id": i.id,
                        "RepoTags": i.references,
                        "Digest": i.digest,
                        "Size": i.size,
                        "UsedBy": i.used_by,
                    })
                })
                .collect();
            let deleted: Vec<Value> = n
                .deleted
                .iter()
                .map(|d| {
                    if d.untagged.is_empty() {
                        json!({ "Deleted": d.deleted })
                    } else {
                        json!({ "Untagged": d.untagged })
                    }
                })
                .collect();
            let mut errors: Vec<String> = n.errors.clone();
            if !n.error.is_empty() {
                errors.insert(0, n.error.clone());
            }
            json!({
                "Node": n.hostname,
                "NodeID": n.node_id,
                "Images": images,
                "Deleted": deleted,
                "SpaceReclaimed": n.reclaimed,
                "Errors": errors,
            })
        })
        .collect();
    Value::Array(nodes)
}
