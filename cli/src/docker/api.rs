//! One request → one [`Reply`]: the route's Control calls, their answers in Docker's shapes,
//! Docker's filters applied.

use super::filters::Filters;
use super::route::{query_bool, query_get, route, Route};
use super::types::{self, system::ManagerView};
use super::ApiError;
use crate::client::{connect_with, ClientConfig};
use hyper::Method;
use serde_json::Value;
use shoal_proto::pb::{self, control_client::ControlClient};
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::Channel;

/// What the node serving the socket knows of itself, with or without a manager.
#[derive(Debug, Clone)]
pub struct LocalNode {
    /// Its node id.
    pub node_id: String,
    /// Its hostname.
    pub hostname: String,
    /// Its advertised address (`ip:port`).
    pub addr: String,
    /// The managers it knows (`ip:port`), for a worker's `RemoteManagers`.
    pub managers: Vec<String>,
    /// Its state dir.
    pub state_dir: PathBuf,
    /// Its control socket (`<state-dir>/swarmd.sock`): present while swarmd runs.
    pub control_socket: PathBuf,
    /// `inactive`, `pending`, `active`, `locked` or `error` (`Swarm.LocalNodeState`).
    pub state: String,
    /// Whether it is a manager (`Swarm.ControlAvailable`), even before its store answers.
    pub manager: bool,
}

/// An answer: status and body.
#[derive(Debug, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Body,
}

/// A stream of log frames, sent as they come (see [`super::logs`]).
#[derive(Debug)]
pub struct LogStream(pub tokio::sync::mpsc::Receiver<bytes::Bytes>);

/// Streams are never equal (they are consumed, not compared).
impl PartialEq for LogStream {
    fn eq(&self, _: &LogStream) -> bool {
        false
    }
}

/// A reply's body.
#[derive(Debug, PartialEq)]
pub enum Body {
    /// JSON (`application/json`).
    Json(Value),
    /// `OK` (`text/plain`), `/_ping`'s.
    Ok,
    /// Nothing (a `DELETE`'s answer).
    Empty,
    /// Docker's log stream (`application/vnd.docker.raw-stream`).
    Stream(LogStream),
    /// JSON objects, one a line, sent as they come (`application/json`: `/events`).
    JsonStream(LogStream),
}

impl Reply {
    pub(super) fn json(v: Value) -> Reply {
        Reply {
            status: 200,
            body: Body::Json(v),
        }
    }

    /// Docker's error body.
    pub fn error(e: &ApiError) -> Reply {
        Reply {
            status: e.status,
            body: Body::Json(serde_json::json!({ "message": e.message })),
        }
    }
}

/// The Engine API of one node.
#[derive(Debug, Clone)]
pub struct Api {
    /// The node.
    pub local: LocalNode,
    /// `docker exec`'s instances and sessions (see [`super::exec`]).
    pub execs: std::sync::Arc<super::exec::Execs>,
    /// The node's own tasks, for `docker ps` without a manager (see [`super::containers`]).
    pub local_tasks: Option<std::sync::Arc<dyn super::containers::LocalTasks>>,
}

type Ctl = ControlClient<Channel>;

impl Api {
    /// The API of `local`.
    pub fn new(local: LocalNode) -> Api {
        Api {
            local,
            execs: Default::default(),
            local_tasks: None,
        }
    }

    /// Answers `method path?query` (a request without a body).
    pub async fn answer(&self, method: &Method, path: &str, query: &str) -> Reply {
        self.answer_with(method, path, query, b"").await
    }

    /// Answers `method path?query` with the request's `body`.
    pub async fn answer_with(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Reply {
        let r = match route(method, path) {
            Ok(r) => r,
            Err(e) => return Reply::error(&e),
        };
        match self.dispatch(r, query, body).await {
            Ok(r) => r,
            Err(e) => Reply::error(&e),
        }
    }

    /// The manager's Control API over the node's control socket; none (a worker, or a manager
    /// not started yet): [`ApiError::not_manager`].
    pub(super) async fn control(&self) -> Result<Ctl, ApiError> {
        if !self.local.control_socket.exists() {
            return Err(ApiError::not_manager());
        }
        let cfg = ClientConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Some(Duration::from_secs(60)),
            cert_dir: None,
            plaintext: true,
            consistent: false,
        };
        let host = format!("unix://{}", self.local.control_socket.display());
        connect_with(&host, &cfg)
            .await
            .map_err(|_| ApiError::not_manager())
    }

    async fn dispatch(&self, r: Route, query: &str, body: &[u8]) -> Result<Reply, ApiError> {
        let filters =
            |accepted: &[&str]| Filters::parse(query_get(query, "filters").as_deref(), accepted);
        Ok(match r {
            Route::Ping => Reply {
                status: 200,
                body: Body::Ok,
            },
            Route::Version => Reply::json(types::system::version()),
            Route::Info => Reply::json(self.info().await),
            Route::Distribution(name) => {
                let r = self
                    .control()
                    .await?
                    .resolve_image(pb::ResolveImageRequest { image: name })
                    .await?;
                // Only the digest: the CLI pins it (`name:tag@sha256:…`). No platforms, which
                // it would add as placement that Shoal does not implement.
                Reply::json(serde_json::json!({
                    "Descriptor": { "digest": r.get_ref().digest },
                    "Platforms": [],
                }))
            }
            Route::SwarmInit | Route::SwarmJoin | Route::SwarmLeave | Route::SwarmUnlock => {
                self.membership(r, query, body).await?
            }
            Route::Swarm
            | Route::SwarmUpdate
            | Route::UnlockKey
            | Route::NodeUpdate(_)
            | Route::NodeDelete(_)
            | Route::NetworkCreate
            | Route::NetworkDelete(_)
            | Route::SecretCreate
            | Route::SecretDelete(_)
            | Route::ConfigCreate
            | Route::ConfigDelete(_) => self.write(r, query, body).await?,
            Route::Nodes => {
                let f = filters(&["id", "name", "role", "membership", "label", "node.label"])?;
                check_values(&f, "role", &["manager", "worker"], "Invalid role filter")?;
                check_values(
                    &f,
                    "membership",
                    &["accepted", "pending"],
                    "Invalid membership filter",
                )?;
                let nodes = self.control().await?.list_nodes(pb::Empty {}).await?;
                let v: Vec<Value> = nodes
                    .into_inner()
                    .nodes
                    .iter()
                    .filter(|n| node_matches(&f, n))
                    .map(|n| self.with_tls(types::node::node(n)))
                    .collect();
                Reply::json(Value::Array(v))
            }
            Route::Node(id) => {
                let n = self.control().await?.get_node(pb::IdRequest { id }).await?;
                Reply::json(self.with_tls(types::node::node(n.get_ref())))
            }
            Route::Services => {
                let f = filters(&["id", "name", "label", "mode"])?;
                check_values(
                    &f,
                    "mode",
                    &["replicated", "global"],
                    "Invalid filter: 'mode'=",
                )?;
                let status = query_bool(query, "status");
                let list = self.control().await?.list_services(pb::Empty {}).await?;
                let v: Vec<Value> = list
                    .into_inner()
                    .services
                    .iter()
                    .filter(|s| service_matches(&f, s))
                    .map(|s| types::service::service(s, status))
                    .collect();
                Reply::json(Value::Array(v))
            }
            Route::Service(id) => {
                let s = self
                    .control()
                    .await?
                    .get_service(pb::IdRequest { id })
                    .await?;
                Reply::json(types::service::service(s.get_ref(), false))
            }
            Route::ServiceDelete(id) => {
                self.control()
                    .await?
                    .remove_service(pb::IdRequest { id })
                    .await?;
                Reply {
                    status: 200,
                    body: Body::Empty,
                }
            }
            Route::ServiceCreate => {
                let v = json_body(body)?;
                let spec = super::spec::service_spec(&v, pb::ServiceSpec::default())?;
                let mut c = self.control().await?;
                // Without a name, a random `adjective_surname` (dockerd's way), another one
                // should it be taken.
                let named = !spec.name.is_empty();
                let mut tries = 0;
                let s = loop {
                    let mut spec = spec.clone();
                    if !named {
                        spec.name = super::names::random_name();
                    }
                    tries += 1;
                    match c
                        .create_service(pb::CreateServiceRequest { spec: Some(spec) })
                        .await
                    {
                        Err(e) if !named && e.code() == tonic::Code::AlreadyExists && tries < 8 => {
                            continue
                        }
                        r => break r?,
                    }
                };
                Reply {
                    status: 201,
                    body: Body::Json(serde_json::json!({ "ID": s.get_ref().id })),
                }
            }
            Route::ServiceUpdate(id) => {
                let version = super::write::version(query, "service")?;
                let rollback = query_get(query, "rollback").as_deref() == Some("previous");
                let mut c = self.control().await?;
                let current = c.get_service(pb::IdRequest { id }).await?.into_inner();
                let spec = if rollback {
                    None
                } else {
                    let v = json_body(body)?;
                    Some(super::spec::service_spec(
                        &v,
                        current.spec.clone().unwrap_or_default(),
                    )?)
                };
                let r = c
                    .update_service(pb::UpdateServiceRequest {
                        id: current.id,
                        spec,
                        version,
                        rollback,
                        // `docker stack deploy` sends every service of the stack again: one
                        // whose spec did not change is left as it is (same version and tasks).
                        skip_unchanged: true,
                    })
                    .await;
                match r {
                    Ok(_) => Reply::json(serde_json::json!({})),
                    Err(s) if s.code() == tonic::Code::Aborted => {
                        return Err(super::write::out_of_sequence())
                    }
                    Err(s) => return Err(s.into()),
                }
            }
            Route::ServiceLogs(id) => Reply {
                status: 200,
                body: Body::Stream(self.logs(&id, "", query).await?),
            },
            Route::TaskLogs(id) => Reply {
                status: 200,
                body: Body::Stream(self.logs("", &id, query).await?),
            },
            Route::Tasks => {
                let f = filters(&[
                    "id",
                    "name",
                    "label",
                    "service",
                    "node",
                    "desired-state",
                    "_up-to-date",
                ])?;
                for s in f.get("desired-state") {
                    if shoal_proto::model::TaskState::ALL
                        .iter()
                        .all(|t| !t.display().eq_ignore_ascii_case(s))
                    {
                        return Err(ApiError::bad_request(format!(
                            "Invalid desired-state filter: '{s}'"
                        )));
                    }
                }
                Reply::json(Value::Array(self.tasks(&f).await?))
            }
            Route::Task(id) => {
                let t = self.control().await?.get_task(pb::IdRequest { id }).await?;
                Reply::json(types::task::task(t.get_ref()))
            }
            Route::Networks => {
                let f = filters(&["id", "name", "driver", "scope", "label", "type"])?;
                let list = self.control().await?.list_networks(pb::Empty {}).await?;
                let v: Vec<Value> = list
                    .into_inner()
                    .networks
                    .iter()
                    .filter(|n| network_matches(&f, n))
                    .map(types::network::network)
                    .collect();
                Reply::json(Value::Array(v))
            }
            Route::Network(id) => {
                let n = self
                    .control()
                    .await?
                    .get_network(pb::IdRequest { id })
                    .await?;
                Reply::json(types::network::network(n.get_ref()))
            }
            Route::Secrets => {
                let f = filters(&["id", "name", "names", "label"])?;
                let list = self.control().await?.list_secrets(pb::Empty {}).await?;
                let v: Vec<Value> = list
                    .into_inner()
                    .secrets
                    .iter()
                    .filter(|s| data_matches(&f, &s.id, &s.name, &s.labels))
                    .map(types::data::secret)
                    .collect();
                Reply::json(Value::Array(v))
            }
            Route::Secret(id) => {
                let s = self
                    .control()
                    .await?
                    .get_secret(pb::IdRequest { id })
                    .await?;
                Reply::json(types::data::secret(s.get_ref()))
            }
            Route::Configs => {
                let f = filters(&["id", "name", "names", "label"])?;
                let list = self.control().await?.list_configs(pb::Empty {}).await?;
                let v: Vec<Value> = list
                    .into_inner()
                    .configs
                    .iter()
                    .filter(|c| data_matches(&f, &c.id, &c.name, &c.labels))
                    .map(types::data::config)
                    .collect();
                Reply::json(Value::Array(v))
            }
            Route::Config(id) => {
                let c = self
                    .control()
                    .await?
                    .get_config(pb::IdRequest { id })
                    .await?;
                Reply::json(types::data::config(c.get_ref()))
            }

            // ---- `docker stack deploy`: label-only updates of secrets and configs ----
            Route::SecretUpdate(_) | Route::ConfigUpdate(_) => {
                self.data_update(r, query, body).await?
            }

            // ---- events ----
            Route::Events => self.events(query).await?,
            // Containers and exec (`containers.rs`, `exec.rs`).
            Route::Containers => Reply::json(self.containers(query).await?),
            Route::Container(id) => Reply::json(self.container(&id).await?),
            Route::Image(name) => return Err(super::containers::no_such_image(&name)),
            Route::ExecCreate(id) => self.exec_create(&id, body).await?,
            Route::ExecStart(id) => self.exec_start(&id, body).await?,
            Route::ExecResize(id) => self.exec_resize(&id, query)?,
            Route::ExecInspect(id) => Reply::json(self.exec_inspect(&id)?),
        })
    }

    /// `/info`: the cluster's part when this node's manager answers, the node's own otherwise.
    async fn info(&self) -> Value {
        let from_manager = async {
            let mut c = self.control().await?;
            let cluster = c.get_cluster(pb::Empty {}).await?.into_inner();
            let nodes = c.list_nodes(pb::Empty {}).await?.into_inner().nodes;
            Ok::<_, ApiError>((cluster, nodes))
        };
        let local = self.local_now().await;
        match from_manager.await {
            Ok((cluster, nodes)) => {
                let mut v = types::system::info(
                    &local,
                    Some(&ManagerView {
                        cluster: &cluster,
                        nodes: &nodes,
                    }),
                );
                v["Swarm"]["Cluster"]["TLSInfo"] = self.tls_info();
                v
            }
            Err(_) => types::system::info(&local, None),
        }
    }

    /// `TLSInfo` of this node's cluster: its root CA, read from the node's certificates.
    pub(super) fn tls_info(&self) -> Value {
        let p = self
            .local
            .state_dir
            .join("certificates")
            .join(shoal_security::creds::ROOTS_FILE);
        types::system::tls_info(std::fs::read_to_string(p).ok().as_deref())
    }

    /// A node's JSON with the cluster's `TLSInfo` (every node's certificate has its root).
    fn with_tls(&self, mut node: Value) -> Value {
        node["Description"]["TLSInfo"] = self.tls_info();
        node
    }

    /// `GET /tasks`: `service` and `node` filters name objects (id, name or prefix), resolved
    /// first as dockerd does (an unknown one is a 404).
    async fn tasks(&self, f: &Filters) -> Result<Vec<Value>, ApiError> {
        let mut c = self.control().await?;
        let mut services = Vec::new();
        for s in f.get("service") {
            services.push(
                c.get_service(pb::IdRequest { id: s.to_string() })
                    .await?
                    .into_inner(),
            );
        }
        let mut nodes = Vec::new();
        for n in f.get("node") {
            nodes.push(
                c.get_node(pb::IdRequest { id: n.to_string() })
                    .await?
                    .into_inner()
                    .id,
            );
        }
        let tasks = c
            .list_tasks(pb::TaskFilter {
                all: true,
                up_to_date: f.has("_up-to-date"),
                ..Default::default()
            })
            .await?
            .into_inner()
            .tasks;
        Ok(tasks
            .iter()
            .filter(|t| services.is_empty() || services.iter().any(|s| s.id == t.service_id))
            .filter(|t| nodes.is_empty() || nodes.contains(&t.node_id))
            .filter(|t| f.prefix("id", &t.id) && f.prefix("name", &t.name))
            .filter(|t| {
                f.any("desired-state", |s| {
                    types::task::state(t.desired_state).eq_ignore_ascii_case(s)
                })
            })
            .filter(|t| {
                let empty = Default::default();
                let labels = t.spec.as_ref().map(|s| &s.labels).unwrap_or(&empty);
                f.labels("label", labels)
            })
            .map(types::task::task)
            .collect())
    }
}

/// A request body as JSON (400 when it is not).
pub(super) fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))
}

/// Refuses a value of `key` outside `allowed` (`{what}: 'value'`, dockerd's wording).
fn check_values(f: &Filters, key: &str, allowed: &[&str], what: &str) -> Result<(), ApiError> {
    for v in f.get(key) {
        if !allowed.contains(&v.to_ascii_lowercase().as_str()) {
            let sep = if what.ends_with('=') { "" } else { ": " };
            return Err(ApiError::bad_request(format!("{what}{sep}'{v}'")));
        }
    }
    Ok(())
}

/// Docker's node filters: `id` and `name` (hostname) prefixes, `role`, `membership` (every
/// Shoal node is accepted), `node.label` and `label` (Shoal has one set of node labels, set by
/// `swarmd --label` as dockerd's engine labels are, and by `node update` as Docker's node
/// labels are: both filters look at it).
pub fn node_matches(f: &Filters, n: &pb::Node) -> bool {
    f.prefix("id", &n.id)
        && f.prefix("name", &n.hostname)
        && f.any("role", |r| {
            r.eq_ignore_ascii_case(crate::ctl::names::role(n.role()))
        })
        && f.any("membership", |m| m.eq_ignore_ascii_case("accepted"))
        && f.labels("node.label", &n.labels)
        && f.labels("label", &n.labels)
}

/// Docker's service filters: `id` and `name` prefixes, `label`, `mode`.
pub fn service_matches(f: &Filters, s: &pb::Service) -> bool {
    let empty = pb::ServiceSpec::default();
    let sp = s.spec.as_ref().unwrap_or(&empty);
    let mode = if sp.global { "global" } else { "replicated" };
    f.prefix("id", &s.id)
        && f.prefix("name", &sp.name)
        && f.labels("label", &sp.labels)
        && f.any("mode", |m| m.eq_ignore_ascii_case(mode))
}

/// Docker's network filters: `id` prefix, `name` (a part of it), `driver`, `scope`, `label`,
/// `type` (`custom`: made by a user; `builtin`: `ingress`).
pub fn network_matches(f: &Filters, n: &pb::Network) -> bool {
    use crate::ctl::names;
    f.prefix("id", &n.id)
        && f.any("name", |p| n.name.contains(p))
        && f.any("driver", |d| d == names::driver(n.driver()))
        && f.any("scope", |s| s == names::scope(n.driver()))
        && f.labels("label", &n.labels)
        && f.any("type", |t| match t {
            "builtin" => n.ingress,
            "custom" => !n.ingress,
            _ => false,
        })
}

/// Docker's secret and config filters: `id` and `name` prefixes, `names` exact, `label`.
pub fn data_matches(
    f: &Filters,
    id: &str,
    name: &str,
    labels: &std::collections::HashMap<String, String>,
) -> bool {
    f.prefix("id", id)
        && f.prefix("name", name)
        && f.any("names", |n| n == name)
        && f.labels("label", labels)
}
