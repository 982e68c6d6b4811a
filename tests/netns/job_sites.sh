#!/usr/bin/env bash
# Job mode on the multi-site bed (issue 17): 12 relays in 4 sites behind one
# router, site 4's uplink at one eighth of the others. A client opens a job at
# the base, queues an assignment and the commands stage and commit; one relay
# (s2b) is killed mid-transfer and restarted: the base finds it, has it fed
# again and it runs the commands. Then a live stream of CM_JOB_STREAM_SECONDS
# (300) at 2 Mbit/s goes into the same job while every relay appends it. The
# job must end with every relay's live tree the release, every relay's copy
# of the stream the producer's bytes, the notify program told of the end
# (12 of 12), and `job wait` exit 0. Prints the stream's delay from the
# producer to each relay (p50, p99; CM_JOB_DELAY_OUT: also to that file).
set -euo pipefail
source "$(dirname "$0")/bed.inc"
source "$(dirname "$0")/push_lib.inc"
bed_require_root
STREAM_S=${CM_JOB_STREAM_SECONDS:-300}
WORK=$(mktemp -d)
PUSH_NO_LEADER=1                  # job mode needs no site leaders
PUSH_SITE_RATE[4]=5mbit           # one eighth of the others
push_bed 40mbit
WATCH_PID=
trap '[[ -n $WATCH_PID ]] && kill "$WATCH_PID" 2>/dev/null; bed_cleanup; rm -rf "$WORK"' EXIT
push_content 8 >/dev/null
sed -i '/^\[ccm\]/a uplink_mbit = 40' "$WORK/sites.toml"
push_start_all
cat >"$WORK/notify.sh" <<EOF
#!/bin/sh
echo "\$CM_NOTICE \$CM_NODE \$CM_ENTRY \$CM_OK \$CM_TOTAL" >>"$WORK/notices.txt"
EOF
chmod +x "$WORK/notify.sh"
bed_bg ccm "$BIN/cm-push" base --to "$WORK/sites.toml" --state "$WORK/base" --notify "$WORK/notify.sh" \
  >>"$WORK/base.log" 2>&1
for ((i = 0; i < 50; i++)); do
  [[ -s $WORK/base/base.token ]] && bed_exec ccm bash -c "exec 3<>/dev/tcp/198.18.0.10/7700" 2>/dev/null && break
  sleep 0.1
done
J() { bed_exec ccm "$BIN/cm-push" job "$@" --to "$WORK/sites.toml" --state "$WORK/base"; }
C() { bed_exec ccm "$BIN/cm-push" job cmd "$1" --to "$WORK/sites.toml" --state "$WORK/base" -- "${@:2}"; }  # options before --
fail() { echo "FAIL: $*" >&2; tail -n 20 "$WORK/base.log" >&2; exit 1; }

job=$(J open --client ops | head -n 1)
[[ $job == ops-1 ]] || fail "job id $job"
J add "$job" "$WORK/a.cma" >/dev/null
C "$job" stage >/dev/null
C "$job" commit >/dev/null

# Kill s2b once its log holds 2 MiB; start it again 5 s later.
victim=s2b
for ((i = 0; i < 600; i++)); do
  sz=$(stat -c %s "$WORK/$victim/spool/jobs/$job.log" 2>/dev/null || echo 0)
  ((sz > 2 << 20)) && break
  sleep 0.05
done
((sz > 2 << 20)) || fail "$victim never held 2 MiB of the job"
eval "kill -KILL \$PID_$victim"
sleep 5
push_relay "$victim"

# Every relay has the release live before the stream starts (the log is one
# sequence: stream bytes would queue behind the assignment).
all_committed() {
  J status "$job" --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
sys.exit(0 if all(s["entries"][:3] == ["received", "completed", "completed"] for s in j["servers"]) else 1)'
}
for ((i = 0; i < 1200; i++)); do all_committed && break; sleep 0.1; done
all_committed || { J status "$job" >&2; fail "not every relay committed within 120 s"; }
for h in "${PUSH_SERVERS[@]}"; do push_check_live "$h" || fail "$h: live tree"; done

# The live stream: lines of about 1000 bytes, each with the producer's clock,
# 250 a second (2 Mbit/s). The watcher reads every relay's growing copy and
# records each line's delay (one process, 5 ms polls; the namespaces share the
# clock).
cat >"$WORK/produce.py" <<'EOF'
import sys, time
secs = float(sys.argv[1]); out = sys.stdout.buffer; keep = open(sys.argv[2], "wb")
pad = b"x" * 960
n = 0; start = time.time()
while time.time() - start < secs:
    due = start + n / 250.0
    now = time.time()
    if due > now:
        time.sleep(due - now)
    line = b"%09d %.6f " % (n, time.time()) + pad + b"\n"
    out.write(line); out.flush(); keep.write(line)
    n += 1
keep.close()
EOF
cat >"$WORK/watch.py" <<'EOF'
import os, sys, time
files = sys.argv[2:]; out = sys.argv[1]
pos = {f: 0 for f in files}; rest = {f: b"" for f in files}; delays = {f: [] for f in files}
stop = out + ".stop"
while True:
    quiet = True
    for f in files:
        try:
            with open(f, "rb") as fh:
                fh.seek(pos[f]); data = fh.read()
        except FileNotFoundError:
            continue
        if not data:
            continue
        quiet = False
        now = time.time(); pos[f] += len(data); buf = rest[f] + data
        *lines, rest[f] = buf.split(b"\n")
        for l in lines:
            delays[f].append(now - float(l.split(b" ")[1]))
    if quiet and os.path.exists(stop):
        break
    time.sleep(0.005)
with open(out, "w") as o:
    for f, d in delays.items():
        o.write("%s %s\n" % (f, " ".join("%.4f" % x for x in d)))
EOF
files=()
for h in "${PUSH_SERVERS[@]}"; do files+=("$WORK/$h/spool/jobs/$job/4-feed.log"); done
python3 "$WORK/watch.py" "$WORK/delays.txt" "${files[@]}" &
WATCH_PID=$!
bed_exec ccm bash -c "python3 '$WORK/produce.py' $STREAM_S '$WORK/feed.sent' | '$BIN/cm-push' job stream $job --name feed.log \
  --to '$WORK/sites.toml' --state '$WORK/base'" || fail "job stream"
J end "$job" >/dev/null
rc=0
J wait "$job" --timeout 120 >"$WORK/wait.out" || rc=$?
touch "$WORK/delays.txt.stop"
wait "$WATCH_PID" || true
WATCH_PID=
[[ $rc == 0 ]] || { cat "$WORK/wait.out" >&2; fail "job wait exit $rc"; }
for h in "${PUSH_SERVERS[@]}"; do
  cmp -s "$WORK/feed.sent" "$WORK/$h/spool/jobs/$job/4-feed.log" || fail "$h: its copy of the stream differs"
done
for ((i = 0; i < 50; i++)); do grep -q '^finished' "$WORK/notices.txt" 2>/dev/null && break; sleep 0.1; done
grep -q '^finished  0 12 12$' "$WORK/notices.txt" || { cat "$WORK/notices.txt" >&2; fail "no 'finished' notice with 12 of 12"; }
grep -q "^completed $victim 3 " "$WORK/notices.txt" || fail "$victim's commit was not notified"
python3 - "$WORK/delays.txt" "$(wc -l <"$WORK/feed.sent")" <<'EOF' | tee "${CM_JOB_DELAY_OUT:-/dev/null}"
import sys
want = int(sys.argv[2])
rows = [l.split() for l in open(sys.argv[1])]
def pct(d, p):
    d = sorted(d); return d[min(len(d) - 1, int(p * len(d)))]
alld = []
print("stream delay, producer to relay (s): %d lines of ~1 KB at 2 Mbit/s" % want)
print("| relay | lines | p50 | p99 | max |")
print("|---|---|---|---|---|")
for r in rows:
    d = [float(x) for x in r[1:]]
    host = r[0].split("/")[-5]
    assert len(d) == want, (host, len(d), want)
    alld += d
    print("| %s | %d | %.3f | %.3f | %.3f |" % (host, len(d), pct(d, .5), pct(d, .99), max(d)))
print("| all | %d | %.3f | %.3f | %.3f |" % (len(alld), pct(alld, .5), pct(alld, .99), max(alld)))
EOF
echo "job_sites: ok"
