#!/usr/bin/env python3
"""Runs the README's tour, command by command, on a real lab: what `deploy/demo.sh` shows and
what the tour test (tests/tests/readme_tour.rs) checks, so the README cannot drift.

The tour is every ```console block of README.md between "## A tour" and "### Commands". In a
block, a line `PROMPT$ COMMAND` is a command and the lines after it, up to the next command, are
the output the README shows:
  * `$ …` runs on this host; `swarmctl lab …` there gets `--name LAB` (and `lab up` `--subnet`);
  * `manager1$ …`, `worker2$ …` run in a shell on that node (`swarmctl lab exec NODE -- bash`),
    one shell per node kept for the whole tour, as a user in `swarmctl lab shell NODE` would:
    shell variables set by one command are there for the next;
  * `$ swarmctl lab shell NODE` only names the node the next commands run on.
A command fails the tour when it exits non-zero (unless the README shows an `Error:` for it: then
it must fail with one), or prints nothing where the README shows output, or prints a table
without the header the README shows. Addresses of the default lab subnet (198.18.0.x) are moved
to the lab's subnet. Network safety: commands run only in the lab's namespaces; each has a
deadline, and a command that only reads (curl, task exec, getent…) is retried for a few seconds
when it races a balancer or DNS update (bounded).

Usage: tour.py [--readme README.md] [--lab NAME] [--subnet 198.18.0.0/24] [--check]
"""

import argparse
import os
import re
import select
import shlex
import subprocess
import sys
import time

CMD_TIMEOUT = 180.0
RETRY_FOR = 8.0
PROMPT = re.compile(r"^([a-z][a-z0-9]*)?\$ (.*)$")
MARK = "__TOUR_END__"


def tour_blocks(readme):
    """The (prompt, command, expected output lines) of the tour, in order."""
    text = open(readme, encoding="utf-8").read()
    start = text.index("\n## A tour")
    end = text.index("\n### Commands", start)
    section = text[start:end]
    steps = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        for line in block.splitlines():
            m = PROMPT.match(line)
            if m:
                steps.append([m.group(1) or "", m.group(2).strip(), []])
            elif steps and line.strip():
                steps[-1][2].append(line)
    return steps


def header_of(expected):
    """The table header the README shows first, if its first line is one (upper-case words)."""
    for line in expected:
        words = line.split()
        if len(words) >= 2 and all(re.fullmatch(r"[A-Z][A-Z:]*", w) for w in words):
            return " ".join(words)
    return None


class Shell:
    """A bash on one lab node, kept open: commands in, output up to a marker out."""

    def __init__(self, swarmctl, lab, node, env):
        self.node = node
        self.p = subprocess.Popen(
            [swarmctl, "lab", "exec", node, "--name", lab, "--", "bash", "--norc", "--noprofile"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self.buf = b""
        self.send("exec 2>&1; export PS1= TERM=dumb; stty -echo 2>/dev/null; true")
        self.read_until_mark(30.0)

    def send(self, cmd):
        script = f"{cmd}\n__rc=$?; printf '\\n{MARK} %s\\n' \"$__rc\"\n"
        self.p.stdin.write(script.encode())
        self.p.stdin.flush()

    def read_until_mark(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while True:
            i = self.buf.find(f"\n{MARK} ".encode())
            if i >= 0:
                j = self.buf.find(b"\n", i + 1)
                if j >= 0:
                    out = self.buf[:i].decode(errors="replace")
                    rc = int(self.buf[i + len(MARK) + 2:j])
                    self.buf = self.buf[j + 1:]
                    return rc, out
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no end of the command on {self.node} after {timeout:.0f}s")
            r, _, _ = select.select([fd], [], [], min(left, 1.0))
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"the shell on {self.node} ended: {self.buf.decode(errors='replace')}")
                self.buf += chunk

    def run(self, cmd):
        self.send(cmd)
        return self.read_until_mark(CMD_TIMEOUT)

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=10)
        except Exception:
            self.p.kill()


def host_command(cmd, lab, subnet):
    """`swarmctl lab VERB …` aimed at this lab."""
    argv = shlex.split(cmd, comments=True)
    if len(argv) >= 3 and argv[0] == "swarmctl" and argv[1] == "lab":
        extra = ["--name", lab]
        if argv[2] == "up":
            extra += ["--subnet", subnet]
        argv = argv[:3] + extra + argv[3:]
    return argv


def read_only(cmd):
    """A command safe to run again: it only looks (a race with a balancer or DNS update)."""
    words = cmd.split()
    if not words:
        return False
    if words[0] in ("curl", "for", "getent", "ping", "ip"):
        return True
    return cmd.startswith("swarmctl task exec") or cmd.startswith("ip=$(")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", default=os.path.join(here, "..", "README.md"))
    ap.add_argument("--lab", default="lab")
    ap.add_argument("--subnet", default="198.18.0.0/24")
    ap.add_argument("--swarmctl", default="swarmctl")
    ap.add_argument("--check", action="store_true", help="stop at the first step that fails")
    ap.add_argument("--stop-before", metavar="CMD", help="stop before the first command starting with CMD")
    a = ap.parse_args()
    prefix = a.subnet.split("/")[0].rsplit(".", 1)[0] + "."
    env = dict(os.environ)
    shells = {}
    failures = []
    steps = tour_blocks(a.readme)
    if not steps:
        sys.exit("no tour found in the README")
    t0 = time.monotonic()
    try:
        for n, (prompt, cmd, expected) in enumerate(steps, 1):
            if a.stop_before and cmd.startswith(a.stop_before):
                break
            cmd = cmd.replace("198.18.0.", prefix) if prefix != "198.18.0." else cmd
            expected = [e.replace("198.18.0.", prefix) for e in expected]
            print(f"\n{prompt}$ {cmd}", flush=True)
            wants_error = any(e.startswith("Error:") for e in expected)
            deadline = time.monotonic() + (RETRY_FOR if read_only(cmd) and not wants_error else 0)
            while True:
                if not prompt:
                    argv = host_command(cmd, a.lab, a.subnet)
                    if argv[:3] == ["swarmctl", "lab", "shell"]:
                        # The way into a node: its commands follow with its prompt.
                        print("(the next commands run in that shell)")
                        rc, out = 0, "-"
                    else:
                        argv[0] = a.swarmctl if argv[0] == "swarmctl" else argv[0]
                        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           env=env, timeout=CMD_TIMEOUT)
                        rc, out = p.returncode, p.stdout.decode(errors="replace")
                        sys.stdout.write(out)
                else:
                    if prompt not in shells:
                        shells[prompt] = Shell(a.swarmctl, a.lab, prompt, env)
                    rc, out = shells[prompt].run(cmd)
                    sys.stdout.write(out.rstrip("\n") + "\n" if out.strip() else "")
                problem = None
                if wants_error:
                    if rc == 0 or "Error:" not in out:
                        problem = f"the README shows an error, but the command exited {rc}"
                elif rc != 0:
                    problem = f"exited with status {rc}"
                elif expected and not out.strip():
                    problem = "printed nothing, where the README shows output"
                else:
                    h = header_of(expected)
                    lines = {" ".join(l.split()) for l in out.splitlines()}
                    if h and h not in lines:
                        problem = f"no table header {h!r} in its output"
                if problem is None or time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
            if problem:
                msg = f"step {n} ({prompt}$ {cmd}): {problem}"
                print(f"!! {msg}", flush=True)
                failures.append(msg)
                if a.check:
                    break
    finally:
        for s in shells.values():
            s.close()
    print(f"\n{len(steps)} tour steps in {time.monotonic() - t0:.0f}s, {len(failures)} failed")
    for f in failures:
        print(f"FAILED: {f}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
