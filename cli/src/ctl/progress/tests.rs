use super::*;

fn spec(replicas: u64) -> pb::ServiceSpec {
    pb::ServiceSpec {
        name: "web".into(),
        replicas,
        image: "whoami".into(),
        ..Default::default()
    }
}

fn svc(spec: pb::ServiceSpec, version: u64) -> pb::Service {
    pb::Service {
        id: "s1".into(),
        spec: Some(spec),
        spec_version: version,
        ..Default::default()
    }
}

fn task(id: &str, slot: u64, state: TaskState, spec: &pb::ServiceSpec, version: u64) -> pb::Task {
    pb::Task {
        id: id.into(),
        slot,
        spec: Some(spec.clone()),
        spec_version: version,
        desired_state: TaskState::Running as i32,
        status: Some(pb::TaskStatus {
            state: state as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn bars_follow_the_states() {
    assert_eq!(bar(TaskState::Running), format!("[{}>]", "=".repeat(50)));
    assert_eq!(
        bar(TaskState::New),
        format!("[{}>{}]", "=".repeat(6), " ".repeat(44))
    );
    assert_eq!(
        bar(TaskState::Preparing),
        format!("[{}>{}]", "=".repeat(31), " ".repeat(19))
    );
    let widths: Vec<usize> = [
        TaskState::New,
        TaskState::Pending,
        TaskState::Assigned,
        TaskState::Accepted,
        TaskState::Starting,
    ]
    .iter()
    .map(|s| bar(*s).matches('=').count())
    .collect();
    assert!(widths.windows(2).all(|w| w[0] < w[1]), "{widths:?}");
    assert!(TaskState::ALL.iter().all(|s| bar(*s).chars().count() == 53));
}

#[test]
fn task_lines_like_docker() {
    let s = spec(1);
    assert_eq!(
        task_text(&task("a", 1, TaskState::Running, &s, 1), true),
        format!("running   [{}>]", "=".repeat(50))
    );
    assert!(
        task_text(&task("a", 1, TaskState::Preparing, &s, 1), true).starts_with("preparing [====")
    );
    // A pull in progress: its message in place of the bar, within 80 columns.
    let mut pulling = task("a", 1, TaskState::Preparing, &s, 1);
    pulling.status.as_mut().unwrap().message =
        "pulling nginx: 1 of 2+ layers done,\nlayer 2 at 12.0 MB/30.1 MB".into();
    assert_eq!(
        task_text(&pulling, true),
        "preparing pulling nginx: 1 of 2+ layers done, layer 2 at 12.0 MB/30.1 MB"
    );
    pulling.status.as_mut().unwrap().message = "x".repeat(300);
    let text = task_text(&pulling, true);
    assert!(format!("20/20: {text}").chars().count() <= 80, "{text}");
    assert!(text.ends_with('…'), "{text}");
    let mut stuck = task("a", 1, TaskState::Pending, &s, 1);
    stuck.status.as_mut().unwrap().message =
        "no suitable node (1 node not available for new tasks)".into();
    assert_eq!(
        task_text(&stuck, true),
        "no suitable node (1 node not available for new tasks)"
    );
    let mut failed = task("a", 1, TaskState::Failed, &s, 1);
    failed.status.as_mut().unwrap().err = "exec: \"nope\": not found\nmore".into();
    assert_eq!(task_text(&failed, true), "exec: \"nope\": not found more");
    let mut routine = task("a", 1, TaskState::Pending, &s, 1);
    routine.status.as_mut().unwrap().message = "allocated".into();
    assert!(task_text(&routine, true).starts_with("pending   ["));
    // A task from the previous spec shows as starting over.
    assert!(task_text(&task("a", 1, TaskState::Running, &s, 1), false).starts_with("new       ["));
}

#[test]
fn replicated_frames_count_running_slots() {
    let s = spec(3);
    let service = svc(s.clone(), 1);
    let mut tr = Tracker::default();
    let tasks = vec![
        task("a", 1, TaskState::Running, &s, 1),
        task("b", 2, TaskState::Starting, &s, 1),
        task("c", 3, TaskState::Running, &s, 1),
    ];
    let f = tr.frame(&service, &tasks, &HashMap::new());
    assert_eq!((f.running, f.total, f.converged), (2, 3, false));
    assert_eq!(f.overall(), "2 out of 3 tasks");
    let labels: Vec<&str> = f.lines.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["1/3", "2/3", "3/3"]);
    assert!(f.lines[1].1.starts_with("starting  ["));

    let tasks: Vec<_> = tasks
        .into_iter()
        .map(|mut t| {
            t.status.as_mut().unwrap().state = TaskState::Running as i32;
            t
        })
        .collect();
    let f = tr.frame(&service, &tasks, &HashMap::new());
    assert_eq!((f.running, f.converged), (3, true));
}

#[test]
fn a_replacement_is_preferred_over_the_task_it_replaces() {
    let s = spec(1);
    let mut failed = task("old", 1, TaskState::Failed, &s, 1);
    failed.created_ms = 1;
    failed.status.as_mut().unwrap().err = "exit status 1".into();
    let mut new = task("new", 1, TaskState::Assigned, &s, 1);
    new.created_ms = 2;
    let f = Tracker::default().frame(&svc(s, 1), &[failed, new], &HashMap::new());
    assert_eq!(f.lines.len(), 1);
    assert!(f.lines[0].1.starts_with("assigned  ["), "{:?}", f.lines);
}

#[test]
fn scaling_down_converges_once_extra_slots_are_gone() {
    let s = spec(1);
    let service = svc(s.clone(), 2);
    let mut tr = Tracker::default();
    let mut tasks = vec![
        task("a", 1, TaskState::Running, &s, 1),
        task("b", 2, TaskState::Running, &s, 1),
    ];
    // Scaling bumped the version but the tasks still run the same spec: they count.
    let f = tr.frame(&service, &tasks, &HashMap::new());
    assert_eq!(
        (f.running, f.total, f.converged, f.lines.len()),
        (1, 1, false, 1)
    );
    tasks[1].desired_state = TaskState::Shutdown as i32;
    let f = tr.frame(&service, &tasks, &HashMap::new());
    assert!(f.converged);
}

#[test]
fn an_update_waits_for_tasks_of_the_new_spec() {
    let old = spec(1);
    let new = pb::ServiceSpec {
        image: "whoami2".into(),
        ..old.clone()
    };
    let service = svc(new.clone(), 2);
    let mut tr = Tracker::default();
    let f = tr.frame(
        &service,
        &[task("a", 1, TaskState::Running, &old, 1)],
        &HashMap::new(),
    );
    assert_eq!((f.running, f.converged), (0, false));
    let f = tr.frame(
        &service,
        &[task("b", 1, TaskState::Running, &new, 2)],
        &HashMap::new(),
    );
    assert!(f.converged);
    // Labels do not reach tasks: a relabel alone does not wait for replacements.
    let mut relabelled = old.clone();
    relabelled.labels.insert("k".into(), "v".into());
    assert!(is_current(
        &relabelled,
        2,
        &task("a", 1, TaskState::Running, &old, 1)
    ));
    // A published port left to the allocator: the task has its number, and still is current
    // after a scale; a different fixed port is not.
    let mut auto = old.clone();
    auto.ports = vec![pb::PortConfig {
        target: 8080,
        ..Default::default()
    }];
    let mut allocated = auto.clone();
    allocated.ports[0].published = 30000;
    let mut scaled = auto.clone();
    scaled.replicas = 7;
    let t = task("a", 1, TaskState::Running, &allocated, 1);
    assert!(is_current(&scaled, 2, &t));
    let mut fixed = scaled.clone();
    fixed.ports[0].published = 30001;
    assert!(!is_current(&fixed, 2, &t));
}

#[test]
fn slot_numbers_stay_put_between_polls() {
    let s = spec(2);
    let service = svc(s.clone(), 1);
    let mut tr = Tracker::default();
    tr.frame(
        &service,
        &[task("a", 7, TaskState::New, &s, 1)],
        &HashMap::new(),
    );
    let f = tr.frame(
        &service,
        &[
            task("a", 7, TaskState::New, &s, 1),
            task("b", 3, TaskState::New, &s, 1),
        ],
        &HashMap::new(),
    );
    let labels: Vec<&str> = f.lines.iter().map(|(l, _)| l.as_str()).collect();
    // Slot 7 was seen first, so it stays 1/2 even though slot 3 sorts before it.
    assert_eq!(labels, ["1/2", "2/2"]);
}

#[test]
fn global_services_show_one_line_per_node() {
    let s = pb::ServiceSpec {
        global: true,
        ..spec(0)
    };
    let service = svc(s.clone(), 1);
    let mut a = task("a", 0, TaskState::Running, &s, 1);
    a.node_id = "n2".into();
    let mut b = task("b", 0, TaskState::Preparing, &s, 1);
    b.node_id = "n1".into();
    let hosts: HashMap<String, String> = [
        ("n1".into(), "worker1".into()),
        ("n2".into(), "manager1".into()),
    ]
    .into();
    let f = Tracker::default().frame(&service, &[a.clone(), b], &hosts);
    assert_eq!((f.running, f.total, f.converged), (1, 2, false));
    assert_eq!(
        f.lines.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
        ["manager1", "worker1"]
    );
    let f = Tracker::default().frame(&service, &[a], &hosts);
    assert!(f.converged);
    assert!(!Tracker::default().frame(&service, &[], &hosts).converged);
}

#[test]
fn many_tasks_show_only_the_overall_line() {
    let s = spec(30);
    let tasks: Vec<_> = (1..=30)
        .map(|i| task(&format!("t{i}"), i, TaskState::Running, &s, 1))
        .collect();
    let f = Tracker::default().frame(&svc(s, 1), &tasks, &HashMap::new());
    assert!(f.lines.is_empty());
    assert!(f.converged);
}

#[test]
fn pipes_get_only_changed_lines() {
    let mut r = Renderer::new(false);
    let l = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        r.draw(&l(&[
            ("overall progress", "0 out of 2 tasks"),
            ("1/2", "new")
        ])),
        "overall progress: 0 out of 2 tasks\n1/2: new\n"
    );
    assert_eq!(
        r.draw(&l(&[
            ("overall progress", "0 out of 2 tasks"),
            ("1/2", "pending")
        ])),
        "1/2: pending\n"
    );
    assert_eq!(
        r.draw(&l(&[
            ("overall progress", "0 out of 2 tasks"),
            ("1/2", "pending")
        ])),
        ""
    );
}

#[test]
fn terminals_get_redrawn_in_place() {
    let mut r = Renderer::new(true);
    let l = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        r.draw(&l(&[("a", "1"), ("b", "2")])),
        "\x1b[2Ka: 1\n\x1b[2Kb: 2\n"
    );
    assert_eq!(
        r.draw(&l(&[("a", "3"), ("b", "4"), ("c", "5")])),
        "\x1b[2A\x1b[2Ka: 3\n\x1b[2Kb: 4\n\x1b[2Kc: 5\n"
    );
    assert_eq!(
        r.draw(&l(&[("a", "3"), ("b", "4"), ("c", "5")])),
        "",
        "nothing changed"
    );
    // A shorter frame blanks the leftover line and moves back up over it.
    assert_eq!(
        r.draw(&l(&[("a", "6")])),
        "\x1b[3A\x1b[2Ka: 6\n\x1b[2K\n\x1b[2K\n\x1b[2A"
    );
}

#[test]
fn frame_lines_start_with_overall_and_end_with_verify() {
    let f = Frame {
        running: 1,
        total: 1,
        lines: vec![("1/1".into(), "running".into())],
        converged: true,
        problem: None,
        rolling_back: false,
    };
    let lines = frame_lines(&f, Some("Service s1 converged".into()));
    assert_eq!(lines.first().unwrap().0, "overall progress");
    assert_eq!(
        lines.last().unwrap(),
        &("verify".to_string(), "Service s1 converged".to_string())
    );
}

#[test]
fn an_update_ends_as_the_managers_say() {
    use pb::UpdateState as S;
    let svc = |state: S, message: &str| pb::Service {
        update_status: Some(pb::UpdateStatus {
            state: state as i32,
            message: message.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let o = |state, watch| update_outcome(&svc(state, "why"), watch, "web");
    // (state, watch) → outcome
    assert_eq!(o(S::Updating, Watch::Update), UpdateOutcome::Going);
    assert_eq!(o(S::Completed, Watch::Update), UpdateOutcome::Done);
    assert_eq!(
        o(S::RollbackStarted, Watch::Update),
        UpdateOutcome::RollingBack("why".into())
    );
    assert_eq!(o(S::RollbackStarted, Watch::Rollback), UpdateOutcome::Going);
    assert_eq!(
        o(S::RollbackCompleted, Watch::Rollback),
        UpdateOutcome::Done
    );
    assert_eq!(
        o(S::RollbackCompleted, Watch::Update),
        UpdateOutcome::Failed("service web rolled back: why".into())
    );
    assert!(
        matches!(o(S::Paused, Watch::Update), UpdateOutcome::Failed(m) if m.starts_with("service web update paused: why."))
    );
    assert!(matches!(
        o(S::RollbackPaused, Watch::Rollback),
        UpdateOutcome::Failed(_)
    ));
    // Create and scale do not follow updates; an update that replaced nothing is done.
    assert_eq!(o(S::Paused, Watch::Converge), UpdateOutcome::Going);
    assert_eq!(
        update_outcome(&pb::Service::default(), Watch::Update, "web"),
        UpdateOutcome::Done
    );
}
