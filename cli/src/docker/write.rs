//! The writes besides services: node updates and removal, networks, secrets and configs
//! created and removed; `GET /swarm` (the cluster with its join tokens), `POST /swarm/update`
//! (token and unlock key rotation, autolock, certificate validity), `GET /swarm/unlockkey`.

use super::api::{json_body, Api, Body, Reply};
use super::route::{query_bool, query_get, Route};
use super::{spec, types, ApiError};
use serde_json::json;
use shoal_proto::pb;

/// `204 No Content`, dockerd's answer to a network, secret or config removed.
fn no_content() -> Reply {
    Reply {
        status: 204,
        body: Body::Empty,
    }
}

/// `201 Created` with the new object's id under `key` (`ID`; networks: `Id`).
fn created(key: &str, id: &str) -> Reply {
    let mut v = json!({});
    v[key] = json!(id);
    Reply {
        status: 201,
        body: Body::Json(v),
    }
}

/// A stale `?version=`: dockerd 20.10 passes SwarmKit's sequence error through as an unknown
/// gRPC error, a 500 with this text (the CLI prints it as is).
pub(super) fn out_of_sequence() -> ApiError {
    ApiError {
        status: 500,
        message: "rpc error: code = Unknown desc = update out of sequence".into(),
    }
}

/// `?version=N`, required.
pub(super) fn version(query: &str, what: &str) -> Result<u64, ApiError> {
    let raw = query_get(query, "version").unwrap_or_default();
    raw.parse()
        .map_err(|e| ApiError::bad_request(format!("invalid {what} version '{raw}': {e}")))
}

impl Api {
    /// Answers the routes of this module.
    pub(super) async fn write(
        &self,
        r: Route,
        query: &str,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let mut c = self.control().await?;
        Ok(match r {
            Route::Swarm => {
                let cluster = c.get_cluster(pb::Empty {}).await?.into_inner();
                let token = |role: pb::NodeRole| pb::JoinTokenRequest {
                    role: role as i32,
                    rotate: false,
                };
                let worker = c.get_join_token(token(pb::NodeRole::Worker)).await?;
                let manager = c.get_join_token(token(pb::NodeRole::Manager)).await?;
                let mut v = types::system::swarm_inspect(
                    &cluster,
                    &worker.get_ref().token,
                    &manager.get_ref().token,
                );
                v["TLSInfo"] = self.tls_info();
                Reply::json(v)
            }
            Route::SwarmUpdate => {
                let cluster = c.get_cluster(pb::Empty {}).await?.into_inner();
                let req = spec::swarm_update(&json_body(body)?, &cluster)?;
                if req.cert_expiry_ms != 0 || req.autolock.is_some() {
                    c.update_cluster(req).await?;
                }
                for (flag, role) in [
                    ("rotateWorkerToken", pb::NodeRole::Worker),
                    ("rotateManagerToken", pb::NodeRole::Manager),
                ] {
                    if query_bool(query, flag) {
                        c.get_join_token(pb::JoinTokenRequest {
                            role: role as i32,
                            rotate: true,
                        })
                        .await?;
                    }
                }
                if query_bool(query, "rotateManagerUnlockKey") {
                    c.get_unlock_key(pb::UnlockKeyRequest { rotate: true })
                        .await?;
                }
                Reply {
                    status: 200,
                    body: Body::Empty,
                }
            }
            Route::UnlockKey => {
                let k = c
                    .get_unlock_key(pb::UnlockKeyRequest { rotate: false })
                    .await?;
                Reply::json(json!({ "UnlockKey": k.get_ref().key }))
            }
            Route::NodeUpdate(id) => {
                let version = version(query, "node")?;
                let current = c.get_node(pb::IdRequest { id }).await?.into_inner();
                let req = spec::node_update(&json_body(body)?, &current, version)?;
                match c.update_node(req).await {
                    Ok(_) => Reply {
                        status: 200,
                        body: Body::Empty,
                    },
                    Err(s) if s.code() == tonic::Code::Aborted => return Err(out_of_sequence()),
                    Err(s) => return Err(s.into()),
                }
            }
            Route::NodeDelete(id) => {
                let force = query_bool(query, "force");
                c.remove_node(pb::RemoveNodeRequest { id, force }).await?;
                Reply {
                    status: 200,
                    body: Body::Empty,
                }
            }
            Route::NetworkCreate => {
                let req = spec::network_create(&json_body(body)?)?;
                let n = c.create_network(req).await?;
                let mut r = created("Id", &n.get_ref().id);
                if let Body::Json(v) = &mut r.body {
                    v["Warning"] = json!("");
                }
                r
            }
            Route::NetworkDelete(id) => {
                c.remove_network(pb::IdRequest { id }).await?;
                no_content()
            }
            Route::SecretCreate => {
                let req = spec::data_create(&json_body(body)?, "secret")?;
                let s = c.create_secret(req).await?;
                created("ID", &s.get_ref().id)
            }
            Route::SecretDelete(id) => {
                c.remove_secret(pb::IdRequest { id }).await?;
                no_content()
            }
            Route::ConfigCreate => {
                let req = spec::data_create(&json_body(body)?, "config")?;
                let s = c.create_config(req).await?;
                created("ID", &s.get_ref().id)
            }
            Route::ConfigDelete(id) => {
                c.remove_config(pb::IdRequest { id }).await?;
                no_content()
            }
            _ => return Err(ApiError::no_route()),
        })
    }
}
