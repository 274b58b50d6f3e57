//! The driver on the node itself (no namespaces, so no root): a real pty or real pipes.

use super::*;
use crate::executor::exec;
use std::time::Instant;

fn spec(cmd: &[&str], tty: bool, stdin: bool) -> ExecSpec {
    ExecSpec {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        size: Some(WinSize {
            rows: 30,
            cols: 100,
        }),
    }
}

/// Everything the program says until its exit code (stdout and stderr apart), within 10 s.
async fn collect(s: &mut ExecSession) -> (String, String, i32) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, s.output.recv()).await {
            Ok(Some(ExecOut::Stdout(b))) => out.extend(b),
            Ok(Some(ExecOut::Stderr(b))) => err.extend(b),
            Ok(Some(ExecOut::Exit(c))) => {
                let text = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
                return (text(out), text(err), c);
            }
            Ok(None) => panic!("output ended without an exit code"),
            Err(_) => panic!(
                "no exit code within 10 s; so far: {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

async fn send(s: &ExecSession, i: ExecIn) {
    s.input.send(i).await.unwrap();
}

fn data(s: &str) -> ExecIn {
    ExecIn::Data(s.as_bytes().to_vec())
}

#[tokio::test]
async fn a_shell_on_a_terminal_echoes_and_its_exit_code_comes_back() {
    let mut s = exec::interactive(None, &spec(&["sh"], true, true)).unwrap();
    send(&s, data("echo h''i; exit 3\n")).await;
    let (out, err, code) = collect(&mut s).await;
    assert!(out.contains("hi\r\n"), "a terminal's output: {out:?}");
    assert!(err.is_empty(), "one stream on a terminal");
    assert_eq!(code, 3);
}

#[tokio::test]
async fn the_terminal_has_the_size_asked_and_follows_resizes() {
    let mut s = exec::interactive(None, &spec(&["sh"], true, true)).unwrap();
    send(&s, data("stty size\n")).await;
    // Typed ahead, the second line would be read after the resize: wait for the first answer.
    let mut seen = String::new();
    while !seen.contains("30 100") {
        match tokio::time::timeout(Duration::from_secs(10), s.output.recv()).await {
            Ok(Some(ExecOut::Stdout(b))) => seen.push_str(&String::from_utf8_lossy(&b)),
            other => panic!("{other:?} after {seen:?}"),
        }
    }
    send(
        &s,
        ExecIn::Resize(WinSize {
            rows: 40,
            cols: 120,
        }),
    )
    .await;
    send(&s, data("stty size; exit 0\n")).await;
    let (out, _, code) = collect(&mut s).await;
    assert!(out.contains("40 120"), "{out:?}");
    assert_eq!(code, 0);
}

#[tokio::test]
async fn ctrl_c_on_the_terminal_interrupts_the_foreground_job_not_the_shell() {
    let mut s = exec::interactive(None, &spec(&["sh"], true, true)).unwrap();
    // The job says when it runs (in the foreground: from then on the byte is its SIGINT, before
    // or after its `exec`); the terminal's echo of the typed line does not contain the word.
    send(&s, data("sh -c 'echo slee\"\"ping; exec sleep 100'\n")).await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("sleeping") {
        match tokio::time::timeout_at(deadline, s.output.recv()).await {
            Ok(Some(ExecOut::Stdout(b))) => seen.push_str(&String::from_utf8_lossy(&b)),
            Ok(Some(other)) => panic!("before the job ran: {other:?}"),
            Ok(None) | Err(_) => panic!("the job never ran; so far: {seen:?}"),
        }
    }
    send(&s, data("\x03")).await;
    send(&s, data("echo af''ter; exit 7\n")).await;
    let started = Instant::now();
    let (out, _, code) = collect(&mut s).await;
    assert!(out.contains("after"), "{out:?}");
    assert_eq!(code, 7);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn pipes_without_a_terminal_keep_stdout_and_stderr_apart() {
    let mut s = exec::interactive(None, &spec(&["cat"], false, true)).unwrap();
    send(&s, data("abc")).await;
    send(&s, ExecIn::Close).await;
    let (out, _, code) = collect(&mut s).await;
    assert_eq!((out.as_str(), code), ("abc", 0));

    let cmd = ["sh", "-c", "echo out; echo err >&2; exit 5"];
    let mut s = exec::interactive(None, &spec(&cmd, false, false)).unwrap();
    let (out, err, code) = collect(&mut s).await;
    assert_eq!((out.as_str(), err.as_str(), code), ("out\n", "err\n", 5));
}

#[tokio::test]
async fn a_signal_is_128_plus_its_number() {
    let cmd = ["sh", "-c", "kill -TERM $$"];
    let mut s = exec::interactive(None, &spec(&cmd, false, false)).unwrap();
    assert_eq!(collect(&mut s).await.2, 128 + 15);
}

#[tokio::test]
async fn the_program_is_killed_when_its_caller_goes_away() {
    for tty in [false, true] {
        let cmd = ["sh", "-c", "echo $$; exec sleep 1000"];
        let mut s = exec::interactive(None, &spec(&cmd, tty, true)).unwrap();
        let pid = match s.output.recv().await {
            Some(ExecOut::Stdout(b)) => String::from_utf8_lossy(&b).trim().to_string(),
            other => panic!("{other:?}"),
        };
        let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
        assert!(proc.exists());
        drop(s.input);
        let deadline = Instant::now() + Duration::from_secs(10);
        // A zombie until its parent reaps it, then gone.
        while proc.exists() && !is_zombie(&proc) {
            assert!(
                Instant::now() < deadline,
                "pid {pid} still runs (tty: {tty})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // No exit code after the caller left: nobody reads it.
        while let Some(o) = s.output.recv().await {
            assert!(!matches!(o, ExecOut::Exit(_)), "{o:?}");
        }
    }
}

fn is_zombie(proc: &std::path::Path) -> bool {
    std::fs::read_to_string(proc.join("stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}
