//! `swarmctl lab ls`: every lab under the lab directory and whether it runs.

use super::state::{self, LabDir};
use super::{health, Printer};
use crate::ctl::output::Table;
use serde_json::json;

/// Runs `lab ls`. Needs no root: it only reads files and `/proc`.
pub fn ls(p: &mut Printer) -> anyhow::Result<()> {
    let root = state::root();
    let mut rows = Vec::new();
    for name in state::list(&root) {
        let dir = LabDir::new(&root, &name);
        let file = dir.load().ok().flatten();
        let h = health(&dir, file.as_ref());
        rows.push((name, dir, file, h));
    }
    if p.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(name, dir, file, h)| {
                let (m, w) = file.as_ref().map(|f| f.counts()).unwrap_or((0, 0));
                json!({
                    "name": name,
                    "dir": dir.dir,
                    "status": h.to_string(),
                    "running": *h == super::Health::Running,
                    "managers": m,
                    "workers": w,
                    "subnet": file.as_ref().map(|f| f.subnet.to_string()),
                    "nodes": file.as_ref().map(|f| &f.nodes),
                    "host_endpoint": file.as_ref().map(|f| &f.host_endpoint),
                })
            })
            .collect();
        p.out.json(&json!(v));
        return Ok(());
    }
    let mut t = Table::new(&["NAME", "NODES", "SUBNET", "STATUS"]);
    for (name, _, file, h) in &rows {
        let (nodes, subnet) = match file {
            Some(f) => {
                let (m, w) = f.counts();
                (
                    format!("{} ({})", m + w, plural_counts(m, w)),
                    f.subnet.to_string(),
                )
            }
            None => (String::new(), String::new()),
        };
        t.row(vec![name.clone(), nodes, subnet, h.to_string()]);
    }
    p.out.print(&t.render());
    Ok(())
}

/// `3 managers, 1 worker`.
pub fn plural_counts(managers: usize, workers: usize) -> String {
    let s = |n: usize| if n == 1 { "" } else { "s" };
    format!(
        "{managers} manager{}, {workers} worker{}",
        s(managers),
        s(workers)
    )
}
