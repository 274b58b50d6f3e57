//! The OCI executor against real `runc` and `crun` (each test runs on both): a busybox image
//! made from Debian's static busybox, a network namespace the test makes (and removes, even on
//! failure), every container deleted and unmounted at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::executor::{ExecIn, ExecOut, ExecSession, ExecSpec, Executor, Exit, WinSize};
use crate::network::{Interface, Sandbox};
use crate::test_util::root;
use shoal_proto::model::{new_id, ServiceSpec};

const RUNTIMES: [&str; 2] = ["runc", "crun"];

/// An image: a root with `/bin/busybox` and the applets the tests use.
#[derive(Debug)]
struct Busybox {
    root: PathBuf,
    defaults: ImageConfig,
}

impl Busybox {
    fn new(dir: &Path) -> Busybox {
        let root = dir.join("image");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "hostname", "cat", "sleep", "ip", "echo", "stty", "tr", "stat", "grep",
        ] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        Busybox {
            root,
            defaults: ImageConfig {
                cmd: vec!["sh".into()],
                env: vec!["PATH=/bin".into(), "FROM_IMAGE=yes".into()],
                ..Default::default()
            },
        }
    }
}

impl ImageSource for Busybox {
    fn lower_dir<'a>(
        &'a self,
        image: &'a str,
        _digest: &'a str,
        _progress: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<(PathBuf, ImageConfig), Error>> {
        let image = image.to_string();
        Box::pin(async move {
            if image != "busybox" {
                return Err(Error::Image {
                    image,
                    source: "no such image".into(),
                });
            }
            Ok((self.root.clone(), self.defaults.clone()))
        })
    }
}

/// A network namespace (`ip netns add`), deleted when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("shoal-oci-{}", &new_id()[..8]);
        let ip = |args: &[&str]| {
            let ok = std::process::Command::new("ip")
                .args(args)
                .status()
                .unwrap()
                .success();
            assert!(ok, "ip {args:?}");
        };
        ip(&["netns", "add", &name]);
        let ns = Netns(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        ip(&["-n", &name, "addr", "add", "10.77.0.5/32", "dev", "lo"]);
        ns
    }

    fn sandbox(&self) -> Sandbox {
        Sandbox::Netns {
            path: Path::new("/run/netns").join(&self.0),
            interfaces: vec![Interface {
                name: "lo".into(),
                network: "test".into(),
                addr: "10.77.0.5".parse().unwrap(),
                prefix: 32,
                gateway: None,
                mac: [2, 0x42, 10, 77, 0, 5],
            }],
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// Everything one test made with one runtime; removes the container, its mount and files when
/// dropped (a failed assertion included).
struct Env {
    ex: OciExecutor,
    images: Arc<Busybox>,
    dir: tempfile::TempDir,
    runtime: &'static str,
    ids: Vec<String>,
}

impl Env {
    fn new(runtime: &'static str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("shoal-oci-test-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let images = Arc::new(Busybox::new(dir.path()));
        let ex = Env::executor(dir.path(), runtime, images.clone());
        Env {
            ex,
            images,
            dir,
            runtime,
            ids: Vec::new(),
        }
    }

    fn executor(dir: &Path, runtime: &str, images: Arc<Busybox>) -> OciExecutor {
        let rt = runtime::Runtime::new(runtime, dir.join("runtime")).unwrap();
        OciExecutor::new(dir.join("tasks"), rt, images, "n1".into())
    }

    fn task(&mut self, args: &[&str]) -> Task {
        let t = Task {
            id: new_id().into(),
            service_name: "web".into(),
            slot: 1,
            spec: ServiceSpec {
                image: "busybox".into(),
                args: args.iter().map(|s| s.to_string()).collect(),
                env: vec!["FROM_SERVICE=yes".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        self.ids.push(t.id.to_string());
        t
    }

    /// Asserts that nothing of task `id` is left: container, mount, bundle, upper, work.
    fn assert_clean(&self, id: &str) {
        let rt = self.ex.runtime();
        assert!(!rt.exists(id), "{}: the container is left", self.runtime);
        assert!(
            !rt.list_blocking().unwrap().iter().any(|s| s.id == id),
            "{}: listed",
            self.runtime
        );
        let rootfs = self.ex.bundle_dir(id).join("rootfs");
        assert!(
            !overlay::is_mounted(&rootfs),
            "{}: still mounted",
            self.runtime
        );
        for d in ["bundle", "upper", "work"] {
            let p = self.ex.task_dir(id).join(d);
            assert!(!p.exists(), "{}: {} is left", self.runtime, p.display());
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let rt = self.ex.runtime();
        for id in &self.ids {
            if rt.exists(id) {
                let _ = rt.delete_blocking(id, true);
            }
            self.ex.cleanup_dirs(id);
        }
        let _ = &self.dir;
    }
}

fn text(lines: Vec<Vec<u8>>) -> String {
    lines
        .into_iter()
        .map(|l| String::from_utf8_lossy(&l).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[ignore = "needs root"]
#[tokio::test]
async fn a_container_runs_in_the_tasks_netns_with_its_etc_files_and_logs() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    let sandbox = ns.sandbox();
    for runtime in RUNTIMES {
        let mut env = Env::new(runtime);
        let t = env.task(&[
            "sh",
            "-c",
            "hostname; ip -o addr show lo; cat /etc/resolv.conf; \
             echo env $FROM_IMAGE $FROM_SERVICE $SHOAL_TASK_NAME; echo oops >&2; exit 3",
        ]);
        let mut ctl = env.ex.controller(&t.id);
        ctl.prepare(&t, Some(&sandbox)).await.unwrap();
        let pid = ctl.start().await.unwrap();
        assert!(pid > 1);
        let exit = tokio::time::timeout(Duration::from_secs(20), ctl.wait())
            .await
            .expect("the container ends")
            .unwrap();
        assert_eq!(exit, Exit::Code(3), "{runtime}: its exit code");
        // Waiting again (the worker may) gives the same answer at once.
        assert_eq!(ctl.wait().await.unwrap(), Exit::Code(3));
        let out = text(env.ex.read_log(&t.id, "stdout", 0).unwrap());
        assert!(
            out.starts_with(&format!("{}\n", t.id)),
            "{runtime}: hostname: {out}"
        );
        assert!(
            out.contains("10.77.0.5"),
            "{runtime}: the task's netns: {out}"
        );
        assert!(out.contains("nameserver 127.0.0.11"), "{runtime}: {out}");
        assert!(
            out.contains(&format!("env yes yes {}", t.name())),
            "{runtime}: image and service env: {out}"
        );
        let err = text(env.ex.read_log(&t.id, "stderr", 0).unwrap());
        assert!(err.contains("oops"), "{runtime}: stderr: {err}");
        ctl.remove().await;
        env.assert_clean(&t.id);
        assert!(
            env.ex.task_dir(&t.id).join("stdout.log").exists(),
            "{runtime}: logs stay for `service logs`"
        );
    }
}

/// The memory limit in the cgroup of `pid` (v1 `memory.limit_in_bytes`, v2 `memory.max`), and
/// that cgroup's path.
fn memory_limit_of(pid: u32) -> (String, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let m = crate::executor::cgroup::Membership::parse(&text);
    if let Some((_, path)) = m.v1.iter().find(|(c, _)| c.iter().any(|c| c == "memory")) {
        let f = Path::new("/sys/fs/cgroup/memory")
            .join(path.trim_start_matches('/'))
            .join("memory.limit_in_bytes");
        let v = std::fs::read_to_string(&f).unwrap();
        return (path.clone(), v.trim().parse().unwrap());
    }
    let path = m.v2.unwrap();
    let f = Path::new("/sys/fs/cgroup")
        .join(path.trim_start_matches('/'))
        .join("memory.max");
    (
        path,
        std::fs::read_to_string(f).unwrap().trim().parse().unwrap(),
    )
}

#[ignore = "needs root"]
#[tokio::test]
async fn exec_limits_shutdown_and_adoption_after_a_restart() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    let sandbox = ns.sandbox();
    let own = {
        let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let m = crate::executor::cgroup::Membership::parse(&text);
        m.v1.iter()
            .find(|(c, _)| c.iter().any(|c| c == "memory"))
            .map(|(_, p)| p.clone())
            .or(m.v2)
            .unwrap()
    };
    for runtime in RUNTIMES {
        let mut env = Env::new(runtime);
        let mut t = env.task(&[
            "sh",
            "-c",
            "trap 'echo bye; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
        ]);
        t.spec.limit_memory_bytes = 64 << 20;
        let mut ctl = env.ex.controller(&t.id);
        ctl.prepare(&t, Some(&sandbox)).await.unwrap();
        let pid = ctl.start().await.unwrap();

        // Its memory limit, in a cgroup beneath this process's own.
        let (path, limit) = memory_limit_of(pid);
        assert_eq!(limit, 64 << 20, "{runtime}: limit in {path}");
        assert!(
            path.starts_with(own.trim_end_matches('/')) && path.contains(t.id.as_str()),
            "{runtime}: {path} is beneath {own}"
        );

        // exec: output, exit code, the container's env and cwd.
        let cmd = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
        let out = ctl
            .exec(
                &cmd("echo out $FROM_SERVICE; pwd; hostname; echo err >&2; exit 4"),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("out yes\n/\n{}\n", t.id),
            "{runtime}"
        );
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.exit_code, 4);
        let e = ctl
            .exec(&cmd("sleep 100"), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{runtime}: {e}");

        // A restart: the controller and the executor are gone, the container runs on.
        drop(ctl);
        let ex = Env::executor(env.dir.path(), runtime, env.images.clone());
        assert_eq!(ex.adoptable(), vec![t.id.clone()], "{runtime}");
        assert_eq!(ex.controller("other").adopt().await.unwrap(), None);
        let mut ctl = ex.controller(&t.id);
        assert_eq!(ctl.adopt().await.unwrap(), Some(pid), "{runtime}");
        let waiting = tokio::time::timeout(Duration::from_millis(300), ctl.wait()).await;
        assert!(waiting.is_err(), "{runtime}: it still runs");

        // Stop with grace: the trap runs and its code is reported (the init is still our
        // child here: this process is the subreaper).
        let code = ctl.shutdown(Duration::from_secs(10)).await.unwrap();
        assert_eq!(code, Some(7), "{runtime}");
        let out = text(ex.read_log(&t.id, "stdout", 0).unwrap());
        assert!(
            out.contains("ready") && out.contains("bye"),
            "{runtime}: {out}"
        );
        ctl.remove().await;
        env.assert_clean(&t.id);
        assert!(ex.adoptable().is_empty());
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn terminate_kills_and_an_unknown_image_fails_prepare_cleanly() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    let sandbox = ns.sandbox();
    for runtime in RUNTIMES {
        let mut env = Env::new(runtime);
        // SIGTERM is ignored: only terminate's SIGKILL ends it.
        let t = env.task(&["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]);
        let mut ctl = env.ex.controller(&t.id);
        ctl.prepare(&t, Some(&sandbox)).await.unwrap();
        ctl.start().await.unwrap();
        let code = ctl.shutdown(Duration::from_millis(300)).await.unwrap();
        assert_eq!(code, Some(137), "{runtime}: killed after the grace");
        ctl.remove().await;
        env.assert_clean(&t.id);

        let mut bad = env.task(&[]);
        bad.spec.image = "nope".into();
        let mut ctl = env.ex.controller(&bad.id);
        let e = ctl.prepare(&bad, Some(&sandbox)).await.unwrap_err();
        assert!(e.to_string().contains("nope"), "{runtime}: {e}");
        ctl.remove().await;
        env.assert_clean(&bad.id);

        // A container left stopped by a crash is swept.
        let t = env.task(&["sh", "-c", "exit 0"]);
        let mut ctl = env.ex.controller(&t.id);
        ctl.prepare(&t, Some(&sandbox)).await.unwrap();
        ctl.start().await.unwrap();
        assert_eq!(ctl.wait().await.unwrap(), Exit::Code(0));
        drop(ctl);
        let ex = env.ex.clone().with_timings(Timings {
            sweep_min_age: Duration::ZERO,
            ..Timings::default()
        });
        ex.sweep(&Default::default());
        env.assert_clean(&t.id);
    }
}

/// What an interactive session says until `want` shows (within 20 s), sending `again` every
/// 200 ms meanwhile when given (a resize reaches the container's terminal asynchronously).
async fn until(
    s: &mut ExecSession,
    seen: &mut String,
    want: &str,
    again: Option<&str>,
) -> Option<i32> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains(want) {
        if let Some(a) = again {
            s.input.send(ExecIn::Data(a.into())).await.unwrap();
        }
        let tick = tokio::time::Instant::now() + Duration::from_millis(200);
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {want:?} in {seen:?}"
            );
            match tokio::time::timeout_at(tick.min(deadline), s.output.recv()).await {
                Ok(Some(ExecOut::Stdout(b) | ExecOut::Stderr(b))) => {
                    seen.push_str(&String::from_utf8_lossy(&b))
                }
                Ok(Some(ExecOut::Exit(c))) => return Some(c),
                Ok(None) => panic!("no exit code; {seen:?}"),
                Err(_) => break,
            }
            if seen.contains(want) {
                break;
            }
        }
    }
    None
}

#[ignore = "needs root"]
#[tokio::test]
async fn an_interactive_exec_on_a_terminal_and_on_pipes() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    let sandbox = ns.sandbox();
    for runtime in RUNTIMES {
        let mut env = Env::new(runtime);
        let t = env.task(&["sleep", "1000"]);
        let mut ctl = env.ex.controller(&t.id);
        ctl.prepare(&t, Some(&sandbox)).await.unwrap();
        ctl.start().await.unwrap();
        let spec = |cmd: &[&str], tty| ExecSpec {
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty,
            stdin: true,
            size: Some(WinSize {
                rows: 30,
                cols: 100,
            }),
        };

        // A terminal: its size, a resize, the container's env, the exit code.
        let mut s = ctl.exec_interactive(&spec(&["sh"], true)).await.unwrap();
        let mut seen = String::new();
        // The runtime sizes the container's terminal once the program started: a command
        // typed ahead may still see 0x0, so ask again until it shows.
        until(&mut s, &mut seen, "30 100", Some("stty size\n")).await;
        s.input
            .send(ExecIn::Resize(WinSize {
                rows: 40,
                cols: 120,
            }))
            .await
            .unwrap();
        until(&mut s, &mut seen, "40 120", Some("stty size\n")).await;
        let line = b"echo h''i $FROM_SERVICE; exit 3\n".to_vec();
        s.input.send(ExecIn::Data(line)).await.unwrap();
        let code = until(&mut s, &mut seen, "\u{0}never", None).await;
        assert_eq!(code, Some(3), "{runtime}: {seen:?}");
        assert!(seen.contains("hi yes"), "{runtime}: {seen:?}");

        // Pipes: stdin to its end.
        let mut s = ctl.exec_interactive(&spec(&["cat"], false)).await.unwrap();
        s.input.send(ExecIn::Data(b"abc".to_vec())).await.unwrap();
        s.input.send(ExecIn::Close).await.unwrap();
        let mut seen = String::new();
        let code = until(&mut s, &mut seen, "\u{0}never", None).await;
        assert_eq!((seen.as_str(), code), ("abc", Some(0)), "{runtime}");

        // The caller leaving kills the program (by the runtime's pid file: it is not our
        // child), on a terminal and on pipes.
        for tty in [true, false] {
            let s = ctl
                .exec_interactive(&spec(&["sleep", "1000"], tty))
                .await
                .unwrap();
            let pid = exec_pid(&env.ex.bundle_dir(&t.id)).await;
            let mut p = wait::Pidfd::open(pid).unwrap();
            drop(s);
            tokio::time::timeout(Duration::from_secs(20), p.wait())
                .await
                .unwrap_or_else(|_| panic!("{runtime}: tty {tty}: exec'd {pid} still runs"))
                .unwrap();
        }

        // The container stops: no zombie of its PID namespace is left unreaped (its init,
        // exiting, would wait for it).
        tokio::time::timeout(Duration::from_secs(20), ctl.terminate())
            .await
            .unwrap_or_else(|_| panic!("{runtime}: the container does not stop"))
            .unwrap();
        ctl.remove().await;
        env.assert_clean(&t.id);
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn an_orphan_of_the_containers_namespace_does_not_keep_it_from_ending() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    let sandbox = ns.sandbox();
    for runtime in RUNTIMES {
        let mut env = Env::new(runtime);
        let t = env.task(&["sh", "-c", "while true; do sleep 0.1; done"]);
        let mut ctl = env.ex.controller(&t.id);
        ctl.prepare(&t, Some(&sandbox)).await.unwrap();
        ctl.start().await.unwrap();
        let init = std::fs::read_to_string(
            env.dir
                .path()
                .join("tasks")
                .join(&*t.id)
                .join("bundle/init.pid"),
        )
        .unwrap();
        // A process of the container's PID namespace whose parent is outside it (as `runc exec`
        // or nsenter is): killing that parent makes it an orphan of ours, the subreaper.
        let mut parent = std::process::Command::new("nsenter")
            .args(["-t", init.trim(), "-p", "--", "sleep", "1000"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let child = loop {
            let kids = std::fs::read_to_string(format!(
                "/proc/{}/task/{}/children",
                parent.id(),
                parent.id()
            ))
            .unwrap_or_default();
            if let Some(p) = kids.split_whitespace().next() {
                break p.to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{runtime}: nsenter forked nothing"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        parent.kill().unwrap();
        parent.wait().unwrap();
        // The orphan dies with the container, and its zombie must be reaped for the container's
        // init to finish exiting.
        let code = tokio::time::timeout(
            Duration::from_secs(30),
            ctl.shutdown(Duration::from_millis(300)),
        )
        .await
        .unwrap_or_else(|_| panic!("{runtime}: the container never ended (orphan {child})"))
        .unwrap();
        assert!(code.is_some(), "{runtime}: {code:?}");
        ctl.remove().await;
        env.assert_clean(&t.id);
    }
}

/// The pid the runtime wrote for the one exec running in `bundle` (`exec-*.pid`), once written
/// (within 20 s).
async fn exec_pid(bundle: &Path) -> u32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pids: Vec<u32> = std::fs::read_dir(bundle)
            .unwrap()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.starts_with("exec-") && n.ends_with(".pid")
            })
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|t| t.trim().parse().ok())
            .collect();
        match pids[..] {
            [pid] => return pid,
            [] => {}
            _ => panic!("several execs: {pids:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no exec pid file in {}",
            bundle.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most 20 s) until task `id`'s stdout log holds `want`; returns the log.
async fn log_until(ex: &OciExecutor, id: &str, want: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = text(ex.read_log(id, "stdout", 0).unwrap());
        if out.contains(want) {
            return out;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {want:?} in the log: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn init_is_pid_1_and_forwards_the_stop_signal() {
    if !root() {
        return;
    }
    let tini = init_program::find().expect("no init program: install the tini package");
    let ns = Netns::new();
    let sandbox = ns.sandbox();
    for runtime in RUNTIMES {
        let mut env = Env::new(runtime);
        env.ex = env.ex.clone().with_init(tini.clone());
        // `sleep` has no SIGTERM handler: as PID 1 it would ignore the stop signal and only
        // the SIGKILL after the grace would end it (137); under the init it dies of it (143).
        let mut t = env.task(&[
            "sh",
            "-c",
            "echo pid $$ ppid $PPID; echo init $(tr '\\0' ' ' </proc/1/cmdline); exec sleep 1000",
        ]);
        t.spec.init = true;
        let mut ctl = env.ex.controller(&t.id);
        ctl.prepare(&t, Some(&sandbox)).await.unwrap();
        ctl.start().await.unwrap();
        let out = log_until(&env.ex, &t.id, "init ").await;
        assert!(
            out.contains("init /sbin/docker-init -- sh -c"),
            "{runtime}: PID 1: {out}"
        );
        assert!(
            out.contains(" ppid 1\n") && !out.contains("pid 1 "),
            "{runtime}: the program is the init's child: {out}"
        );
        let code = ctl.shutdown(Duration::from_secs(20)).await.unwrap();
        assert_eq!(code, Some(143), "{runtime}: SIGTERM reached sleep");
        ctl.remove().await;
        env.assert_clean(&t.id);

        // A node without an init program: a task error, nothing left.
        let bare = Env::executor(env.dir.path(), runtime, env.images.clone());
        let mut t = env.task(&["sleep", "1"]);
        t.spec.init = true;
        let mut ctl = bare.controller(&t.id);
        let e = ctl.prepare(&t, Some(&sandbox)).await.unwrap_err();
        assert!(matches!(e, Error::NoInit), "{runtime}: {e}");
        assert!(e.to_string().contains("tini"), "{e}");
        ctl.remove().await;
        env.assert_clean(&t.id);
    }
}

/// Where [`console_helper`] finds the log it is to write (it is run as a test).
const CONSOLE_LOG_ENV: &str = "SHOAL_TEST_CONSOLE_LOG";

/// `swarmd __console` played by this test binary: a script in `dir` that runs
/// [`console_helper`] with the helper's stdin and stderr, its answer on the script's stdout
/// moved to fd 3 (the test harness prints on stdout).
fn console_program(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe().unwrap();
    let script = dir.join("console-helper");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = {arg} ] || exit 2\n\
             {CONSOLE_LOG_ENV}=\"$2\" exec {me} --exact \
             executor::oci::root_tests::console_helper --ignored --test-threads=1 3>&1 1>/dev/null\n",
            arg = console::ARG,
            me = me.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Not a test: the helper process of [`console_program`], which runs this binary with this
/// test alone; without [`CONSOLE_LOG_ENV`] (a run of every ignored test) it does nothing.
#[ignore = "the --tty tests' helper process"]
#[test]
fn console_helper() {
    let Ok(log) = std::env::var(CONSOLE_LOG_ENV) else {
        return;
    };
    let ack = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/fd/3")
        .unwrap();
    std::process::exit(console::serve(Path::new(&log), ack));
}

#[ignore = "needs root"]
#[tokio::test]
async fn a_tty_container_logs_its_terminal_across_a_restart() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    let sandbox = ns.sandbox();
    for runtime in RUNTIMES {
        let mut env = Env::new(runtime);
        let helper = console_program(env.dir.path());
        env.ex = env.ex.clone().with_console_program(helper.clone());
        let mut t = env.task(&[
            "sh",
            "-c",
            "[ -t 1 ] && echo tty; [ -t 0 ] && echo stdin too; echo term $TERM; stty size; \
             trap 'echo bye; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
        ]);
        t.spec.tty = true;
        let mut ctl = env.ex.controller(&t.id);
        ctl.prepare(&t, Some(&sandbox)).await.unwrap();
        let pid = ctl.start().await.unwrap();
        let out = log_until(&env.ex, &t.id, "ready").await;
        for want in ["tty\n", "stdin too\n", "term xterm\n", "24 80\n"] {
            assert!(out.contains(want), "{runtime}: {want:?} in {out:?}");
        }
        assert!(!out.contains('\r'), "{runtime}: {out:?}");
        let bundle = env.ex.bundle_dir(&t.id);
        let console_pid: u32 = std::fs::read_to_string(bundle.join("console.pid"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();

        // A restart: the agent is gone, the helper still holds the terminal and is found again.
        drop(ctl);
        let ex =
            Env::executor(env.dir.path(), runtime, env.images.clone()).with_console_program(helper);
        let mut ctl = ex.controller(&t.id);
        assert_eq!(ctl.adopt().await.unwrap(), Some(pid), "{runtime}");
        let code = ctl.shutdown(Duration::from_secs(20)).await.unwrap();
        assert_eq!(code, Some(7), "{runtime}");
        ctl.wait().await.unwrap();
        let out = text(ex.read_log(&t.id, "stdout", 0).unwrap());
        assert!(
            out.ends_with("bye"),
            "{runtime}: copied after the restart: {out:?}"
        );
        ctl.remove().await;
        env.assert_clean(&t.id);
        let gone = wait::Pidfd::open(console_pid).map(|p| p.pid());
        assert!(
            gone.as_ref()
                .is_err_and(|e| e.raw_os_error() == Some(libc::ESRCH)),
            "{runtime}: the helper {console_pid} is gone: {gone:?}"
        );
        let err = text(ex.read_log(&t.id, "stderr", 0).unwrap());
        assert!(err.is_empty(), "{runtime}: the helper said {err:?}");
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn a_tty_container_whose_console_helper_fails_leaves_no_zombie() {
    if !root() {
        return;
    }
    let ns = Netns::new();
    let sandbox = ns.sandbox();
    for runtime in RUNTIMES {
        let mut env = Env::new(runtime);
        // A helper that holds the console socket (runc's `create` succeeds) but never takes
        // the terminal nor says it is ready, and exits.
        let helper = env.dir.path().join("mute-console");
        std::fs::write(&helper, "#!/bin/sh\nsleep 1\n").unwrap();
        std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        env.ex = env.ex.clone().with_console_program(helper);
        let mut t = env.task(&["sh", "-c", "sleep 1000"]);
        t.spec.tty = true;
        let mut ctl = env.ex.controller(&t.id);
        ctl.prepare(&t, Some(&sandbox)).await.unwrap();
        let pid_file = env.ex.bundle_dir(&t.id).join("init.pid");
        let e = ctl.start().await.unwrap_err();
        eprintln!("{runtime}: {e}");
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
            let state = stat
                .as_deref()
                .ok()
                .and_then(|s| s.rsplit_once(')'))
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            assert_ne!(
                state,
                Some('Z'),
                "{runtime}: the init {pid} is left a zombie"
            );
        }
        ctl.remove().await;
        env.assert_clean(&t.id);
    }
}

/// A task's secret and config: in the container, read-only, with their owner and mode, on an
/// in-memory file system; on the node, nowhere once the container exists (the tmpfs the agent
/// wrote them to is unmounted), and nothing left after the task.
#[ignore = "needs root"]
#[tokio::test]
async fn secrets_and_configs_live_in_the_container_only() {
    use crate::executor::files::{DataBook, DataKind};
    use shoal_proto::model::{ConfigReference, SecretReference};
    if !root() {
        return;
    }
    const MARKER: &str = "pw-marker-7f3c";
    let ns = Netns::new();
    let sandbox = ns.sandbox();
    for runtime in RUNTIMES {
        let mut env = Env::new(runtime);
        let book = DataBook::default();
        book.replace([
            (DataKind::Secret, "s1".into(), MARKER.as_bytes().to_vec()),
            (DataKind::Config, "c1".into(), b"listen 80\n".to_vec()),
        ]);
        env.ex = env.ex.clone().with_data(book);
        let mut t = env.task(&[
            "sh",
            "-c",
            "stat -c 'mode %a %u %g %n' /run/secrets/db_pass /etc/app.conf; \
             tr a-z A-Z < /run/secrets/db_pass; echo; cat /etc/app.conf; \
             grep -E ' /run/secrets/db_pass | /etc/app.conf ' /proc/self/mountinfo; \
             (echo x > /run/secrets/db_pass) 2>/dev/null && echo WROTE; echo done; sleep 1000",
        ]);
        t.spec.secrets = vec![SecretReference {
            id: "s1".into(),
            name: "db_pass".into(),
            target: "db_pass".into(),
            uid: 70,
            gid: 71,
            mode: 0o400,
        }];
        t.spec.configs = vec![ConfigReference {
            id: "c1".into(),
            name: "app_conf".into(),
            target: "/etc/app.conf".into(),
            uid: 0,
            gid: 0,
            mode: 0o444,
        }];
        let mut ctl = env.ex.controller(&t.id);
        ctl.prepare(&t, Some(&sandbox)).await.unwrap();
        ctl.start().await.unwrap();
        let out = log_until(&env.ex, &t.id, "done").await;
        assert!(
            out.contains("mode 400 70 71 /run/secrets/db_pass"),
            "{runtime}: {out}"
        );
        assert!(
            out.contains("mode 444 0 0 /etc/app.conf"),
            "{runtime}: {out}"
        );
        assert!(out.contains(&MARKER.to_uppercase()), "{runtime}: {out}");
        assert!(out.contains("listen 80"), "{runtime}: {out}");
        let mounts: Vec<&str> = out.lines().filter(|l| l.contains(" - tmpfs ")).collect();
        assert_eq!(mounts.len(), 2, "{runtime}: on a tmpfs: {out}");
        assert!(
            mounts
                .iter()
                .all(|l| l.split(' ').nth(5).unwrap().starts_with("ro")),
            "{runtime}: read-only: {out}"
        );
        assert!(!out.contains("WROTE"), "{runtime}: {out}");
        // The node holds nothing: no tmpfs, no file with the data under the task's directory.
        let files = env.ex.files_dir(&t.id);
        assert!(!overlay::is_mounted(&files), "{runtime}: still on the node");
        assert!(!files.exists(), "{runtime}: {} is left", files.display());
        let found = std::process::Command::new("grep")
            .args(["-r", "-l", MARKER])
            .arg(env.ex.task_dir(&t.id))
            .output()
            .unwrap();
        assert!(
            found.stdout.is_empty(),
            "{runtime}: the secret is on the node's disk: {}",
            String::from_utf8_lossy(&found.stdout)
        );
        ctl.shutdown(Duration::from_millis(300)).await.unwrap();
        ctl.remove().await;
        env.assert_clean(&t.id);
    }
}
