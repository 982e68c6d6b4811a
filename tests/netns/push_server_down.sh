#!/usr/bin/env bash
# One server is down for the whole push: it is retried, reported failed,
# --on-fail runs for it, and the other eleven stage and commit.
set -euo pipefail
source "$(dirname "$0")/bed.inc"
source "$(dirname "$0")/push_lib.inc"
push_setup
down=s3c
eval "kill -KILL \$PID_$down \$LPID_$down"
sleep 1

rc=0
bed_exec ccm "$BIN/cm-push" "$WORK/a.cma" --to "$WORK/sites.toml" --state "$WORK/ccm" --require quorum \
  --on-fail "echo \$CM_SERVER \$CM_SITE >> $WORK/on-fail.txt" \
  --report "$WORK/report.json" --json >"$WORK/events.json" 2>"$WORK/push.err" || rc=$?
[[ $rc -eq 11 ]] || { echo "FAIL: cm-push exit $rc, want 11 (partial)" >&2; cat "$WORK/push.err" >&2; exit 1; }
for h in "${PUSH_SERVERS[@]}"; do
  [[ $h == "$down" ]] && continue
  push_check_live "$h"
done
[[ ! -e $WORK/$down/root/current ]] || { echo "FAIL: $down has a live tree" >&2; exit 1; }
grep -q "\"server\":\"$down\",\"site\":\"site3\",\"state\":\"failed\"" "$WORK/report.json" ||
  { echo "FAIL: $down not reported failed" >&2; cat "$WORK/report.json" >&2; exit 1; }
grep -qx "$down site3" "$WORK/on-fail.txt" || { echo "FAIL: --on-fail did not run for $down" >&2; exit 1; }
echo "push_server_down: ok"
