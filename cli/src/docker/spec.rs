//! Docker's `ServiceSpec` JSON (`POST /services/create`, `POST /services/{id}/update`) → the
//! Control API's spec. Every field is read or refused: a field Shoal does not implement, set to
//! anything but its empty value, is a 400 naming it (`Spec.TaskTemplate.ContainerSpec.Mounts
//! is not supported by Shoal`), never silently dropped. An update starts from the service's
//! current spec, so what Docker's JSON cannot say (Shoal's `--stop-drain`) is kept.

use super::ApiError;
use serde_json::{Map, Value};
use shoal_proto::pb;
use std::collections::{BTreeSet, HashMap};

/// A JSON object being read: the fields taken are marked, [`Obj::finish`] refuses the rest.
struct Obj<'a> {
    path: String,
    map: Option<&'a Map<String, Value>>,
    taken: BTreeSet<&'a str>,
}

fn bad(path: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("invalid {path}: {why}"))
}

/// Whether `v` is its type's empty value (what Go's `omitempty` leaves out, and `null`).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
    }
}

impl<'a> Obj<'a> {
    fn new(path: impl Into<String>, v: Option<&'a Value>) -> Result<Obj<'a>, ApiError> {
        let path = path.into();
        let map = match v {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return Err(bad(&path, "expected an object")),
        };
        Ok(Obj {
            path,
            map,
            taken: BTreeSet::new(),
        })
    }

    fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// The field's value, `None` when absent or null.
    fn take(&mut self, key: &'a str) -> Option<&'a Value> {
        self.taken.insert(key);
        self.map?.get(key).filter(|v| !v.is_null())
    }

    fn obj(&mut self, key: &'a str) -> Result<Obj<'a>, ApiError> {
        let path = self.at(key);
        Obj::new(path, self.take(key))
    }

    fn str(&mut self, key: &'a str) -> Result<Option<String>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(&self.at(key), "expected a string")),
        }
    }

    fn u64(&mut self, key: &'a str) -> Result<Option<u64>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(&self.at(key), "expected a non-negative integer")),
        }
    }

    fn f64(&mut self, key: &'a str) -> Result<Option<f64>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| bad(&self.at(key), "expected a number")),
        }
    }

    fn bool(&mut self, key: &'a str) -> Result<Option<bool>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(bad(&self.at(key), "expected true or false")),
        }
    }

    /// A Go `time.Duration` (nanoseconds) as milliseconds.
    fn ms(&mut self, key: &'a str) -> Result<Option<u64>, ApiError> {
        Ok(self.u64(key)?.map(|ns| ns / 1_000_000))
    }

    fn strings(&mut self, key: &'a str) -> Result<Option<Vec<String>>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| bad(&self.at(key), "expected a list of strings")),
            Some(_) => Err(bad(&self.at(key), "expected a list of strings")),
        }
    }

    fn labels(&mut self, key: &'a str) -> Result<Option<HashMap<String, String>>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect::<Option<HashMap<_, _>>>()
                .map(Some)
                .ok_or_else(|| bad(&self.at(key), "label values must be strings")),
            Some(_) => Err(bad(&self.at(key), "expected an object")),
        }
    }

    fn list(&mut self, key: &'a str) -> Result<Vec<Obj<'a>>, ApiError> {
        let path = self.at(key);
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| Obj::new(format!("{path}[{i}]"), Some(v)))
                .collect(),
            Some(_) => Err(bad(&path, "expected a list")),
        }
    }

    /// Refuses every field not taken that is set to something.
    fn finish(self) -> Result<(), ApiError> {
        let Some(m) = self.map else { return Ok(()) };
        for (k, v) in m {
            if !self.taken.contains(k.as_str()) && !is_empty(v) {
                return Err(ApiError::bad_request(format!(
                    "{}.{k} is not supported by Shoal",
                    self.path
                )));
            }
        }
        Ok(())
    }
}

/// `name:tag@sha256:…` → (`name:tag`, `sha256:…`).
fn split_digest(image: &str) -> (String, String) {
    match image.split_once('@') {
        Some((name, digest)) => (name.to_string(), digest.to_string()),
        None => (image.to_string(), String::new()),
    }
}

fn health(mut h: Obj<'_>) -> Result<pb::HealthCheck, ApiError> {
    let out = pb::HealthCheck {
        test: h.strings("Test")?.unwrap_or_default(),
        interval_ms: h.ms("Interval")?.unwrap_or(0),
        timeout_ms: h.ms("Timeout")?.unwrap_or(0),
        start_period_ms: h.ms("StartPeriod")?.unwrap_or(0),
        retries: h.u64("Retries")?.unwrap_or(0) as u32,
    };
    h.finish()?;
    Ok(out)
}

/// A reference's `File`: target, uid, gid, mode.
fn file(mut f: Obj<'_>) -> Result<(String, u32, u32, Option<u32>), ApiError> {
    let id = |s: Option<String>, path: String| -> Result<u32, ApiError> {
        s.filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| bad(&path, "expected a numeric id")))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let target = f.str("Name")?.unwrap_or_default();
    let uid = id(f.str("UID")?, f.at("UID"))?;
    let gid = id(f.str("GID")?, f.at("GID"))?;
    let mode = f.u64("Mode")?.map(|m| m as u32);
    f.finish()?;
    Ok((target, uid, gid, mode))
}

fn container_spec(mut c: Obj<'_>, s: &mut pb::ServiceSpec) -> Result<(), ApiError> {
    if let Some(image) = c.str("Image")? {
        let (image, digest) = split_digest(&image);
        s.image = image;
        s.image_digest = digest;
    }
    s.container_labels = c.labels("Labels")?.unwrap_or_default();
    s.entrypoint = c.strings("Command")?.unwrap_or_default();
    s.args = c.strings("Args")?.unwrap_or_default();
    s.env = c.strings("Env")?.unwrap_or_default();
    s.workdir = c.str("Dir")?.unwrap_or_default();
    s.user = c.str("User")?.unwrap_or_default();
    s.tty = c.bool("TTY")?.unwrap_or(false);
    s.init = c.bool("Init")?.unwrap_or(false);
    if let Some(ms) = c.ms("StopGracePeriod")? {
        s.stop_grace_ms = ms;
    }
    s.healthcheck = match c.take("Healthcheck") {
        Some(v) => Some(health(Obj::new(c.at("Healthcheck"), Some(v))?)?),
        None => None,
    };
    match c.str("Isolation")?.as_deref() {
        None | Some("") | Some("default") => {}
        Some(_) => return Err(bad(&c.at("Isolation"), "only \"default\" is supported")),
    }
    let mut secrets = Vec::new();
    for mut r in c.list("Secrets")? {
        let (target, uid, gid, mode) = file(r.obj("File")?)?;
        secrets.push(pb::SecretReference {
            id: r.str("SecretID")?.unwrap_or_default(),
            name: r.str("SecretName")?.unwrap_or_default(),
            target,
            uid,
            gid,
            mode,
        });
        r.finish()?;
    }
    s.secrets = secrets;
    let mut configs = Vec::new();
    for mut r in c.list("Configs")? {
        let (target, uid, gid, mode) = file(r.obj("File")?)?;
        // The CLI names the file after the config (`cfg1`): dockerd mounts a relative target
        // at the root (`/cfg1`).
        let target = if target.is_empty() || target.starts_with('/') {
            target
        } else {
            format!("/{target}")
        };
        configs.push(pb::ConfigReference {
            id: r.str("ConfigID")?.unwrap_or_default(),
            name: r.str("ConfigName")?.unwrap_or_default(),
            target,
            uid,
            gid,
            mode,
        });
        r.finish()?;
    }
    s.configs = configs;
    c.finish()
}

fn restart_policy(mut r: Obj<'_>) -> Result<Option<pb::RestartPolicy>, ApiError> {
    if r.map.is_none() {
        return Ok(None);
    }
    let condition = match r.str("Condition")?.as_deref() {
        None | Some("") | Some("any") => pb::RestartCondition::Any,
        Some("on-failure") => pb::RestartCondition::OnFailure,
        Some("none") => pb::RestartCondition::None,
        Some(_) => return Err(bad(&r.at("Condition"), "expected any, on-failure or none")),
    };
    let p = pb::RestartPolicy {
        condition: condition as i32,
        delay_ms: r.ms("Delay")?.unwrap_or(0),
        max_attempts: r.u64("MaxAttempts")?.unwrap_or(0),
    };
    r.finish()?;
    Ok(Some(p))
}

fn update_config(mut u: Obj<'_>) -> Result<Option<pb::UpdateConfig>, ApiError> {
    if u.map.is_none() {
        return Ok(None);
    }
    let failure_action = match u.str("FailureAction")?.as_deref() {
        None | Some("") | Some("pause") => pb::FailureAction::Pause,
        Some("continue") => pb::FailureAction::Continue,
        Some("rollback") => pb::FailureAction::Rollback,
        Some(_) => {
            return Err(bad(
                &u.at("FailureAction"),
                "expected pause, continue or rollback",
            ))
        }
    };
    let order = match u.str("Order")?.as_deref() {
        None | Some("") | Some("stop-first") => pb::UpdateOrder::StopFirst,
        Some("start-first") => pb::UpdateOrder::StartFirst,
        Some(_) => return Err(bad(&u.at("Order"), "expected stop-first or start-first")),
    };
    let c = pb::UpdateConfig {
        parallelism: u.u64("Parallelism")?.unwrap_or(0),
        delay_ms: u.ms("Delay")?.unwrap_or(0),
        failure_action: failure_action as i32,
        monitor_ms: u.ms("Monitor")?.unwrap_or(0),
        max_failure_ratio: u.f64("MaxFailureRatio")?.unwrap_or(0.0),
        order: order as i32,
    };
    u.finish()?;
    Ok(Some(c))
}

fn networks(list: Vec<Obj<'_>>) -> Result<Vec<pb::NetworkAttachmentSpec>, ApiError> {
    list.into_iter()
        .map(|mut n| {
            let a = pb::NetworkAttachmentSpec {
                target: n.str("Target")?.unwrap_or_default(),
                aliases: n.strings("Aliases")?.unwrap_or_default(),
            };
            n.finish()?;
            Ok(a)
        })
        .collect()
}

fn task_template(mut t: Obj<'_>, s: &mut pb::ServiceSpec) -> Result<(), ApiError> {
    container_spec(t.obj("ContainerSpec")?, s)?;
    let mut res = t.obj("Resources")?;
    let mut limits = res.obj("Limits")?;
    s.limit_cpus = limits
        .u64("NanoCPUs")?
        .map(|n| n as f64 / 1e9)
        .unwrap_or(0.0);
    s.limit_memory_bytes = limits.u64("MemoryBytes")?.map(|n| n as i64).unwrap_or(0);
    limits.finish()?;
    res.finish()?;
    s.restart = restart_policy(t.obj("RestartPolicy")?)?;
    let mut placement = t.obj("Placement")?;
    s.constraints = placement.strings("Constraints")?.unwrap_or_default();
    placement.finish()?;
    s.networks = networks(t.list("Networks")?)?;
    if let Some(f) = t.u64("ForceUpdate")? {
        s.force_update = f;
    }
    // None: the base's (an update keeps a `--runtime process` service's runtime).
    match t.str("Runtime")?.as_deref() {
        None | Some("") => {}
        Some("container") => s.runtime = pb::Runtime::Container as i32,
        Some("process") => s.runtime = pb::Runtime::Process as i32,
        Some(_) => return Err(bad(&t.at("Runtime"), "expected container or process")),
    }
    t.finish()
}

/// What `POST /nodes/{id}/update` asks for: Docker's whole `NodeSpec`, as the change to make
/// to `current` (labels are replaced: the ones missing are removed).
pub fn node_update(
    spec: &Value,
    current: &pb::Node,
    version: u64,
) -> Result<pb::UpdateNodeRequest, ApiError> {
    let mut o = Obj::new("Spec", Some(spec))?;
    let mut r = pb::UpdateNodeRequest {
        id: current.id.clone(),
        version,
        ..Default::default()
    };
    if let Some(role) = o.str("Role")? {
        r.set_role = true;
        r.role = match role.as_str() {
            "manager" => pb::NodeRole::Manager,
            "worker" => pb::NodeRole::Worker,
            _ => return Err(bad(&o.at("Role"), "expected manager or worker")),
        } as i32;
    }
    if let Some(a) = o.str("Availability")? {
        r.set_availability = true;
        r.availability = match a.as_str() {
            "active" => pb::Availability::Active,
            "pause" => pb::Availability::Pause,
            "drain" => pb::Availability::Drain,
            _ => {
                return Err(bad(
                    &o.at("Availability"),
                    "expected active, pause or drain",
                ))
            }
        } as i32;
    }
    let labels = o.labels("Labels")?.unwrap_or_default();
    r.rm_labels = current
        .labels
        .keys()
        .filter(|k| !labels.contains_key(*k))
        .cloned()
        .collect();
    r.rm_labels.sort();
    r.add_labels = labels;
    o.finish()?;
    Ok(r)
}

/// `POST /swarm/update`'s body (Docker's whole `swarm.Spec`, as `GET /swarm` showed it) as the
/// change to make to `current`: the certificates' validity and autolock. Anything else changed
/// is refused by name.
pub fn swarm_update(
    v: &Value,
    current: &pb::Cluster,
) -> Result<pb::UpdateClusterRequest, ApiError> {
    let mut o = Obj::new("Spec", Some(v))?;
    match o.str("Name")?.as_deref() {
        None | Some("") | Some("default") => {}
        Some(_) => return Err(ApiError::bad_request("Spec.Name is not supported by Shoal")),
    }
    let mut d = o.obj("Dispatcher")?;
    if let Some(ms) = d.ms("HeartbeatPeriod")? {
        if ms != current.heartbeat_period_ms {
            return Err(ApiError::bad_request(
                "Spec.Dispatcher.HeartbeatPeriod is not supported by Shoal (swarmd --heartbeat-period)",
            ));
        }
    }
    d.finish()?;
    let mut orch = o.obj("Orchestration")?;
    if let Some(n) = orch.u64("TaskHistoryRetentionLimit")? {
        if n != shoal_manager::orchestrator::TASK_HISTORY_RETENTION as u64 {
            return Err(ApiError::bad_request(
                "Spec.Orchestration.TaskHistoryRetentionLimit is not supported by Shoal (it keeps 5 tasks per slot)",
            ));
        }
    }
    orch.finish()?;
    let mut ca = o.obj("CAConfig")?;
    let cert_expiry_ms = ca.ms("NodeCertExpiry")?.unwrap_or(0);
    ca.finish()?;
    let mut enc = o.obj("EncryptionConfig")?;
    let autolock = enc.bool("AutoLockManagers")?;
    enc.finish()?;
    o.finish()?;
    Ok(pb::UpdateClusterRequest {
        cert_expiry_ms: if cert_expiry_ms == current.cert_expiry_ms {
            0
        } else {
            cert_expiry_ms
        },
        autolock: autolock.filter(|a| *a != current.autolock),
    })
}

/// `POST /networks/create`'s body (`types.NetworkCreateRequest`) as a Control request.
pub fn network_create(v: &Value) -> Result<pb::CreateNetworkRequest, ApiError> {
    let mut o = Obj::new("Network", Some(v))?;
    let name = o.str("Name")?.unwrap_or_default();
    let driver = match o.str("Driver")?.as_deref() {
        None | Some("") | Some("bridge") => pb::NetworkDriver::Bridge,
        Some("overlay") => pb::NetworkDriver::Overlay,
        Some("host") => pb::NetworkDriver::Host,
        Some("null") => pb::NetworkDriver::Null,
        Some(d) => {
            return Err(ApiError::bad_request(format!(
                "network driver {d:?} is not supported by Shoal (overlay or bridge)"
            )))
        }
    };
    let _ = o.bool("CheckDuplicate")?;
    match o.str("Scope")?.as_deref() {
        None | Some("") | Some("swarm") | Some("local") => {}
        Some(_) => return Err(bad(&o.at("Scope"), "expected swarm or local")),
    }
    let attachable = o.bool("Attachable")?.unwrap_or(false);
    let labels = o.labels("Labels")?.unwrap_or_default();
    let mut ipam = o.obj("IPAM")?;
    match ipam.str("Driver")?.as_deref() {
        None | Some("") | Some("default") => {}
        Some(_) => {
            return Err(bad(
                &ipam.at("Driver"),
                "only the default IPAM driver is supported",
            ))
        }
    }
    let mut subnets = Vec::new();
    for mut c in ipam.list("Config")? {
        if let Some(s) = c.str("Subnet")? {
            subnets.push(s);
        }
        c.finish()?;
    }
    ipam.finish()?;
    if subnets.len() > 1 {
        return Err(ApiError::bad_request(
            "Network.IPAM.Config: one subnet per network is supported by Shoal",
        ));
    }
    o.finish()?;
    Ok(pb::CreateNetworkRequest {
        name,
        driver: driver as i32,
        subnet: subnets.pop().unwrap_or_default(),
        attachable,
        labels,
    })
}

/// `POST /secrets/create` and `/configs/create` (`SecretSpec`, `ConfigSpec`): name, labels and
/// the data (base64, as Go's `[]byte`).
pub fn data_create(v: &Value, kind: &str) -> Result<pb::CreateDataRequest, ApiError> {
    use base64::Engine as _;
    let mut o = Obj::new("Spec", Some(v))?;
    let name = o.str("Name")?.unwrap_or_default();
    let labels = o.labels("Labels")?.unwrap_or_default();
    let data = match o.str("Data")? {
        Some(d) => base64::engine::general_purpose::STANDARD
            .decode(d.as_bytes())
            .map_err(|e| bad(&o.at("Data"), &format!("not base64: {e}")))?,
        None => Vec::new(),
    };
    let driver = o.obj("Driver")?;
    if driver.map.is_some_and(|m| !m.values().all(is_empty)) {
        return Err(ApiError::bad_request(format!(
            "Spec.Driver ({kind} drivers) is not supported by Shoal"
        )));
    }
    o.finish()?;
    Ok(pb::CreateDataRequest { name, labels, data })
}

/// The traffic policy (which Docker does not know) of `port`: that of the same port
/// (protocol, target, published port, mode) in `base`, `cluster` for a new one.
fn keep_traffic(base: &[pb::PortConfig], port: &pb::PortConfig) -> i32 {
    base.iter()
        .find(|b| {
            b.protocol == port.protocol
                && b.target == port.target
                && b.mode == port.mode
                && (b.published == port.published || port.published == 0)
        })
        .map_or(pb::TrafficPolicy::Cluster as i32, |b| b.traffic)
}

/// `spec` applied onto `base` (the service's current spec for an update, an empty one for a
/// create).
pub fn service_spec(spec: &Value, base: pb::ServiceSpec) -> Result<pb::ServiceSpec, ApiError> {
    let base_image = base.image.clone();
    let mut s = base;
    let mut o = Obj::new("Spec", Some(spec))?;
    if o.map.is_none() {
        return Err(ApiError::bad_request("a service spec is required"));
    }
    if let Some(name) = o.str("Name")? {
        s.name = name;
    }
    s.labels = o.labels("Labels")?.unwrap_or_default();
    task_template(o.obj("TaskTemplate")?, &mut s)?;
    // The deprecated top-level `Networks` (API < 1.25), when the task template has none.
    let old = networks(o.list("Networks")?)?;
    if s.networks.is_empty() {
        s.networks = old;
    }
    let mut mode = o.obj("Mode")?;
    if let Some(g) = mode.take("Global") {
        Obj::new("Spec.Mode.Global", Some(g))?.finish()?;
        s.global = true;
        s.replicas = 0;
    } else {
        let mut r = mode.obj("Replicated")?;
        s.global = false;
        s.replicas = r.u64("Replicas")?.unwrap_or(1);
        r.finish()?;
    }
    mode.finish()?;
    s.update_config = update_config(o.obj("UpdateConfig")?)?;
    s.rollback_config = update_config(o.obj("RollbackConfig")?)?;
    let mut ep = o.obj("EndpointSpec")?;
    s.endpoint_mode = match ep.str("Mode")?.as_deref() {
        None | Some("") | Some("vip") => pb::EndpointMode::Vip,
        Some("dnsrr") => pb::EndpointMode::Dnsrr,
        Some(_) => return Err(bad(&ep.at("Mode"), "expected vip or dnsrr")),
    } as i32;
    let base_ports = std::mem::take(&mut s.ports);
    let mut ports = Vec::new();
    for mut p in ep.list("Ports")? {
        let protocol = match p.str("Protocol")?.as_deref() {
            None | Some("") | Some("tcp") => pb::Protocol::Tcp,
            Some("udp") => pb::Protocol::Udp,
            Some(_) => return Err(bad(&p.at("Protocol"), "expected tcp or udp")),
        };
        let mode = match p.str("PublishMode")?.as_deref() {
            None | Some("") | Some("ingress") => pb::PublishMode::Ingress,
            Some("host") => pb::PublishMode::Host,
            Some(_) => return Err(bad(&p.at("PublishMode"), "expected ingress or host")),
        };
        let mut port = pb::PortConfig {
            protocol: protocol as i32,
            target: p.u64("TargetPort")?.unwrap_or(0) as u32,
            published: p.u64("PublishedPort")?.unwrap_or(0) as u32,
            mode: mode as i32,
            ..Default::default()
        };
        // Docker has no traffic policy: an update keeps the one of the same port in the base.
        port.traffic = keep_traffic(&base_ports, &port);
        ports.push(port);
        p.finish()?;
    }
    s.ports = ports;
    ep.finish()?;
    o.finish()?;
    // The CLI tags an untagged image `:latest` before sending it back; a `--runtime process`
    // service's image is a program's name, kept as it was.
    if s.runtime() == pb::Runtime::Process && s.image == format!("{base_image}:latest") {
        s.image = base_image;
    }
    Ok(s)
}
