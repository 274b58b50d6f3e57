use super::ipam::{addr_of, Subnet};
use super::*;
use crate::orchestrator::testkit::{spec, Actor, Sim};
use shoal_proto::model::*;
use std::collections::BTreeSet;

fn attach(s: &mut ServiceSpec, net: &str, aliases: &[&str]) {
    s.networks.push(NetworkAttachmentSpec {
        target: net.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
    });
}

/// Orchestrator then allocator until quiet.
fn allocate(sim: &mut Sim) {
    sim.converge(&[Actor::Orchestrator, Actor::Allocator]);
    assert_eq!(plan(&sim.state, sim.now), vec![]);
}

/// Every address handed out in `net`: VIPs and task addresses.
fn addresses(sim: &Sim, net: &str) -> Vec<String> {
    let vips = sim
        .state
        .services
        .values()
        .flat_map(|s| &s.vips)
        .filter(|v| v.network_id == net)
        .map(|v| v.addr.clone());
    let tasks = sim
        .state
        .tasks
        .values()
        .flat_map(|t| &t.networks)
        .filter(|a| a.network_id == net)
        .flat_map(|a| a.addresses.clone());
    vips.chain(tasks).collect()
}

fn vip_nets(sim: &Sim, svc: &str) -> Vec<String> {
    sim.state.services[svc]
        .vips
        .iter()
        .map(|v| v.network_id.to_string())
        .collect()
}

#[test]
fn addresses_are_unique_across_services_and_tasks() {
    let mut sim = Sim::new();
    let net = sim.network("backend", "10.0.1.0/24", false);
    let mut a = spec("api", 3);
    attach(&mut a, &net, &["db-api"]);
    let mut w = spec("web", 4);
    attach(&mut w, &net, &[]);
    sim.service(a);
    sim.service(w);
    // One pass allocates everything: both VIPs and all seven tasks.
    let created = sim.plan(Actor::Orchestrator);
    sim.apply(&created);
    let cmds = plan(&sim.state, sim.now);
    assert!(matches!(cmds.as_slice(), [Command::Batch(_)]), "{cmds:?}");
    sim.apply(&cmds);
    allocate(&mut sim);
    let all = addresses(&sim, &net);
    assert_eq!(all.len(), 2 + 7);
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "{all:?}");
    let subnet = Subnet::parse("10.0.1.0/24").unwrap();
    for a in &all {
        assert!(a.ends_with("/24"), "{a}");
        let ip = addr_of(a).unwrap();
        assert!(
            subnet.contains(ip) && ip != subnet.gateway() && ip != subnet.host(0),
            "{a}"
        );
    }
    for t in sim.state.tasks.values() {
        assert_eq!(
            (t.status.state, t.status.message.as_str()),
            (TaskState::Pending, ALLOCATED)
        );
        assert_eq!(t.networks.len(), 1);
        let aliases: Vec<&str> = t.networks[0].aliases.iter().map(String::as_str).collect();
        assert_eq!(
            aliases,
            if t.service_id == "svc-api" {
                vec!["db-api"]
            } else {
                vec![]
            }
        );
    }
    assert_eq!(
        sim.state.networks[net.as_str()].ipam_cursor,
        2 + 9 - 1,
        "cursor at the last address handed out"
    );
}

#[test]
fn cursor_is_serial_so_freed_addresses_wait() {
    let mut sim = Sim::new();
    let net = sim.network("backend", "10.0.1.0/24", false);
    let mut s = spec("web", 2);
    s.endpoint_mode = EndpointMode::Dnsrr;
    attach(&mut s, &net, &[]);
    let svc = sim.service(s);
    allocate(&mut sim);
    let mut got: Vec<String> = addresses(&sim, &net);
    got.sort();
    assert_eq!(got, vec!["10.0.1.2/24", "10.0.1.3/24"]);
    // The first task ends and is deleted: its address is free, but the next task gets .4.
    let first = sim.tasks(&svc)[0].id.clone();
    sim.report(&first, TaskState::Failed);
    sim.apply(&[Command::DeleteTasks(vec![first])]);
    allocate(&mut sim);
    let newest = sim
        .tasks(&svc)
        .into_iter()
        .max_by_key(|t| t.id.clone())
        .unwrap();
    assert_eq!(
        newest.networks[0].addresses,
        vec!["10.0.1.4/24".to_string()]
    );
    assert_eq!(sim.state.networks[net.as_str()].ipam_cursor, 4);
}

#[test]
fn vips_follow_the_attached_networks() {
    let mut sim = Sim::new();
    let n1 = sim.network("one", "10.0.1.0/24", false);
    let n2 = sim.network("two", "10.0.2.0/24", false);
    let mut s = spec("web", 1);
    attach(&mut s, &n1, &[]);
    let svc = sim.service(s);
    allocate(&mut sim);
    assert_eq!(vip_nets(&sim, &svc), vec![n1.clone()]);
    let first_vip = sim.state.services[svc.as_str()].vips[0].clone();
    assert_eq!(first_vip.addr, "10.0.1.2/24");

    sim.update_service(&svc, |s| attach(s, &n2, &[]));
    allocate(&mut sim);
    assert_eq!(vip_nets(&sim, &svc), vec![n1.clone(), n2.clone()]);
    assert_eq!(
        sim.state.services[svc.as_str()].vips[0],
        first_vip,
        "kept VIPs keep their address"
    );

    sim.update_service(&svc, |s| s.networks.retain(|a| a.target != n1));
    allocate(&mut sim);
    assert_eq!(vip_nets(&sim, &svc), vec![n2.clone()]);

    sim.update_service(&svc, |s| s.endpoint_mode = EndpointMode::Dnsrr);
    allocate(&mut sim);
    assert!(
        sim.state.services[svc.as_str()].vips.is_empty(),
        "dnsrr services have no VIP"
    );
}

#[test]
fn ingress_vip_and_attachment_only_with_ingress_ports() {
    let mut sim = Sim::new();
    let ingress = sim.network("ingress", "10.0.0.0/24", true);
    let net = sim.network("backend", "10.0.1.0/24", false);
    let mut published = spec("web", 1);
    published.ports = vec![PortConfig::parse("8080").unwrap()];
    attach(&mut published, &net, &["www"]);
    let web = sim.service(published);
    let mut internal = spec("db", 1);
    attach(&mut internal, &net, &[]);
    let db = sim.service(internal);
    let mut host = spec("edge", 1);
    host.ports = vec![PortConfig::parse("9000:80,mode=host").unwrap()];
    let edge = sim.service(host);
    allocate(&mut sim);

    assert_eq!(vip_nets(&sim, &web), vec![ingress.clone(), net.clone()]);
    assert_eq!(vip_nets(&sim, &db), vec![net.clone()]);
    assert!(
        vip_nets(&sim, &edge).is_empty(),
        "host-mode ports use no routing mesh"
    );
    let web_task = sim.tasks(&web)[0];
    let order: Vec<&str> = web_task
        .networks
        .iter()
        .map(|a| a.network_id.as_str())
        .collect();
    assert_eq!(
        order,
        vec![ingress.as_str(), net.as_str()],
        "ingress is attached first"
    );
    assert!(web_task.networks[0].aliases.is_empty());
    assert_eq!(web_task.networks[1].aliases, vec!["www".to_string()]);
    assert!(sim.tasks(&edge)[0].networks.is_empty());
    assert_eq!(sim.tasks(&edge)[0].status.state, TaskState::Pending);

    sim.update_service(&web, |s| s.ports.clear());
    allocate(&mut sim);
    assert_eq!(
        vip_nets(&sim, &web),
        vec![net.clone()],
        "ingress VIP dropped with the ports"
    );
}

#[test]
fn dnsrr_tasks_get_addresses_but_no_vip() {
    let mut sim = Sim::new();
    let net = sim.network("backend", "10.0.1.0/24", false);
    let mut s = spec("web", 2);
    s.endpoint_mode = EndpointMode::Dnsrr;
    attach(&mut s, &net, &[]);
    let svc = sim.service(s);
    allocate(&mut sim);
    assert!(sim.state.services[svc.as_str()].vips.is_empty());
    assert!(sim
        .tasks(&svc)
        .iter()
        .all(|t| t.networks[0].addresses.len() == 1));
}

#[test]
fn bridge_networks_are_attached_without_addresses() {
    let mut sim = Sim::new();
    sim.apply(&[Command::CreateNetwork(Network {
        id: "net-local".into(),
        name: "local".into(),
        driver: NetworkDriver::Bridge,
        subnet: "172.20.0.0/16".into(),
        ..Default::default()
    })]);
    let mut s = spec("web", 1);
    attach(&mut s, "net-local", &[]);
    let svc = sim.service(s);
    allocate(&mut sim);
    assert!(
        sim.state.services[svc.as_str()].vips.is_empty(),
        "no VIP on a local-scope network"
    );
    let t = sim.tasks(&svc)[0];
    assert_eq!(
        t.networks,
        vec![NetworkAttachment {
            network_id: "net-local".into(),
            network: (&sim.state.networks["net-local"]).into(),
            ..Default::default()
        }]
    );
    assert_eq!(sim.state.networks["net-local"].ipam_cursor, 0);
}

#[test]
fn exhausted_network_leaves_tasks_new_with_a_message_once() {
    let mut sim = Sim::new();
    let net = sim.network("tiny", "10.0.9.0/29", false); // .2 … .6
    let mut s = spec("web", 5);
    s.restart.condition = RestartCondition::None; // an ended task is not replaced
    attach(&mut s, &net, &[]);
    let svc = sim.service(s);
    allocate(&mut sim);
    // One VIP + four tasks fill the five addresses; the fifth task waits.
    let waiting: Vec<&Task> = sim
        .tasks(&svc)
        .into_iter()
        .filter(|t| t.status.state == TaskState::New)
        .collect();
    assert_eq!(waiting.len(), 1);
    assert!(waiting[0]
        .status
        .message
        .starts_with("no free address in network tiny (10.0.9.0/29)"));
    assert!(waiting[0].networks.is_empty());
    let waiting_id = waiting[0].id.clone();
    // A task ends: its address is free again; the cursor wraps around to it.
    let done = sim
        .tasks(&svc)
        .into_iter()
        .find(|t| t.status.state == TaskState::Pending)
        .unwrap();
    let freed = done.networks[0].addresses.clone();
    let done = done.id.clone();
    sim.report(&done, TaskState::Failed);
    sim.now += 1;
    allocate(&mut sim);
    let live = sim.live(&svc);
    assert_eq!(live.len(), 4);
    assert!(
        live.iter().all(|t| t.status.state == TaskState::Pending),
        "the waiting task got an address"
    );
    assert_eq!(
        live.iter().find(|t| t.id == waiting_id).unwrap().networks[0].addresses,
        freed
    );
}
