#!/usr/bin/env bash
# A relaying leader dies mid-transfer: the leader downstream of it is
# re-parented and resumes from its last verified chunk, the dead leader's site
# continues under its newly elected leader, the dead server is reported
# failed, and everyone else commits (--require 75%).
set -euo pipefail
source "$(dirname "$0")/bed.inc"
source "$(dirname "$0")/push_lib.inc"
bed_require_root
WORK=$(mktemp -d)
push_bed 40mbit
trap 'bed_cleanup; rm -rf "$WORK"' EXIT
push_content 50
push_start_all

rc=0
bed_bg ccm "$BIN/cm-push" "$WORK/a.cma" --to "$WORK/sites.toml" --state "$WORK/ccm" --require 75% \
  --report "$WORK/report.json" --json >"$WORK/events.json" 2>"$WORK/push.err"
push_pid=$BED_PID
# The chain is CCM -> site1 -> site2 -> site3 -> site4 (equal facts: by name).
# Kill site2's leader (relay and cm-leader) once it holds 10 MiB.
victim=s2a
for ((i = 0; i < 600; i++)); do
  part=$(stat -c %s "$WORK/$victim/spool/"*.part 2>/dev/null | head -1 || true)
  [[ -n $part && $part -gt $((10 << 20)) ]] && break
  sleep 0.05
done
[[ -n ${part:-} && $part -gt $((10 << 20)) ]] || { echo "FAIL: $victim never reached 10 MiB" >&2; cat "$WORK/push.err" >&2; exit 1; }
eval "kill -KILL \$PID_$victim \$LPID_$victim"
wait "$push_pid" || rc=$?
[[ $rc -eq 11 ]] || { echo "FAIL: cm-push exit $rc, want 11 (partial)" >&2; cat "$WORK/push.err" >&2; tail -n 5 "$WORK"/*.relay.log >&2; exit 1; }
for h in "${PUSH_SERVERS[@]}"; do
  [[ $h == "$victim" ]] && continue
  push_check_live "$h"
done
grep -q "\"name\":\"$victim\",\"state\":\"failed\"" "$WORK/report.json" ||
  { echo "FAIL: $victim not reported failed" >&2; cat "$WORK/report.json" >&2; exit 1; }
# The site went on under another leader, and site3's leader resumed rather than restarted.
grep -q '"event":"leader-changed".*"site":"site2"' "$WORK/events.json" ||
  { echo "FAIL: no leader change for site2" >&2; exit 1; }
grep -q '"event":"reparent"' "$WORK/events.json" || { echo "FAIL: nobody was re-parented" >&2; exit 1; }
echo "push_relay_killed: ok"
