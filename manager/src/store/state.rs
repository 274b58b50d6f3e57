//! The replicated state and the one function that changes it: [`State::apply`].
//!
//! `apply` is deterministic: it uses only the command and the log index, never the clock, so
//! every manager ends with the same state.

use super::{Applied, ObjectKind, Refusal, Versioned};
use crate::allocator::{ipam, ports};
use serde::{Deserialize, Serialize};
use shoal_proto::model::{
    Cluster, Command, ConfigId, ConfigObject, Network, NetworkDriver, NetworkId, Node, NodeId,
    NodeLbAddr, NodeStateChange, SecretId, SecretObject, Service, ServiceId, ServiceMode, Task,
    TaskId, TaskState, TaskStatusUpdate,
};
use std::collections::{BTreeMap, BTreeSet};

/// First VXLAN id handed out (SwarmKit leaves 0–4095 to 802.1Q VLAN ids).
pub const FIRST_VNI: u32 = 4096;

/// Everything the managers replicate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// The cluster object, once initialised.
    pub cluster: Option<Cluster>,
    /// Nodes by id.
    pub nodes: BTreeMap<NodeId, Node>,
    /// Networks by id.
    pub networks: BTreeMap<NetworkId, Network>,
    /// Services by id.
    pub services: BTreeMap<ServiceId, Service>,
    /// Tasks by id.
    pub tasks: BTreeMap<TaskId, Task>,
    /// Secrets by id (absent from snapshots taken before secrets existed).
    #[serde(default)]
    pub secrets: BTreeMap<SecretId, SecretObject>,
    /// Configs by id (absent from snapshots taken before configs existed).
    #[serde(default)]
    pub configs: BTreeMap<ConfigId, ConfigObject>,
    /// Ids of removed nodes: their certificates are refused from then on.
    #[serde(default)]
    pub removed_nodes: BTreeSet<NodeId>,
    /// Index: node id → ids of the tasks assigned to it. Rebuilt on restore.
    #[serde(skip)]
    pub tasks_by_node: BTreeMap<NodeId, BTreeSet<TaskId>>,
}

impl State {
    /// Rebuilds derived indexes (after a snapshot is installed).
    pub fn reindex(&mut self) {
        self.tasks_by_node.clear();
        for t in self.tasks.values() {
            if !t.node_id.is_empty() {
                self.tasks_by_node
                    .entry(t.node_id.to_string().into())
                    .or_default()
                    .insert(t.id.to_string().into());
            }
        }
    }

    /// Tasks of one node.
    pub fn node_tasks<'a>(&'a self, node_id: &str) -> impl Iterator<Item = &'a Task> + 'a {
        self.tasks_by_node
            .get(node_id)
            .into_iter()
            .flat_map(|ids| ids.iter())
            .filter_map(|id| self.tasks.get(id))
    }

    /// Applies one command at log index `index`.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Applied {
        match self.apply_inner(index, cmd) {
            Ok(r) => r,
            Err(e) => Applied {
                refusal: Some(e),
                ..Default::default()
            },
        }
    }

    fn apply_inner(&mut self, index: u64, cmd: &Command) -> Result<Applied, Refusal> {
        let ok = |id: &str| Ok(Applied::with_id(id));
        let not_found = |kind, id: &str| Refusal::NotFound {
            kind,
            id: id.to_string(),
        };
        match cmd {
            Command::Noop => ok(""),
            Command::InitCluster(c) => {
                if self.cluster.is_some() {
                    return Err(Refusal::AlreadyInitialised);
                }
                let mut c = c.clone();
                c.version = index;
                let id = c.id.clone();
                self.cluster = Some(c);
                ok(&id)
            }
            Command::PutCluster(c) => {
                let cur = self.cluster.as_ref().ok_or(Refusal::NotInitialised)?;
                if cur.version != c.version {
                    return Err(Refusal::Conflict(Versioned::Cluster));
                }
                let mut c = c.clone();
                c.version = index;
                self.cluster = Some(c);
                ok("")
            }
            Command::PutNode(n) => {
                if self.removed_nodes.contains(&n.id) {
                    return Err(Refusal::NodeRemoved(n.id.to_string()));
                }
                let cur = self.nodes.get(&n.id).map(|n| n.version).unwrap_or(0);
                if cur != n.version {
                    return Err(Refusal::Conflict(Versioned::Node {
                        id: n.id.to_string(),
                    }));
                }
                let mut n = n.clone();
                n.version = index;
                let id = n.id.clone();
                self.nodes.insert(id.to_string().into(), n);
                ok(&id)
            }
            Command::RemoveNode { id } => {
                self.nodes
                    .remove(id)
                    .ok_or_else(|| not_found(ObjectKind::Node, id))?;
                self.removed_nodes.insert(id.to_string().into());
                ok(id)
            }
            Command::NodeCertIssued {
                id,
                not_after_ms,
                issuer,
            } => {
                let n = self
                    .nodes
                    .get_mut(id)
                    .ok_or_else(|| not_found(ObjectKind::Node, id))?;
                n.cert_not_after_ms = *not_after_ms;
                n.cert_issuer = issuer.clone();
                n.version = index;
                ok(id)
            }
            Command::SetNodeLbAddrs(addrs) => {
                for NodeLbAddr {
                    node_id,
                    network_id,
                    addr,
                } in addrs
                {
                    if let Some(n) = self.nodes.get_mut(node_id) {
                        let changed = if addr.is_empty() {
                            n.lb_addrs.remove(network_id).is_some()
                        } else {
                            n.lb_addrs.insert(network_id.clone(), addr.clone()).as_ref()
                                != Some(addr)
                        };
                        if changed {
                            n.version = index;
                        }
                    }
                }
                ok("")
            }
            Command::SetNodeStates(states) => {
                for NodeStateChange {
                    node_id,
                    state,
                    message,
                } in states
                {
                    if let Some(n) = self.nodes.get_mut(node_id) {
                        if n.state != *state || n.state_message != *message {
                            n.state = *state;
                            n.state_message = message.clone();
                            n.version = index;
                        }
                    }
                }
                ok("")
            }
            Command::CreateNetwork(n) => self.create_network(index, n),
            Command::PutNetworks(nets) => {
                let mut skipped = 0;
                for n in nets {
                    match self.networks.get_mut(&n.id) {
                        Some(cur) if cur.version == n.version => {
                            *cur = n.clone();
                            cur.version = index;
                        }
                        _ => skipped += 1,
                    }
                }
                Ok(Applied {
                    skipped,
                    ..Default::default()
                })
            }
            Command::RemoveNetwork { id } => {
                let net = self
                    .networks
                    .get(id)
                    .ok_or_else(|| not_found(ObjectKind::Network, id))?;
                if net.ingress {
                    return Err(Refusal::IngressNetwork);
                }
                if net.driver.is_local()
                    && shoal_proto::model::PREDEFINED_NETWORKS
                        .iter()
                        .any(|(name, ..)| *name == net.name)
                {
                    return Err(Refusal::PredefinedNetwork(net.name.clone()));
                }
                let users: Vec<String> = self
                    .services
                    .values()
                    .filter(|s| s.spec.networks.iter().any(|a| a.target == *id))
                    .map(|s| s.spec.name.clone())
                    .collect();
                if !users.is_empty() {
                    return Err(Refusal::NetworkInUse {
                        network: net.name.clone(),
                        services: users,
                    });
                }
                self.networks.remove(id);
                for n in self.nodes.values_mut() {
                    if n.lb_addrs.remove(id).is_some() {
                        n.version = index;
                    }
                }
                ok(id)
            }
            Command::CreateService(s) => {
                if self.services.contains_key(&s.id) {
                    return Err(Refusal::IdTaken {
                        kind: ObjectKind::Service,
                        id: s.id.to_string(),
                    });
                }
                self.put_service(index, s, None)
            }
            Command::UpdateService(s) => {
                let cur = self
                    .services
                    .get(&s.id)
                    .ok_or_else(|| not_found(ObjectKind::Service, &s.id))?;
                if cur.version != s.version {
                    return Err(Refusal::Conflict(Versioned::Service {
                        name: s.spec.name.clone(),
                    }));
                }
                let prev = cur.clone();
                self.put_service(index, s, Some(prev))
            }
            Command::RemoveService { id } => {
                self.services
                    .remove(id)
                    .ok_or_else(|| not_found(ObjectKind::Service, id))?;
                for t in self.tasks.values_mut().filter(|t| t.service_id == *id) {
                    if t.desired_state < TaskState::Remove {
                        t.desired_state = TaskState::Remove;
                        t.version = index;
                    }
                }
                ok(id)
            }
            Command::PutTasks(tasks) => {
                let mut skipped = 0;
                for t in tasks {
                    let cur = self.tasks.get(&t.id);
                    if cur.map(|c| c.version).unwrap_or(0) != t.version {
                        skipped += 1;
                        continue;
                    }
                    let mut t = t.clone();
                    if let Some(cur) = cur {
                        // Observed state only moves forward, whoever writes.
                        if cur.status.state > t.status.state {
                            t.status = cur.status.clone();
                        }
                        t.desired_state = TaskState::advance(cur.desired_state, t.desired_state);
                    }
                    t.version = index;
                    self.index_task(cur.map(|c| c.node_id.to_string()), &t);
                    self.tasks.insert(t.id.to_string().into(), t);
                }
                Ok(Applied {
                    skipped,
                    ..Default::default()
                })
            }
            Command::DeleteTasks(ids) => {
                for id in ids {
                    if let Some(t) = self.tasks.remove(id) {
                        self.unindex_task(&t.node_id, id);
                    }
                }
                ok("")
            }
            Command::TaskStatuses(updates) => {
                for TaskStatusUpdate { task_id, status } in updates {
                    if let Some(t) = self.tasks.get_mut(task_id) {
                        if status.state > t.status.state
                            || (status.state == t.status.state && status != &t.status)
                        {
                            t.status = status.clone();
                            t.version = index;
                        }
                    }
                }
                ok("")
            }
            Command::CreateSecret(o) => {
                if self.secrets.values().any(|x| x.name == o.name) {
                    return Err(Refusal::NameTaken {
                        kind: ObjectKind::Secret,
                        name: o.name.clone(),
                        holder: None,
                    });
                }
                let mut o = o.clone();
                o.version = index;
                let id = o.id.clone();
                self.secrets.insert(id.clone(), o);
                ok(&id)
            }
            Command::RemoveSecret { id } => {
                let o = self
                    .secrets
                    .get(id)
                    .ok_or_else(|| not_found(ObjectKind::Secret, id))?;
                let users = self.service_names(|s| s.spec.secrets.iter().any(|r| r.id == *id));
                if !users.is_empty() {
                    return Err(Refusal::InUse {
                        kind: ObjectKind::Secret,
                        name: o.name.clone(),
                        services: users,
                    });
                }
                self.secrets.remove(id);
                ok(id)
            }
            Command::CreateConfig(o) => {
                if self.configs.values().any(|x| x.name == o.name) {
                    return Err(Refusal::NameTaken {
                        kind: ObjectKind::Config,
                        name: o.name.clone(),
                        holder: None,
                    });
                }
                let mut o = o.clone();
                o.version = index;
                let id = o.id.clone();
                self.configs.insert(id.clone(), o);
                ok(&id)
            }
            Command::RemoveConfig { id } => {
                let o = self
                    .configs
                    .get(id)
                    .ok_or_else(|| not_found(ObjectKind::Config, id))?;
                let users = self.service_names(|s| s.spec.configs.iter().any(|r| r.id == *id));
                if !users.is_empty() {
                    return Err(Refusal::InUse {
                        kind: ObjectKind::Config,
                        name: o.name.clone(),
                        services: users,
                    });
                }
                self.configs.remove(id);
                ok(id)
            }
            Command::SetSecretLabels {
                id,
                version,
                labels,
                updated_ms,
            } => {
                let o = self
                    .secrets
                    .get_mut(id)
                    .ok_or_else(|| not_found(ObjectKind::Secret, id))?;
                set_labels(
                    index,
                    o,
                    ObjectKind::Secret,
                    (*version, *updated_ms),
                    labels,
                )?;
                ok(id)
            }
            Command::SetConfigLabels {
                id,
                version,
                labels,
                updated_ms,
            } => {
                let o = self
                    .configs
                    .get_mut(id)
                    .ok_or_else(|| not_found(ObjectKind::Config, id))?;
                set_labels(
                    index,
                    o,
                    ObjectKind::Config,
                    (*version, *updated_ms),
                    labels,
                )?;
                ok(id)
            }
            Command::Batch(cmds) => {
                // Not atomic: a refused command changes nothing, the others still apply. The
                // first refusal is reported.
                let mut out = Applied::default();
                for c in cmds {
                    let r = self.apply(index, c);
                    out.skipped += r.skipped;
                    if out.refusal.is_none() {
                        out.refusal.clone_from(&r.refusal);
                    }
                    if out.id.is_empty() {
                        out.id.clone_from(&r.id);
                    }
                    out.parts.push(r);
                }
                Ok(out)
            }
        }
    }

    /// Names of the services `uses` picks, sorted.
    fn service_names(&self, uses: impl Fn(&Service) -> bool) -> Vec<String> {
        let mut v: Vec<String> = self
            .services
            .values()
            .filter(|s| uses(s))
            .map(|s| s.spec.name.clone())
            .collect();
        v.sort();
        v
    }

    fn index_task(&mut self, old_node: Option<String>, t: &Task) {
        if let Some(old) = old_node.filter(|o| *o != t.node_id) {
            self.unindex_task(&old, &t.id);
        }
        if !t.node_id.is_empty() {
            self.tasks_by_node
                .entry(t.node_id.to_string().into())
                .or_default()
                .insert(t.id.to_string().into());
        }
    }

    fn unindex_task(&mut self, node_id: &str, task_id: &str) {
        if let Some(set) = self.tasks_by_node.get_mut(node_id) {
            set.remove(task_id);
            if set.is_empty() {
                self.tasks_by_node.remove(node_id);
            }
        }
    }

    fn create_network(&mut self, index: u64, n: &Network) -> Result<Applied, Refusal> {
        if self.networks.values().any(|o| o.name == n.name) {
            return Err(Refusal::NameTaken {
                kind: ObjectKind::Network,
                name: n.name.clone(),
                holder: None,
            });
        }
        if matches!(n.driver, NetworkDriver::Host | NetworkDriver::Null) {
            // The node's own stack, or loopback only: nothing to address.
            let mut net = n.clone();
            net.subnet.clear();
            net.gateway.clear();
            net.version = index;
            let id = net.id.clone();
            self.networks.insert(id.to_string().into(), net);
            return Ok(Applied::with_id(id));
        }
        let used: Vec<ipam::Subnet> = self
            .networks
            .values()
            .filter_map(|o| ipam::Subnet::parse(&o.subnet).ok())
            .collect();
        let subnet = if n.subnet.is_empty() {
            let c = self.cluster.as_ref().ok_or(Refusal::NotInitialised)?;
            let pool = ipam::Subnet::parse(&c.default_addr_pool)?;
            ipam::next_subnet(pool, c.subnet_size, &used).ok_or_else(|| Refusal::PoolExhausted {
                pool: c.default_addr_pool.clone(),
            })?
        } else {
            let s = ipam::Subnet::parse(&n.subnet)?;
            if s.prefix > 29 {
                return Err(Refusal::SubnetTooSmall(s.to_string()));
            }
            if let Some(o) = self
                .networks
                .values()
                .find(|o| ipam::Subnet::parse(&o.subnet).is_ok_and(|x| x.overlaps(s)))
            {
                return Err(Refusal::SubnetOverlap {
                    subnet: s.to_string(),
                    network: o.name.clone(),
                    network_subnet: o.subnet.clone(),
                });
            }
            s
        };
        let mut net = n.clone();
        net.subnet = subnet.to_string();
        net.gateway = subnet.gateway().to_string();
        if net.driver == NetworkDriver::Overlay && net.vni == 0 {
            let used: BTreeSet<u32> = self.networks.values().map(|o| o.vni).collect();
            net.vni = (FIRST_VNI..(1 << 24))
                .find(|v| !used.contains(v))
                .ok_or(Refusal::NoFreeVni)?;
        }
        net.version = index;
        let id = net.id.clone();
        self.networks.insert(id.to_string().into(), net);
        Ok(Applied::with_id(id))
    }

    fn put_service(
        &mut self,
        index: u64,
        s: &Service,
        prev: Option<Service>,
    ) -> Result<Applied, Refusal> {
        if let Some(o) = self
            .services
            .values()
            .find(|o| o.spec.name == s.spec.name && o.id != s.id)
        {
            return Err(Refusal::NameTaken {
                kind: ObjectKind::Service,
                name: s.spec.name.clone(),
                holder: Some(o.id.to_string()),
            });
        }
        for a in &s.spec.networks {
            if !self.networks.contains_key(a.target.as_str()) {
                return Err(Refusal::NotFound {
                    kind: ObjectKind::Network,
                    id: a.target.clone(),
                });
            }
        }
        for r in &s.spec.secrets {
            if !self.secrets.contains_key(r.id.as_str()) {
                return Err(Refusal::NotFound {
                    kind: ObjectKind::Secret,
                    id: r.name.clone(),
                });
            }
        }
        for r in &s.spec.configs {
            if !self.configs.contains_key(r.id.as_str()) {
                return Err(Refusal::NotFound {
                    kind: ObjectKind::Config,
                    id: r.name.clone(),
                });
            }
        }
        if let ServiceMode::Replicated { replicas } = s.spec.mode {
            if replicas > crate::MAX_REPLICAS {
                return Err(Refusal::TooManyReplicas {
                    replicas,
                    max: crate::MAX_REPLICAS,
                });
            }
        }
        let used = ports::used_ports(self.services.values(), &s.id);
        let previous = prev.as_ref().map(|p| p.ports.clone()).unwrap_or_default();
        let allocated = ports::allocate(
            &s.spec.ports,
            &previous,
            &used,
            &s.spec.name,
            |proto, port| {
                self.services
                    .values()
                    .find(|o| {
                        o.id != s.id
                            && o.ports
                                .iter()
                                .any(|p| p.protocol == proto && p.published == port)
                    })
                    .map(|o| o.spec.name.clone())
            },
        )?;
        let mut svc = s.clone();
        svc.ports = allocated;
        if let Some(prev) = prev {
            svc.created_ms = prev.created_ms;
            if prev.spec != svc.spec {
                svc.spec_version = prev.spec_version + 1;
            } else {
                svc.spec_version = prev.spec_version;
            }
        }
        svc.version = index;
        let id = svc.id.clone();
        self.services.insert(id.to_string().into(), svc);
        Ok(Applied::with_id(id))
    }
}

/// Replaces a secret's or config's labels if it is still at `version`.
fn set_labels<Id>(
    index: u64,
    o: &mut shoal_proto::model::DataObject<Id>,
    kind: ObjectKind,
    (version, updated_ms): (u64, i64),
    labels: &BTreeMap<String, String>,
) -> Result<(), Refusal> {
    if o.version != version {
        return Err(Refusal::Conflict(Versioned::Data {
            kind,
            name: o.name.clone(),
        }));
    }
    o.labels = labels.clone();
    o.updated_ms = updated_ms;
    o.version = index;
    Ok(())
}
