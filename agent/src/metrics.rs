//! The agent's metrics for `swarmd --metrics-addr`: its balancers' connections and bytes per
//! backend, its embedded DNS, and image pulls.

use crate::Agent;
use shoal_proto::metrics::{Exposition, Kind};

/// Writes the agent's families (reads the balancers' kernel counters: one `nft -j list table`
/// or IPVS dump per balancer).
pub async fn write(agent: &Agent, e: &mut Exposition) {
    let conns = agent.lb_connections().await;
    e.header(
        "shoal_lb_backend_connections_total",
        "Connections this node's balancers sent to each backend (service VIPs and the routing mesh).",
        Kind::Counter,
    );
    for c in &conns {
        e.sample(
            "shoal_lb_backend_connections_total",
            &[
                ("network", &c.network),
                ("service", &c.service),
                ("backend", &c.backend),
            ],
            c.connections as f64,
        );
    }
    e.header(
        "shoal_lb_backend_bytes_total",
        "Bytes of the connections this node's balancers sent to each backend: direction in is \
         client to backend, out is backend to client.",
        Kind::Counter,
    );
    for c in &conns {
        let Some((bytes_in, bytes_out)) = c.bytes else {
            continue;
        };
        for (direction, v) in [("in", bytes_in), ("out", bytes_out)] {
            e.sample(
                "shoal_lb_backend_bytes_total",
                &[
                    ("network", &c.network),
                    ("service", &c.service),
                    ("backend", &c.backend),
                    ("direction", direction),
                ],
                v as f64,
            );
        }
    }
    crate::dns::metrics::write(e);
    let (ok, failed) = shoal_image::store::pull_counts();
    e.header(
        "shoal_image_pulls_total",
        "Image pulls from a registry finished by this node, by result.",
        Kind::Counter,
    );
    e.sample(
        "shoal_image_pulls_total",
        &[("result", "success")],
        ok as f64,
    );
    e.sample(
        "shoal_image_pulls_total",
        &[("result", "failure")],
        failed as f64,
    );
}
