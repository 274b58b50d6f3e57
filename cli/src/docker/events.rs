//! `GET /events`: the swarm objects' changes (services, nodes, networks, secrets, configs) as
//! Docker's event messages, one JSON object a line, streamed until the client goes or `until`
//! passes. Fed by the manager's change feed (the Control API's `Watch`, `shoal_manager::events`),
//! which replays what it kept for `since`. Every event is `scope: swarm`; Shoal has no local
//! (container, image, volume) events.

use super::api::{Api, Body, LogStream, Reply};
use super::filters::Filters;
use super::route::query_get;
use super::ApiError;
use bytes::Bytes;
use serde_json::{json, Value};
use shoal_proto::pb;

/// The filters `/events` accepts (dockerd's others name local objects: refused).
pub const FILTERS: &[&str] = &[
    "type", "event", "scope", "service", "node", "network", "secret", "config",
];

/// Docker's `since`/`until`: seconds since epoch with an optional fraction (`1700000000.5`,
/// what the CLI sends for `--since 10m` or a date), as ns.
pub fn parse_time(key: &str, raw: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid {key} value {raw:?}: expected seconds since the epoch"
        ))
    };
    let (secs, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    Ok(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// Whether `e` passes `f`: `type`, `event` (the action) and `scope` (`swarm`); `service`,
/// `node`, `network`, `secret`, `config` name objects of that type by id or name prefix (and
/// exclude the other types), as dockerd's filters do.
pub fn matches(f: &Filters, e: &pb::WatchEvent) -> bool {
    f.any("type", |t| t == e.kind)
        && f.any("event", |a| a == e.action)
        && f.any("scope", |s| s == "swarm")
        && ["service", "node", "network", "secret", "config"]
            .iter()
            .all(|k| {
                f.any(k, |v| {
                    e.kind == *k && (e.id.starts_with(v) || e.name.starts_with(v))
                })
            })
}

/// The event as Docker's `events.Message` JSON.
pub fn message(e: &pb::WatchEvent) -> Value {
    json!({
        "Type": e.kind,
        "Action": e.action,
        "Actor": { "ID": e.id, "Attributes": { "name": e.name } },
        "scope": "swarm",
        "time": e.time_ns / 1_000_000_000,
        "timeNano": e.time_ns,
    })
}

impl Api {
    /// `GET /events?since=&until=&filters=`.
    pub(super) async fn events(&self, query: &str) -> Result<Reply, ApiError> {
        let f = Filters::parse(query_get(query, "filters").as_deref(), FILTERS)?;
        let since = query_get(query, "since")
            .filter(|s| !s.is_empty())
            .map(|s| parse_time("since", &s))
            .transpose()?;
        let until = query_get(query, "until")
            .filter(|s| !s.is_empty())
            .map(|s| parse_time("until", &s))
            .transpose()?;
        let ms = |ns: i64| (ns / 1_000_000).max(1);
        let mut feed = self
            .control()
            .await?
            .watch(pb::WatchRequest {
                since_ms: since.map(ms).unwrap_or(0),
                // Rounded up: the manager ends the stream, the filter below is exact.
                until_ms: until.map(|u| ms(u) + 1).unwrap_or(0),
            })
            .await?
            .into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    m = feed.message() => m,
                    _ = tx.closed() => return,
                };
                let Ok(Some(e)) = next else { return };
                if until.is_some_and(|u| e.time_ns > u) {
                    return;
                }
                if since.is_some_and(|s| e.time_ns < s) || !matches(&f, &e) {
                    continue;
                }
                let mut line = serde_json::to_vec(&message(&e)).unwrap_or_default();
                line.push(b'\n');
                if tx.send(Bytes::from(line)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Reply {
            status: 200,
            body: Body::JsonStream(LogStream(rx)),
        })
    }
}
