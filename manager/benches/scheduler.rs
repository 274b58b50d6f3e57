//! Scheduler benchmark: one `plan` pass placing 10,000 PENDING tasks on 1,000 ready nodes
//! (SwarmKit's `BenchmarkScheduler1kNodes10kTasks` takes about 1.8 s for this), plus the cost of a
//! steady-state pass of each leader actor over the same cluster once everything is placed, since
//! the actors re-plan every ~250 ms.
//!
//! `cargo bench -p shoal-manager --bench scheduler` prints markdown rows (best of 5).

use shoal_manager::store::State;
use shoal_proto::model::{
    Command, Node, NodeRole, NodeState, ServiceMode, ServiceSpec, Task, TaskState, TaskStatus,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

const NODES: usize = 1_000;
const TASKS: usize = 10_000;

/// `NODES` ready workers and `TASKS` pending tasks spread over `services` services.
fn cluster(services: usize) -> State {
    let mut state = State::default();
    for i in 0..NODES {
        let id = format!("node{i:04}");
        let node = Node {
            id: id.clone().into(),
            hostname: id.clone(),
            role: NodeRole::Worker,
            state: NodeState::Ready,
            ..Default::default()
        };
        state.nodes.insert(id.into(), node);
    }
    let per_service = TASKS / services;
    for s in 0..services {
        let spec = ServiceSpec {
            name: format!("svc{s}"),
            mode: ServiceMode::Replicated {
                replicas: per_service as u64,
            },
            image: "sleep".into(),
            ..Default::default()
        };
        for slot in 1..=per_service {
            let id = format!("task{s:03}x{slot:05}");
            let task = Task {
                id: id.clone().into(),
                service_id: format!("svc{s}").into(),
                service_name: spec.name.clone(),
                slot: slot as u64,
                spec: spec.clone(),
                spec_version: 1,
                desired_state: TaskState::Running,
                status: TaskStatus {
                    state: TaskState::Pending,
                    message: "allocated".into(),
                    ..Default::default()
                },
                ..Default::default()
            };
            state.tasks.insert(id.into(), task);
        }
    }
    state.reindex();
    state
}

fn best_of_5(mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut out = 0;
    for _ in 0..5 {
        let start = Instant::now();
        out = black_box(f());
        best = best.min(start.elapsed());
    }
    (best, out)
}

fn row(what: &str, d: Duration, note: &str) {
    println!("| {what} | {:.1} ms | {note} |", d.as_secs_f64() * 1e3);
}

fn placed(cmds: &[Command]) -> usize {
    match cmds {
        [Command::PutTasks(ts)] => ts
            .iter()
            .filter(|t| t.status.state == TaskState::Assigned)
            .count(),
        _ => 0,
    }
}

fn main() {
    println!("| benchmark (best of 5) | time | notes |");
    println!("|---|---|---|");
    for services in [1, 100] {
        let state = cluster(services);
        let (d, n) = best_of_5(|| placed(&shoal_manager::scheduler::plan(&state, 1)));
        assert_eq!(n, TASKS, "every task placed");
        row(
            &format!("scheduler: {TASKS} tasks ({services} service(s)) on {NODES} nodes"),
            d,
            "SwarmKit: ~1.8 s (1 service)",
        );
    }

    // Steady state: everything placed; a pass must find nothing to do, quickly.
    let mut state = cluster(1);
    let cmds = shoal_manager::scheduler::plan(&state, 1);
    for (i, c) in cmds.iter().enumerate() {
        state.apply(i as u64 + 1, c);
    }
    let service = shoal_proto::model::Service {
        id: "svc0".into(),
        spec: state
            .tasks
            .values()
            .next()
            .map(|t| t.spec.clone())
            .unwrap_or_default(),
        spec_version: 1,
        ..Default::default()
    };
    state.services.insert(service.id.clone(), service);
    let (d, n) = best_of_5(|| shoal_manager::scheduler::plan(&state, 2).len());
    assert_eq!(n, 0);
    row(
        &format!("scheduler: steady pass, {TASKS} tasks placed"),
        d,
        "no commands",
    );
    let (d, n) = best_of_5(|| shoal_manager::allocator::plan(&state, 2).len());
    assert_eq!(n, 0);
    row(
        &format!("allocator: steady pass, {TASKS} tasks"),
        d,
        "no commands",
    );
    let mut next = 0u64;
    let (d, n) = best_of_5(|| {
        shoal_manager::orchestrator::plan(&state, 2, &mut || {
            next += 1;
            format!("new{next}")
        })
        .len()
    });
    assert_eq!(n, 0);
    row(
        &format!("orchestrator: steady pass, {TASKS} tasks"),
        d,
        "no commands",
    );
}
