#!/usr/bin/env bash
# One server's relay is down when the push starts and comes back a moment
# later, within its leader's retry window (--member-retry, 5 s by default):
# the leader reaches it on a retry, it still gets the content (joining the
# site multicast under way, or from the leader over HTTP), and all twelve
# servers commit. --on-fail does not run.
set -euo pipefail
source "$(dirname "$0")/bed.inc"
source "$(dirname "$0")/push_lib.inc"
push_setup
late=s4c
eval "kill -KILL \$PID_$late"
sleep 1

bed_bg ccm "$BIN/cm-push" "$WORK/a.cma" --to "$WORK/sites.toml" --state "$WORK/ccm" \
  --on-fail "echo \$CM_SERVER \$CM_SITE >> $WORK/on-fail.txt" \
  --report "$WORK/report.json" --json >"$WORK/events.json" 2>"$WORK/push.err"
push_pid=$BED_PID
# Back once its leader has tried it at least once (the leader's order is the
# last of the chain; give it a moment past that).
for ((i = 0; i < 100; i++)); do
  grep -q '"relay":"s4a".*"event":"order"' "$WORK/events.json" 2>/dev/null && break
  sleep 0.1
done
sleep 1.5
push_relay "$late"
rc=0
wait "$push_pid" || rc=$?
[[ $rc -eq 0 ]] || { echo "FAIL: cm-push exit $rc, want 0" >&2; cat "$WORK/push.err" >&2; tail -n 5 "$WORK/s4a.relay.log" >&2; exit 1; }
for h in "${PUSH_SERVERS[@]}"; do push_check_live "$h"; done
[[ ! -s $WORK/on-fail.txt ]] || { echo "FAIL: --on-fail ran: $(cat "$WORK/on-fail.txt")" >&2; exit 1; }
echo "push_server_late: ok"
