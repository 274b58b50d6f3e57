//! Per-service request rates for the page, from the nodes' own counters: every node's swarmd
//! serves `--metrics-addr` (`lab up` gives each one on its underlay address, see
//! [`crate::lab::procs::with_metrics`]); the UI reads `shoal_lb_backend_connections_total` from
//! each, sums it per service over nodes, networks and backends, and divides the increase between
//! two successive samples by the time between them. For whoami and other one-request-per-
//! connection clients, new connections per second are requests per second.
//!
//! A counter that went down between two samples was reset (a swarmd restarted, a backend made
//! again): its new value is what it counted since, as Prometheus' `rate()` takes it, so a rate is
//! never negative. A series seen once only (a new backend, a node scraped for the first time)
//! adds nothing until its second sample.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::lab::state::{LabFile, NodeRecord};

/// The family read: connections each node's balancers sent to each backend.
pub const FAMILY: &str = "shoal_lb_backend_connections_total";
/// Two samples at least this far apart make a rate (the page polls more often).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// A scrape's connect and read limits, and the largest page read.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const READ_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_PAGE: usize = 8 << 20;

/// One sample of a text-format page: the metric's name, its labels, its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric's name (`…_total`, `…_bucket`).
    pub name: String,
    /// Its labels, unescaped.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// Parses one sample line of Prometheus' text format (`name{k="v",…} value [timestamp]`);
/// `None` for comments, blank lines and anything malformed.
pub fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        let (l, after) = parse_labels(r)?;
        labels = l;
        rest = after;
    }
    let value = rest.split_ascii_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The labels after `{` up to the closing `}`, and what follows it.
fn parse_labels(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut out = BTreeMap::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(after) = s.strip_prefix('}') {
            return Some((out, after));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        };
        out.insert(key, value);
        s = &s[end + 1..];
    }
}

/// One series of [`FAMILY`] on one node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The lab node scraped.
    pub node: String,
    /// The network's name.
    pub network: String,
    /// The service's name.
    pub service: String,
    /// The backend's address.
    pub backend: String,
}

/// Every node's [`FAMILY`] at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Counter values by series.
    pub values: HashMap<SeriesKey, f64>,
}

impl Snapshot {
    /// Adds node `node`'s page.
    pub fn add_page(&mut self, node: &str, page: &str) {
        for s in page.lines().filter_map(parse_line) {
            if s.name != FAMILY {
                continue;
            }
            let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            let key = SeriesKey {
                node: node.to_string(),
                network: label("network"),
                service: label("service"),
                backend: label("backend"),
            };
            *self.values.entry(key).or_insert(0.0) += s.value;
        }
    }

    /// The counters summed per service.
    pub fn totals(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.values {
            *out.entry(k.service.clone()).or_insert(0.0) += v;
        }
        out
    }
}

/// Connections per second per service between `prev` and `cur`, taken `secs` apart. Every
/// service of `cur` has a rate (0 when nothing of it rose); none is negative.
pub fn rates(prev: &Snapshot, cur: &Snapshot, secs: f64) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (k, now) in &cur.values {
        let rose = match prev.values.get(k) {
            Some(before) if now >= before => now - before,
            // Reset: what it counted since.
            Some(_) => *now,
            None => 0.0,
        };
        *out.entry(k.service.clone()).or_insert(0.0) += rose;
    }
    if secs > 0.0 {
        for v in out.values_mut() {
            *v /= secs;
        }
    } else {
        out.values_mut().for_each(|v| *v = 0.0);
    }
    out
}

/// What the page shows per service: its rate (once two samples exist) and its counters' sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shown {
    /// Connections per second by service; `None` until two samples were taken.
    pub rate: Option<BTreeMap<String, f64>>,
    /// Connections counted by service (summed over nodes and backends).
    pub total: BTreeMap<String, f64>,
    /// How many nodes answered the last scrape, and how many serve metrics.
    pub scraped: (usize, usize),
}

/// The last sample and the rates it gave, kept between snapshots.
#[derive(Debug, Default)]
pub struct Tracker {
    /// When the last scrape was made (answered or not).
    tried: Option<Instant>,
    last: Option<(Instant, Snapshot)>,
    shown: Shown,
}

impl Tracker {
    /// Whether a new sample is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.tried
            .is_none_or(|at| now.duration_since(at) >= SAMPLE_EVERY)
    }

    /// Takes `cur`, sampled at `at` from `scraped` = (answered, serving) nodes. When no node
    /// answered there is no sample (and no rate): an empty one would read as 0/s.
    pub fn update(&mut self, at: Instant, cur: Snapshot, scraped: (usize, usize)) {
        self.tried = Some(at);
        if scraped.0 == 0 {
            self.last = None;
            self.shown = Shown {
                scraped,
                ..Shown::default()
            };
            return;
        }
        let rate = self
            .last
            .as_ref()
            .map(|(t, prev)| rates(prev, &cur, at.duration_since(*t).as_secs_f64()));
        self.shown = Shown {
            rate,
            total: cur.totals(),
            scraped,
        };
        self.last = Some((at, cur));
    }

    /// What to show now.
    pub fn shown(&self) -> &Shown {
        &self.shown
    }
}

/// Where node `rec` serves metrics, seen from the host (the lab's host endpoint reaches every
/// node's underlay address): its recorded `--metrics-addr`, with an unspecified address
/// (`0.0.0.0`) replaced by the node's own. `None` when it serves none, or only on loopback
/// (inside its namespace, out of the host's reach).
pub fn metrics_addr(rec: &NodeRecord) -> Option<SocketAddr> {
    let mut it = rec.args.iter();
    let mut found = None;
    while let Some(a) = it.next() {
        if a == "--metrics-addr" {
            found = it.next().cloned();
        } else if let Some(v) = a.strip_prefix("--metrics-addr=") {
            found = Some(v.to_string());
        }
    }
    let mut addr: SocketAddr = found?.parse().ok()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(rec.address.into());
    }
    (!addr.ip().is_loopback()).then_some(addr)
}

/// `GET /metrics` of `addr` over HTTP/1.0 (no dependency beyond tokio): the body of a 200.
pub async fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow::anyhow!("{addr}: connect timed out"))??;
    let req = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut buf = Vec::new();
    tokio::time::timeout(READ_TIMEOUT, async {
        s.write_all(req.as_bytes()).await?;
        (&mut s).take(MAX_PAGE as u64).read_to_end(&mut buf).await
    })
    .await
    .map_err(|_| anyhow::anyhow!("{addr}: read timed out"))??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("{addr}: no HTTP response"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    anyhow::ensure!(status == "200", "{addr}: HTTP {status}");
    Ok(body.to_string())
}

/// Scrapes every node of `file` that serves metrics (at once) and updates `tracker`, when a
/// sample is due. The lock is held throughout, so two snapshots taken together scrape once.
pub async fn sample(file: &LabFile, tracker: &tokio::sync::Mutex<Tracker>) {
    let mut t = tracker.lock().await;
    if !t.due(Instant::now()) {
        return;
    }
    let targets: Vec<(String, SocketAddr)> = file
        .nodes
        .iter()
        .filter_map(|n| Some((n.name.clone(), metrics_addr(n)?)))
        .collect();
    let pages = futures_util::future::join_all(targets.iter().map(|(name, addr)| async move {
        match scrape(*addr).await {
            Ok(p) => Some((name.clone(), p)),
            Err(e) => {
                tracing::debug!(node = %name, "metrics: {e:#}");
                None
            }
        }
    }))
    .await;
    let mut snap = Snapshot::default();
    let mut answered = 0;
    for (node, page) in pages.into_iter().flatten() {
        answered += 1;
        snap.add_page(&node, &page);
    }
    t.update(Instant::now(), snap, (answered, targets.len()));
}

/// Adds `rate` (connections/s, `null` until two samples) and `connections` (the counters' sum,
/// `null` when no node counts any for it) to every service of `snapshot` by name, and
/// `metrics: {answered, serving}` (nodes that answered the last scrape, nodes serving metrics)
/// at the top.
pub fn attach(snapshot: &mut serde_json::Value, shown: &Shown) {
    if let Some(svcs) = snapshot["services"].as_array_mut() {
        for s in svcs {
            let name = s["name"].as_str().unwrap_or("").to_string();
            // Rounded to 0.01/s: the page changes when the figure it shows does.
            let rate = shown.rate.as_ref().map(|r| {
                let v = r.get(&name).copied().unwrap_or(0.0);
                (v * 100.0).round() / 100.0
            });
            s["rate"] = rate.map_or(serde_json::Value::Null, serde_json::Value::from);
            s["connections"] = shown
                .total
                .get(&name)
                .map_or(serde_json::Value::Null, |v| serde_json::Value::from(*v));
        }
    }
    snapshot["metrics"] = serde_json::json!({
        "answered": shown.scraped.0,
        "serving": shown.scraped.1,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::config::Role;
    use std::net::Ipv4Addr;

    const PAGE: &str = "# HELP shoal_lb_backend_connections_total Connections.\n\
        # TYPE shoal_lb_backend_connections_total counter\n\
        shoal_lb_backend_connections_total{network=\"lp_net\",service=\"web\",backend=\"10.0.1.3\"} 7\n\
        shoal_lb_backend_connections_total{network=\"lp_net\",service=\"web\",backend=\"10.0.1.4\"} 5\n\
        shoal_lb_backend_connections_total{network=\"ingress\",service=\"web\",backend=\"10.0.0.3\"} 1e1\n\
        shoal_lb_backend_connections_total{network=\"lp_net\",service=\"api\",backend=\"10.0.1.9\"} 0\n\
        shoal_dns_queries_total{type=\"A\"} 99\n\
        shoal_raft_term 3\n";

    fn snap(pages: &[(&str, &str)]) -> Snapshot {
        let mut s = Snapshot::default();
        for (node, page) in pages {
            s.add_page(node, page);
        }
        s
    }

    fn line(service: &str, backend: &str, v: f64) -> String {
        format!("{FAMILY}{{network=\"n\",service=\"{service}\",backend=\"{backend}\"}} {v}\n")
    }

    #[test]
    fn lines_parse_with_labels_escapes_and_timestamps() {
        let s = parse_line(r#"a_total{k="v\"x\\y\nz",e=""} 12.5 1700000000000"#).unwrap();
        assert_eq!(s.name, "a_total");
        assert_eq!(s.labels["k"], "v\"x\\y\nz");
        assert_eq!(s.labels["e"], "");
        assert_eq!(s.value, 12.5);
        let s = parse_line("up 1").unwrap();
        assert!(s.labels.is_empty());
        assert_eq!(s.value, 1.0);
        let s = parse_line(r#"b_bucket{le="+Inf",} +Inf"#).unwrap();
        assert_eq!(s.labels["le"], "+Inf");
        assert!(s.value.is_infinite());
        for bad in [
            "",
            "# TYPE a counter",
            "a{k=\"v\" 1",
            "a{k=v} 1",
            "a",
            "{k=\"v\"} 1",
            "a x",
        ] {
            assert_eq!(parse_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_page_gives_the_family_per_series_and_totals_per_service() {
        let s = snap(&[
            ("manager1", PAGE),
            ("worker1", &line("web", "10.0.1.3", 3.0)),
        ]);
        assert_eq!(s.values.len(), 5, "{s:?}");
        let k = SeriesKey {
            node: "manager1".into(),
            network: "ingress".into(),
            service: "web".into(),
            backend: "10.0.0.3".into(),
        };
        assert_eq!(s.values[&k], 10.0);
        let t = s.totals();
        assert_eq!(t["web"], 7.0 + 5.0 + 10.0 + 3.0);
        assert_eq!(t["api"], 0.0);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_rate_sums_over_nodes_and_backends() {
        let prev = snap(&[
            ("m1", &(line("web", "a", 10.0) + &line("web", "b", 4.0))),
            ("w1", &line("web", "a", 1.0)),
        ]);
        let cur = snap(&[
            ("m1", &(line("web", "a", 14.0) + &line("web", "b", 6.0))),
            ("w1", &line("web", "a", 3.0)),
        ]);
        let r = rates(&prev, &cur, 2.0);
        assert_eq!(r["web"], (4.0 + 2.0 + 2.0) / 2.0);
    }

    #[test]
    fn a_reset_counter_counts_its_new_value_and_never_gives_a_negative_rate() {
        let prev = snap(&[("m1", &(line("web", "a", 100.0) + &line("web", "b", 50.0)))]);
        // a restarted from 0 and counted 3; b did not move.
        let cur = snap(&[("m1", &(line("web", "a", 3.0) + &line("web", "b", 50.0)))]);
        let r = rates(&prev, &cur, 1.0);
        assert_eq!(r["web"], 3.0);
        // Everything gone down at once (a swarmd restarted with nothing yet): 0, not negative.
        let cur = snap(&[("m1", &(line("web", "a", 0.0) + &line("web", "b", 0.0)))]);
        assert_eq!(rates(&prev, &cur, 1.0)["web"], 0.0);
    }

    #[test]
    fn a_series_seen_once_adds_nothing_and_a_gone_one_is_dropped() {
        let prev = snap(&[("m1", &line("web", "a", 5.0))]);
        let cur = snap(&[("m1", &(line("web", "b", 40.0) + &line("api", "c", 9.0)))]);
        let r = rates(&prev, &cur, 1.0);
        assert_eq!(r["web"], 0.0);
        assert_eq!(r["api"], 0.0);
        assert!(rates(&prev, &cur, 0.0).values().all(|v| *v == 0.0));
    }

    #[test]
    fn the_tracker_needs_two_samples_and_forgets_when_no_node_answers() {
        let mut t = Tracker::default();
        let t0 = Instant::now();
        assert!(t.due(t0));
        t.update(t0, snap(&[("m1", &line("web", "a", 5.0))]), (1, 2));
        assert_eq!(t.shown().rate, None);
        assert_eq!(t.shown().total["web"], 5.0);
        assert!(!t.due(t0 + SAMPLE_EVERY / 2));
        assert!(t.due(t0 + SAMPLE_EVERY));
        let t1 = t0 + Duration::from_secs(4);
        t.update(t1, snap(&[("m1", &line("web", "a", 13.0))]), (2, 2));
        assert_eq!(t.shown().rate.as_ref().unwrap()["web"], 2.0);
        let mut v = serde_json::json!({"services": [{"name": "web"}, {"name": "db"}]});
        attach(&mut v, t.shown());
        assert_eq!(v["services"][0]["rate"], 2.0);
        assert_eq!(v["services"][0]["connections"], 13.0);
        assert_eq!(v["services"][1]["rate"], 0.0);
        assert!(v["services"][1]["connections"].is_null());
        assert_eq!(v["metrics"]["answered"], 2);
        // No node answers: no rate rather than a made-up 0/s.
        t.update(t1 + SAMPLE_EVERY, Snapshot::default(), (0, 2));
        assert_eq!(t.shown().rate, None);
        let mut v = serde_json::json!({"services": [{"name": "web"}]});
        attach(&mut v, t.shown());
        assert!(v["services"][0]["rate"].is_null());
    }

    fn rec(args: &[&str]) -> NodeRecord {
        NodeRecord {
            name: "worker1".into(),
            role: Role::Worker,
            address: Ipv4Addr::new(198, 18, 0, 4),
            netns: "/l/netns/worker1".into(),
            state_dir: "/l/nodes/worker1".into(),
            link: "nw1".into(),
            pid: None,
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn a_nodes_metrics_address_comes_from_its_recorded_arguments() {
        let mut args = vec!["--hostname".to_string(), "worker1".into()];
        crate::lab::procs::with_metrics(&mut args, Ipv4Addr::new(198, 18, 0, 4));
        assert_eq!(args[2..], ["--metrics-addr", "198.18.0.4:9323"]);
        // The user's own wins.
        let mut mine = vec!["--metrics-addr=0.0.0.0:9100".to_string()];
        crate::lab::procs::with_metrics(&mut mine, Ipv4Addr::new(198, 18, 0, 4));
        assert_eq!(mine.len(), 1);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(
            metrics_addr(&rec(&a)),
            Some("198.18.0.4:9323".parse().unwrap())
        );
        assert_eq!(
            metrics_addr(&rec(&["--metrics-addr", "0.0.0.0:9323"])),
            Some("198.18.0.4:9323".parse().unwrap())
        );
        assert_eq!(
            metrics_addr(&rec(&["--metrics-addr=0.0.0.0:9100"])),
            Some("198.18.0.4:9100".parse().unwrap())
        );
        assert_eq!(
            metrics_addr(&rec(&["--metrics-addr", "127.0.0.1:9323"])),
            None
        );
        assert_eq!(metrics_addr(&rec(&["--hostname", "worker1"])), None);
        assert_eq!(metrics_addr(&rec(&["--metrics-addr"])), None);
    }

    /// A one-shot HTTP server answering `reply` to the first request.
    async fn fake(reply: &'static str) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(reply.as_bytes()).await;
        });
        addr
    }

    #[tokio::test]
    async fn a_scrape_reads_the_body_of_a_200_only() {
        let ok = fake("HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nup 1\nx 2").await;
        assert_eq!(scrape(ok).await.unwrap(), "up 1\nx 2");
        let bad = fake("HTTP/1.1 404 Not Found\r\n\r\nno").await;
        assert!(scrape(bad).await.unwrap_err().to_string().contains("404"));
        let junk = fake("garbage").await;
        assert!(scrape(junk).await.is_err());
    }
}
