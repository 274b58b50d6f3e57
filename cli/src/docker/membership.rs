//! The node's membership through the Engine API: `POST /swarm/init|join|leave` and
//! `POST /swarm/unlock`, and what `/info` says of the node now. Translated into the
//! `NodeLifecycle` calls of the node's control socket (`swarmctl swarm init|join|leave`'s).

use super::api::{json_body, Api, Body, LocalNode, Reply};
use super::route::{query_bool, Route};
use super::ApiError;
use crate::client::{connect_lifecycle, ClientConfig};
use serde_json::{json, Value};
use shoal_proto::pb;
use std::time::Duration;

/// The fields of `/swarm/init` and `/swarm/join` bodies Shoal has no use for and takes when
/// they hold what dockerd would do anyway (their zero values and defaults).
/// A body field and whether a value of it is one Shoal can take.
type Field<'a> = (&'a str, &'a dyn Fn(&Value) -> bool);

fn refuse_set(v: &Value, fields: &[Field<'_>]) -> Result<(), ApiError> {
    for (name, harmless) in fields {
        if let Some(x) = v.get(*name) {
            if !x.is_null() && !harmless(x) {
                return Err(ApiError::bad_request(format!(
                    "{name} is not supported by Shoal"
                )));
            }
        }
    }
    Ok(())
}

fn zero(v: &Value) -> bool {
    matches!(v, Value::Bool(false)) || v.as_u64() == Some(0) || v.as_str() == Some("")
}

fn active(v: &Value) -> bool {
    zero(v) || v.as_str() == Some("active")
}

fn empty_spec(v: &Value) -> bool {
    // The CLI always sends a spec; only what `docker swarm init`'s flags put there by default.
    v.as_object().is_some_and(|o| {
        o.iter().all(|(k, x)| match k.as_str() {
            "Labels" => x.as_object().is_none_or(|m| m.is_empty()),
            "Orchestration" | "Raft" | "Dispatcher" | "CAConfig" | "TaskDefaults"
            | "EncryptionConfig" | "Annotations" => true,
            _ => x.is_null(),
        })
    })
}

fn string(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `POST /swarm/init`'s body → the lifecycle request.
pub fn init_request(v: &Value) -> Result<(pb::SwarmInitRequest, bool), ApiError> {
    refuse_set(
        v,
        &[
            ("DataPathAddr", &zero),
            ("DataPathPort", &zero),
            ("ForceNewCluster", &zero),
            ("Availability", &active),
            ("Spec", &empty_spec),
        ],
    )?;
    let pools: Vec<String> = v
        .get("DefaultAddrPool")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let autolock = v
        .get("AutoLockManagers")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((
        pb::SwarmInitRequest {
            listen_addr: string(v, "ListenAddr"),
            advertise_addr: string(v, "AdvertiseAddr"),
            default_addr_pool: pools,
            subnet_size: v.get("SubnetSize").and_then(Value::as_u64).unwrap_or(0) as u32,
        },
        autolock,
    ))
}

/// `POST /swarm/join`'s body → the lifecycle request.
pub fn join_request(v: &Value) -> Result<pb::SwarmJoinRequest, ApiError> {
    refuse_set(v, &[("DataPathAddr", &zero), ("Availability", &active)])?;
    let remote: Vec<String> = v
        .get("RemoteAddrs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if remote.is_empty() {
        return Err(ApiError::bad_request(
            "at least 1 RemoteAddr is required to join",
        ));
    }
    Ok(pb::SwarmJoinRequest {
        listen_addr: string(v, "ListenAddr"),
        advertise_addr: string(v, "AdvertiseAddr"),
        remote_addrs: remote,
        token: string(v, "JoinToken"),
    })
}

/// A lifecycle call's failure: dockerd answers 503 for the node's state, 400 for bad input.
fn lifecycle_error(s: tonic::Status) -> ApiError {
    let status = match s.code() {
        tonic::Code::InvalidArgument => 400,
        _ => 503,
    };
    ApiError {
        status,
        message: s.message().to_string(),
    }
}

impl Api {
    /// The node's `NodeLifecycle` service on its control socket.
    async fn lifecycle(
        &self,
    ) -> Result<pb::node_lifecycle_client::NodeLifecycleClient<tonic::transport::Channel>, ApiError>
    {
        let cfg = ClientConfig {
            connect_timeout: Duration::from_secs(2),
            // A join waits for the managers; an init for a new raft group.
            request_timeout: Some(Duration::from_secs(90)),
            cert_dir: None,
            plaintext: true,
            consistent: false,
        };
        let host = format!("unix://{}", self.local.control_socket.display());
        connect_lifecycle(&host, &cfg).await.map_err(|e| ApiError {
            status: 503,
            message: format!("cannot reach swarmd's control socket: {e}"),
        })
    }

    /// The node as it is now: `swarm init|join|leave` change it while the socket stays.
    pub(super) async fn local_now(&self) -> LocalNode {
        let mut l = self.local.clone();
        let Ok(mut c) = self.lifecycle().await else {
            return l;
        };
        if let Ok(s) = c.state(pb::Empty {}).await {
            let s = s.into_inner();
            l.node_id = s.node_id;
            l.addr = s.node_addr;
            l.state = s.state;
            l.manager = s.manager;
            l.managers = std::fs::read(l.state_dir.join("managers.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
        }
        l
    }

    /// Answers the routes of this module.
    pub(super) async fn membership(
        &self,
        r: Route,
        query: &str,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        Ok(match r {
            Route::SwarmInit => {
                let (req, autolock) = init_request(&json_body(body)?)?;
                let mut c = self.lifecycle().await?;
                let r = c.init(req).await.map_err(lifecycle_error)?.into_inner();
                if autolock {
                    let mut ctl = self.control().await?;
                    ctl.update_cluster(pb::UpdateClusterRequest {
                        autolock: Some(true),
                        ..Default::default()
                    })
                    .await?;
                }
                Reply::json(json!(r.node_id))
            }
            Route::SwarmJoin => {
                let req = join_request(&json_body(body)?)?;
                let mut c = self.lifecycle().await?;
                c.join(req).await.map_err(lifecycle_error)?;
                ok()
            }
            Route::SwarmLeave => {
                let force = query_bool(query, "force");
                let mut c = self.lifecycle().await?;
                c.leave(pb::SwarmLeaveRequest { force })
                    .await
                    .map_err(lifecycle_error)?;
                ok()
            }
            Route::SwarmUnlock => {
                let v = json_body(body)?;
                let key = string(&v, "UnlockKey");
                let mut c = self.control().await?;
                c.unlock(pb::UnlockRequest { key }).await?;
                ok()
            }
            _ => return Err(ApiError::no_route()),
        })
    }
}

fn ok() -> Reply {
    Reply {
        status: 200,
        body: Body::Empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_bodies_as_the_cli_sends_them() {
        let body = json!({
            "ListenAddr": "0.0.0.0:2377",
            "AdvertiseAddr": "eth0",
            "DataPathAddr": "",
            "DataPathPort": 0,
            "DefaultAddrPool": ["10.20.0.0/16"],
            "ForceNewCluster": false,
            "Spec": {"Labels": null, "Orchestration": {}, "Raft": {"ElectionTick": 0}, "Dispatcher": {}, "CAConfig": {}, "TaskDefaults": {}, "EncryptionConfig": {"AutoLockManagers": false}},
            "AutoLockManagers": false,
            "Availability": "active",
            "SubnetSize": 26,
        });
        let (r, autolock) = init_request(&body).unwrap();
        assert_eq!(r.listen_addr, "0.0.0.0:2377");
        assert_eq!(r.advertise_addr, "eth0");
        assert_eq!(r.default_addr_pool, ["10.20.0.0/16"]);
        assert_eq!(r.subnet_size, 26);
        assert!(!autolock);
    }

    #[test]
    fn what_shoal_does_not_do_is_refused_by_name() {
        let e = init_request(&json!({"ForceNewCluster": true})).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.message, "ForceNewCluster is not supported by Shoal");
        let e = init_request(&json!({"DataPathPort": 4789})).unwrap_err();
        assert!(e.message.starts_with("DataPathPort"), "{e}");
        let e = init_request(&json!({"Availability": "drain"})).unwrap_err();
        assert!(e.message.starts_with("Availability"), "{e}");
        let e = join_request(&json!({"RemoteAddrs": []})).unwrap_err();
        assert_eq!(e.message, "at least 1 RemoteAddr is required to join");
        let j = join_request(&json!({"RemoteAddrs": ["198.18.0.1:2377"], "JoinToken": "SWMTKN-1-x", "ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": "", "DataPathAddr": "", "Availability": "active"})).unwrap();
        assert_eq!(j.remote_addrs, ["198.18.0.1:2377"]);
        assert_eq!(j.token, "SWMTKN-1-x");
    }
}
