//! Which call a request is: the API version prefix (`/v1.41/…`, optional, checked against
//! [`API_VERSION`] and [`MIN_API_VERSION`]) taken off, then method and path matched.

use super::{ApiError, API_VERSION, MIN_API_VERSION};
use hyper::Method;

/// A call of the Engine API that Shoal answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET|HEAD /_ping`.
    Ping,
    /// `GET /version`.
    Version,
    /// `GET /info`.
    Info,
    /// `GET /distribution/{name}/json` (the name may hold slashes).
    Distribution(String),
    /// `GET /swarm`.
    Swarm,
    /// `POST /swarm/update`.
    SwarmUpdate,
    /// `GET /swarm/unlockkey`.
    UnlockKey,
    // The node's membership (`membership.rs`).
    /// `POST /swarm/init`.
    SwarmInit,
    /// `POST /swarm/join`.
    SwarmJoin,
    /// `POST /swarm/leave`.
    SwarmLeave,
    /// `POST /swarm/unlock`.
    SwarmUnlock,
    /// `GET /nodes`.
    Nodes,
    /// `POST /nodes/{id}/update`.
    NodeUpdate(String),
    /// `DELETE /nodes/{id}`.
    NodeDelete(String),
    /// `POST /networks/create`.
    NetworkCreate,
    /// `DELETE /networks/{id}`.
    NetworkDelete(String),
    /// `POST /secrets/create`.
    SecretCreate,
    /// `DELETE /secrets/{id}`.
    SecretDelete(String),
    /// `POST /configs/create`.
    ConfigCreate,
    /// `DELETE /configs/{id}`.
    ConfigDelete(String),
    /// `GET /nodes/{id}`.
    Node(String),
    /// `GET /services`.
    Services,
    /// `GET /services/{id}`.
    Service(String),
    /// `DELETE /services/{id}`.
    ServiceDelete(String),
    /// `GET /services/{id}/logs`.
    ServiceLogs(String),
    /// `GET /tasks/{id}/logs`.
    TaskLogs(String),
    /// `POST /services/create`.
    ServiceCreate,
    /// `POST /services/{id}/update`.
    ServiceUpdate(String),
    /// `GET /tasks`.
    Tasks,
    /// `GET /tasks/{id}`.
    Task(String),
    /// `GET /networks`.
    Networks,
    /// `GET /networks/{id}`.
    Network(String),
    /// `GET /secrets`.
    Secrets,
    /// `GET /secrets/{id}`.
    Secret(String),
    /// `GET /configs`.
    Configs,
    /// `GET /configs/{id}`.
    Config(String),

    // ---- `docker stack deploy`: label-only updates of secrets and configs ----
    /// `POST /secrets/{id}/update`.
    SecretUpdate(String),
    /// `POST /configs/{id}/update`.
    ConfigUpdate(String),

    // ---- events ----
    /// `GET /events`.
    Events,
    // --- Containers and exec (`docker ps|inspect|exec`): see `containers` and `exec`. ---
    /// `GET /containers/json`.
    Containers,
    /// `GET /containers/{id}/json`.
    Container(String),
    /// `GET /images/{name}/json` (the name may hold slashes): Shoal keeps no engine images,
    /// so always Docker's 404 (`docker inspect X` then tries the next kind of object).
    Image(String),
    /// `POST /containers/{id}/exec`.
    ExecCreate(String),
    /// `POST /exec/{id}/start`.
    ExecStart(String),
    /// `POST /exec/{id}/resize`.
    ExecResize(String),
    /// `GET /exec/{id}/json`.
    ExecInspect(String),
}

/// `1.41` → `(1, 41)`.
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Splits `/v1.41/nodes` into `(Some("1.41"), "/nodes")`; a path without a version is
/// `(None, path)`. A version above [`API_VERSION`] or below [`MIN_API_VERSION`] is refused with
/// dockerd's words.
pub fn split_version(path: &str) -> Result<(Option<&str>, &str), ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((None, path));
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let v = &rest[..end];
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Ok((None, path));
    }
    let parsed = parse_version(v).ok_or_else(ApiError::no_route)?;
    let max = parse_version(API_VERSION).expect("API_VERSION");
    let min = parse_version(MIN_API_VERSION).expect("MIN_API_VERSION");
    if parsed > max {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if parsed < min {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok((Some(v), &rest[end..]))
}

/// The route of `method path` (path without the query).
pub fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let (_, path) = split_version(path)?;
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = method == Method::GET;
    Ok(match (segs.as_slice(), method) {
        (["_ping"], m) if m == Method::GET || m == Method::HEAD => Route::Ping,
        (["version"], _) if get => Route::Version,
        (["info"], _) if get => Route::Info,
        (["distribution", name @ .., "json"], _) if get && !name.is_empty() => Route::Distribution(
            name.iter()
                .map(|s| percent_decode(s))
                .collect::<Vec<_>>()
                .join("/"),
        ),
        (["swarm"], _) if get => Route::Swarm,
        (["swarm", "update"], m) if m == Method::POST => Route::SwarmUpdate,
        (["swarm", "unlockkey"], _) if get => Route::UnlockKey,
        (["swarm", "init"], m) if m == Method::POST => Route::SwarmInit,
        (["swarm", "join"], m) if m == Method::POST => Route::SwarmJoin,
        (["swarm", "leave"], m) if m == Method::POST => Route::SwarmLeave,
        (["swarm", "unlock"], m) if m == Method::POST => Route::SwarmUnlock,
        (["nodes"], _) if get => Route::Nodes,
        (["nodes", id, "update"], m) if m == Method::POST => Route::NodeUpdate(percent_decode(id)),
        (["nodes", id], m) if m == Method::DELETE => Route::NodeDelete(percent_decode(id)),
        (["networks", "create"], m) if m == Method::POST => Route::NetworkCreate,
        (["networks", id], m) if m == Method::DELETE => Route::NetworkDelete(percent_decode(id)),
        (["secrets", "create"], m) if m == Method::POST => Route::SecretCreate,
        (["secrets", id], m) if m == Method::DELETE => Route::SecretDelete(percent_decode(id)),
        (["configs", "create"], m) if m == Method::POST => Route::ConfigCreate,
        (["configs", id], m) if m == Method::DELETE => Route::ConfigDelete(percent_decode(id)),
        (["nodes", id], _) if get => Route::Node(percent_decode(id)),
        (["services"], _) if get => Route::Services,
        (["services", id], _) if get => Route::Service(percent_decode(id)),
        (["services", id], m) if m == Method::DELETE => Route::ServiceDelete(percent_decode(id)),
        (["services", "create"], m) if m == Method::POST => Route::ServiceCreate,
        (["services", id, "update"], m) if m == Method::POST => {
            Route::ServiceUpdate(percent_decode(id))
        }
        (["services", id, "logs"], _) if get => Route::ServiceLogs(percent_decode(id)),
        (["tasks", id, "logs"], _) if get => Route::TaskLogs(percent_decode(id)),
        (["tasks"], _) if get => Route::Tasks,
        (["tasks", id], _) if get => Route::Task(percent_decode(id)),
        (["networks"], _) if get => Route::Networks,
        (["networks", id], _) if get => Route::Network(percent_decode(id)),
        (["secrets"], _) if get => Route::Secrets,
        (["secrets", id], _) if get => Route::Secret(percent_decode(id)),
        (["configs"], _) if get => Route::Configs,
        (["configs", id], _) if get => Route::Config(percent_decode(id)),
        // `docker stack deploy`: label-only updates of secrets and configs.
        (["secrets", id, "update"], m) if m == Method::POST => {
            Route::SecretUpdate(percent_decode(id))
        }
        (["configs", id, "update"], m) if m == Method::POST => {
            Route::ConfigUpdate(percent_decode(id))
        }
        // Events.
        (["events"], _) if get => Route::Events,
        // Containers and exec.
        (["containers", "json"], _) if get => Route::Containers,
        (["containers", id, "json"], _) if get => Route::Container(percent_decode(id)),
        (["images", name @ .., "json"], _) if get && !name.is_empty() => Route::Image(
            name.iter()
                .map(|s| percent_decode(s))
                .collect::<Vec<_>>()
                .join("/"),
        ),
        (["containers", id, "exec"], m) if m == Method::POST => {
            Route::ExecCreate(percent_decode(id))
        }
        (["exec", id, "start"], m) if m == Method::POST => Route::ExecStart(percent_decode(id)),
        (["exec", id, "resize"], m) if m == Method::POST => Route::ExecResize(percent_decode(id)),
        (["exec", id, "json"], _) if get => Route::ExecInspect(percent_decode(id)),
        _ => return Err(ApiError::no_route()),
    })
}

/// Decodes `%XX` escapes (and `+` as a space when `plus` is set). Invalid escapes stay as they
/// are.
fn decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h << 4) | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// A path segment, `%XX` decoded.
pub fn percent_decode(s: &str) -> String {
    decode(s, false)
}

/// The `key=value` pairs of a query string, decoded (`+` is a space).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k, true), decode(v, true))
        })
        .collect()
}

/// The value of `key` in a query string, if present.
pub fn query_get(query: &str, key: &str) -> Option<String> {
    query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// A boolean query parameter as dockerd reads one (`1`, `true`, `True`…; absent or `0`/`false`
/// is false).
pub fn query_bool(query: &str, key: &str) -> bool {
    query_get(query, key).is_some_and(|v| {
        let v = v.to_ascii_lowercase();
        !(v.is_empty() || v == "0" || v == "false" || v == "no")
    })
}
