#!/bin/bash
# cm-leader on five hosts, the leader's heartbeats blocked one way (it still
# hears everyone): after a bounded time exactly one node heartbeats as leader
# and every host follows it (no lasting double leader, unlike VRRP); once the
# block is lifted the strongest leads again.
set -euo pipefail
source "$(dirname "$0")/bed.inc"
bed_require_root
source "$(dirname "$0")/leader_lib.inc"
leader_bed_five
leader_start_five
wait_agreed h1 15
echo "ok: h1 leads"

leader_mute h1
t0=$SECONDS
# h1 is muted, so it cannot be followed: h2 must lead alone and everybody,
# h1 included, follow it. Bound: dead interval + vote + one more dead interval
# for h1 to see that members register with h2, plus slack.
wait_agreed h2 20
echo "ok: h2 leads alone $((SECONDS - t0)) s after h1 was muted"
# And it stays so: h1 keeps trying to pre-empt (its claims are lost) but must
# never heartbeat as leader again while muted.
n1=$(leader_lines h1)
sleep 8
if leader_since h1 "$n1" | grep -q '"state":"leader"'; then
  echo "FAIL: muted h1 led again:" >&2; leader_since h1 "$n1" >&2; exit 1
fi
wait_agreed h2 2
echo "ok: still one leader 8 s later"

leader_unmute h1
wait_agreed h1 40
echo "ok: h1 leads again after the block is lifted"
