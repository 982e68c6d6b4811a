#!/bin/bash
# cm-leader on five hosts: the leader's link goes down -> the others elect the
# next strongest; the link comes back -> one leader again (the strongest), and
# every host follows it.
set -euo pipefail
source "$(dirname "$0")/bed.inc"
bed_require_root
source "$(dirname "$0")/leader_lib.inc"
leader_bed_five
leader_start_five
wait_agreed h1 15
echo "ok: h1 leads"

bed_link h1 down
t0=$SECONDS
HOSTS=(h2 h3 h4 h5)
wait_agreed h2 10
echo "ok: h2 leads the rest $((SECONDS - t0)) s after h1's link went down"

leader_link_up h1
HOSTS=(h1 h2 h3 h4 h5)
t0=$SECONDS
wait_agreed h1 15
echo "ok: one leader (h1), followed by all, $((SECONDS - t0)) s after the link came back"
