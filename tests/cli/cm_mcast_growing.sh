#!/usr/bin/env bash
# cm-mcast on loopback (no root): sending a file that is still being written
# (send FILE --final-size N), as a relay would multicast an assignment to its
# LAN while it still arrives. The session starts with the first bytes, the
# hash follows when the last byte is in, and the receivers get the exact file.
set -u
B=${CM_BIN:-build/bin}/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-grow.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log; do echo "== $f" >&2; tail -5 "$f" >&2; done; exit 1; }
group() { echo "239.$((RANDOM % 200 + 20)).$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 30000))"; }
wait_pid() {  # PID SECONDS -> exit code in WRC
  local pid=$1 deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    (( SECONDS > deadline )) && { kill "$pid"; WRC=timeout; return; }
    sleep 0.05
  done
  wait "$pid"; WRC=$?
}
# Seconds between two JSON events of a log.
event_t() { grep -m1 "\"event\":\"$2\"" "$1" | grep -o '"t":[0-9.]*' | cut -d: -f2; }
head -c 4000000 /dev/urandom > "$T/src.bin"
: > "$T/g.bin"
G=$(group)
for i in 1 2; do
  mkdir -p "$T/r$i"
  $B recv --group "$G" --id r$i -o "$T/r$i" --timeout 20 --json > "$T/r$i.log" 2>&1 & PIDS+=($!)
done
R1=${PIDS[0]}; R2=${PIDS[1]}
sleep 0.3
# The writer: 40 pieces of 100 kB, 50 ms apart (about 2 s).
( for i in $(seq 0 39); do
    dd if="$T/src.bin" of="$T/g.bin" bs=100000 skip=$i seek=$i count=1 conv=notrunc status=none
    sleep 0.05
  done ) &
WPID=$!; PIDS+=($WPID)
$B send "$T/g.bin" --final-size 4000000 --group "$G" --receivers r1,r2 --rate 100M --json > "$T/s.log" 2>&1
rc=$?
[[ $rc -eq 0 ]] || fail "send of a growing file: exit $rc"
wait $WPID
for i in 1 2; do
  wait_pid ${PIDS[$((i-1))]} 10; [[ $WRC == 0 ]] || fail "r$i exit $WRC"
  cmp -s "$T/src.bin" "$T/r$i/g.bin" || fail "r$i copy differs"
done
t0=$(event_t "$T/s.log" session_start); t1=$(event_t "$T/s.log" hash_known); t2=$(event_t "$T/s.log" data_sent)
[[ -n $t0 && -n $t1 && -n $t2 ]] || fail "missing events in the sender's log"
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a > 1.0) }' || fail "the session did not start before the file was complete ($t0, hash $t1)"
awk -v a="$t1" -v b="$t2" 'BEGIN { exit !(b - a < 1.0) }' || fail "the data pass did not follow the writer ($t1, tail $t2)"

# A file that grows past the size it was announced with is not sent as if it were right.
head -c 300000 /dev/urandom > "$T/long.bin"
mkdir -p "$T/r3"
$B recv --group "$G" --id r3 -o "$T/r3" --timeout 6 > /dev/null 2>&1 & PIDS+=($!)
R3=$!
sleep 0.3
$B send "$T/long.bin" --final-size 200000 --group "$G" --receivers r3 --rate 100M > "$T/long.log" 2>&1
rc=$?
[[ $rc -ne 0 ]] || fail "a file longer than --final-size was reported sent"
grep -q 'grew past its announced size' "$T/long.log" || fail "no error about the size: $(cat "$T/long.log")"
[[ ! -e $T/r3/long.bin ]] || fail "r3 committed a file whose hash never came"
$B send "$T/src.bin" "$T/g.bin" --final-size 1 --group "$G" > /dev/null 2>&1; rc=$?
[[ $rc -eq 2 ]] || fail "--final-size with two files: exit $rc, want 2"
echo PASS
exit 0
