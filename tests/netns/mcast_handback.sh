#!/usr/bin/env bash
# cm-mcast in network namespaces: the primary is killed mid-session, the
# backup (--backup-for) probes it and takes over, then the primary comes
# back (restarted, same id and file): the backup hands back on hearing its
# announcement, the primary finishes the session (exit 0, all complete), the
# backup ends with the primary's outcome, and every receiver holds the exact
# file. Skips (77) when not root.
set -u
source "$(dirname "$0")/bed.inc"
bed_require_root
B=${CM_BIN:-build/bin}/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-hb.XXXXXX)
trap 'bed_cleanup; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log; do echo "== $f" >&2; tail -5 "$f" >&2; done; exit 1; }
bed_init
trap 'bed_cleanup; rm -rf "$T"' EXIT
bed_host p 198.18.0.1
bed_host b 198.18.0.2
for i in 1 2 3; do bed_host r$i 198.18.0.$((10 + i)); done
bed_rate p 50mbit
bed_rate b 50mbit
bed_loss r1 3
head -c 20000000 /dev/urandom > "$T/f.bin"
G=239.4.$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 20000))
declare -A PID
for i in 1 2 3; do
  mkdir -p "$T/r$i"
  bed_bg r$i "$B" recv --group "$G" --iface 198.18.0.$((10 + i)) --id r$i -o "$T/r$i" --timeout 40 > "$T/r$i.log" 2>&1
  PID[r$i]=$BED_PID
done
bed_bg b "$B" send "$T/f.bin" --group "$G" --iface 198.18.0.2 --id bk --backup-for prim --rate 45M \
  --receivers r1,r2,r3 --json > "$T/b.log" 2>&1
BPID=$BED_PID
sleep 0.5
prim() { bed_bg p "$B" send "$T/f.bin" --group "$G" --iface 198.18.0.1 --id prim --rate 45M --receivers r1,r2,r3 --json; }
prim > "$T/p1.log" 2>&1
P1=$BED_PID
wait_until() {  # SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do (( SECONDS > deadline )) && fail "timed out waiting for: $what"; sleep 0.05; done
}
# Kill the primary once r2 holds a few MB: 20 blocks of 184 kB in its
# partial file's map (a 20-byte header, then 16 bytes per block written).
blocks_at_least() { local m="$T/$1/.f.bin.tmp.cm-part.map"; [[ -f $m ]] && (( $(stat -c %s "$m") >= 20 + 16 * $2 )); }
wait_until 20 "r2 receiving" blocks_at_least r2 20
{ kill -KILL "$P1"; wait "$P1"; } 2>/dev/null
wait_until 15 "the backup's takeover" grep -q '"event":"takeover' "$T/b.log"
grep -q '"event":"probing_primary".*"primary":"prim"' "$T/b.log" || fail "the backup took over without probing"
# The primary returns while the backup serves.
sleep 0.5
prim > "$T/p2.log" 2>&1
P2=$BED_PID
wait_until 10 "the backup's hand-back" grep -q '"event":"handback".*"primary":"prim"' "$T/b.log"
deadline=$((SECONDS + 45))
while kill -0 "$P2" 2>/dev/null; do (( SECONDS > deadline )) && fail "the returned primary still running"; sleep 0.1; done
wait "$P2"; rc=$?
[[ $rc -eq 0 ]] || fail "the returned primary: exit $rc, want 0"
grep -q '"outcome":"all"' "$T/p2.log" || fail "the returned primary did not report all complete"
for i in 1 2 3; do
  while kill -0 "${PID[r$i]}" 2>/dev/null; do (( SECONDS > deadline )) && fail "r$i still running"; sleep 0.1; done
  wait "${PID[r$i]}"; rc=$?
  [[ $rc -eq 0 ]] || fail "r$i exit $rc"
  cmp -s "$T/f.bin" "$T/r$i/f.bin" || fail "r$i copy differs"
done
while kill -0 "$BPID" 2>/dev/null; do (( SECONDS > deadline )) && fail "the backup still running"; sleep 0.1; done
wait "$BPID"; rc=$?
[[ $rc -eq 0 ]] || fail "the backup: exit $rc"
grep -q '"event":"primary_finished"' "$T/b.log" || fail "the backup did not adopt the primary's outcome"
t_take=$(grep -n -m1 '"event":"takeover' "$T/b.log" | cut -d: -f1)
t_back=$(grep -n -m1 '"event":"handback' "$T/b.log" | cut -d: -f1)
(( t_take < t_back )) || fail "hand-back before takeover in the backup's log"
# After the hand-back the backup sent nothing more: its last data events are before it.
grep "takeover\|handback\|primary_finished" "$T/b.log" | cut -c1-100 >&2
echo PASS
