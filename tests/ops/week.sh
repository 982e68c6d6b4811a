#!/usr/bin/env bash
# A week of cm-push in cron (loopback, no root): 3 sites (a1-a3, b1-b3, c1-c2),
# a relay per server, one CCM with --state and --shadow. 40 cron ticks, each
# made the way a cron job makes them: cm-delta from the shadow's `current` to
# the source tree, cm-pack with the state dir's serial file, cm-push. Among
# them: no-op ticks (cm-delta's "no changes" status: nothing is pushed), one
# empty job pushed anyway (no new release may follow), b1 down for ticks 5-8
# (partial, 11; then `cm-push retry` of jobs 5-7 and a rerun of job 8 repair
# it), a3's relay killed -9 and restarted mid-transfer (tick 12), the CCM
# killed -9 during the commit (tick 14) and during the fetch (tick 18), each
# followed by the same command again, a concurrent job refused (7) and then
# queued with --wait (tick 20), a fleet rollback (`cm-push rollback`, after
# tick 26).
# After every step: each live tree (ROOT/current) is hashed and must be the
# content pushed as the release it is named after, which must be the release
# `cm-push servers --json` names for it and the one the test expects; the exit
# code, the --report JSON, --on-commit and --metrics are checked; the shadow
# runs the fleet's release; every relay's fd and thread counts stay within
# WEEK_SLACK (4) of their value after its first push (tick 3 for the
# original relays). At the end: retention bounds, no job left running, idle
# relays idle.
# Knobs: WEEK_KEEP_GOING=1 reports every failing check (one "FAIL: [step] ..."
# line each) instead of stopping at the first; WEEK_TIMEOUT (cm-push --timeout,
# default 20 s); WEEK_SLACK; WEEK_KEEP_DIR=1 keeps the work directory.
source "$(dirname "$0")/../cli/lib.inc"
KEEP_GOING=${WEEK_KEEP_GOING:-0}
TO=${WEEK_TIMEOUT:-20}
export WEEK_SLACK=${WEEK_SLACK:-4} WEEK_DIR=$T CM_BIN
# The servers' cm-apply keeps its last 20 reports (apply.toml report_keep; the default is 200,
# more than a week of these jobs): the end of the week checks that retention holds.
mkdir -p "$T/conf" && echo 'report_keep = 20' >"$T/conf/apply.toml"
export CM_CONFIG_DIR=$T/conf
base=$((20000 + RANDOM % 12000))  # below the ephemeral range (32768-)
RANDOM=${WEEK_SEED:-12}  # the content's choices are the same every run
declare -A relay_pid port
bg=()          # CCM processes started in the background
orphans=()     # children of killed relays that survived them
nfail=0
last_check=$SECONDS
step=setup
cleanup() {
  local p k
  for p in "${bg[@]}" "${orphans[@]}"; do kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null; done
  for p in "${relay_pid[@]}"; do
    [[ $p == - ]] && continue
    kill -CONT "$p" 2>/dev/null || true
    kill "$p" 2>/dev/null || true
  done
  for p in "${relay_pid[@]}"; do
    [[ $p == - ]] && continue
    for ((k = 0; k < 50; k++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
finish() {
  cleanup
  if [[ ${WEEK_KEEP_DIR:-0} == 1 ]]; then echo "week: work directory kept: $T" >&2; return; fi
  chmod -R u+w "$T" 2>/dev/null
  rm -rf "$T"
}
trap finish EXIT
trap 'exit 1' TERM INT

# bad MSG: one failed check. Stops the test unless WEEK_KEEP_GOING=1.
bad() {
  echo "FAIL: [$step] $*" >&2
  nfail=$((nfail + 1))
  [[ $KEEP_GOING == 1 ]] || exit 1
}
note() { echo "note: [$step] $*" >&2; }

# ---- the checker: a model of what every server serves, and the checks ---------------
cat >check.py <<'PY'
import argparse, hashlib, json, os, re, stat, subprocess, sys, time

T = os.environ["WEEK_DIR"]
CM_BIN = os.environ["CM_BIN"]
SLACK = int(os.environ.get("WEEK_SLACK", "4"))
MODEL = os.path.join(T, "model.json")


def load_model():
    try:
        with open(MODEL) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"releases": {}, "expect": {}, "fleet": None, "base": {}, "baseline": False, "trace": {}, "said": []}


def save_model(m):
    with open(MODEL + ".tmp", "w") as f:
        json.dump(m, f, indent=1, sort_keys=True)
    os.replace(MODEL + ".tmp", MODEL)


def tree_hash(top):
    """Paths, types, modes, sizes, file mtimes (ns), contents and link targets."""
    lines = []
    for d, dirs, files in os.walk(top):
        for name in dirs + files:
            p = os.path.join(d, name)
            rel = os.path.relpath(p, top)
            st = os.lstat(p)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                lines.append("l %s %s" % (rel, os.readlink(p)))
            elif stat.S_ISDIR(st.st_mode):
                lines.append("d %s %o" % (rel, mode))
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
                lines.append("f %s %o %d %d %s" % (rel, mode, st.st_size, st.st_mtime_ns, h))
            else:
                lines.append("? %s" % rel)
    lines.sort()
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def live(root):
    """(release name, tree hash) of ROOT/current, (None, None) without one."""
    cur = os.path.join(root, "current")
    if not os.path.islink(cur):
        return None, None
    name = os.path.basename(os.readlink(cur).rstrip("/"))
    try:
        return name, tree_hash(os.path.realpath(cur))
    except FileNotFoundError:
        return name, "missing"


def servers_list():
    out = []
    with open(os.path.join(T, "servers.lst")) as f:
        for line in f:
            site, name, root = line.split()
            out.append((site, name, root))
    return out


def relay_pids():
    out = []
    with open(os.path.join(T, "relays.pids")) as f:
        for line in f:
            name, pid = line.split()
            if pid != "-":
                out.append((name, int(pid)))
    return out


def counts(pid):
    """(fds, threads, {kind: n}) of a live process; None when it is gone or a zombie."""
    try:
        with open("/proc/%d/status" % pid) as f:
            if any(l.startswith("State:") and "Z" in l.split()[1] for l in f):
                return None
        fds = os.listdir("/proc/%d/fd" % pid)
        kinds = {}
        for fd in fds:
            try:
                t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            k = t.split(":")[0] if ":" in t and not t.startswith("/") else t.replace(T + "/", "")
            kinds[k] = kinds.get(k, 0) + 1
        return len(fds), len(os.listdir("/proc/%d/task" % pid)), kinds
    except (FileNotFoundError, ProcessLookupError):
        return None


def last_error_line(path):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
    except FileNotFoundError:
        return ""
    errs = [l for l in lines if "error" in l or "fail" in l]
    return (errs or lines or [""])[-1][:300]


def release_of(pack_json):
    with open(pack_json) as f:
        d = json.load(f)
    files = d["files"]
    serial = max(f["serial"] for f in files)
    job = files[0]["job"]
    safe = "".join(c if (c.isalnum() and c.isascii()) or c in "_-" or (c == "." and i > 0) else "_"
                   for i, c in enumerate(job))
    return "s%012d-%s" % (serial, safe)


def step(a):
    m = load_model()
    fails = []
    bad = fails.append
    servers = servers_list()
    names = [n for _, n, _ in servers]
    sites = {}
    for site, n, _ in servers:
        sites.setdefault(site, []).append(n)
    scope = []
    for x in (a.scope.split(",") if a.scope else names):
        scope += sites.get(x, [x])
    failset = set(a.fail.split(",")) if a.fail else set()
    want = [int(x) for x in a.want.split(",")]
    if a.rc not in want:
        why = last_error_line(a.err) if a.err else ""
        bad("exit %d, expected %s%s" % (a.rc, " or ".join(map(str, want)), ("; stderr: " + why) if why else ""))

    if a.quiet_err and a.rc == 0 and want == [0] and a.err:
        # cron mails every line: a push that reached every server says nothing on stderr.
        with open(a.err, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
        if lines:
            kinds = sorted(set(re.sub(r"[0-9]+", "N", l)[:120] for l in lines))
            key = "stderr:" + kinds[0]
            if key not in m["said"]:
                m["said"].append(key)
                bad("a push that reached every server wrote %d lines to stderr, e.g. '%s'%s" % (
                    len(lines), lines[0][:160], " (and %d other kinds)" % (len(kinds) - 1) if len(kinds) > 1 else ""))
    if a.report:
        r = None
        try:
            with open(a.report) as f:
                r = json.load(f)
        except Exception as e:  # noqa: BLE001 - any reason is a failed check
            bad("--report %s: %s" % (os.path.basename(a.report), e))
        if r is not None:
            if r.get("v") != 1:
                bad("report: v is %r, expected 1" % r.get("v"))
            if r.get("exit") != a.rc:
                bad("report: exit %r, cm-push exited %d" % (r.get("exit"), a.rc))
            result = {0: "ok", 11: "partial"}.get(a.rc, "failed")
            if r.get("result") != result:
                bad("report: result %r, expected %r for exit %d" % (r.get("result"), result, a.rc))
            job = r.get("job") or {}
            missing = [k for k in ("id", "name", "kind", "release", "started", "finished") if k not in job]
            if missing:
                bad("report: job lacks %s" % ", ".join(missing))
            if a.release and a.kind in ("publish", "rollback") and job.get("release") != a.release:
                bad("report: job.release %r, expected %r" % (job.get("release"), a.release))
            rows = {}
            for s in r.get("servers") or []:
                rows[s.get("server")] = s
            if sorted(rows) != sorted(scope):
                bad("report: servers %s, expected %s" % (",".join(sorted(rows)), ",".join(sorted(scope))))
            if r.get("server_count") != len(rows):
                bad("report: server_count %r, %d listed" % (r.get("server_count"), len(rows)))
            okstate = "rolled-back" if a.kind == "rollback" else "committed"
            for s in scope:
                row = rows.get(s)
                if row is None:
                    continue
                if s in failset:
                    if row.get("state") != "failed":
                        bad("report: %s is %s, expected failed" % (s, row.get("state")))
                    elif not row.get("error"):
                        bad("report: %s failed without a reason" % s)
                elif row.get("state") != okstate:
                    bad("report: %s is %s, expected %s%s" % (s, row.get("state"), okstate,
                                                             (" (error: %s)" % row["error"]) if row.get("error") else ""))
                elif a.kind in ("publish", "rollback") and row.get("release") != a.release:
                    bad("report: %s release %r, expected %r" % (s, row.get("release"), a.release))

    if a.oncommit:
        try:
            with open(a.oncommit) as f:
                got = sorted(set(tuple(l.split()) for l in f if l.strip()))
        except FileNotFoundError:
            got = []
        exp = sorted((s, a.release) for s in scope if s not in failset)
        if got != exp:
            bad("--on-commit: ran for %d servers, expected %d; missing: %s; extra: %s" % (
                len(got), len(exp), " ".join("%s=%s" % e for e in exp if e not in got) or "-",
                " ".join("%s=%s" % g for g in got if g not in exp) or "-"))
    if a.metrics:
        v = None
        try:
            with open(a.metrics) as f:
                for l in f:
                    if l.startswith("cm_push_last_run_exit_code "):
                        v = int(float(l.split()[1]))
        except FileNotFoundError:
            pass
        if v != a.rc:
            bad("--metrics: cm_push_last_run_exit_code %s, cm-push exited %d" % (v, a.rc))

    old = dict(m["expect"])
    if a.release and a.kind in ("publish", "rollback"):
        for s in scope:
            if s not in failset:
                m["expect"][s] = a.release
    if a.fleet:
        m["fleet"] = a.fleet

    if not a.no_live:
        rows = {}
        try:
            out = subprocess.run([os.path.join(CM_BIN, "cm-push"), "servers", "--state", os.path.join(T, "ccm"),
                                  "--json"], capture_output=True, text=True, timeout=30)
            if out.returncode != 0:
                bad("cm-push servers --json: exit %d: %s" % (out.returncode, out.stderr.strip()[:200]))
            else:
                sj = json.loads(out.stdout)
                if sj.get("v") != 1:
                    bad("servers --json: v is %r" % sj.get("v"))
                for e in sj.get("servers") or []:
                    rows[e.get("server")] = e
        except Exception as e:  # noqa: BLE001
            bad("cm-push servers --json: %s" % e)
        for site, s, root in servers:
            name, h = live(root)
            exp = m["expect"].get(s)
            if a.loose:
                if name not in (old.get(s), a.release):
                    bad("%s serves %s: neither the release before (%s) nor the job's (%s)" % (s, name, old.get(s), a.release))
            else:
                if rows:
                    row = rows.get(s)
                    if row is None:
                        bad("servers --json: no %s" % s)
                    elif (row.get("release") or None) != name:
                        bad("servers --json: %s runs %s, but it serves %s" % (s, row.get("release") or "-", name or "-"))
                    elif name and not row.get("serial"):
                        bad("servers --json: %s runs %s with serial %r" % (s, name, row.get("serial")))
                if name != exp:
                    hint = ""
                    if a.kind == "noop" and name not in (None, old.get(s)):
                        hint = " (a job that changes nothing made a new release)"
                    bad("%s serves %s, expected %s%s" % (s, name or "nothing", exp or "nothing", hint))
            if name is not None:
                want_h = m["releases"].get(name)
                if want_h is None:
                    bad("%s serves %s, a release no push made" % (s, name))
                elif h != want_h:
                    if "tree:%s:%s" % (s, name) not in m["said"]:  # once per server and release
                        m["said"].append("tree:%s:%s" % (s, name))
                        bad("%s: the tree of %s is not the content pushed as %s" % (s, name, name))
                else:
                    m["expect"][s] = name  # from here on, what it really serves (no cascade)
        name, h = live(os.path.join(T, "shadow"))
        if not a.loose and name != m["fleet"]:
            bad("the shadow runs %s, expected %s" % (name or "nothing", m["fleet"] or "nothing"))
        if name is not None:
            if m["releases"].get(name) != h:
                bad("the shadow's tree of %s is not the content pushed as %s" % (name, name))
            else:
                m["fleet"] = name

    if a.baseline:
        m["baseline"] = True
    if m["baseline"] and not a.no_live and not a.loose:  # not while relays still talk to a dead CCM
        now = {}
        for rname, pid in relay_pids():
            key = "%s:%d" % (rname, pid)
            cur = counts(pid)
            if cur is None:
                bad("relay %s (pid %d) is not running" % (rname, pid))
            elif key not in m["base"]:
                m["base"][key] = list(cur)
            else:
                now[key] = (rname, pid, cur)
        over = lambda k: (now[k][2][0] > m["base"][k][0] + SLACK or now[k][2][1] > m["base"][k][1] + SLACK)
        deadline = time.time() + 2  # a push's last connections may still be closing
        while any(over(k) for k in now) and time.time() < deadline:
            time.sleep(0.2)
            for k in [k for k in now if over(k)]:
                now[k] = (now[k][0], now[k][1], counts(now[k][1]) or now[k][2])
        for key, (rname, pid, cur) in sorted(now.items()):
            b = m["base"][key]
            m["trace"].setdefault(rname, []).append([a.label, cur[0], cur[1]])
            # Said once per relay (and again at the end), not after every step.
            if cur[0] > b[0] + SLACK and (key + ":fd" not in m["said"] or a.label == "end"):
                m["said"].append(key + ":fd")
                more = {}
                for k, v in cur[2].items():
                    g = os.path.join(os.path.dirname(k), re.sub(r"[0-9]+", "N", os.path.basename(k)))
                    more[g] = more.get(g, 0) + v - b[2].get(k, 0)
                bad("relay %s (pid %d): %d fds, %d after its first push (+%d > +%d); more of: %s" % (
                    rname, pid, cur[0], b[0], cur[0] - b[0], SLACK,
                    ", ".join("%s +%d" % kv for kv in sorted(more.items()) if kv[1] > 0) or "-"))
            if cur[1] > b[1] + SLACK and (key + ":thr" not in m["said"] or a.label == "end"):
                m["said"].append(key + ":thr")
                bad("relay %s (pid %d): %d threads, %d after its first push (+%d > +%d)" % (
                    rname, pid, cur[1], b[1], cur[1] - b[1], SLACK))

    save_model(m)
    for f in fails:
        print("FAIL: [%s] %s" % (a.label, f), file=sys.stderr)
    if not fails:
        print("ok: [%s]%s (%s s)" % (a.label, (" " + a.release) if a.release else "", os.environ.get("WEEK_SECS", "?")))
    else:
        print("     [%s] took %s s" % (a.label, os.environ.get("WEEK_SECS", "?")), file=sys.stderr)
    sys.exit(min(len(fails), 100))


def summary():
    m = load_model()
    print("relay fds/threads: name  after-first-push -> last (max)")
    for rname in sorted(m["trace"]):
        t = m["trace"][rname]
        bases = [v for k, v in m["base"].items() if k.startswith(rname + ":")]
        print("  %-3s %s -> %d/%d (max %d/%d), %d checks" % (
            rname, " ".join("%d/%d" % (b[0], b[1]) for b in bases), t[-1][1], t[-1][2],
            max(x[1] for x in t), max(x[2] for x in t), len(t)))


def main():
    cmd = sys.argv[1]
    if cmd == "hash":
        print(tree_hash(sys.argv[2]))
    elif cmd == "addpack":  # PACK.json TREE: the release the pack makes and its content
        m = load_model()
        rel = release_of(sys.argv[2])
        m["releases"][rel] = tree_hash(sys.argv[3])
        save_model(m)
        print(rel)
    elif cmd == "fleet":
        print(load_model()["fleet"] or "")
    elif cmd == "diverged":  # servers (relay running) whose live content is not the fleet's
        m = load_model()
        want = m["releases"].get(m["fleet"] or "")
        up = set(n for n, _ in relay_pids())
        print(" ".join(n for _, n, root in servers_list() if want and n in up and live(root)[1] != want))
    elif cmd == "summary":
        summary()
    elif cmd == "step":
        p = argparse.ArgumentParser()
        p.add_argument("label")
        p.add_argument("--rc", type=int, required=True)
        p.add_argument("--want", default="0")
        p.add_argument("--err")
        p.add_argument("--report")
        p.add_argument("--release")
        p.add_argument("--kind", default="publish")
        p.add_argument("--scope")
        p.add_argument("--fail")
        p.add_argument("--fleet")
        p.add_argument("--oncommit")
        p.add_argument("--metrics")
        p.add_argument("--loose", action="store_true")
        p.add_argument("--no-live", action="store_true")
        p.add_argument("--baseline", action="store_true")
        p.add_argument("--quiet-err", action="store_true")
        step(p.parse_args(sys.argv[2:]))
    else:
        sys.exit("check.py: unknown command " + cmd)


main()
PY
# check ARGS...: the checks after a step (see check.py step); counts the failures.
check() {
  local n=0
  WEEK_SECS=$((SECONDS - last_check)) python3 check.py step "$step" "$@" || n=$?
  last_check=$SECONDS
  if ((n)); then
    nfail=$((nfail + n))
    [[ $KEEP_GOING == 1 ]] || exit 1
  fi
}

# ---- the bed: keys, sites file, relays -------------------------------------------------
cm-pack keygen -o ccm.key >/dev/null
cm-pack keygen --group -o group.key >/dev/null
declare -A site_of
servers=(a1 a2 a3 b1 b2 b3 c1 c2)
{
  echo "[ccm]"
  echo "listen = \"127.0.0.1:$base\""
  i=0
  g=0
  for s in a b c; do
    g=$((g + 1))
    printf '\n[[site]]\nname = "%s"\ngroup = "239.255.79.%d:%d"\n' "$s" "$g" $((base + 40 + g))
    for h in "${servers[@]}"; do
      [[ $h == "$s"* ]] || continue
      i=$((i + 1))
      port[$h]=$((base + 50 + i))
      site_of[$h]=$s
      printf '[[site.server]]\nname = "%s"\naddress = "127.0.0.%d"\nurl = "http://127.0.0.1:%d"\n' "$h" $((i + 1)) "${port[$h]}"
    done
  done
} >sites.toml
: >servers.lst
for h in "${servers[@]}"; do
  mkdir -p "$h/root"
  echo "${site_of[$h]} $h $T/$h/root" >>servers.lst
  relay_pid[$h]=-
done
write_pids() { local x; for x in "${servers[@]}"; do echo "$x ${relay_pid[$x]}"; done >relays.pids; }

start_relay() {  # NAME
  local h=$1
  cm-push relay --name "$h" --listen "127.0.0.1:${port[$h]}" --spool "$h/spool" --root "$h/root" \
    --member-retry 2 --member-wait 10 --iface 127.0.0.1 --pub-key ccm.key.pub --group-key group.key \
    --cm-apply "$CM_BIN/cm-apply" --cm-mcast "$CM_BIN/cm-mcast" 2>>"$h.log" &
  relay_pid[$h]=$!
  write_pids
  for ((k = 0; k < 100; k++)); do (exec 3<>/dev/tcp/127.0.0.1/${port[$h]}) 2>/dev/null && return; sleep 0.05; done
  bad "relay $h did not start listening"
}
stop_relay() {  # NAME: SIGTERM; the relay must end cleanly (exit 0) within 5 s
  local h=$1 p=${relay_pid[$1]} rc=0
  kill "$p"
  for ((k = 0; k < 50; k++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then
    bad "relay $h did not stop within 5 s of SIGTERM"
    kill -9 "$p" 2>/dev/null || true
  fi
  wait "$p" || rc=$?
  [[ $rc == 0 ]] || bad "relay $h exited $rc on SIGTERM, expected 0"
  relay_pid[$h]=-
  write_pids
}
descendants() { local c; for c in $(pgrep -P "$1" || true); do echo "$c"; descendants "$c"; done; }
kill9_relay() {  # NAME: kill -9; every child of the relay must die with it
  local h=$1 p=${relay_pid[$1]} kids k
  kids=$(descendants "$p")
  kill -9 "$p" 2>/dev/null || bad "relay $h was not running when it was to be killed"
  wait "$p" 2>/dev/null || true
  relay_pid[$h]=-
  write_pids
  [[ -n $kids ]] || note "relay $h had no child when killed"
  sleep 1
  for k in $kids; do
    if kill -0 "$k" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$k/stat" 2>/dev/null) != Z ]]; then
      bad "child $k of relay $h ($(tr '\0' ' ' </proc/"$k"/cmdline 2>/dev/null | cut -c1-80)) outlived its kill -9"
      orphans+=("$k")
    fi
  done
}
for h in "${servers[@]}"; do start_relay "$h"; done

# ---- the cron job -----------------------------------------------------------------------
mkdir -m 700 ccm
mkdir shadow gate
# cm-pack as cm-push runs it (--cm-pack): the real one, except that `commit` waits at a gate
# the test opens (gate/on: hold; gate/reached: held; gate/open: go on). A dead cm-push ends it.
cat >cmpack <<EOF
#!/usr/bin/env bash
if [[ \${1:-} == commit && -e $T/gate/on ]]; then
  touch $T/gate/reached
  for ((i = 0; i < 1200; i++)); do
    [[ -e $T/gate/open ]] && break
    kill -0 \$PPID 2>/dev/null || exit 1
    sleep 0.05
  done
fi
exec $CM_BIN/cm-pack "\$@"
EOF
chmod +x cmpack
if cm-delta --help 2>&1 | grep -q -- '--exit-code'; then
  NOOP_FLAG=(--exit-code)
else
  NOOP_FLAG=()
  echo "note: cm-delta has no --exit-code (its \"no changes\" status): a no-op tick is an empty 'cm-delta --list'" >&2
fi
follow_link=1  # 0 once cm-delta refused the shadow's `current` symlink: its target from then on
# --require quorum: a dead server must not hold the fleet back (with the default, all, nothing commits).
PUSH_ARGS=(--to sites.toml --state ccm --shadow shadow --require quorum --sign-key ccm.key --group-key group.key --timeout "$TO"
  --cm-pack "$T/cmpack" --json --metrics "$T/cm.prom"
  --on-commit "echo \"\$CM_SERVER \$CM_RELEASE\" >>$T/oncommit.log")
old_tree() { if ((follow_link)); then echo shadow/current; else readlink -f shadow/current || echo shadow/none; fi; }

# cron_make N [force]: the cron job's delta (from the shadow) and pack (the state dir's serial
# file). Sets job, cma ("" on a no-op tick), rel (the release it makes), changes (0/1).
cron_make() {
  local n=$1 force=${2:-} rc=0
  job=$(printf 'w%02d' "$n")
  cma=
  rel=
  changes=1
  cm-delta "${NOOP_FLAG[@]}" --empty-old "$(old_tree)" src -o "$job.cmdt" 2>"$job.delta.err" || rc=$?
  if ((follow_link)) && [[ $rc == 10 ]] && grep -q 'Not a directory' "$job.delta.err"; then
    bad "cm-delta refuses the shadow's current symlink as OLD: $(tail -1 "$job.delta.err")"
    follow_link=0
    rc=0
    cm-delta "${NOOP_FLAG[@]}" --empty-old "$(old_tree)" src -o "$job.cmdt" 2>"$job.delta.err" || rc=$?
  fi
  if ((${#NOOP_FLAG[@]})); then
    case $rc in
      0) ;;
      15) changes=0 ;;
      *) bad "cm-delta ${NOOP_FLAG[*]}: exit $rc: $(tail -1 "$job.delta.err")"; changes=0 ;;
    esac
  else
    [[ $rc == 0 ]] || bad "cm-delta: exit $rc: $(tail -1 "$job.delta.err")"
    [[ -n $(cm-delta --list --empty-old "$(old_tree)" src 2>/dev/null) ]] || changes=0
  fi
  [[ $changes == 1 || -n $force ]] || return 0
  if ! cm-pack "$job.cmdt" --source src --job "$job" --sign-key ccm.key --serial-file ccm/serial -o "$job.cma" \
    --json >"$job.pack.json" 2>"$job.pack.err"; then
    bad "cm-pack: $(tail -1 "$job.pack.err")"
    return 0
  fi
  cma=$job.cma
  rel=$(python3 check.py addpack "$job.pack.json" src)
}
# cron_push [ARGS...]: the cron job's push of $cma; sets rc.
cron_push() {
  rm -f "r-$job.json" oncommit.log cm.prom
  rc=0
  cm-push "$cma" "${PUSH_ARGS[@]}" --report "$T/r-$job.json" "$@" >"$job.out" 2>"$job.err" || rc=$?
}
# cron_push_bg: the same, in the background; sets ccm_pid.
cron_push_bg() {
  rm -f "r-$job.json" oncommit.log cm.prom
  cm-push "$cma" "${PUSH_ARGS[@]}" --report "$T/r-$job.json" >"$job.out" 2>"$job.err" &
  ccm_pid=$!
  bg+=("$ccm_pid")
}
check_push() {  # [check ARGS...]: the checks of a cron push of $cma
  check --rc "$rc" --err "$job.err" --report "r-$job.json" --release "$rel" --fleet "$rel" \
    --oncommit oncommit.log --metrics cm.prom --quiet-err "$@"
}
wait_for() {  # SECONDS CMD...: poll until CMD succeeds
  local s=$1 k
  shift
  for ((k = 0; k < s * 20; k++)); do "$@" && return 0; sleep 0.05; done
  return 1
}
events() {  # FILE EVENT [TEXT]: how many --json events EVENT (containing TEXT) FILE holds
  grep -F "\"event\":\"$2\"" "$1" | grep -cF -- "${3:-}" || true
}
has_event() { [[ $(events "$@") -gt 0 ]]; }
# `cm-push status` after a kill -9 must show the killed job aborted (it reaps dead controllers).
check_reaped() {  # JOB
  local st
  st=$(cm-push status --state ccm --json 2>&1 | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["job"]["name"], d["job"]["state"])' 2>&1 || true)
  [[ $st == "$1 aborted" ]] || bad "cm-push status after the kill -9: '$st', expected '$1 aborted'"
}
# WEEK_KEEP_GOING=1 only: servers whose live content is not the fleet's after a failed tick are
# resynced by a whole-tree push of the shadow's tree (--only them), so that later ticks test their
# own fault instead of a cascade (a delta needs the base it was made from).
repair() {
  [[ $KEEP_GOING == 1 ]] || return 0
  local off only fleet_tree relx
  off=$(python3 check.py diverged)
  [[ -n $off ]] || return 0
  only=${off// /,}
  step="resync $only"
  fleet_tree=$(readlink -f shadow/current)
  cm-pack replicate "$fleet_tree" --job resync --sign-key ccm.key --serial-file ccm/serial -o resync.cma --json \
    >resync.pack.json
  relx=$(python3 check.py addpack resync.pack.json "$fleet_tree")
  note "$off: not the fleet's content; resynced with a whole-tree push (WEEK_KEEP_GOING)"
  rc=0
  cm-push resync.cma --to sites.toml --state ccm --sign-key ccm.key --group-key group.key --timeout "$TO" \
    --only "$only" --report "$T/r-resync.json" >resync.out 2>resync.err || rc=$?
  check --rc "$rc" --err resync.err --report r-resync.json --release "$relx" --scope "$only"
}
spool_grew() {  # NAME: NAME's spool holds a file newer than the tick's start
  [[ $(find "$1/spool" -mindepth 1 -maxdepth 1 -newer "$T/tick.stamp" | wc -l) -gt 0 ]]
}

# ---- the content ------------------------------------------------------------------------
rnd_text() { head -c "$1" /dev/urandom | base64 -w 76; }
pick() {  # a small file of src
  local files
  mapfile -t files < <(cd src && find . -type f ! -name big.bin ! -name blob.bin -printf '%P\n' | sort)
  echo "${files[RANDOM % ${#files[@]}]}"
}
mutate() {  # N KIND
  local n=$1 f d
  case $2 in
    init)
      for d in d1 d2 d3/sub; do
        mkdir -p "src/$d"
        for i in 1 2 3 4 5 6; do rnd_text $((200 + RANDOM % 900)) >"src/$d/f$i.txt"; done
      done
      head -c 150000 /dev/urandom >src/d1/blob.bin
      ln -s d1/f1.txt src/link
      ;;
    edit)
      for i in 1 2; do f=$(pick); echo "tick $n edit $RANDOM" >>"src/$f"; done
      f=$(pick); rnd_text 700 >"src/$f"
      ;;
    blob) # a small edit inside a larger binary file (a real delta)
      printf 'tick %02d' "$n" | dd of=src/d1/blob.bin bs=1 seek=$((RANDOM * 3)) conv=notrunc status=none
      ;;
    add)
      mkdir -p "src/n$n"
      for i in 1 2 3; do rnd_text 400 >"src/n$n/a$i.txt"; done
      ln -sfn "../d2/f2.txt" "src/n$n/to-f2"
      ;;
    delete)
      for i in 1 2; do f=$(pick); rm -f "src/$f"; done
      ;;
    rename)
      f=$(pick); mv "src/$f" "src/$(dirname "$f")/renamed$n.txt"
      ;;
    renamedir)
      d=$(cd src && find . -mindepth 1 -maxdepth 1 -type d -name 'n*' -printf '%P\n' | sort | head -1)
      if [[ -n $d ]]; then mv "src/$d" "src/moved$n"; else mutate "$n" rename; fi
      ;;
    mtime) # same bytes, new times
      for i in 1 2; do f=$(pick); touch -d "@$((1600000000 + n * 3600 + i))" "src/$f"; done
      ;;
    mode)
      f=$(pick); chmod 600 "src/$f"
      f=$(pick); chmod 755 "src/$f"
      ;;
    big) head -c 6000000 /dev/urandom >src/big.bin ;;
    unbig) rm -f src/big.bin ;;
    noop) ;;
    *) echo "mutate: unknown $2" >&2; exit 2 ;;
  esac
}
mkdir src

# ---- the week -----------------------------------------------------------------------------
# What each tick changes (mutate KIND); the special steps are below, by tick number.
declare -A plan=(
  [1]=init [2]=edit [3]=add [4]="rename mtime" [5]=edit [6]=add [7]=delete [8]="rename blob" [9]=edit
  [10]=noop [11]=mtime [12]="big edit" [13]="unbig delete" [14]="edit add" [15]=blob [16]=noop [17]=add
  [18]="big mode" [19]="unbig renamedir" [20]=edit [21]=edit [22]="mtime mode" [23]=delete [24]=noop
  [25]=edit [26]=add [27]=edit [28]=rename [29]=blob [30]=add [31]=noop [32]=edit [33]=noop [34]="delete mtime"
  [35]=renamedir [36]=edit [37]=mode [38]=noop [39]=blob [40]="edit add")
published=()  # releases of the cron pushes that committed somewhere, in order
declare -a jobid=() relof=()
t0=$SECONDS
for n in $(seq 1 40); do
  # Before the tick: b1 goes down for ticks 5-8; comes back before tick 9 and is repaired.
  if [[ $n == 5 ]]; then
    step="b1 down"
    stop_relay b1
  fi
  if [[ $n == 9 ]]; then
    # `cm-push retry` of jobs 5, 6 and 7 pushes them to b1 alone; job 8's command run again
    # converges (the others already run it and say so; b1 gets it).
    start_relay b1
    for r in 5 6 7 8; do
      job=$(printf 'w%02d' "$r") rel=${relof[r]:-} rc=0
      rm -f "r-$job.json" oncommit.log cm.prom
      if [[ $r == 8 ]]; then
        step="rerun w08"
        cma=w08.cma
        cron_push
        check_push
        continue
      fi
      step="retry $job"
      if [[ -z ${jobid[r]:-} ]]; then
        bad "no job id in r-$job.json: cannot retry"
        continue
      fi
      cm-push retry "${jobid[r]}" --state ccm >"retry-$job.out" 2>"retry-$job.err" || rc=$?
      grep -q "^retrying job ${jobid[r]} ($job) on b1$" "retry-$job.out" ||
        bad "retry did not name b1 alone: $(head -1 "retry-$job.out")"
      check --rc "$rc" --err "retry-$job.err" --report "r-$job.json" --release "$rel" --scope b1 \
        --oncommit oncommit.log --metrics cm.prom
    done
  fi

  step=$(printf 'tick %02d' "$n")
  for kind in ${plan[$n]}; do mutate "$n" "$kind"; done
  force=
  [[ $n == 31 ]] && force=yes  # an older cron script: pushes even when nothing changed
  cron_make "$n" $force
  if [[ -z $cma ]]; then
    [[ ${plan[$n]} == noop ]] || bad "cm-delta found no change after '${plan[$n]}'"
    check --rc 0  # nothing pushed: nothing may have changed
    continue
  fi
  if [[ ${plan[$n]} == noop && $changes == 1 ]]; then
    bad "cm-delta found changes in a tick that changed nothing: $(cm-delta --list "$(readlink -f shadow/current)" src 2>&1 | head -5 | tr '\n' ' ')"
  fi
  touch tick.stamp
  case $n in
    3)
      cron_push
      check_push --baseline  # the relays' fd and thread counts from here on
      ;;
    5 | 6 | 7 | 8)
      # b1 is down: partial (11), b1 failed with its reason, the rest committed.
      cron_push
      check_push --want 11 --fail b1
      jobid[n]=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["job"]["id"])' "r-$job.json" 2>/dev/null || true)
      relof[n]=$rel
      ;;
    12)
      # a3 (a member of site a) killed -9 and restarted while it receives; the push still ends 0.
      cron_push_bg
      wait_for "$TO" eval 'spool_grew a3 || ! kill -0 $ccm_pid 2>/dev/null' || true
      kill -0 "$ccm_pid" 2>/dev/null || note "the push ended before a3 received anything: a3 restarted after it"
      note "a3 killed -9 holding: $(cd a3/spool && find . -mindepth 1 -maxdepth 1 -newer "$T/tick.stamp" -printf '%P %s\n' | tr '\n' ' ')"
      kill9_relay a3
      start_relay a3
      rc=0
      wait "$ccm_pid" || rc=$?
      check_push
      ;;
    14)
      # The CCM killed -9 during the commit: all staged, site c's leader c1 frozen, the commit
      # on its way; killed once a server committed (at most 5 s). Then the same command again.
      touch gate/on
      cron_push_bg
      wait_for "$TO" test -e gate/reached || bad "the push never reached its commit: $(tail -1 "$job.err")"
      kill -STOP "${relay_pid[c1]}"
      rm -f gate/on
      touch gate/open
      wait_for 5 has_event "$job.out" server '"state":"committed"' || true
      note "CCM killed with $(events "$job.out" server '"state":"committed"') servers committed"
      kill -9 "$ccm_pid" 2>/dev/null || note "cm-push had ended before the kill"
      wait "$ccm_pid" 2>/dev/null || true
      rm -f gate/open gate/reached
      kill -CONT "${relay_pid[c1]}"
      sleep 1
      step="tick 14 killed"
      check --rc 0 --release "$rel" --loose
      check_reaped "$job"
      step="tick 14 rerun"
      cron_push
      check_push
      ;;
    18)
      # The CCM killed -9 during the fetch (at its first order to a leader); the same command again.
      cron_push_bg
      wait_for "$TO" has_event "$job.out" order || bad "no order event: $(tail -1 "$job.err")"
      kill -9 "$ccm_pid" 2>/dev/null || note "cm-push had ended before the kill"
      wait "$ccm_pid" 2>/dev/null || true
      note "CCM killed after $(events "$job.out" received) received events, $(events "$job.out" server) server events"
      sleep 1
      step="tick 18 killed"
      check --rc 0 --release "$rel" --loose
      check_reaped "$job"
      step="tick 18 rerun"
      cron_push
      check_push
      ;;
    20)
      # Tick 20 held at its commit; meanwhile an operator's resync (replicate of src, packed
      # now) is refused (7), then queued with --wait: both end 0, the resync last everywhere.
      touch gate/on
      cron_push_bg
      p20=$ccm_pid rel20=$rel job20=$job
      wait_for "$TO" test -e gate/reached || bad "the push never reached its commit: $(tail -1 "$job.err")"
      mutate 20 edit
      cm-pack replicate src --job r20 --sign-key ccm.key --serial-file ccm/serial -o r20.cma --json >r20.pack.json
      relr=$(python3 check.py addpack r20.pack.json src)
      step="resync r20 refused"
      rc=0
      cm-push r20.cma "${PUSH_ARGS[@]}" --report "$T/r-r20.json" >r20.out 2>r20.err || rc=$?
      [[ $rc == 7 ]] || bad "a job on the running job's servers: exit $rc, expected 7: $(tail -1 r20.err)"
      [[ $(grep -c . r20.err) == 1 ]] || bad "exit 7 said in $(grep -c . r20.err) lines, expected 1: $(head -3 r20.err | tr '\n' ' ')"
      cm-push r20.cma "${PUSH_ARGS[@]}" --report "$T/r-r20.json" --wait 60 >r20w.out 2>r20w.err &
      pw=$!
      bg+=("$pw")
      wait_for 5 grep -qs waiting r20w.err || bad "the --wait push did not say it waits: $(head -1 r20w.err)"
      rm -f gate/on
      touch gate/open
      rc=0
      wait "$p20" || rc=$?
      rc_w=0
      wait "$pw" || rc_w=$?
      rm -f gate/open gate/reached
      step="tick 20"
      check --rc "$rc" --err "$job.err" --report "r-$job.json" --release "$rel" --no-live
      step="resync r20 queued"
      check --rc "$rc_w" --err r20w.err --report r-r20.json --release "$relr" --fleet "$relr"
      ;;
    31)
      # The empty job pushed anyway: success, and no new release anywhere.
      cron_push
      check --rc "$rc" --err "$job.err" --report "r-$job.json" --kind noop --metrics cm.prom
      ;;
    *)
      cron_push
      check_push
      ;;
  esac
  [[ $rc == 0 || $rc == 11 ]] && published+=("$rel")
  if [[ $n == 26 ]]; then
    # Fleet rollback: back to the release before the current one, everywhere, shadow too.
    step="rollback"
    fleet=$(python3 check.py fleet)
    target=
    for ((i = ${#published[@]} - 1; i > 0; i--)); do
      if [[ ${published[i]} == "$fleet" ]]; then
        target=${published[i - 1]}
        break
      fi
    done
    [[ -n $target ]] || { note "the fleet runs $fleet, not a cron release: no rollback target"; target=none; }
    rm -f rb.json
    rc=0
    cm-push rollback --to sites.toml --state ccm --sign-key ccm.key --group-key group.key --shadow shadow \
      --timeout "$TO" --report "$T/rb.json" --json >rb.out 2>rb.err || rc=$?
    check --rc "$rc" --err rb.err --report rb.json --release "$target" --kind rollback --fleet "$target"
  fi
  if ((n < 5 || n > 8)); then repair; fi
done

# ---- the end of the week ----------------------------------------------------------------
step="end"
check --rc 0
jobs_pushed=$(ls ./*.cma | wc -l)
max_files=${WEEK_RETAIN_MAX:-30}
for h in "${servers[@]}"; do
  n=$(find "$h/spool" -maxdepth 1 -type f | wc -l)
  ((n <= max_files)) || bad "$h's spool holds $n files after $jobs_pushed jobs (retention: at most $max_files)"
  n=$(find "$h/root/.cm/reports" -maxdepth 1 -type f 2>/dev/null | wc -l)
  ((n <= max_files)) || bad "$h's .cm/reports holds $n reports after $jobs_pushed jobs (retention: at most $max_files)"
  n=$(find "$h/root/releases" -mindepth 1 -maxdepth 1 | wc -l)
  ((n <= 3)) || bad "$h keeps $n releases (keep = 2)"
done
n=$(find ccm -maxdepth 1 -name 'commit-*' | wc -l)
((n <= 2)) || bad "the state dir keeps $n commit-* directories (at most the 2 of killed runs)"
n=$(find ccm -maxdepth 1 -name 'rollback-*' | wc -l)
((n == 0)) || bad "the state dir keeps $n rollback-* directories"
active=$(cm-push history --state ccm --limit 200 --json | python3 -c '
import json, sys
print(" ".join("%s:%s" % (j["name"], j["state"]) for j in json.load(sys.stdin)["jobs"] if j["state"] in ("queued", "running")))')
[[ -z $active ]] || bad "jobs still active after the week: $active"
# Idle relays are idle: under 2% of a core each over 2 s.
declare -A cpu0
for h in "${servers[@]}"; do cpu0[$h]=$(awk '{print $14 + $15}' "/proc/${relay_pid[$h]}/stat"); done
sleep 2
for h in "${servers[@]}"; do
  d=$(($(awk '{print $14 + $15}' "/proc/${relay_pid[$h]}/stat") - cpu0[$h]))
  ((d <= 4)) || bad "idle relay $h used $d ticks of CPU in 2 s"
done
python3 check.py summary
echo "week: 40 ticks in $((SECONDS - t0)) s, $nfail failed checks"
((nfail == 0)) || exit 1
echo "week: ok"
