//! `swarmctl service logs SERVICE|TASK`.

use super::Ctx;
use crate::client::status_error;
use serde_json::json;
use shoal_proto::pb;
use std::collections::HashMap;

/// Prints the logs of a service's tasks (or of one task) as `web.1.abc@node1    | line`; task
/// stderr goes to stderr, and nodes that could not answer are reported on stderr.
pub async fn run(ctx: &mut Ctx, tail: u32, target: &str) -> anyhow::Result<()> {
    let by_service = pb::LogsRequest {
        service: target.to_string(),
        task: String::new(),
        tail,
    };
    let resp = match ctx.client.service_logs(by_service).await {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::NotFound => {
            let by_task = pb::LogsRequest {
                service: String::new(),
                task: target.to_string(),
                tail,
            };
            match ctx.client.service_logs(by_task).await {
                Ok(r) => r.into_inner(),
                Err(s) if s.code() == tonic::Code::NotFound => {
                    anyhow::bail!("no service or task {target}: see `swarmctl service ls` and `swarmctl service ps SERVICE`")
                }
                Err(s) => return Err(status_error(s)),
            }
        }
        Err(s) => return Err(status_error(s)),
    };
    let hostnames: HashMap<String, String> = ctx.hostnames().await.map_err(status_error)?;
    if ctx.json() {
        let lines: Vec<_> = resp
            .lines
            .iter()
            .map(|l| {
                json!({
                    "task_id": l.task_id,
                    "task_name": l.task_name,
                    "node_id": l.node_id,
                    "node": hostnames.get(&l.node_id).cloned().unwrap_or_else(|| l.node_id.clone()),
                    "stream": l.stream,
                    "data": String::from_utf8_lossy(&l.data),
                })
            })
            .collect();
        ctx.out
            .json(&json!({ "lines": lines, "errors": resp.errors }));
        return Ok(());
    }
    for (stream, text) in render(&resp.lines, &hostnames) {
        if stream == "stderr" {
            eprintln!("{text}");
        } else {
            ctx.out.line(&text);
        }
    }
    for e in &resp.errors {
        eprintln!("error: {e}");
    }
    Ok(())
}

/// `(stream, line)` pairs, each line prefixed with `task@node` padded to a common width, the
/// way `docker service logs` aligns them.
pub fn render(lines: &[pb::LogLine], hostnames: &HashMap<String, String>) -> Vec<(String, String)> {
    let prefix = |l: &pb::LogLine| {
        let task = if l.task_name.is_empty() {
            l.task_id.as_str()
        } else {
            l.task_name.as_str()
        };
        let node = hostnames
            .get(&l.node_id)
            .map(String::as_str)
            .unwrap_or(l.node_id.as_str());
        format!("{task}@{node}")
    };
    let width = lines
        .iter()
        .map(|l| prefix(l).chars().count())
        .max()
        .unwrap_or(0);
    let mut out = Vec::new();
    for l in lines {
        let p = prefix(l);
        let data = String::from_utf8_lossy(&l.data);
        let data = data.strip_suffix('\n').unwrap_or(&data);
        for text in data.split('\n') {
            let text = text.strip_suffix('\r').unwrap_or(text);
            out.push((l.stream.clone(), format!("{p:<width$}    | {text}")));
        }
    }
    out
}
