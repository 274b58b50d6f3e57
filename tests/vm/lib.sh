# lib.sh - shell functions shared by run-in-vm.sh, cluster.sh and power-loss.sh (source it).

# copy_with_libs ROOT FILE [DEST]: FILE at ROOT/DEST (default its own path) and the shared
# libraries `ldd` lists for it, at their own paths under ROOT.
copy_with_libs() {
  local root=$1 f=$2 dest=${3:-$2} l
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$f" "$root$dest"
  { ldd "$f" 2>/dev/null || true; } | awk '/=> \//{print $3} /^[[:space:]]*\/[^ ]*ld-linux/{print $1}' |
    while read -r l; do
      [ -e "$root$l" ] && continue
      mkdir -p "$root$(dirname "$l")"; cp -L "$l" "$root$l"
    done
}

# vmx I TIMEOUT 'script': runs the script in VM I (control socket $RUN/vmI.ctl, served by
# cluster-init.sh), prints its output, returns its exit code (124: no answer in time).
vmx() {
  python3 - "$RUN/vm$1.ctl" "$2" "$3" <<'PY'
import base64, random, socket, sys, time
path, tmo, script = sys.argv[1], float(sys.argv[2]), sys.argv[3]
rid = str(random.randrange(10**9))
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.settimeout(1.0)
s.sendall(("CMD %s %s\n" % (rid, base64.b64encode(script.encode()).decode())).encode())
buf, end = b"", time.time() + tmo
begin, fin = ("@@VMT-BEGIN %s\n" % rid).encode(), ("@@VMT-END %s rc=" % rid).encode()
while time.time() < end:
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        continue
    if not chunk:
        break
    buf += chunk
    if fin in buf and buf.endswith(b"\n"):
        out = buf.split(begin, 1)[-1]
        body, rc = out.split(fin, 1)
        sys.stdout.write(body.decode(errors="replace"))
        sys.exit(int(rc.split(b"\n")[0]))
sys.stdout.write(buf.decode(errors="replace"))
print("[no answer within %ss]" % tmo)
sys.exit(124)
PY
}

wait_for() {   # wait_for SECONDS DESC CMD...: until CMD succeeds
  local t=$1 desc=$2; shift 2
  local end=$(( $(date +%s) + t ))
  while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  log "timed out after ${t}s waiting for $desc"
  return 1
}

# script_checks NAME: log/pass/fail/die for a script that prints PASS/FAIL lines, each line
# "[NAME <seconds since this call>s] ..."; fail counts in FAILS, die exits 1; now and since too.
script_checks() {
  CHECKS_NAME=$1
  T_START=$(date +%s.%N)
  FAILS=0
  now() { date +%s.%N; }
  since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
  log() { echo "[$CHECKS_NAME $(since "$T_START")s] $*"; }
  pass() { log "PASS $*"; }
  fail() { log "FAIL $*"; FAILS=$((FAILS + 1)); }
  die() { log "FATAL $*"; exit 1; }
}
