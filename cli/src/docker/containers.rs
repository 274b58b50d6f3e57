//! `docker ps` and `docker inspect CONTAINER`: the tasks as containers.
//!
//! * `GET /containers/json` lists the containers of THIS node (the tasks the managers placed
//!   here that its agent took), as dockerd lists its own; filters `id`, `name`, `label`,
//!   `status`; `all=1` adds the ended ones.
//! * `GET /containers/{id}/json` finds a task anywhere in the cluster (so that `docker exec`
//!   through a manager reaches a task on any node): by name (`web.2.<taskid>`, with or without
//!   the leading `/`), by task id, or by a unique id prefix.
//! * `GET /images/{name}/json`: Shoal keeps no engine images; always `No such image`.
//!
//! Both ask the node's manager (Control `ListTasks`). A node without one (a worker) answers
//! from its own agent ([`LocalTasks`]): its tasks as assigned, with the status it knows.

use super::api::Api;
use super::filters::Filters;
use super::route::{query_bool, query_get};
use super::types::container;
use super::ApiError;
use serde_json::Value;
use shoal_proto::pb;

/// The tasks the node's own agent runs (what swarmd gives the API).
pub trait LocalTasks: Send + Sync + std::fmt::Debug {
    /// The tasks assigned to this node, with the status this node knows.
    fn tasks(&self) -> Vec<pb::Task>;
}

/// Docker's container states, as the `status` filter accepts them.
const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// `No such container: X` (404): the CLI prints `Error: No such container: X`, and
/// `docker inspect` without `--type` goes on to the next kind of object.
pub fn no_such_container(id: &str) -> ApiError {
    ApiError::not_found(format!("No such container: {id}"))
}

/// `No such image: X` (404).
pub fn no_such_image(name: &str) -> ApiError {
    ApiError::not_found(format!("No such image: {name}"))
}

/// Whether task `t` passes `docker ps`'s filters.
pub fn matches(f: &Filters, t: &pb::Task) -> bool {
    let empty = Default::default();
    let mut labels = t.spec.as_ref().map(|s| &s.labels).unwrap_or(&empty).clone();
    labels.insert(
        "com.docker.swarm.service.name".into(),
        t.service_name.clone(),
    );
    labels.insert("com.docker.swarm.task.id".into(), t.id.clone());
    labels.insert("com.docker.swarm.node.id".into(), t.node_id.clone());
    f.prefix("id", &t.id)
        && f.any("name", |n| t.name.contains(n.trim_start_matches('/')))
        && f.labels("label", &labels)
        && f.any("status", |s| s == container::state(t))
}

/// The task named by `id` among `tasks`: exact name, exact id, then a unique id prefix.
pub fn find<'a>(tasks: &'a [pb::Task], id: &str) -> Result<&'a pb::Task, ApiError> {
    let want = id.trim_start_matches('/');
    if want.is_empty() {
        return Err(no_such_container(id));
    }
    if let Some(t) = tasks.iter().find(|t| t.name == want || t.id == want) {
        return Ok(t);
    }
    let mut by_prefix = tasks.iter().filter(|t| t.id.starts_with(want));
    match (by_prefix.next(), by_prefix.next()) {
        (Some(t), None) => Ok(t),
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "Multiple IDs found with provided prefix: {want}"
        ))),
        _ => Err(no_such_container(id)),
    }
}

impl Api {
    /// Every task the managers know (`ListTasks`, all states) on `node` (empty: anywhere); the
    /// node's own ones without a manager.
    async fn all_tasks(&self, node: &str) -> Result<Vec<pb::Task>, ApiError> {
        let from_manager = async {
            let mut ctl = self.control().await?;
            let r = ctl
                .list_tasks(pb::TaskFilter {
                    node: node.to_string(),
                    all: true,
                    ..Default::default()
                })
                .await?;
            Ok::<_, ApiError>(r.into_inner().tasks)
        };
        match (from_manager.await, &self.local_tasks) {
            (Ok(t), _) => Ok(t),
            // Not a manager (503): the node's own agent knows its tasks.
            (Err(e), Some(local)) if e.status == 503 => Ok(local.tasks()),
            (Err(e), _) => Err(e),
        }
    }

    /// `GET /containers/json`.
    pub(super) async fn containers(&self, query: &str) -> Result<Value, ApiError> {
        let f = Filters::parse(
            query_get(query, "filters").as_deref(),
            &["id", "name", "label", "status"],
        )?;
        for s in f.get("status") {
            if !STATUSES.contains(&s) {
                return Err(ApiError::bad_request(format!(
                    "Invalid filter 'status={s}'"
                )));
            }
        }
        let all = query_bool(query, "all");
        // The node's id as it is now (`swarm init|join` give it one); none: no containers.
        let node_id = self.local_now().await.node_id;
        if node_id.is_empty() {
            return Ok(Value::Array(Vec::new()));
        }
        let mut tasks: Vec<pb::Task> = self
            .all_tasks(&node_id)
            .await?
            .into_iter()
            .filter(container::has_container)
            .filter(|t| all || f.has("status") || container::state(t) == "running")
            .filter(|t| matches(&f, t))
            .collect();
        // Newest first, as dockerd lists.
        tasks.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(a.id.cmp(&b.id)));
        if let Some(n) = query_get(query, "limit").and_then(|l| l.parse::<usize>().ok()) {
            if n > 0 {
                tasks.truncate(n);
            }
        }
        let now = shoal_proto::model::now_ms();
        Ok(Value::Array(
            tasks.iter().map(|t| container::summary(t, now)).collect(),
        ))
    }

    /// The task a container name, id or id prefix names, anywhere in the cluster.
    pub(super) async fn find_container(&self, id: &str) -> Result<pb::Task, ApiError> {
        let tasks = self.all_tasks("").await?;
        find(&tasks, id).cloned()
    }

    /// `GET /containers/{id}/json`.
    pub(super) async fn container(&self, id: &str) -> Result<Value, ApiError> {
        Ok(container::inspect(&self.find_container(id).await?))
    }
}
