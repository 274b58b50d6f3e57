//! The seeded clients: each one loops, picking a manager, a key and an operation from its own
//! random stream, and records every write in the [`History`] as invoked / returned. A write
//! whose outcome is unknown retires the client's process id; it goes on under a fresh one.

use super::history::{History, Op, Ret, Tag};
use super::rng::Rng;
use shoal_cli::client::{connect_with, ClientConfig};
use shoal_proto::pb::{self, control_client::ControlClient};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::Code;

/// The label holding a key's value.
pub const LABEL: &str = "v";

/// Bounds of one client call: a paused or cut-off manager makes the op unknown after this.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// What a client needs to know.
#[derive(Debug, Clone)]
pub struct ClientPlan {
    /// The client's number (its values carry it).
    pub index: u64,
    /// The run's seed.
    pub seed: u64,
    /// Every manager's control socket (`unix:///…/swarmd.sock`).
    pub managers: Vec<String>,
    /// The pre-created keys (updated with compare-and-set).
    pub registers: Vec<String>,
    /// The names creates pick from (several clients may race for one).
    pub creates: Vec<String>,
}

/// Connects to a manager's control socket with the harness's timeouts.
pub async fn connect(host: &str) -> Option<ControlClient<Channel>> {
    let cfg = ClientConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Some(CALL_TIMEOUT),
        ..ClientConfig::default()
    };
    connect_with(host, &cfg).await.ok()
}

/// The value of a service's label (0 when it has none, as a freshly created key).
pub fn value_of(svc: &pb::Service) -> Option<Tag> {
    svc.spec
        .as_ref()
        .and_then(|s| s.labels.get(LABEL))
        .and_then(|v| v.parse().ok())
}

/// The spec of a key's service: no replicas, no networks, a process runtime, label `v`.
pub fn key_spec(name: &str, tag: Tag) -> pb::ServiceSpec {
    pb::ServiceSpec {
        name: name.to_string(),
        replicas: 0,
        image: "sleep".into(),
        args: vec!["1000".into()],
        runtime: pb::Runtime::Process as i32,
        labels: [(LABEL.to_string(), tag.to_string())].into(),
        ..Default::default()
    }
}

/// Runs client `plan` until `stop`; its ops go to `history`.
pub async fn run(plan: ClientPlan, history: Arc<History>, stop: Arc<AtomicBool>) {
    let mut rng = Rng::fork(plan.seed, 1000 + plan.index);
    let mut pid = history.fresh_pid();
    let mut counter: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        counter += 1;
        let tag = ((plan.index + 1) << 40) | counter;
        let host = &plan.managers[rng.below(plan.managers.len() as u64) as usize];
        let create = !plan.creates.is_empty() && rng.percent(10);
        let key = if create {
            plan.creates[rng.below(plan.creates.len() as u64) as usize].clone()
        } else {
            plan.registers[rng.below(plan.registers.len() as u64) as usize].clone()
        };
        let Some(mut c) = connect(host).await else {
            history.not_sent();
            // A dead or paused manager: do not spin on it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let done = if create {
            create_op(&mut c, &history, pid, &key, tag).await
        } else {
            cas_op(&mut c, &history, pid, &key, tag).await
        };
        if !done {
            history.unknown();
            pid = history.fresh_pid();
        }
    }
}

/// One create; false when its outcome is unknown.
async fn create_op(
    c: &mut ControlClient<Channel>,
    history: &History,
    pid: u64,
    key: &str,
    tag: Tag,
) -> bool {
    history.invoke(pid, key, Op::Create { tag });
    let req = pb::CreateServiceRequest {
        spec: Some(key_spec(key, tag)),
    };
    match c.create_service(req).await {
        Ok(_) => history.ret(pid, key, Ret::Ok, 0),
        Err(s) if name_taken(&s) => history.ret(pid, key, Ret::Exists, 0),
        Err(_) => return false,
    }
    true
}

/// A read then a compare-and-set at the version read; false when the write's outcome is
/// unknown. A failed read writes nothing.
async fn cas_op(
    c: &mut ControlClient<Channel>,
    history: &History,
    pid: u64,
    key: &str,
    tag: Tag,
) -> bool {
    let svc = match c.get_service(pb::IdRequest { id: key.into() }).await {
        Ok(r) => r.into_inner(),
        Err(_) => {
            history.read(false);
            return true;
        }
    };
    let Some(from) = value_of(&svc) else {
        history.read(false);
        return true;
    };
    history.read(true);
    let mut spec = svc.spec.clone().unwrap_or_default();
    spec.labels.insert(LABEL.into(), tag.to_string());
    history.invoke(
        pid,
        key,
        Op::Cas {
            from,
            to: tag,
            version: 0,
        },
    );
    let req = pb::UpdateServiceRequest {
        id: svc.id.clone(),
        spec: Some(spec),
        version: svc.version,
        rollback: false,
        skip_unchanged: false,
    };
    match c.update_service(req).await {
        Ok(r) => {
            // The response shows the manager's store after the write: its version is this
            // write's only when it still holds this write's value.
            let shown = r.into_inner();
            let version = if value_of(&shown) == Some(tag) {
                shown.version
            } else {
                0
            };
            history.ret(pid, key, Ret::Ok, version)
        }
        Err(s) if out_of_sequence(&s) => history.ret(pid, key, Ret::Conflict, 0),
        Err(_) => return false,
    }
    true
}

/// `update out of sequence`: the version changed since the read; nothing was written.
pub fn out_of_sequence(s: &tonic::Status) -> bool {
    s.code() == Code::Aborted && s.message().contains("out of sequence")
}

/// A service with that name exists: refused before or at the raft write. (A refusal because
/// the *id* is taken is not one: only a retry of this very create can hold that id, so it may
/// have been applied.)
pub fn name_taken(s: &tonic::Status) -> bool {
    let m = s.message();
    match s.code() {
        Code::AlreadyExists => true,
        Code::FailedPrecondition => m.contains("service with name") && m.contains("already exists"),
        _ => false,
    }
}
