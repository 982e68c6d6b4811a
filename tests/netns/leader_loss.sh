#!/bin/bash
# cm-leader on five hosts with 20% of incoming UDP dropped on every host: one
# leader (the strongest) is elected and keeps leading: over 10 s it never
# leaves the leader state and nobody else becomes leader.
set -euo pipefail
source "$(dirname "$0")/bed.inc"
bed_require_root
source "$(dirname "$0")/leader_lib.inc"
leader_bed_five 20
leader_start_five
wait_agreed h1 20
echo "ok: h1 leads under 20% loss"

declare -A mark
for h in "${HOSTS[@]}"; do mark[$h]=$(leader_lines "$h"); done
sleep 10
fail=0
if leader_since h1 "${mark[h1]}" | grep -v '"state":"leader"' | grep -q .; then
  echo "FAIL: h1 left the leader state:" >&2; leader_since h1 "${mark[h1]}" >&2; fail=1
fi
for h in h2 h3 h4 h5; do
  if leader_since "$h" "${mark[$h]}" | grep -q '"state":"leader"'; then
    echo "FAIL: $h became leader under loss:" >&2; leader_since "$h" "${mark[$h]}" >&2; fail=1
  fi
done
((fail == 0)) || exit 1
wait_agreed h1 10
echo "ok: h1 led throughout 10 s of 20% loss"
