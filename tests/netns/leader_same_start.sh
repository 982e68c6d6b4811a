#!/bin/bash
# Five hosts started at the same instant with the same configuration (equal
# admin priority): exactly one leader, the strongest by (priority, id), and
# every host follows it.
set -euo pipefail
source "$(dirname "$0")/bed.inc"
bed_require_root
source "$(dirname "$0")/leader_lib.inc"
leader_bed_five
cat >"$WORK/segment.toml" <<TOML
group = "$GROUP"
priority = 100
segment = "same"
TOML
# Every host waits on a shared lock the test holds, so all five start together.
exec 9>"$WORK/gate"
flock -x 9
for h in "${HOSTS[@]}"; do
  bed_bg "$h" flock -s "$WORK/gate" "$LEADER_BIN" run --config "$WORK/segment.toml" --json \
    >"$WORK/$h.json" 2>"$WORK/$h.err"
done
sleep 0.5
flock -u 9
exec 9>&-

# The strongest: highest priority as each host reports it, then highest id.
strongest() {
  local h best="" bp=-1 bi=0 p i
  for h in "${HOSTS[@]}"; do
    p=$(tail -n 1 "$WORK/$h.json" | sed -n 's/.*"priority":\([0-9]*\).*/\1/p')
    i=$(ip_id "$(leader_addr_of "$h")")
    [[ -n $p ]] || continue
    if ((p > bp || (p == bp && i > bi))); then best=$h; bp=$p; bi=$i; fi
  done
  echo "$best"
}
end=$((SECONDS + 15))
while ((SECONDS < end)) && [[ $(count_leaders) != 1 ]]; do sleep 0.2; done
want=$(strongest)
[[ -n $want ]] || { echo "FAIL: no host reported its priority" >&2; exit 1; }
wait_agreed "$want" 10
echo "ok: $want, the strongest, leads alone; all follow"
