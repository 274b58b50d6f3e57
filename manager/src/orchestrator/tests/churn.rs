//! Many random events against a small cluster: the three planners plus simulated agents must
//! converge after each one, then have nothing left to do, and the cluster's invariants must hold.

use super::global;
use crate::orchestrator::testkit::{spec, Sim, CLUSTER};
use crate::orchestrator::TASK_HISTORY_RETENTION;
use shoal_proto::model::*;
use std::collections::BTreeSet;

/// Random events (a fixed seed) against a small cluster; after each, the planners converge,
/// have nothing left to do, and the cluster's invariants hold.
#[test]
fn converges_and_stays_quiet_under_churn() {
    for seed in 0..SEEDS {
        churn(seed);
    }
}

const SEEDS: u64 = 8;

fn churn(mut seed: u64) {
    let mut sim = Sim::new();
    let nodes: Vec<String> = (1..=4)
        .map(|i| sim.node(&format!("w{i}"), NodeRole::Worker))
        .collect();
    let ingress = sim.network("ingress", "10.0.0.0/24", true);
    let net = sim.network("backend", "10.0.1.0/24", false);
    let attach = |s: &mut ServiceSpec| {
        s.networks.push(shoal_proto::model::NetworkAttachmentSpec {
            target: "net-backend".into(),
            aliases: vec![],
        })
    };
    let mut web = spec("web", 3);
    web.restart.delay_ms = 500;
    web.ports = vec![shoal_proto::model::PortConfig::parse("8080").unwrap()];
    attach(&mut web);
    let web = sim.service(web);
    let mut api = spec("api", 2);
    api.endpoint_mode = shoal_proto::model::EndpointMode::Dnsrr;
    attach(&mut api);
    let api = sim.service(api);
    let mut job = spec("job", 2);
    job.restart.condition = RestartCondition::None;
    let job = sim.service(job);
    let mon = sim.service(global("mon"));
    let mut rand = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for step in 0..300 {
        let live: Vec<String> = sim
            .state
            .tasks
            .values()
            .filter(|t| t.is_live())
            .map(|t| t.id.to_string())
            .collect();
        let node = nodes[rand(4) as usize].clone();
        match rand(8) {
            0 | 1 if !live.is_empty() => {
                sim.report(&live[rand(live.len() as u64) as usize], TaskState::Failed)
            }
            2 if !live.is_empty() => {
                sim.report(&live[rand(live.len() as u64) as usize], TaskState::Complete)
            }
            3 => sim.update_node(&node, |n| {
                n.state = if n.state == NodeState::Ready {
                    NodeState::Down
                } else {
                    NodeState::Ready
                }
            }),
            4 => {
                let a = [
                    Availability::Active,
                    Availability::Active,
                    Availability::Drain,
                    Availability::Pause,
                ];
                let a = a[rand(4) as usize];
                sim.update_node(&node, |n| n.availability = a)
            }
            5 => {
                let r = rand(6);
                sim.update_service(&web, |s| s.mode = ServiceMode::Replicated { replicas: r })
            }
            6 => sim.update_service(&api, |s| s.env = vec![format!("STEP={step}")]),
            _ => {
                sim.now += 400;
                sim.update_node(&node, |n| n.state = NodeState::Ready);
            }
        }
        sim.now += 100;
        sim.converge(&CLUSTER);
        sim.assert_quiet();
        check_invariants(&sim, &[&web, &api, &job], &mon, &[&ingress, &net]);
    }
}

fn check_invariants(sim: &Sim, replicated: &[&String], global: &str, nets: &[&String]) {
    for svc in replicated {
        let ServiceMode::Replicated { replicas } = sim.state.services[svc.as_str()].spec.mode
        else {
            unreachable!()
        };
        let wanted: Vec<u64> = sim
            .tasks(svc)
            .iter()
            .filter(|t| t.desired_state <= TaskState::Running)
            .map(|t| t.slot)
            .collect();
        let distinct: BTreeSet<u64> = wanted.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            wanted.len(),
            "{svc}: one task per slot: {wanted:?}"
        );
        assert!(
            wanted.len() as u64 <= replicas,
            "{svc}: at most {replicas}: {wanted:?}"
        );
        if sim.state.services[svc.as_str()].spec.restart.condition == RestartCondition::Any {
            assert_eq!(
                wanted.len() as u64,
                replicas,
                "{svc}: every slot is running or restarting"
            );
        }
        for slot in distinct {
            let retired = sim
                .tasks(svc)
                .iter()
                .filter(|t| t.slot == slot && t.desired_state > TaskState::Running)
                .count();
            assert!(
                retired <= TASK_HISTORY_RETENTION + 4,
                "{svc}.{slot}: {retired} old tasks"
            );
        }
    }
    for node in sim.state.nodes.values() {
        let wanted = sim
            .tasks(global)
            .into_iter()
            .filter(|t| t.node_id == node.id && t.desired_state <= TaskState::Running)
            .count();
        let eligible = node.state == NodeState::Ready && node.availability == Availability::Active;
        assert!(wanted <= 1, "{}: {wanted} global tasks", node.hostname);
        if eligible {
            assert_eq!(
                wanted, 1,
                "{}: eligible node without its global task",
                node.hostname
            );
        }
    }
    for net in nets {
        let mut seen = BTreeSet::new();
        let vips = sim
            .state
            .services
            .values()
            .flat_map(|s| &s.vips)
            .filter(|v| &v.network_id == *net)
            .map(|v| &v.addr);
        let tasks = sim
            .state
            .tasks
            .values()
            .filter(|t| !t.status.state.is_terminal())
            .flat_map(|t| &t.networks)
            .filter(|a| &a.network_id == *net)
            .flat_map(|a| &a.addresses);
        for a in vips.chain(tasks) {
            assert!(seen.insert(a.clone()), "{a} handed out twice in {net}");
        }
    }
}
