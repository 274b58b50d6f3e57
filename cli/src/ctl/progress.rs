//! Per-task progress until a service converges, as `docker service create` shows it:
//!
//! ```text
//! overall progress: 3 out of 5 tasks
//! 1/5: running   [==================================================>]
//! 2/5: preparing [=================================>                 ]
//! 3/5: no suitable node (2 nodes not available for new tasks)
//! verify: Service 0123abcd converged
//! ```
//!
//! A [`Tracker`] turns one poll (the service and its tasks) into a [`Frame`]; a [`Renderer`]
//! redraws frames in place on a terminal and prints only changed lines otherwise; [`wait`]
//! polls the Control API until the service converges, the timeout passes or the user presses
//! Ctrl-C (which leaves the service converging in the background, as Docker does).

use super::{output, parse, Ctx};
use shoal_proto::model::TaskState;
use shoal_proto::pb;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::time::Instant;

/// How often the tasks are polled.
pub const POLL: Duration = Duration::from_millis(200);
/// How long a converged service must stay converged before it is reported (Docker waits 5 s):
/// catches tasks that start and die at once.
pub const VERIFY: Duration = Duration::from_secs(1);
/// Above this many tasks only the overall line is shown (Docker's limit).
pub const MAX_BARS: usize = 20;
/// Polls failing for this long (swarmd gone, no leader) end the wait.
pub const GIVE_UP: Duration = Duration::from_secs(10);
const BAR_WIDTH: usize = 50;
const MAX_ERROR: usize = 100;
/// The longest pull progress shown for a task (`20/20: preparing ` + this fits 80 columns;
/// bars are shown for at most [`MAX_BARS`] tasks).
const MAX_PULL: usize = 62;

/// `--detach` / `--timeout`, shared by `service create | scale | update`.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// Return at once instead of showing progress until the service converges.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Stop waiting after this long (0 = wait forever; default 60s, and for `update` and
    /// `rollback` until the update ends, as Docker waits). The service keeps converging in the
    /// background, but swarmctl exits with status 1 so scripts notice.
    #[arg(long, value_parser = parse::duration)]
    pub timeout: Option<Duration>,
}

/// How long `service create` and `service scale` wait by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl WaitArgs {
    /// The wait's limit for `watch` (zero: none): `--timeout`, else 60 s for a create or a
    /// scale and no limit for an update or a rollback, which take as long as their policy says
    /// (parallelism, delay, health checks, monitor).
    pub fn limit(&self, watch: Watch) -> Duration {
        self.timeout.unwrap_or(match watch {
            Watch::Converge => DEFAULT_TIMEOUT,
            Watch::Update | Watch::Rollback => Duration::ZERO,
        })
    }
}

/// One state of the display.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// Tasks running the current spec.
    pub running: u64,
    /// Tasks wanted.
    pub total: u64,
    /// `(label, text)` per task line: `("1/5", "running   [====>]")`.
    pub lines: Vec<(String, String)>,
    /// Whether the service looks converged in this poll.
    pub converged: bool,
    /// A reason tasks are stuck, if one is visible (scheduling failure, task error).
    pub problem: Option<String>,
    /// Set while a rollback runs: `overall progress: rolling back update: 3 out of 5 tasks`.
    pub rolling_back: bool,
}

impl Frame {
    /// `overall progress: 3 out of 5 tasks`.
    pub fn overall(&self) -> String {
        let phase = if self.rolling_back {
            "rolling back update: "
        } else {
            ""
        };
        format!("{phase}{} out of {} tasks", self.running, self.total)
    }
}

/// What a wait follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// Tasks converging on the spec (`service create`, `service scale`).
    Converge,
    /// An update: done when the managers say it completed; a pause or a rollback is an error.
    Update,
    /// A rollback: done when it completed; a pause is an error.
    Rollback,
}

/// Where an update the wait follows stands, from the service's update status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Still replacing tasks (or, for [`Watch::Converge`], not an update's business).
    Going,
    /// Completed: the tasks were already watched for the update's monitor period.
    Done,
    /// Rolling back after failures; the message is shown once.
    RollingBack(String),
    /// Stopped: the wait ends with this error.
    Failed(String),
}

/// What the update status of `svc` means for a wait on `watch`.
pub fn update_outcome(svc: &pb::Service, watch: Watch, name: &str) -> UpdateOutcome {
    use pb::UpdateState as S;
    if watch == Watch::Converge {
        return UpdateOutcome::Going;
    }
    let Some(u) = svc.update_status.as_ref() else {
        return UpdateOutcome::Done; // a change that replaced no task
    };
    match (u.state(), watch) {
        (S::None | S::Completed, _) => UpdateOutcome::Done,
        (S::Updating, _) => UpdateOutcome::Going,
        (S::RollbackStarted, Watch::Update) => UpdateOutcome::RollingBack(u.message.clone()),
        (S::RollbackStarted, _) => UpdateOutcome::Going,
        (S::RollbackCompleted, Watch::Update) => UpdateOutcome::Failed(format!(
            "service {name} rolled back: {}",
            u.message
        )),
        (S::RollbackCompleted, _) => UpdateOutcome::Done,
        (S::Paused, _) => UpdateOutcome::Failed(format!(
            "service {name} update paused: {}. `swarmctl service update {name}` resumes it; `swarmctl service rollback {name}` returns to the previous spec",
            u.message
        )),
        (S::RollbackPaused, _) => UpdateOutcome::Failed(format!(
            "service {name} rollback paused: {}. `swarmctl service update {name}` resumes it",
            u.message
        )),
    }
}

/// Progress of a state: Docker's numbering of the states before RUNNING.
fn step(state: TaskState) -> usize {
    match state {
        TaskState::New => 1,
        TaskState::Pending => 2,
        TaskState::Assigned => 3,
        TaskState::Accepted => 4,
        TaskState::Preparing => 5,
        TaskState::Ready => 6,
        TaskState::Starting => 7,
        _ => 8,
    }
}
const STEPS: usize = 8;

/// `[=====>      ]` for a state (50 wide; RUNNING is full).
pub fn bar(state: TaskState) -> String {
    let filled = (step(state) * BAR_WIDTH / STEPS).min(BAR_WIDTH);
    format!(
        "[{}>{}]",
        "=".repeat(filled),
        " ".repeat(BAR_WIDTH - filled)
    )
}

/// The text after `1/5: ` for one task.
pub fn task_text(t: &pb::Task, current: bool) -> String {
    let st = t.status.clone().unwrap_or_default();
    let state = TaskState::from_i32(st.state).unwrap_or_default();
    let problem = task_problem(t);
    if let Some(p) = problem {
        return p;
    }
    // A task made from the previous spec is about to be replaced: show the slot as starting over.
    let state = if current { state } else { TaskState::New };
    if state.is_terminal() {
        return state.display().to_lowercase();
    }
    // While its image is pulled, a task's message is the pull's progress: shown in place of
    // the bar, short enough for the line to fit 80 columns (lines are redrawn in place).
    match st.message.split_whitespace().collect::<Vec<_>>().join(" ") {
        pulling if state == TaskState::Preparing && !pulling.is_empty() => {
            format!("{:<9} {}", "preparing", shorten(&pulling, MAX_PULL))
        }
        _ => format!("{:<9} {}", state.display().to_lowercase(), bar(state)),
    }
}

/// `text` cut to `max` characters (an ellipsis where it was cut).
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        format!(
            "{}…",
            text.chars().take(max - 1).collect::<String>().trim_end()
        )
    } else {
        text.to_string()
    }
}

/// What keeps a task from running, if its status says: its error, or the scheduler's
/// "no suitable node (…)" while it is pending.
fn task_problem(t: &pb::Task) -> Option<String> {
    let st = t.status.as_ref()?;
    let msg = if !st.err.is_empty() {
        &st.err
    } else if st.state == TaskState::Pending as i32 && st.message.starts_with("no suitable node") {
        &st.message
    } else {
        return None;
    };
    Some(shorten(
        &msg.split_whitespace().collect::<Vec<_>>().join(" "),
        MAX_ERROR,
    ))
}

/// Whether a task was made from the service's current spec, or from an older one that runs the
/// same way (the managers bump the spec version for scaling and relabelling without replacing
/// tasks; they compare specs without replicas, mode and labels).
pub fn is_current(svc_spec: &pb::ServiceSpec, svc_version: u64, t: &pb::Task) -> bool {
    if t.spec_version >= svc_version {
        return true;
    }
    let norm = |s: &pb::ServiceSpec| pb::ServiceSpec {
        replicas: 0,
        global: false,
        labels: Default::default(),
        ..s.clone()
    };
    t.spec.as_ref().is_some_and(|ts| {
        // A task carries its ports as allocated: a port the service leaves to the allocator
        // (published 0) has its number in the task.
        let (mut a, b) = (norm(ts), norm(svc_spec));
        if a.ports.len() == b.ports.len() {
            for (pa, pb) in a.ports.iter_mut().zip(&b.ports) {
                if pb.published == 0 {
                    pa.published = 0;
                }
            }
        }
        a == b
    })
}

fn state_of(t: &pb::Task) -> TaskState {
    TaskState::from_i32(t.status.as_ref().map(|s| s.state).unwrap_or(0)).unwrap_or_default()
}

/// Follows one service from poll to poll (slot numbering stays stable between polls).
#[derive(Debug, Default)]
pub struct Tracker {
    /// Slot → display index (1-based), assigned in order of first appearance, as Docker does.
    slots: BTreeMap<u64, usize>,
}

impl Tracker {
    /// The display for one poll. `hostnames` maps node ids to hostnames (global services).
    pub fn frame(
        &mut self,
        svc: &pb::Service,
        tasks: &[pb::Task],
        hostnames: &HashMap<String, String>,
    ) -> Frame {
        let spec = svc.spec.clone().unwrap_or_default();
        let current = |t: &pb::Task| is_current(&spec, svc.spec_version, t);
        // The task to show per slot (per node for global services): prefer current over outdated,
        // live over ended, further along over behind, newer over older.
        let mut best: BTreeMap<String, &pb::Task> = BTreeMap::new();
        let mut by_slot: BTreeMap<u64, &pb::Task> = BTreeMap::new();
        let rank = |t: &pb::Task| {
            (
                current(t),
                !state_of(t).is_terminal(),
                state_of(t),
                t.created_ms,
            )
        };
        for t in tasks
            .iter()
            .filter(|t| t.desired_state <= TaskState::Running as i32)
        {
            if spec.global {
                let e = best.entry(t.node_id.clone()).or_insert(t);
                if rank(t) > rank(e) {
                    *e = t;
                }
            } else {
                let e = by_slot.entry(t.slot).or_insert(t);
                if rank(t) > rank(e) {
                    *e = t;
                }
            }
        }
        let mut frame = Frame::default();
        let shown: Vec<(String, &pb::Task)>;
        if spec.global {
            let mut nodes: Vec<(String, &pb::Task)> = best
                .into_iter()
                .map(|(node, t)| {
                    (
                        hostnames
                            .get(&node)
                            .cloned()
                            .unwrap_or_else(|| output::id(&node, false)),
                        t,
                    )
                })
                .collect();
            nodes.sort_by(|a, b| output::natural_cmp(&a.0, &b.0));
            frame.total = nodes.len() as u64;
            frame.running = nodes
                .iter()
                .filter(|(_, t)| current(t) && state_of(t) == TaskState::Running)
                .count() as u64;
            frame.converged = frame.total > 0 && frame.running == frame.total;
            shown = nodes;
        } else {
            let replicas = spec.replicas;
            for slot in by_slot.keys() {
                if !self.slots.contains_key(slot) {
                    let next = self.slots.len() + 1;
                    self.slots.insert(*slot, next);
                }
            }
            let mut indexed: Vec<(usize, &pb::Task)> = by_slot
                .iter()
                .map(|(slot, t)| (self.slots[slot], *t))
                .filter(|(i, _)| *i as u64 <= replicas)
                .collect();
            indexed.sort_by_key(|(i, _)| *i);
            frame.total = replicas;
            frame.running = indexed
                .iter()
                .filter(|(_, t)| current(t) && state_of(t) == TaskState::Running)
                .count() as u64;
            frame.converged = frame.running == replicas && by_slot.len() as u64 == replicas;
            shown = indexed
                .into_iter()
                .map(|(i, t)| (format!("{i}/{replicas}"), t))
                .collect();
        }
        frame.problem = shown.iter().find_map(|(_, t)| task_problem(t));
        if shown.len() <= MAX_BARS {
            frame.lines = shown
                .into_iter()
                .map(|(label, t)| (label, task_text(t, current(t))))
                .collect();
        }
        frame
    }
}

/// Draws frames: in place on a terminal, otherwise only the lines that changed.
#[derive(Debug, Default)]
pub struct Renderer {
    tty: bool,
    drawn: usize,
    last: Vec<(String, String)>,
    printed: HashMap<String, String>,
}

impl Renderer {
    /// A renderer for a terminal (`tty`) or a pipe.
    pub fn new(tty: bool) -> Renderer {
        Renderer {
            tty,
            ..Default::default()
        }
    }

    /// The text to write for `lines` (`(label, text)` pairs shown as `label: text`).
    pub fn draw(&mut self, lines: &[(String, String)]) -> String {
        let mut s = String::new();
        if self.tty {
            if self.last == lines {
                return s;
            }
            self.last = lines.to_vec();
            if self.drawn > 0 {
                s.push_str(&format!("\x1b[{}A", self.drawn));
            }
            for (label, text) in lines {
                s.push_str(&format!("\x1b[2K{label}: {text}\n"));
            }
            // Blank what is left of a longer previous frame, then come back up.
            let extra = self.drawn.saturating_sub(lines.len());
            for _ in 0..extra {
                s.push_str("\x1b[2K\n");
            }
            if extra > 0 {
                s.push_str(&format!("\x1b[{extra}A"));
            }
            self.drawn = lines.len();
        } else {
            for (label, text) in lines {
                if self.printed.get(label) != Some(text) {
                    s.push_str(&format!("{label}: {text}\n"));
                    self.printed.insert(label.clone(), text.clone());
                }
            }
        }
        s
    }
}

/// All lines of one frame, with the overall line first and an optional `verify:` line last.
pub fn frame_lines(frame: &Frame, verify: Option<String>) -> Vec<(String, String)> {
    let mut lines = vec![("overall progress".to_string(), frame.overall())];
    lines.extend(frame.lines.iter().cloned());
    if let Some(v) = verify {
        lines.push(("verify".to_string(), v));
    }
    lines
}

/// Polls service `id` until it converges. Draws progress unless `--format json`. Returns an
/// error if the service disappears or `timeout` passes; returns `Ok` on Ctrl-C, saying the
/// service keeps converging in the background.
pub async fn wait(
    ctx: &mut Ctx,
    id: &str,
    name: &str,
    timeout: Duration,
    watch: Watch,
) -> anyhow::Result<()> {
    let mut announced_rollback = false;
    let draw = !ctx.json();
    let mut renderer = Renderer::new(ctx.out.tty);
    let mut tracker = Tracker::default();
    let mut hostnames: HashMap<String, String> = HashMap::new();
    let started = Instant::now();
    let mut converged_at: Option<Instant> = None;
    let mut last_frame = Frame::default();
    // Since when, and why, polls have been failing.
    let mut failing: Option<(Instant, String)> = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut ctrl_c => {
                if draw {
                    ctx.out.line(&format!(
                        "\nOperation continuing in background.\nUse `swarmctl service ps {name}` to check progress."
                    ));
                }
                return Ok(());
            }
        }
        let still_there = format!(
            "It stays and keeps converging in the background: see `swarmctl service ps {name}`"
        );
        if !timeout.is_zero() && started.elapsed() >= timeout {
            let why = match (&failing, &last_frame.problem) {
                (Some((_, e)), _) => format!("; {e}"),
                (None, Some(p)) => format!("; {p}"),
                (None, None) => String::new(),
            };
            anyhow::bail!(
                "service {name} did not converge within {}: {} running{why}. {still_there}",
                output::millis(timeout.as_millis() as u64),
                last_frame.overall(),
            );
        }
        let (svc, tasks) = match poll(ctx, id).await {
            Ok(v) => v,
            Err(e) if e.code() == tonic::Code::NotFound => {
                anyhow::bail!("service {name} was removed while waiting for it to converge")
            }
            Err(e) => {
                // A leader election or a reconnect: keep trying for a while.
                let since = failing
                    .as_ref()
                    .map(|(t, _)| *t)
                    .unwrap_or_else(Instant::now);
                let e = crate::client::status_error(e).to_string();
                if since.elapsed() >= GIVE_UP {
                    anyhow::bail!("stopped following service {name}: {e}. {still_there}");
                }
                failing = Some((since, e));
                continue;
            }
        };
        failing = None;
        let global = svc.spec.as_ref().is_some_and(|s| s.global);
        if global
            && tasks
                .iter()
                .any(|t| !t.node_id.is_empty() && !hostnames.contains_key(&t.node_id))
        {
            if let Ok(h) = ctx.hostnames().await {
                hostnames = h;
            }
        }
        let mut frame = tracker.frame(&svc, &tasks, &hostnames);
        let outcome = update_outcome(&svc, watch, name);
        frame.rolling_back = matches!(outcome, UpdateOutcome::RollingBack(_))
            || (watch == Watch::Rollback && outcome == UpdateOutcome::Going);
        if let UpdateOutcome::RollingBack(why) = &outcome {
            if !announced_rollback && draw {
                ctx.out.line(&format!("rollback: {why}"));
                renderer = Renderer::new(ctx.out.tty);
            }
            announced_rollback = true;
        }
        if let UpdateOutcome::Failed(why) = outcome {
            if draw {
                let text = renderer.draw(&frame_lines(&frame, None));
                ctx.out.print(&text);
            }
            anyhow::bail!("{why}");
        }
        // An update converges when the managers say it completed: they watched the new tasks
        // for its monitor period already.
        let update_done = outcome == UpdateOutcome::Done;
        if watch != Watch::Converge {
            frame.converged &= update_done;
        }
        // One reading of the clock for both what is drawn and whether to stop: two readings
        // could draw "Waiting…" and stop on the same poll.
        let stable = match (frame.converged, converged_at) {
            (false, _) => {
                converged_at = None;
                false
            }
            (true, None) => {
                converged_at = Some(Instant::now());
                false
            }
            (true, Some(_)) if watch != Watch::Converge => true,
            (true, Some(at)) => at.elapsed() >= VERIFY,
        };
        let verify = if stable {
            Some(format!("Service {id} converged"))
        } else if frame.converged {
            Some(format!(
                "Waiting {} seconds to verify that tasks are stable...",
                VERIFY.as_secs()
            ))
        } else {
            None
        };
        let done = stable;
        if draw {
            let text = renderer.draw(&frame_lines(&frame, verify));
            ctx.out.print(&text);
        }
        last_frame = frame;
        if done {
            return Ok(());
        }
    }
}

async fn poll(ctx: &mut Ctx, id: &str) -> Result<(pb::Service, Vec<pb::Task>), tonic::Status> {
    let svc = ctx
        .client
        .get_service(pb::IdRequest { id: id.to_string() })
        .await?
        .into_inner();
    let filter = pb::TaskFilter {
        service: svc.id.clone(),
        node: String::new(),
        all: false,
        up_to_date: false,
    };
    let tasks = ctx.client.list_tasks(filter).await?.into_inner().tasks;
    Ok((svc, tasks))
}

#[cfg(test)]
mod tests;
