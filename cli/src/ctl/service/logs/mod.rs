//! `swarmctl service logs [-f] [--since T] [-t] [-n N|all] [--raw] SERVICE|TASK`, as Docker's.
//!
//! The lines come in batches (`StreamLogs`) from every node that runs a task of the target;
//! without `-f` they are printed once all came, in the order they were written, prefixes
//! aligned; with `-f` as they come, until interrupted or the service is removed. A follow whose
//! stream breaks (the manager or the leader died) asks again, of the same manager or another
//! one, naming where it was in each task's logs: no line is lost or printed twice.

mod follow;
mod print;

use print::Printer;
pub use print::{render, Style};

use super::Ctx;
use crate::client::status_error;
use crate::ctl::parse::{self, Since, Tail};
use clap::Args;
use serde_json::json;
use shoal_proto::model::now_ms;
use shoal_proto::pb;
use std::io::Write;
use tonic::Streaming;

/// `service logs` flags.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output: print new lines as they are written, from tasks that start later too,
    /// until interrupted (or the service is removed).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show logs since a time: RFC 3339 (2024-05-01T10:00:00Z; no zone: UTC), a Unix timestamp,
    /// or relative (42m for 42 minutes ago, 1h30m).
    #[arg(long, value_name = "TIME", value_parser = parse::since, allow_hyphen_values = true)]
    pub since: Option<Since>,
    /// Show timestamps (when the node saw each line written; RFC 3339, nanosecond digits).
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Number of lines to show from the end of each task's logs, or `all`.
    #[arg(
        short = 'n',
        long,
        value_name = "N|all",
        default_value = "all",
        value_parser = parse::tail,
        allow_hyphen_values = true
    )]
    pub tail: Tail,
    /// Do not neatly format logs: only the lines, without `task@node |`.
    #[arg(long)]
    pub raw: bool,
    /// Do not include task ids in the prefix.
    #[arg(long)]
    pub no_task_ids: bool,
    /// Do not truncate task ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Service name or id, or task id or name.
    pub target: String,
}

impl LogsArgs {
    fn style(&self) -> Style {
        Style {
            timestamps: self.timestamps,
            raw: self.raw,
            no_task_ids: self.no_task_ids,
            no_trunc: self.no_trunc,
        }
    }

    /// The request for these flags, asking for the service `target` names.
    fn request(&self, now_ms: i64) -> pb::LogsRequest {
        pb::LogsRequest {
            service: self.target.clone(),
            task: String::new(),
            tail: self.tail.0.unwrap_or(0),
            follow: self.follow,
            since_ms: self.since.map_or(0, |s| s.at(now_ms).max(1)),
            skip_history: self.tail.0 == Some(0),
            resume: Vec::new(),
        }
    }
}

/// Runs `service logs`.
pub async fn run(ctx: &mut Ctx, args: LogsArgs) -> anyhow::Result<()> {
    let (req, stream) = open(ctx, args.request(now_ms())).await?;
    let hosts = ctx.hostnames().await.map_err(status_error)?;
    let mut printer = Printer {
        style: args.style(),
        hosts,
        width: 0,
    };
    if args.follow {
        return follow::run(ctx, req, stream, &mut printer).await;
    }
    let mut stream = stream;
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    while let Some(b) = stream.message().await.map_err(status_error)? {
        lines.extend(b.lines);
        errors.extend(b.errors);
    }
    // In the order they were written (each task's own order kept).
    lines.sort_by_key(|l| l.timestamp_ms);
    if ctx.json() {
        let lines: Vec<_> = lines
            .iter()
            .map(|l| print::json(l, &printer.hosts))
            .collect();
        ctx.out.json(&json!({ "lines": lines, "errors": errors }));
        return Ok(());
    }
    for (stream, text) in render(&lines, &printer.hosts, printer.style) {
        if stream == "stderr" {
            let _ = writeln!(std::io::stderr(), "{text}");
        } else {
            ctx.out.line(&text);
        }
    }
    for e in &errors {
        let _ = writeln!(std::io::stderr(), "error: {e}");
    }
    Ok(())
}

/// Opens the stream for `req`'s target as a service, else as a task; returns the request that
/// worked with it.
async fn open(
    ctx: &mut Ctx,
    req: pb::LogsRequest,
) -> anyhow::Result<(pb::LogsRequest, Streaming<pb::LogsResponse>)> {
    let target = req.service.clone();
    match ctx.client.stream_logs(req.clone()).await {
        Ok(s) => return Ok((req, s.into_inner())),
        Err(s) if s.code() == tonic::Code::NotFound => {}
        Err(s) => return Err(status_error(s)),
    }
    let by_task = pb::LogsRequest {
        service: String::new(),
        task: target.clone(),
        ..req
    };
    match ctx.client.stream_logs(by_task.clone()).await {
        Ok(s) => Ok((by_task, s.into_inner())),
        Err(s) if s.code() == tonic::Code::NotFound => anyhow::bail!(
            "no service or task {target}: see `swarmctl service ls` and `swarmctl service ps SERVICE`"
        ),
        Err(s) => Err(status_error(s)),
    }
}

#[cfg(test)]
mod tests;
