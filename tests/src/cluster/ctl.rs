//! `swarmctl` calls against the cluster.

use super::{Cluster, CTL_TIMEOUT};
use crate::run::{run, Output};
use crate::views::{NetworkView, NodeView, ServiceView, TaskView};
use serde_json::Value;
use std::process::Command;

impl Cluster {
    // ----- swarmctl -----

    /// Runs `swarmctl --host <node i's socket> ARGS`.
    pub fn ctl(&self, i: usize, args: &[&str]) -> Output {
        self.ctl_host(&self.nodes[i].host(), args)
    }

    /// Runs `swarmctl --host <node i's socket> ARGS` with `input` (and a newline) on its
    /// standard input, for the commands that read secrets there (`swarm unlock`).
    pub fn ctl_stdin(&self, i: usize, args: &[&str], input: &str) -> Output {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "k=\"$1\"; shift; printf '%s\\n' \"$k\" | \"$@\"",
            "sh",
            input,
        ])
        .arg(&self.swarmctl)
        .args(["--host", &self.nodes[i].host()])
        .args(args)
        .env_remove("SWARM_HOST")
        .env("NO_COLOR", "1");
        run(&mut cmd, CTL_TIMEOUT)
    }

    /// Runs `swarmctl --host HOST ARGS`.
    pub fn ctl_host(&self, host: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.swarmctl);
        cmd.args(["--host", host])
            .args(args)
            .env_remove("SWARM_HOST")
            .env("NO_COLOR", "1");
        if self.extra.iter().any(|a| a == "--insecure-plaintext") {
            cmd.arg("--insecure-plaintext");
        } else if !args.contains(&"--cert-dir") {
            // Over TCP: the first manager's certificate.
            cmd.env("SWARM_CERT_DIR", self.nodes[0].certs());
        }
        let at = self.started.elapsed();
        let out = run(&mut cmd, CTL_TIMEOUT);
        let who = self
            .nodes
            .iter()
            .find(|n| n.host() == host)
            .map(|n| n.hostname.as_str())
            .unwrap_or(host);
        let mut line = format!(
            "[+{:.1}s] {who}$ swarmctl {} -> exit {} in {:.2}s",
            at.as_secs_f64(),
            shell(args),
            out.code,
            out.elapsed.as_secs_f64()
        );
        if !out.success() {
            line.push_str(&format!(": {}", out.stderr.trim()));
        }
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        h.push(line);
        if h.len() > 200 {
            h.remove(0);
        }
        out
    }

    /// [`Cluster::ctl`] that must succeed; returns stdout.
    pub fn ctl_ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.ctl(i, args);
        assert!(
            out.success(),
            "swarmctl on {} failed:\n{out}",
            self.nodes[i].hostname
        );
        out.stdout
    }

    /// [`Cluster::ctl`] that must fail; returns the output to check the message.
    pub fn ctl_err(&self, i: usize, args: &[&str]) -> Output {
        let out = self.ctl(i, args);
        assert!(
            !out.success(),
            "swarmctl on {} should have failed:\n{out}",
            self.nodes[i].hostname
        );
        out
    }

    /// `swarmctl ARGS --format json` on node `i`, which must succeed; the parsed output.
    pub fn ctl_json(&self, i: usize, args: &[&str]) -> Value {
        let out = self.try_json(i, args).unwrap_or_else(|e| panic!("{e}"));
        out
    }

    pub(super) fn try_json(&self, i: usize, args: &[&str]) -> Result<Value, String> {
        let mut a = args.to_vec();
        a.extend(["--format", "json"]);
        let out = self.ctl(i, &a);
        if !out.success() {
            return Err(format!(
                "swarmctl on {} failed:\n{out}",
                self.nodes[i].hostname
            ));
        }
        serde_json::from_str(&out.stdout).map_err(|e| format!("not JSON ({e}):\n{out}"))
    }

    pub(super) fn try_nodes(&self, i: usize) -> Result<Vec<NodeView>, String> {
        self.try_json(i, &["node", "ls"])
            .map(|v| NodeView::list(&v))
    }

    /// `node ls` as seen by manager `i`.
    pub fn node_ls(&self, i: usize) -> Vec<NodeView> {
        NodeView::list(&self.ctl_json(i, &["node", "ls"]))
    }

    /// `service ls` as seen by manager `i`.
    pub fn service_ls(&self, i: usize) -> Vec<ServiceView> {
        ServiceView::list(&self.ctl_json(i, &["service", "ls"]))
    }

    /// `network ls` as seen by manager `i`.
    pub fn network_ls(&self, i: usize) -> Vec<NetworkView> {
        NetworkView::list(&self.ctl_json(i, &["network", "ls"]))
    }

    /// `service ps SERVICE` (history included) as seen by manager `i`.
    pub fn service_ps(&self, i: usize, service: &str) -> Vec<TaskView> {
        TaskView::list(&self.ctl_json(i, &["service", "ps", service]))
    }

    /// `task ls --all` as seen by manager `i`.
    pub fn task_ls_all(&self, i: usize) -> Vec<TaskView> {
        TaskView::list(&self.ctl_json(i, &["task", "ls", "--all"]))
    }
}

fn shell(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
