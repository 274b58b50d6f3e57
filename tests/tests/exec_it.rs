//! `swarmctl task exec -it` end to end: the real swarmctl on a pseudo-terminal, talking to a
//! manager that does not lead, the leader relaying to the worker that runs the task.

use nix::pty::{openpty, Winsize};
use nix::sys::termios::{tcgetattr, LocalFlags};
use shoal_tests::{bin, kill_on_fail, wait_until, Cluster};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn an_interactive_terminal_through_a_follower_and_the_leader() {
    let c = Cluster::start(2, 1);
    let leader = c.leader();
    let follower = c.managers().into_iter().find(|&i| i != leader).unwrap();
    c.ctl_ok(
        leader,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "web",
            "--constraint",
            "node.role==worker",
            "sleep",
            "1000",
        ],
    );
    c.wait_running(leader, "web", 1);

    // swarmctl on a terminal of 30 rows and 100 columns, as its session's controlling terminal.
    let size = Winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).unwrap();
    let slave_path =
        std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
    let mut child = Command::new("setsid")
        .arg("--ctty")
        .arg(bin("swarmctl"))
        .args(["--host", &c.node(follower).host()])
        .args(["task", "exec", "-it", "web.1", "sh"])
        .env("SWARM_CERT_DIR", c.node(0).certs())
        .env_remove("SWARM_HOST")
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave.try_clone().unwrap()))
        .spawn()
        .unwrap();
    let seen = shoal_tests::pty::capture(&pty.master);
    let mut master = std::fs::File::from(pty.master);
    let mut type_in = |s: &str| master.write_all(s.as_bytes()).unwrap();
    let seen_has = |s: &str| seen.lock().unwrap().contains(s);
    let guard = kill_on_fail(child.id());

    // The remote shell's prompt: the session is up.
    wait_until("the remote shell's prompt", WAIT, || {
        let s = seen.lock().unwrap();
        s.contains("$ ") || s.contains("# ")
    });
    let local = tcgetattr(&pty.slave).unwrap();
    assert!(
        !local
            .local_flags
            .intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG),
        "swarmctl puts its terminal in raw mode"
    );

    // The size at start.
    type_in("stty size\r");
    wait_until("`stty size` to print 30 100", WAIT, || seen_has("30 100"));

    // A resize: the kernel signals swarmctl (SIGWINCH), which sends the new size.
    let ok = Command::new("stty")
        .arg("-F")
        .arg(&slave_path)
        .args(["rows", "40", "cols", "120"])
        .status()
        .unwrap();
    assert!(ok.success());
    wait_until("`stty size` to print 40 120", WAIT, || {
        type_in("stty size\r");
        std::thread::sleep(Duration::from_millis(200));
        seen_has("40 120")
    });

    // Ctrl-C interrupts the remote foreground job, not swarmctl.
    type_in("echo st''arted; sleep 100\r");
    wait_until("the remote job to start", WAIT, || seen_has("started"));
    type_in("\x03");
    type_in("echo af''ter\r");
    wait_until("the shell to be back after Ctrl-C", WAIT, || {
        seen_has("after")
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "swarmctl survives Ctrl-C"
    );

    // The remote exit code is swarmctl's.
    type_in("echo h''i; exit 3\r");
    let mut status = None;
    wait_until("swarmctl to exit", WAIT, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(3), "{}", seen.lock().unwrap());
    // What the shell printed before it exited reaches the pty's reader thread in its own time.
    wait_until("the last output to be read", WAIT, || seen_has("hi\r\n"));
    drop(guard);

    // And its terminal is as it found it.
    let after = tcgetattr(&pty.slave).unwrap();
    assert!(after
        .local_flags
        .contains(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG));
}

#[test]
fn the_remote_program_is_killed_when_swarmctl_goes_away() {
    let c = Cluster::start(1, 1);
    let m = c.leader();
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "web",
            "--constraint",
            "node.role==worker",
            "sleep",
            "1000",
        ],
    );
    c.wait_running(m, "web", 1);
    // -i without -t: pipes, and stdin from a pipe we hold.
    let mut child = Command::new(bin("swarmctl"))
        .args(["--host", &c.node(m).host()])
        .args(["task", "exec", "-i", "web.1", "sh"])
        .env("SWARM_CERT_DIR", c.node(0).certs())
        .env_remove("SWARM_HOST")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = kill_on_fail(child.id());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo $$; exec sleep 1234\n").unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while out.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    let pid: u32 = String::from_utf8(line).unwrap().trim().parse().unwrap();
    let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
    wait_until("the remote sleep to run", WAIT, || {
        std::fs::read_to_string(proc.join("cmdline")).is_ok_and(|c| c.contains("1234"))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    drop(guard);
    wait_until("the remote program to be killed", WAIT, || {
        std::fs::read_to_string(proc.join("cmdline")).map_or(true, |c| !c.contains("1234"))
    });
}
