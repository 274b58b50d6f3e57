//! The log format of the commands whose payloads were tuples: the literals below are what the
//! previous binary (commit 0df639a, `Vec<(String, …)>` payloads) wrote for the same values.

use super::*;
use crate::model::TaskState;

/// The payload types as the previous binary declared them, to show that it reads what this
/// one writes (an older manager during a rolling upgrade).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum OldCommand {
    SetNodeLbAddrs(Vec<(String, String, String)>),
    SetNodeStates(Vec<(String, NodeState, String)>),
    TaskStatuses(Vec<(String, TaskStatus)>),
    Batch(Vec<OldCommand>),
}

fn status() -> TaskStatus {
    TaskStatus {
        state: TaskState::Running,
        message: "started".into(),
        err: String::new(),
        timestamp_ms: 1_700_000_000_000,
        exit_code: None,
        pid: 4242,
        addresses: vec!["bridge=172.18.0.2/16".into()],
        health: Default::default(),
    }
}

/// Each changed command, its encoding by the previous binary, and the same value as it declared it.
fn cases() -> Vec<(Command, &'static str, OldCommand)> {
    vec![
        (
            Command::SetNodeLbAddrs(vec![
                NodeLbAddr {
                    node_id: "n1".into(),
                    network_id: "net1".into(),
                    addr: "10.0.0.2/24".into(),
                },
                NodeLbAddr {
                    node_id: "n2".into(),
                    network_id: "net1".into(),
                    addr: String::new(),
                },
            ]),
            r#"{"SetNodeLbAddrs":[["n1","net1","10.0.0.2/24"],["n2","net1",""]]}"#,
            OldCommand::SetNodeLbAddrs(vec![
                ("n1".into(), "net1".into(), "10.0.0.2/24".into()),
                ("n2".into(), "net1".into(), String::new()),
            ]),
        ),
        (
            Command::SetNodeStates(vec![
                NodeStateChange {
                    node_id: "n1".into(),
                    state: NodeState::Ready,
                    message: String::new(),
                },
                NodeStateChange {
                    node_id: "n2".into(),
                    state: NodeState::Down,
                    message: "heartbeat failure".into(),
                },
            ]),
            r#"{"SetNodeStates":[["n1","Ready",""],["n2","Down","heartbeat failure"]]}"#,
            OldCommand::SetNodeStates(vec![
                ("n1".into(), NodeState::Ready, String::new()),
                ("n2".into(), NodeState::Down, "heartbeat failure".into()),
            ]),
        ),
        (
            Command::TaskStatuses(vec![TaskStatusUpdate {
                task_id: "t1".into(),
                status: status(),
            }]),
            r#"{"TaskStatuses":[["t1",{"state":"Running","message":"started","err":"","timestamp_ms":1700000000000,"exit_code":null,"pid":4242,"addresses":["bridge=172.18.0.2/16"]}]]}"#,
            OldCommand::TaskStatuses(vec![("t1".into(), status())]),
        ),
        (
            Command::Batch(vec![Command::SetNodeStates(vec![NodeStateChange {
                node_id: "n3".into(),
                state: NodeState::Disconnected,
                message: "node left".into(),
            }])]),
            r#"{"Batch":[{"SetNodeStates":[["n3","Disconnected","node left"]]}]}"#,
            OldCommand::Batch(vec![OldCommand::SetNodeStates(vec![(
                "n3".into(),
                NodeState::Disconnected,
                "node left".into(),
            )])]),
        ),
    ]
}

#[test]
fn named_payloads_encode_as_the_old_tuples_byte_for_byte() {
    for (cmd, old_json, old) in cases() {
        assert_eq!(serde_json::to_string(&cmd).unwrap(), old_json);
        // The literal really is the previous binary's encoding.
        assert_eq!(serde_json::to_string(&old).unwrap(), old_json);
    }
}

#[test]
fn entries_written_by_the_previous_binary_decode_and_round_trip() {
    for (cmd, old_json, _) in cases() {
        let decoded: Command = serde_json::from_str(old_json).unwrap();
        assert_eq!(decoded, cmd);
        let again: Command =
            serde_json::from_slice(&serde_json::to_vec(&decoded).unwrap()).unwrap();
        assert_eq!(again, cmd);
    }
}

#[test]
fn the_previous_binary_decodes_what_this_one_writes() {
    for (cmd, _, old) in cases() {
        let bytes = serde_json::to_vec(&cmd).unwrap();
        assert_eq!(serde_json::from_slice::<OldCommand>(&bytes).unwrap(), old);
    }
}

#[test]
fn a_payload_of_the_wrong_arity_is_refused() {
    for bad in [
        r#"{"SetNodeLbAddrs":[["n1","net1"]]}"#,
        r#"{"SetNodeStates":[["n1","Ready","",""]]}"#,
        r#"{"TaskStatuses":[{"task_id":"t1"}]}"#,
    ] {
        assert!(serde_json::from_str::<Command>(bad).is_err(), "{bad}");
    }
}

/// The encoding of the secret and config commands, pinned from their first version (the data
/// as an array of bytes), and a service spec without secrets still encodes as before (no
/// `secrets`/`configs` keys), so an older manager reads it.
#[test]
fn secret_commands_are_pinned() {
    let c = Command::CreateSecret(crate::model::SecretObject {
        id: "s1".into(),
        name: "db".into(),
        labels: Default::default(),
        data: crate::model::Opaque(b"pw".to_vec()),
        created_ms: 1,
        updated_ms: 1,
        version: 0,
    });
    let json = r#"{"CreateSecret":{"id":"s1","name":"db","labels":{},"data":[112,119],"created_ms":1,"updated_ms":1,"version":0}}"#;
    assert_eq!(serde_json::to_string(&c).unwrap(), json);
    assert_eq!(serde_json::from_str::<Command>(json).unwrap(), c);
    let rm = Command::RemoveConfig { id: "c1".into() };
    assert_eq!(
        serde_json::to_string(&rm).unwrap(),
        r#"{"RemoveConfig":{"id":"c1"}}"#
    );
    let spec = serde_json::to_value(crate::model::ServiceSpec::default()).unwrap();
    assert!(spec.get("secrets").is_none() && spec.get("configs").is_none());
}
