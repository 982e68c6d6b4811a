#!/usr/bin/env bash
# A relaying leader dies mid-transfer: the dead leader's site continues under
# a new leader, the leaders downstream still get the content, the dead server
# is reported failed, and everyone else commits (--require 75%).
set -euo pipefail
source "$(dirname "$0")/bed.inc"
source "$(dirname "$0")/push_lib.inc"
push_setup

rc=0
bed_bg ccm "$BIN/cm-push" "$WORK/a.cma" --to "$WORK/sites.toml" --state "$WORK/ccm" --require 75% \
  --report "$WORK/report.json" --json >"$WORK/events.json" 2>"$WORK/push.err"
push_pid=$BED_PID
# The chain starts CCM -> site1 -> site2 (equal facts: by name), so site1's
# leader relays to site2's. Kill it (relay and cm-leader) once it holds 10 MiB.
# The .part has its full size from the start (the tail is written at its
# offset first): count the blocks written, not the size.
victim=s1a
held() {
  local f
  f=$(ls "$WORK/$victim/spool/"*.part 2>/dev/null | head -1)
  [[ -n $f ]] && stat -c '%b %B' "$f" | awk '{ print $1 * $2 }'
}
for ((i = 0; i < 600; i++)); do
  part=$(held || true)
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
grep -q "\"server\":\"$victim\",\"site\":\"site1\",\"state\":\"failed\"" "$WORK/report.json" ||
  { echo "FAIL: $victim not reported failed" >&2; cat "$WORK/report.json" >&2; exit 1; }
# The site went on under another leader.
grep '"event":"leader-changed"' "$WORK/events.json" | grep -q '"site":"site1"' ||
  { echo "FAIL: no leader change for site1" >&2; exit 1; }
# The leader it fed (site2's) was re-parented and resumed where it stood,
# not from the start.
grep '"event":"reparent"' "$WORK/events.json" | grep '"relay":"s2a"' | grep -q '"resume_at":[1-9]' ||
  { echo "FAIL: s2a not re-parented with its verified bytes kept" >&2; grep -v '"received"' "$WORK/events.json" | head -30 >&2; exit 1; }
echo "push_relay_killed: ok"
