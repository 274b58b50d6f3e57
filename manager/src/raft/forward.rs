//! Writes a follower forwards to the leader (`ForwardWrite`), and the reply's wire form.
//!
//! The reply crosses between managers of different versions during a rolling upgrade, so its
//! JSON keeps the fields managers have always read (`error` text, `id`, `conflicts`,
//! `log_index`) and carries the typed [`Refusal`] in an extra `refusal` field that older
//! managers ignore. A reply from an older leader has no `refusal`: it is rebuilt from the old
//! fields ([`Refusal::Other`] keeps the text of a refusal this manager cannot type).

use super::network::{decode, encode, Network};
use crate::store::{Applied, Refusal, Versioned};
use serde::{Deserialize, Serialize};
use shoal_proto::model::Command;
use shoal_proto::pb::raft_client::RaftClient;
use shoal_proto::pb::RaftBytes;
use std::time::Duration;

/// The `ForwardWrite` reply body: `Ok(reply)`, `Err(None)` when the callee is not the leader
/// (the caller looks again), `Err(Some(text))` when raft failed on the leader.
pub type ForwardResult = Result<WireReply, Option<String>>;

/// What a leader answers to a forwarded write, in the form every manager version reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireReply {
    /// The refusal's text, as older managers read it. `None` for a version conflict on the
    /// cluster or a node: those were counted in `conflicts`.
    pub error: Option<String>,
    /// Id of the object created, if any.
    pub id: String,
    /// Skipped stale objects, plus one for a version conflict on the cluster or a node.
    pub conflicts: u32,
    /// Raft log index of the entry, so the follower can wait until it applied it too.
    #[serde(default)]
    pub log_index: u64,
    /// The typed refusal. Kept as raw JSON so that a variant added by a newer manager degrades
    /// to its text instead of failing the whole reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<serde_json::Value>,
}

/// Older managers counted a version conflict on the cluster or a node instead of refusing.
fn counted_as_conflict(r: &Refusal) -> bool {
    matches!(
        r,
        Refusal::Conflict(Versioned::Cluster | Versioned::Node { .. })
    )
}

impl WireReply {
    /// The reply for `applied`, the entry at `log_index`.
    pub fn new(applied: Applied, log_index: u64) -> WireReply {
        let counted = applied.refusal.as_ref().is_some_and(counted_as_conflict);
        WireReply {
            error: applied
                .refusal
                .as_ref()
                .filter(|r| !counted_as_conflict(r))
                .map(Refusal::to_string),
            id: applied.id,
            conflicts: applied.skipped + u32::from(counted),
            log_index,
            refusal: applied
                .refusal
                .as_ref()
                .and_then(|r| serde_json::to_value(r).ok()),
        }
    }

    /// What the leader applied for `cmd`, whatever the leader's version.
    pub fn into_applied(self, cmd: &Command) -> Applied {
        let typed = self
            .refusal
            .and_then(|v| serde_json::from_value::<Refusal>(v).ok());
        let refusal = match (typed, self.error) {
            (Some(r), _) => Some(r),
            (None, Some(text)) => Some(Refusal::Other(text)),
            // An older leader counted a stale single-object put.
            (None, None) if self.conflicts > 0 => match cmd {
                Command::PutCluster(_) => Some(Refusal::Conflict(Versioned::Cluster)),
                Command::PutNode(n) => Some(Refusal::Conflict(Versioned::Node {
                    id: n.id.to_string(),
                })),
                _ => None,
            },
            (None, None) => None,
        };
        let counted = refusal.as_ref().is_some_and(counted_as_conflict);
        Applied {
            id: self.id,
            skipped: self.conflicts.saturating_sub(u32::from(counted)),
            refusal,
            ..Default::default()
        }
    }
}

/// Why forwarding a write failed (the caller retries until its write timeout).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The command could not be encoded, or the reply decoded.
    #[error("malformed forwarded write: {0}")]
    Codec(#[from] serde_json::Error),
    /// No channel to the leader.
    #[error("{0}")]
    Connect(#[from] tonic::transport::Error),
    /// The call failed.
    #[error("{}", .0.message())]
    Call(#[from] tonic::Status),
    /// Raft failed on the leader.
    #[error("{0}")]
    Leader(String),
}

/// Sends `cmd` to the leader at `addr` and returns what it applied and at which log index.
/// `Ok(None)`: that node is no longer the leader.
pub async fn forward(
    net: &Network,
    addr: &str,
    cmd: &Command,
    timeout: Duration,
) -> Result<Option<(Applied, u64)>, ForwardError> {
    let mut client = RaftClient::new(net.channel(addr)?);
    let mut req = tonic::Request::new(RaftBytes { data: encode(cmd)? });
    req.set_timeout(timeout);
    let resp = client.forward_write(req).await?;
    let result: ForwardResult = decode(&resp.into_inner().data)?;
    match result {
        Ok(r) => {
            let index = r.log_index;
            Ok(Some((r.into_applied(cmd), index)))
        }
        Err(None) => Ok(None),
        Err(Some(e)) => Err(ForwardError::Leader(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectKind;
    use shoal_proto::model::{Cluster, Node};

    /// The reply an older leader sent: the fields it had, no `refusal`.
    fn old(error: Option<&str>, conflicts: u32) -> WireReply {
        let json = serde_json::json!({
            "error": error, "id": "", "conflicts": conflicts, "log_index": 7
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn older_managers_read_the_same_fields() {
        let refused = Applied {
            refusal: Some(Refusal::NotFound {
                kind: ObjectKind::Service,
                id: "s1".into(),
            }),
            ..Default::default()
        };
        let wire = serde_json::to_value(WireReply::new(refused, 7)).unwrap();
        assert_eq!(wire["error"], "service s1 not found");
        assert_eq!(wire["conflicts"], 0);
        assert_eq!(wire["log_index"], 7);
        let node_conflict = Applied {
            refusal: Some(Refusal::Conflict(Versioned::Node { id: "n1".into() })),
            ..Default::default()
        };
        let wire = serde_json::to_value(WireReply::new(node_conflict, 8)).unwrap();
        assert_eq!(wire["error"], serde_json::Value::Null, "counted, as before");
        assert_eq!(wire["conflicts"], 1);
        let ok = serde_json::to_value(WireReply::new(Applied::with_id("x"), 9)).unwrap();
        assert!(ok.get("refusal").is_none());
    }

    #[test]
    fn typed_refusals_round_trip() {
        for r in [
            Refusal::Conflict(Versioned::Cluster),
            Refusal::Conflict(Versioned::Service { name: "web".into() }),
            Refusal::NoFreeVni,
        ] {
            let applied = Applied {
                refusal: Some(r.clone()),
                ..Default::default()
            };
            let bytes = serde_json::to_vec(&WireReply::new(applied.clone(), 1)).unwrap();
            let back: WireReply = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(back.into_applied(&Command::Noop), applied);
        }
    }

    #[test]
    fn replies_of_older_leaders_are_typed_at_the_edge() {
        let put_node = Command::PutNode(Node {
            id: "n1".into(),
            ..Default::default()
        });
        assert_eq!(
            old(None, 1).into_applied(&put_node).refusal,
            Some(Refusal::Conflict(Versioned::Node { id: "n1".into() }))
        );
        let put_cluster = Command::PutCluster(Cluster::default());
        assert_eq!(
            old(None, 1).into_applied(&put_cluster).refusal,
            Some(Refusal::Conflict(Versioned::Cluster))
        );
        let tasks = old(None, 2).into_applied(&Command::PutTasks(vec![]));
        assert_eq!((tasks.refusal, tasks.skipped), (None, 2));
        let text = old(Some("network with name \"x\" already exists"), 0)
            .into_applied(&Command::Noop)
            .refusal
            .unwrap();
        assert_eq!(text.to_string(), "network with name \"x\" already exists");
    }

    #[test]
    fn an_unknown_refusal_variant_degrades_to_its_text() {
        let json = serde_json::json!({
            "error": "a refusal from the future", "id": "", "conflicts": 0,
            "refusal": {"FromTheFuture": {"x": 1}}
        });
        let r: WireReply = serde_json::from_value(json).unwrap();
        assert_eq!(
            r.into_applied(&Command::Noop).refusal,
            Some(Refusal::Other("a refusal from the future".into()))
        );
    }
}
