use super::*;
use crate::ManagerConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;

fn dispatcher() -> Arc<Dispatcher> {
    let mut cfg = ManagerConfig::new("n".into(), 1, "127.0.0.1:1".into(), "/x".into());
    cfg.relay_timeout = Duration::from_secs(5);
    Arc::new(Dispatcher::new(&cfg))
}

/// A fake agent's end of `ExecAttach`: what the leader sends it, and a sender for its frames.
struct FakeAgent {
    from_leader: mpsc::Receiver<Result<pb::ExecFrame, Status>>,
    to_leader: mpsc::Sender<Result<pb::ExecFrame, Status>>,
}

fn leg() -> (AgentLeg, FakeAgent) {
    let (to_agent, from_leader) = mpsc::channel(EXEC_FRAMES);
    let (to_leader, rx) = mpsc::channel(EXEC_FRAMES);
    let leg = AgentLeg {
        to_agent,
        from_agent: Box::pin(ReceiverStream::new(rx)),
    };
    (
        leg,
        FakeAgent {
            from_leader,
            to_leader,
        },
    )
}

fn out(stdout: &str) -> Result<pb::ExecFrame, Status> {
    Ok(pb::ExecFrame {
        output: Some(pb::ExecOutput {
            stdout: stdout.as_bytes().to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn exited(code: i32) -> Result<pb::ExecFrame, Status> {
    Ok(pb::ExecFrame {
        output: Some(pb::ExecOutput {
            exited: true,
            exit_code: code,
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn stdin(data: &str) -> Result<pb::ExecInput, Status> {
    Ok(pb::ExecInput {
        stdin: data.as_bytes().to_vec(),
        ..Default::default()
    })
}

/// The session request the fake agent got over its session stream.
async fn asked(to_agent: &mut mpsc::Receiver<ToAgent>) -> pb::ExecSessionRequest {
    match to_agent.recv().await {
        Some(ToAgent::ExecSession(r)) => r,
        other => panic!("expected an exec session request, got {other:?}"),
    }
}

#[tokio::test]
async fn the_node_asked_attaches_and_frames_flow_both_ways_until_the_exit_code() {
    let d = dispatcher();
    let (tx, mut session) = mpsc::channel(4);
    d.open_session("n1", tx);
    let ask = pb::ExecSessionRequest {
        task_id: "t1".into(),
        cmd: vec!["sh".into()],
        tty: true,
        ..Default::default()
    };
    let leader = {
        let d = d.clone();
        tokio::spawn(async move { d.exec_session("n1", ask).await })
    };
    let req = asked(&mut session).await;
    assert_eq!(req.task_id, "t1");
    assert!(!req.session_id.is_empty());
    let (agent_leg, mut agent) = leg();
    let (other_leg, _other) = leg();
    assert_eq!(
        d.exec_attach(&req.session_id, "n2", other_leg),
        Err(AttachError::OtherNode(req.session_id.clone())),
        "only the node asked can take the session"
    );
    let (unknown_leg, _u) = leg();
    assert!(matches!(
        d.exec_attach("nope", "n1", unknown_leg),
        Err(AttachError::Unknown(_))
    ));
    d.exec_attach(&req.session_id, "n1", agent_leg).unwrap();
    let paired = leader.await.unwrap().unwrap();
    assert_eq!(d.exec_sessions.waiting(), 0);

    let (client_in, client_in_rx) = mpsc::channel(4);
    let (client_out, mut client_out_rx) = mpsc::channel(4);
    let relay = tokio::spawn(relay_exec(
        Box::pin(ReceiverStream::new(client_in_rx)),
        client_out,
        paired,
    ));
    client_in.send(stdin("echo hi\n")).await.unwrap();
    let got = agent.from_leader.recv().await.unwrap().unwrap();
    assert_eq!(got.input.unwrap().stdin, b"echo hi\n");
    agent.to_leader.send(out("hi\r\n")).await.unwrap();
    agent.to_leader.send(exited(3)).await.unwrap();
    let first = client_out_rx.recv().await.unwrap().unwrap();
    assert_eq!(first.stdout, b"hi\r\n");
    let last = client_out_rx.recv().await.unwrap().unwrap();
    assert!(last.exited);
    assert_eq!(last.exit_code, 3);
    relay.await.unwrap();
    assert!(
        client_out_rx.recv().await.is_none(),
        "the exit code is the last message"
    );
    // The relay is gone: the agent's stream from the leader ends.
    assert!(agent.from_leader.recv().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_never_attaches_times_out_and_is_forgotten() {
    let d = dispatcher();
    let (tx, mut session) = mpsc::channel(4);
    d.open_session("n1", tx);
    let leader = {
        let d = d.clone();
        tokio::spawn(async move { d.exec_session("n1", Default::default()).await })
    };
    let req = asked(&mut session).await;
    let got = leader.await.unwrap();
    assert_eq!(
        got.unwrap_err(),
        RelayError::Timeout {
            after: Duration::from_secs(5)
        }
    );
    assert_eq!(d.exec_sessions.waiting(), 0);
    let (late, _a) = leg();
    assert!(matches!(
        d.exec_attach(&req.session_id, "n1", late),
        Err(AttachError::Unknown(_))
    ));
}

#[tokio::test]
async fn a_node_without_a_session_is_not_connected() {
    let d = dispatcher();
    let got = d.exec_session("n1", Default::default()).await;
    assert_eq!(
        got.unwrap_err(),
        RelayError::NotConnected { node: "n1".into() }
    );
    assert_eq!(d.exec_sessions.waiting(), 0);
}

#[tokio::test]
async fn a_client_that_leaves_ends_the_agents_stream() {
    let (paired, mut agent) = leg();
    let (client_in, client_in_rx) = mpsc::channel(4);
    let (client_out, _client_out_rx) = mpsc::channel(4);
    let relay = tokio::spawn(relay_exec(
        Box::pin(ReceiverStream::new(client_in_rx)),
        client_out,
        paired,
    ));
    drop(client_in);
    relay.await.unwrap();
    assert!(
        agent.from_leader.recv().await.is_none(),
        "the agent kills the program"
    );
}

#[tokio::test]
async fn an_agent_that_leaves_without_an_exit_code_is_an_error_for_the_client() {
    let (paired, agent) = leg();
    let (_client_in, client_in_rx) = mpsc::channel::<Result<pb::ExecInput, Status>>(4);
    let (client_out, mut client_out_rx) = mpsc::channel(4);
    let relay = tokio::spawn(relay_exec(
        Box::pin(ReceiverStream::new(client_in_rx)),
        client_out,
        paired,
    ));
    agent.to_leader.send(out("partial")).await.unwrap();
    drop(agent);
    assert_eq!(
        client_out_rx.recv().await.unwrap().unwrap().stdout,
        b"partial"
    );
    let last = client_out_rx.recv().await.unwrap().unwrap();
    assert!(!last.exited);
    assert!(
        last.error.contains("without an exit code"),
        "{}",
        last.error
    );
    relay.await.unwrap();
}
