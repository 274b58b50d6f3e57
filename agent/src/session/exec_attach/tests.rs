use super::*;
use std::time::Duration;

fn frame(input: pb::ExecInput) -> Result<pb::ExecFrame, Status> {
    Ok(pb::ExecFrame {
        input: Some(input),
        ..Default::default()
    })
}

/// A fake program: what it is sent, and a sender for what it says.
fn fake() -> (ExecSession, mpsc::Receiver<ExecIn>, mpsc::Sender<ExecOut>) {
    let (input, in_rx) = mpsc::channel(4);
    let (out_tx, output) = mpsc::channel(4);
    (ExecSession { input, output }, in_rx, out_tx)
}

#[test]
fn a_frame_becomes_the_inputs_it_carries_in_order() {
    let f = pb::ExecFrame {
        input: Some(pb::ExecInput {
            stdin: b"ls\n".to_vec(),
            resize: Some(pb::TermSize {
                rows: 50,
                cols: 70_000,
            }),
            close_stdin: true,
            start: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        inputs_of(f),
        vec![
            ExecIn::Data(b"ls\n".to_vec()),
            ExecIn::Resize(WinSize {
                rows: 50,
                cols: u16::MAX
            }),
            ExecIn::Close,
        ]
    );
    assert!(inputs_of(pb::ExecFrame::default()).is_empty());
}

#[test]
fn the_request_becomes_the_executors_spec() {
    let req = pb::ExecSessionRequest {
        cmd: vec!["sh".into()],
        tty: true,
        stdin: true,
        size: Some(pb::TermSize { rows: 24, cols: 80 }),
        ..Default::default()
    };
    let s = spec_of(&req);
    assert_eq!(s.cmd, vec!["sh".to_string()]);
    assert!(s.tty && s.stdin);
    assert_eq!(s.size, Some(WinSize { rows: 24, cols: 80 }));
}

#[tokio::test]
async fn frames_flow_both_ways_and_the_exit_code_ends_the_session() {
    let (session, mut program_in, program_out) = fake();
    let (leader_tx, leader_rx) = mpsc::channel(4);
    let (to_leader, mut at_leader) = mpsc::channel(4);
    let pumping = tokio::spawn(pump(ReceiverStream::new(leader_rx), to_leader, session));
    leader_tx
        .send(frame(pb::ExecInput {
            stdin: b"exit 3\n".to_vec(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        program_in.recv().await,
        Some(ExecIn::Data(b"exit 3\n".to_vec()))
    );
    program_out
        .send(ExecOut::Stdout(b"bye".to_vec()))
        .await
        .unwrap();
    program_out
        .send(ExecOut::Stderr(b"err".to_vec()))
        .await
        .unwrap();
    program_out.send(ExecOut::Exit(3)).await.unwrap();
    let mut got = Vec::new();
    while let Some(f) = at_leader.recv().await {
        got.extend(f.output);
    }
    // Our side ended after the exit code; the leader's stays open until the leader ends it.
    assert!(!pumping.is_finished());
    drop(leader_tx);
    tokio::time::timeout(Duration::from_secs(5), pumping)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].stdout, b"bye");
    assert_eq!(got[1].stderr, b"err");
    assert!(got[2].exited);
    assert_eq!(got[2].exit_code, 3);
}

#[tokio::test]
async fn the_leader_going_away_drops_the_program_s_input() {
    let (session, mut program_in, _program_out) = fake();
    let (leader_tx, leader_rx) = mpsc::channel::<Result<pb::ExecFrame, Status>>(4);
    let (to_leader, _at_leader) = mpsc::channel(4);
    let pumping = tokio::spawn(pump(ReceiverStream::new(leader_rx), to_leader, session));
    drop(leader_tx);
    tokio::time::timeout(Duration::from_secs(5), pumping)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        program_in.recv().await,
        None,
        "the executor kills the program"
    );
}
