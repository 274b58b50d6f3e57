//! Cleaning up after a test, and showing what happened when it failed.

use super::Cluster;
use std::process::{Command, Stdio};
use std::time::Duration;

impl Cluster {
    // ----- teardown -----

    /// Kills (by pid) processes whose working directory is inside this cluster's directory:
    /// task processes that outlived their swarmd (e.g. the children of a `sh -c` task, which
    /// the kernel's parent-death signal does not reach).
    fn kill_leftovers(&self) {
        let me = std::process::id().to_string();
        for _ in 0..20 {
            let mut found = Vec::new();
            if let Ok(rd) = std::fs::read_dir("/proc") {
                for e in rd.flatten() {
                    let pid = e.file_name().to_string_lossy().into_owned();
                    if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
                        continue;
                    }
                    if std::fs::read_link(e.path().join("cwd"))
                        .is_ok_and(|cwd| cwd.starts_with(&self.root))
                    {
                        found.push(pid);
                    }
                }
            }
            if found.is_empty() {
                return;
            }
            let _ = Command::new("kill")
                .arg("-9")
                .args(&found)
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn dump(&self) {
        eprintln!(
            "\n===== e2e: the test failed; cluster in {} =====",
            self.root.display()
        );
        eprintln!("----- last swarmctl calls -----");
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        for l in h.iter().skip(h.len().saturating_sub(25)) {
            eprintln!("{l}");
        }
        for n in &self.nodes {
            let text = std::fs::read_to_string(n.log_path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "----- {} ({}): last lines of {} -----",
                n.hostname,
                n.addr,
                n.log_path().display()
            );
            for l in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{}", strip_ansi(l));
            }
        }
        eprintln!("===== end of cluster dump =====");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        for n in &self.nodes {
            if let Some(mut c) = n.lock().take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.kill_leftovers();
        if failing {
            self.dump();
        }
        let keep = std::env::var("SHOAL_E2E_KEEP").unwrap_or_default();
        if (failing && !keep.is_empty()) || keep == "always" {
            eprintln!("SHOAL_E2E_KEEP={keep}: keeping {}", self.root.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
