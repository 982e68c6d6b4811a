#!/bin/bash
# cm-leader on five hosts: the strongest leads; kill -9 of the leader hands
# over to the next; SIGSTOP for 2 s and resume ends with one leader again.
set -euo pipefail
source "$(dirname "$0")/bed.inc"
bed_require_root
source "$(dirname "$0")/leader_lib.inc"
leader_bed_five
leader_start_five
H1=$(ip_id 198.18.0.1); H2=$(ip_id 198.18.0.2)

wait_leader h5 "$H1" 15
wait_sole_leader h1 10
echo "ok: h1 leads"

# SIGSTOP the leader for 2 s (less than the dead interval): nobody takes over
# for long, and h1 leads alone afterwards.
kill -STOP "$PID_h1"; sleep 2; kill -CONT "$PID_h1"
wait_sole_leader h1 10
echo "ok: h1 leads after SIGSTOP/SIGCONT"

# kill -9 the leader: h2 takes over.
kill -KILL "$PID_h1"
HOSTS=(h2 h3 h4 h5)
wait_leader h5 "$H2" 10
wait_sole_leader h2 10
echo "ok: h2 leads after kill -9 of h1"
