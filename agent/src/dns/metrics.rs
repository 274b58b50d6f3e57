//! What the embedded resolvers answered, for `swarmd --metrics-addr`: queries by type, answers
//! by where they came from and their response code, and how long answering took.

use shoal_proto::metrics::{Counter, Exposition, Histogram, Kind, LATENCY_BUCKETS};
use std::sync::LazyLock;
use std::time::Instant;

/// Query types counted on their own; every other type is `other`.
const TYPES: [(u16, &str); 4] = [(1, "A"), (28, "AAAA"), (12, "PTR"), (33, "SRV")];
/// Response codes counted on their own; every other one is `other`.
const RCODES: [(u16, &str); 3] = [(0, "noerror"), (3, "nxdomain"), (2, "servfail")];

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The cluster's own names (services, tasks, PTR of task addresses).
    Local,
    /// Forwarded to the node's upstream resolvers (or NXDOMAIN without any).
    Upstream,
}

impl Source {
    fn index(self) -> usize {
        match self {
            Source::Local => 0,
            Source::Upstream => 1,
        }
    }
}

const SOURCES: [&str; 2] = ["local", "upstream"];

struct Dns {
    /// By [`TYPES`] index, then `other`.
    queries: [Counter; TYPES.len() + 1],
    /// By source, then [`RCODES`] index, then `other`.
    responses: [[Counter; RCODES.len() + 1]; 2],
    /// By source.
    latency: [Histogram; 2],
}

static DNS: LazyLock<Dns> = LazyLock::new(|| Dns {
    queries: Default::default(),
    responses: Default::default(),
    latency: [
        Histogram::new(LATENCY_BUCKETS),
        Histogram::new(LATENCY_BUCKETS),
    ],
});

fn index_of(table: &[(u16, &str)], code: u16) -> usize {
    table
        .iter()
        .position(|(c, _)| *c == code)
        .unwrap_or(table.len())
}

/// Counts one query of type `qtype` (its number) answered from `source` with `rcode`, begun
/// at `started`.
pub fn query(qtype: u16, source: Source, rcode: u16, started: Instant) {
    let d = &*DNS;
    d.queries[index_of(&TYPES, qtype)].inc();
    d.responses[source.index()][index_of(&RCODES, rcode)].inc();
    d.latency[source.index()].observe_duration(started.elapsed());
}

/// Writes `shoal_dns_queries_total`, `shoal_dns_responses_total` and
/// `shoal_dns_request_duration_seconds`.
pub fn write(e: &mut Exposition) {
    let d = &*DNS;
    e.header(
        "shoal_dns_queries_total",
        "DNS queries the embedded resolvers answered, by query type.",
        Kind::Counter,
    );
    let types = TYPES.iter().map(|(_, n)| *n).chain(["other"]);
    for (name, c) in types.zip(&d.queries) {
        e.sample("shoal_dns_queries_total", &[("type", name)], c.get() as f64);
    }
    e.header(
        "shoal_dns_responses_total",
        "DNS responses by source (local: the cluster's names; upstream: forwarded) and code.",
        Kind::Counter,
    );
    for (source, row) in SOURCES.iter().zip(&d.responses) {
        let codes = RCODES.iter().map(|(_, n)| *n).chain(["other"]);
        for (rcode, c) in codes.zip(row) {
            e.sample(
                "shoal_dns_responses_total",
                &[("source", source), ("rcode", rcode)],
                c.get() as f64,
            );
        }
    }
    e.header(
        "shoal_dns_request_duration_seconds",
        "Time from receiving a DNS query to having its answer, by source.",
        Kind::Histogram,
    );
    for (source, h) in SOURCES.iter().zip(&d.latency) {
        e.histogram(
            "shoal_dns_request_duration_seconds",
            &[("source", source)],
            &h.snapshot(),
        );
    }
}
