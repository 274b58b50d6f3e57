use super::*;
use crate::ctl::fake::Fake;
use crate::ctl::task::TaskCmd;
use clap::Parser;

#[derive(Debug, Parser)]
struct Cmd {
    #[command(subcommand)]
    task: TaskCmd,
}

fn parse(args: &[&str]) -> (bool, bool, String, Vec<String>) {
    let argv = std::iter::once("task").chain(args.iter().copied());
    match Cmd::try_parse_from(argv).unwrap().task {
        TaskCmd::Exec {
            interactive,
            tty,
            task,
            cmd,
            ..
        } => (interactive, tty, task, cmd),
        other => panic!("{other:?}"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn exec_parses_as_docker_exec_does() {
    assert_eq!(
        parse(&["exec", "-it", "web.1", "sh"]),
        (true, true, "web.1".into(), strings(&["sh"]))
    );
    assert_eq!(
        parse(&["exec", "-i", "web.1", "--", "sh", "-c", "cat"]),
        (true, false, "web.1".into(), strings(&["sh", "-c", "cat"]))
    );
    assert_eq!(
        parse(&["exec", "web.1", "--", "cat", "/etc/hosts"]),
        (
            false,
            false,
            "web.1".into(),
            strings(&["cat", "/etc/hosts"])
        )
    );
    assert_eq!(
        parse(&["exec", "web.1", "ls", "-la"]),
        (false, false, "web.1".into(), strings(&["ls", "-la"]))
    );
    assert!(Cmd::try_parse_from(["task", "exec", "-it", "web.1"]).is_err());
}

async fn client() -> crate::client::Control {
    let host = Fake::with_nodes().serve_tcp().await;
    // The fake serves plain gRPC, as an `--insecure-plaintext` cluster does.
    let cfg = crate::client::ClientConfig {
        plaintext: true,
        ..Default::default()
    };
    crate::client::connect_control(&host, &cfg).await.unwrap()
}

fn start(tty: bool, stdin: bool) -> pb::ExecStart {
    pb::ExecStart {
        task: "web.1".into(),
        cmd: strings(&["sh"]),
        tty,
        stdin,
        size: Some(pb::TermSize { rows: 24, cols: 80 }),
    }
}

#[tokio::test]
async fn a_session_streams_stdin_and_sizes_and_ends_with_the_remote_exit_code() {
    let mut c = client().await;
    let (stdin_tx, stdin) = mpsc::channel(4);
    let (resize_tx, resizes) = mpsc::channel(4);
    resize_tx.send((40, 120)).await.unwrap();
    stdin_tx.send(b"echo hi\n".to_vec()).await.unwrap();
    let typing = tokio::spawn(async move {
        // Later than the size, so that the session is still there to see it.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        stdin_tx.send(b"exit 3\n".to_vec()).await.unwrap();
        stdin_tx
    });
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let inputs = Inputs {
        stdin: Some(stdin),
        resizes,
    };
    let code = session(&mut c, start(true, true), inputs, &mut out, &mut err)
        .await
        .unwrap();
    assert_eq!(code, 3);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with("start web.1 sh tty=true stdin=true size=24x80\n"),
        "{out}"
    );
    assert!(out.contains("size 40x120\n"), "{out}");
    assert!(out.contains("echo hi\n"), "{out}");
    assert!(err.is_empty());
    drop(typing.await.unwrap());
}

#[tokio::test]
async fn the_end_of_stdin_is_sent_and_the_stream_stays_open_for_the_output() {
    let mut c = client().await;
    let (stdin_tx, stdin) = mpsc::channel(4);
    stdin_tx.send(b"abc".to_vec()).await.unwrap();
    drop(stdin_tx);
    let (_resize_tx, resizes) = mpsc::channel(1);
    let mut out = Vec::new();
    let inputs = Inputs {
        stdin: Some(stdin),
        resizes,
    };
    let code = session(
        &mut c,
        start(false, true),
        inputs,
        &mut out,
        &mut Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(code, 0, "the fake exits 0 at the end of stdin");
    assert!(String::from_utf8_lossy(&out).ends_with("abc"));
}
