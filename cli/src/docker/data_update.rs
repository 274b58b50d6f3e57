//! `POST /secrets/{id}/update` and `POST /configs/{id}/update` (`?version=`): what `docker stack
//! deploy` calls for a secret or config that exists. As in SwarmKit only the labels may change:
//! the body is the whole spec the CLI read back, and a changed name or data is refused with
//! SwarmKit's words.

use super::api::{json_body, Api, Body, Reply};
use super::route::Route;
use super::write::{out_of_sequence, version};
use super::ApiError;
use serde_json::Value;
use shoal_proto::pb;
use std::collections::HashMap;

/// SwarmKit's refusal of anything but a labels change.
pub const ONLY_LABELS: &str = "only updates to Labels are allowed";

/// What a `SecretSpec`/`ConfigSpec` update body asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DataUpdate {
    /// The name (empty: not given); it cannot change.
    pub name: String,
    /// The new labels, all of them.
    pub labels: HashMap<String, String>,
    /// The data it carries, base64-decoded, if any; it cannot change.
    pub data: Option<Vec<u8>>,
}

/// Reads an update body. `Driver` and `Templating` are refused when set.
pub fn parse(v: &Value) -> Result<DataUpdate, ApiError> {
    use base64::Engine as _;
    let o = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request("invalid Spec: expected an object"))?;
    let mut name = String::new();
    let mut labels = HashMap::new();
    let mut data = None;
    for (k, v) in o {
        match (k.as_str(), v) {
            (_, Value::Null) => {}
            ("Name", Value::String(s)) => name = s.clone(),
            ("Labels", Value::Object(m)) => {
                for (lk, lv) in m {
                    let lv = lv.as_str().ok_or_else(|| {
                        ApiError::bad_request("invalid Spec.Labels: label values must be strings")
                    })?;
                    labels.insert(lk.clone(), lv.to_string());
                }
            }
            ("Data", Value::String(s)) => {
                data = Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(s.as_bytes())
                        .map_err(|e| {
                            ApiError::bad_request(format!("invalid Spec.Data: not base64: {e}"))
                        })?,
                )
            }
            ("Driver" | "Templating", Value::Object(m)) if m.is_empty() => {}
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Spec.{k} is not supported by Shoal"
                )))
            }
        }
    }
    Ok(DataUpdate { name, labels, data })
}

impl Api {
    /// Answers [`Route::SecretUpdate`] and [`Route::ConfigUpdate`].
    pub(super) async fn data_update(
        &self,
        r: Route,
        query: &str,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let version = version(query, "object")?;
        let DataUpdate { name, labels, data } = parse(&json_body(body)?)?;
        let mut c = self.control().await?;
        let result = match r {
            Route::SecretUpdate(id) => {
                let cur = c.get_secret(pb::IdRequest { id }).await?.into_inner();
                let same_data = data
                    .as_ref()
                    .is_none_or(|d| shoal_image::digest::Digest::of(d).as_str() == cur.digest);
                if (!name.is_empty() && name != cur.name) || !same_data {
                    return Err(ApiError::bad_request(ONLY_LABELS));
                }
                c.update_secret(pb::UpdateDataRequest {
                    id: cur.id,
                    version,
                    labels,
                })
                .await
                .map(|_| ())
            }
            Route::ConfigUpdate(id) => {
                let cur = c.get_config(pb::IdRequest { id }).await?.into_inner();
                let same_data = data.as_ref().is_none_or(|d| *d == cur.data);
                if (!name.is_empty() && name != cur.name) || !same_data {
                    return Err(ApiError::bad_request(ONLY_LABELS));
                }
                c.update_config(pb::UpdateDataRequest {
                    id: cur.id,
                    version,
                    labels,
                })
                .await
                .map(|_| ())
            }
            _ => return Err(ApiError::no_route()),
        };
        match result {
            Ok(()) => Ok(Reply {
                status: 200,
                body: Body::Empty,
            }),
            Err(s) if s.code() == tonic::Code::Aborted => Err(out_of_sequence()),
            Err(s) => Err(s.into()),
        }
    }
}
