//! Autolock on a `swarmctl lab` of 3 managers (root), driven through `swarmctl` as a user:
//!
//! * `swarm update --autolock=true` prints the unlock key and every manager's raft key file
//!   goes to `kek.location: unlock_key`;
//! * a restarted manager2 stays locked and says so, while the other two keep quorum and take a
//!   write; a wrong key is refused and changes nothing on disk; the right key unlocks it in the
//!   same process, and it is Reachable again with the write made meanwhile;
//! * `unlock-key --rotate`: after the next restart the old key is refused, the new one unlocks;
//! * `--autolock=false`: a restart comes up unlocked.

use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::Lab;
use shoal_tests::{wait_for, NodeView, Output};
use std::path::PathBuf;
use std::time::Duration;

const LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used";

/// The unlock key in `swarm update --autolock=true`'s or `swarm unlock-key`'s text.
fn key_in(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("SWMKEY-1-"))
        .unwrap_or_else(|| panic!("no key in {text}"))
        .to_string()
}

/// `keys.json` of every manager.
fn key_files(lab: &Lab) -> Vec<(String, PathBuf)> {
    let file = lab.file();
    file["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().expect("name").to_string(),
                PathBuf::from(n["state_dir"].as_str().expect("state_dir")).join("raft/keys.json"),
            )
        })
        .collect()
}

fn location(path: &PathBuf) -> String {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["kek"]["location"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn all_key_files_at(lab: &Lab, want: &str) {
    for (node, path) in key_files(lab) {
        wait_for(
            &format!("{node}'s keys.json at kek.location {want}"),
            Duration::from_secs(30),
            || match location(&path) {
                l if l == want => Ok(()),
                l => Err(format!("{node}: {l:?}")),
            },
        );
    }
}

/// `swarmctl swarm unlock` in `node`, the key on its standard input (never a flag).
fn unlock(lab: &Lab, node: &str, key: &str) -> Output {
    let script = format!("printf '%s\\n' '{key}' | swarmctl swarm unlock");
    lab.on_node(node, &["sh", "-c", &script])
}

/// `node ls` as `from` sees it.
fn nodes(lab: &Lab, from: &str) -> Result<Vec<NodeView>, String> {
    let out = lab.on_node(from, &["swarmctl", "node", "ls", "--format", "json"]);
    if !out.success() {
        return Err(out.to_string());
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
    Ok(NodeView::list(&v))
}

/// `node` is Ready and Reachable (or Leader) as manager1 sees it, and as `node` itself sees it
/// (so it answers again: unlocked, with a raft store).
fn reachable_again(lab: &Lab, node: &str) {
    for from in ["manager1", node] {
        wait_for(
            &format!("{node} Ready and Reachable as {from} sees it"),
            Duration::from_secs(60),
            || {
                let n = nodes(lab, from)?
                    .into_iter()
                    .find(|n| n.hostname == node)
                    .ok_or("not listed")?;
                if n.state == "ready" && matches!(n.manager_status.as_str(), "Reachable" | "Leader")
                {
                    Ok(())
                } else {
                    Err(format!("{n:?}"))
                }
            },
        );
    }
}

/// `lab restart manager2`, which must report it locked.
fn restart_locked(lab: &Lab) {
    let out = lab.lab(&["restart", "manager2"], &[]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("LOCKED"), "{out}");
    let out = lab.on_node("manager2", &["swarmctl", "node", "ls"]);
    assert!(!out.success(), "a locked manager answered: {out}");
    assert!(out.stderr.contains(LOCKED), "{out}");
}

#[test]
#[ignore = "needs root"]
fn autolock_locks_restarted_managers_until_unlocked() {
    if !root_or_skip() {
        return;
    }
    let mut lab = Lab::new();
    // A subnet given to this run (several labs on one machine), else the helper's own.
    if let Ok(subnet) = std::env::var("SHOAL_LAB_SUBNET") {
        lab.subnet = subnet;
    }
    let t0 = std::time::Instant::now();
    let step = |what: &str| eprintln!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f64());
    let up = lab.lab_ok(
        &["up"],
        &["--managers", "3", "--workers", "0", "--subnet", &lab.subnet],
    );
    step(&format!("lab up:\n{up}"));
    let out = lab.swarmctl(&["swarm", "unlock-key"]);
    assert!(!out.success());
    assert!(out.stderr.contains("no unlock key is set"), "{out}");

    // On: the key is printed once, every manager re-wraps its data key.
    let out = lab.swarmctl_ok(&["swarm", "update", "--autolock=true"]);
    assert!(out.starts_with("Swarm updated.\n"), "{out}");
    assert!(out.contains("Please remember to store this key"), "{out}");
    let key = key_in(&out);
    assert_eq!(lab.swarmctl_ok(&["swarm", "unlock-key", "-q"]).trim(), key);
    let inspect = lab.swarmctl_ok(&["swarm", "inspect", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("json");
    assert_eq!(v["autolock"], true, "{inspect}");
    assert!(!inspect.contains(&key));
    all_key_files_at(&lab, "unlock_key");
    step("autolock on: every keys.json at kek.location unlock_key");

    // Locked after a restart; the other two keep quorum and take a write.
    restart_locked(&lab);
    step("manager2 restarted: locked");
    lab.swarmctl_ok(&[
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "during_lock",
        "--replicas",
        "1",
        "whoami",
    ]);

    // A wrong key: refused, nothing changed on disk, still locked.
    let m2 = key_files(&lab)
        .into_iter()
        .find(|(n, _)| n == "manager2")
        .expect("manager2")
        .1;
    let before = std::fs::read(&m2).unwrap();
    let wrong = format!("SWMKEY-1-{}", "A".repeat(43));
    let out = unlock(&lab, "manager2", &wrong);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("invalid unlock key"), "{out}");
    assert!(!out.stderr.contains(&wrong), "{out}");
    assert_eq!(
        std::fs::read(&m2).unwrap(),
        before,
        "a wrong key changed keys.json"
    );
    let out = lab.on_node("manager2", &["swarmctl", "service", "ls"]);
    assert!(out.stderr.contains(LOCKED), "{out}");

    // The right key: unlocked in place, Reachable, with the write made while it was locked.
    let out = unlock(&lab, "manager2", &key);
    assert!(out.success(), "{out}");
    reachable_again(&lab, "manager2");
    step("right key: manager2 unlocked, Reachable");
    wait_for("manager2 has the write", Duration::from_secs(30), || {
        let out = lab.on_node("manager2", &["swarmctl", "service", "ls"]);
        if out.success() && out.stdout.contains("during_lock") {
            Ok(())
        } else {
            Err(out.to_string())
        }
    });
    let out = unlock(&lab, "manager2", &key);
    assert!(out.stderr.contains("swarm is not locked"), "{out}");

    // Rotation: every key file re-wrapped; the old key no longer unlocks.
    let files = key_files(&lab);
    let olds: Vec<Vec<u8>> = files
        .iter()
        .map(|(_, p)| std::fs::read(p).unwrap())
        .collect();
    let out = lab.swarmctl_ok(&["swarm", "unlock-key", "--rotate"]);
    assert!(
        out.starts_with("Successfully rotated manager unlock key."),
        "{out}"
    );
    let new_key = key_in(&out);
    assert_ne!(new_key, key);
    for ((node, path), old) in files.iter().zip(&olds) {
        wait_for(
            &format!("{node}'s keys.json re-wrapped"),
            Duration::from_secs(30),
            || match std::fs::read(path) {
                Ok(now) if &now != old => Ok(()),
                _ => Err("unchanged".to_string()),
            },
        );
    }
    restart_locked(&lab);
    let out = unlock(&lab, "manager2", &key);
    assert!(out.stderr.contains("invalid unlock key"), "{out}");
    let out = unlock(&lab, "manager2", &new_key);
    assert!(out.success(), "{out}");
    reachable_again(&lab, "manager2");
    step("rotated: old key refused, new key unlocked manager2");

    // Off: the KEK is back in the state dir; a restart comes up unlocked.
    lab.swarmctl_ok(&["swarm", "update", "--autolock=false"]);
    all_key_files_at(&lab, "state_dir");
    let out = lab.lab_ok(&["restart", "manager2"], &[]);
    assert!(!out.contains("LOCKED"), "{out}");
    reachable_again(&lab, "manager2");
    step(&format!(
        "autolock off: restart comes up unlocked: {}",
        out.trim()
    ));
    let out = lab.swarmctl(&["swarm", "unlock-key"]);
    assert!(out.stderr.contains("no unlock key is set"), "{out}");

    // No key in any log; manager2 said it was locked, once per locked start.
    for (node, _) in key_files(&lab) {
        let log = lab.dir().join("nodes").join(&node).join("swarmd.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for k in [&key, &new_key] {
            assert!(
                !text.contains(k.as_str()),
                "{node}'s log shows an unlock key"
            );
        }
        let said = text.matches(LOCKED).count();
        let want = if node == "manager2" { 2 } else { 0 };
        assert_eq!(said, want, "{node}: the locked message {said} times");
    }
}
