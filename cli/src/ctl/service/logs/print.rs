//! How log lines are printed, as `docker service logs` prints them:
//! `[TIMESTAMP ]web.1.abcdefabcdef@worker1    | the line` (stderr lines on stderr), or only
//! `[TIMESTAMP ]the line` with `--raw`.

use crate::ctl::time::rfc3339_nano;
use shoal_proto::pb;
use std::collections::HashMap;

/// Printing options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// `-t`.
    pub timestamps: bool,
    /// `--raw`.
    pub raw: bool,
    /// `--no-task-ids`.
    pub no_task_ids: bool,
    /// `--no-trunc`.
    pub no_trunc: bool,
}

/// How many characters of a task id Docker shows.
const SHORT_ID: usize = 12;

/// The task's name as shown: `service.slot.id` with the id cut to 12 characters (whole with
/// `no_trunc`, none with `no_task_ids`).
pub fn task_name(l: &pb::LogLine, style: &Style) -> String {
    if l.task_name.is_empty() {
        return l.task_id.clone();
    }
    let base = l
        .task_name
        .strip_suffix(&format!(".{}", l.task_id))
        .filter(|_| !l.task_id.is_empty());
    match base {
        Some(base) if style.no_task_ids => base.to_string(),
        Some(base) if !style.no_trunc => {
            let short: String = l.task_id.chars().take(SHORT_ID).collect();
            format!("{base}.{short}")
        }
        _ => l.task_name.clone(),
    }
}

/// Turns lines into text, keeping the prefixes aligned as they come.
#[derive(Debug, Clone, Default)]
pub struct Printer {
    /// Options.
    pub style: Style,
    /// Node id → host name.
    pub hosts: HashMap<String, String>,
    /// The widest prefix so far.
    pub width: usize,
}

impl Printer {
    /// `task@node` of `l`.
    pub fn prefix(&self, l: &pb::LogLine) -> String {
        let node = self.hosts.get(&l.node_id).unwrap_or(&l.node_id);
        format!("{}@{node}", task_name(l, &self.style))
    }

    /// Widens the prefix column to fit every line of `lines`.
    pub fn fit(&mut self, lines: &[pb::LogLine]) {
        for l in lines {
            self.width = self.width.max(self.prefix(l).chars().count());
        }
    }

    /// The text of `l` (one line per piece of it between newlines).
    pub fn text(&mut self, l: &pb::LogLine) -> Vec<String> {
        let p = self.prefix(l);
        self.width = self.width.max(p.chars().count());
        let width = self.width;
        let ts = if self.style.timestamps {
            format!("{} ", rfc3339_nano(l.timestamp_ms))
        } else {
            String::new()
        };
        let data = String::from_utf8_lossy(&l.data);
        let data = data.strip_suffix('\n').unwrap_or(&data);
        data.split('\n')
            .map(|t| {
                let t = t.strip_suffix('\r').unwrap_or(t);
                if self.style.raw {
                    format!("{ts}{t}")
                } else {
                    format!("{ts}{p:<width$}    | {t}")
                }
            })
            .collect()
    }
}

/// `(stream, text)` for `lines`, prefixes aligned over all of them (the way a plain
/// `service logs` prints).
pub fn render(
    lines: &[pb::LogLine],
    hosts: &HashMap<String, String>,
    style: Style,
) -> Vec<(String, String)> {
    let mut p = Printer {
        style,
        hosts: hosts.clone(),
        width: 0,
    };
    p.fit(lines);
    lines
        .iter()
        .flat_map(|l| {
            let stream = l.stream.clone();
            p.text(l).into_iter().map(move |t| (stream.clone(), t))
        })
        .collect()
}

/// A line as `--format json` shows it.
pub fn json(l: &pb::LogLine, hosts: &HashMap<String, String>) -> serde_json::Value {
    serde_json::json!({
        "task_id": l.task_id,
        "task_name": l.task_name,
        "node_id": l.node_id,
        "node": hosts.get(&l.node_id).cloned().unwrap_or_else(|| l.node_id.clone()),
        "stream": l.stream,
        "timestamp": rfc3339_nano(l.timestamp_ms),
        "data": String::from_utf8_lossy(&l.data),
    })
}
