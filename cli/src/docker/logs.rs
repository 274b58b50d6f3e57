//! `GET /services/{id}/logs` and `GET /tasks/{id}/logs`: the Control API's `StreamLogs`, as
//! Docker's log stream. Each line is a frame of Docker's multiplexed stream (an 8-byte header:
//! stream 1 = stdout, 2 = stderr, then the length) holding
//! `[TIMESTAMP ]com.docker.swarm.node.id=…,com.docker.swarm.service.id=…,com.docker.swarm.task.id=… LINE\n`
//! (the details part only with `details=true`, which the CLI always asks for and turns into
//! `web.1.id@node    | `). A `--tty` service's lines are sent raw, as dockerd does.

use super::api::{Api, LogStream};
use super::route::{query_bool, query_get};
use super::ApiError;
use bytes::Bytes;
use shoal_proto::pb;
use tokio::sync::mpsc;
use tracing::debug;

/// What a logs request asks for, from its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsQuery {
    /// `follow`.
    pub follow: bool,
    /// `timestamps`: each line starts with its time.
    pub timestamps: bool,
    /// `details`: each line carries its node, service and task ids.
    pub details: bool,
    /// `stdout`, `stderr`: the streams wanted.
    pub stdout: bool,
    /// See `stdout`.
    pub stderr: bool,
    /// `since` (Unix seconds, fractions allowed) in ms; 0: no limit.
    pub since_ms: i64,
    /// `tail`: the last N lines of each task; `None`: all.
    pub tail: Option<u32>,
}

impl LogsQuery {
    /// Reads the query, refusing what dockerd refuses.
    pub fn parse(query: &str) -> Result<LogsQuery, ApiError> {
        let q = LogsQuery {
            follow: query_bool(query, "follow"),
            timestamps: query_bool(query, "timestamps"),
            details: query_bool(query, "details"),
            stdout: query_bool(query, "stdout"),
            stderr: query_bool(query, "stderr"),
            since_ms: match query_get(query, "since").filter(|s| !s.is_empty()) {
                None => 0,
                Some(s) => {
                    let secs: f64 = s.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid value for \"since\": {s:?}"))
                    })?;
                    (secs * 1000.0) as i64
                }
            },
            tail: match query_get(query, "tail").as_deref() {
                None | Some("") | Some("all") => None,
                Some(n) => Some(n.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid value for \"tail\": {n:?}"))
                })?),
            },
        };
        if !q.stdout && !q.stderr {
            return Err(ApiError::bad_request(
                "Bad parameters: you must choose at least one stream",
            ));
        }
        Ok(q)
    }

    /// The Control request for `service` (or `task`).
    pub fn request(&self, service: &str, task: &str) -> pb::LogsRequest {
        pb::LogsRequest {
            service: service.to_string(),
            task: task.to_string(),
            tail: self.tail.unwrap_or(0),
            follow: self.follow,
            since_ms: self.since_ms,
            skip_history: self.tail == Some(0),
            ..Default::default()
        }
    }
}

/// One line as Docker sends it: a multiplexed frame, or the raw bytes of a `--tty` service.
pub fn frame(l: &pb::LogLine, service_id: &str, q: &LogsQuery, tty: bool) -> Option<Bytes> {
    let stream: u8 = if l.stream == "stderr" { 2 } else { 1 };
    if (stream == 1 && !q.stdout) || (stream == 2 && !q.stderr) {
        return None;
    }
    let mut payload = Vec::with_capacity(l.data.len() + 128);
    if q.timestamps {
        payload.extend_from_slice(super::types::ts(l.timestamp_ms).as_bytes());
        payload.push(b' ');
    }
    if q.details {
        payload.extend_from_slice(
            format!(
                "com.docker.swarm.node.id={},com.docker.swarm.service.id={service_id},com.docker.swarm.task.id={} ",
                l.node_id, l.task_id
            )
            .as_bytes(),
        );
    }
    payload.extend_from_slice(l.data.strip_suffix(b"\n").unwrap_or(&l.data));
    payload.push(b'\n');
    if tty {
        return Some(Bytes::from(payload));
    }
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    Some(Bytes::from(out))
}

impl Api {
    /// The log stream of service `service` or task `task` (one of them is empty).
    pub(super) async fn logs(
        &self,
        service: &str,
        task: &str,
        query: &str,
    ) -> Result<LogStream, ApiError> {
        let q = LogsQuery::parse(query)?;
        let mut c = self.control().await?;
        let (service_id, tty) = if task.is_empty() {
            let s = c
                .get_service(pb::IdRequest {
                    id: service.to_string(),
                })
                .await?
                .into_inner();
            (s.id, s.spec.is_some_and(|s| s.tty))
        } else {
            let t = c
                .get_task(pb::IdRequest {
                    id: task.to_string(),
                })
                .await?
                .into_inner();
            (t.service_id, t.spec.is_some_and(|s| s.tty))
        };
        let req = q.request(if task.is_empty() { &service_id } else { "" }, task);
        let mut stream = c.stream_logs(req).await?.into_inner();
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        // Ends when the logs end (no follow), the manager's stream breaks, or the client goes
        // away (the receiver is dropped and a send fails).
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let batch = match stream.message().await {
                    Ok(Some(b)) => b,
                    Ok(None) => break,
                    Err(e) => {
                        debug!(error = %e, "docker api: log stream ended");
                        break;
                    }
                };
                for e in &batch.errors {
                    debug!(error = %e, "docker api: a node could not send its logs");
                }
                let mut lines = batch.lines;
                if !q.follow {
                    // All of them first, then in the order they were written.
                    held.extend(lines);
                    continue;
                }
                lines.sort_by_key(|l| l.timestamp_ms);
                for l in &lines {
                    if let Some(f) = frame(l, &service_id, &q, tty) {
                        if tx.send(f).await.is_err() {
                            return;
                        }
                    }
                }
            }
            held.sort_by_key(|l| l.timestamp_ms);
            for l in &held {
                if let Some(f) = frame(l, &service_id, &q, tty) {
                    if tx.send(f).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(LogStream(rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::api::Body;
    use crate::docker::tests::manager_api;
    use hyper::Method;

    fn line(stream: &str, data: &str) -> pb::LogLine {
        pb::LogLine {
            task_id: "t1".into(),
            node_id: "n1".into(),
            stream: stream.into(),
            data: data.as_bytes().to_vec(),
            timestamp_ms: 1_796_565_600_123,
            ..Default::default()
        }
    }

    #[test]
    fn queries() {
        let q = LogsQuery::parse(
            "stdout=1&stderr=1&follow=1&since=1700000000.500000000&tail=10&details=1&timestamps=0",
        )
        .unwrap();
        assert!(q.follow && q.details && !q.timestamps && q.stdout && q.stderr);
        assert_eq!(q.since_ms, 1_700_000_000_500);
        assert_eq!(q.tail, Some(10));
        let r = q.request("svc", "");
        assert_eq!((r.tail, r.follow, r.skip_history), (10, true, false));
        let none = LogsQuery::parse("stdout=1&tail=0").unwrap();
        assert!(none.request("svc", "").skip_history);
        assert_eq!(LogsQuery::parse("stdout=1&tail=all").unwrap().tail, None);
        assert_eq!(
            LogsQuery::parse("follow=1").unwrap_err(),
            ApiError::bad_request("Bad parameters: you must choose at least one stream")
        );
        assert_eq!(LogsQuery::parse("stdout=1&tail=x").unwrap_err().status, 400);
    }

    #[test]
    fn frames_are_dockers_multiplexed_stream() {
        let q = LogsQuery::parse("stdout=1&stderr=1&details=1&timestamps=1").unwrap();
        let f = frame(&line("stderr", "oops\n"), "s1", &q, false).unwrap();
        let payload = "2026-12-06T14:00:00.123000000Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1 oops\n";
        assert_eq!(&f[..4], &[2, 0, 0, 0]);
        assert_eq!(
            u32::from_be_bytes(f[4..8].try_into().unwrap()) as usize,
            payload.len()
        );
        assert_eq!(&f[8..], payload.as_bytes());
        let plain = LogsQuery::parse("stdout=1").unwrap();
        let f = frame(&line("stdout", "hi"), "s1", &plain, false).unwrap();
        assert_eq!(&f[..], b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n");
        assert!(frame(&line("stderr", "x"), "s1", &plain, false).is_none());
        let raw = frame(&line("stdout", "hi"), "s1", &plain, true).unwrap();
        assert_eq!(&raw[..], b"hi\n");
    }

    #[tokio::test]
    async fn a_services_logs_through_the_api() {
        let dir = tempfile::tempdir().unwrap();
        let (api, _fake) = manager_api(dir.path()).await;
        let r = api
            .answer(
                &Method::GET,
                "/v1.41/services/web/logs",
                "stdout=1&stderr=1&details=1",
            )
            .await;
        assert_eq!(r.status, 200);
        let Body::Stream(mut s) = r.body else {
            panic!("not a stream: {r:?}")
        };
        let mut all = Vec::new();
        while let Some(b) = s.0.recv().await {
            all.extend_from_slice(&b);
        }
        let text = String::from_utf8_lossy(&all[8..]).to_string();
        assert!(text.starts_with("com.docker.swarm.node.id="), "{text}");
        assert!(text.ends_with(" hello from 1\n"), "{text}");
        let r = api
            .answer(&Method::GET, "/services/nosuch/logs", "stdout=1")
            .await;
        assert_eq!(r.status, 404);
    }
}
