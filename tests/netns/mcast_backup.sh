#!/usr/bin/env bash
# cm-mcast in network namespaces: a primary sender, a backup (--backup-for)
# on another host and 3 receivers (5% loss on one). The primary is killed
# mid-session; the backup must probe it before taking over, and every
# receiver must end with the exact file. Skips (77) when not root.
set -u
source "$(dirname "$0")/bed.inc"
bed_require_root
B=${CM_BIN:-build/bin}/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-bk.XXXXXX)
trap 'bed_cleanup; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log; do echo "== $f" >&2; tail -5 "$f" >&2; done; exit 1; }
bed_init
trap 'bed_cleanup; rm -rf "$T"' EXIT
bed_host p 198.18.0.1
bed_host b 198.18.0.2
for i in 1 2 3; do bed_host r$i 198.18.0.$((10 + i)); done
bed_rate p 50mbit
bed_rate b 50mbit
bed_loss r1 5
head -c 30000000 /dev/urandom > "$T/f.bin"
G=239.2.$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 20000))
declare -A PID
for i in 1 2 3; do
  mkdir -p "$T/r$i"
  bed_bg r$i "$B" recv --group "$G" --iface 198.18.0.$((10 + i)) --id r$i -o "$T/r$i" --timeout 60 > "$T/r$i.log" 2>&1
  PID[r$i]=$BED_PID
done
bed_bg b "$B" send "$T/f.bin" --group "$G" --iface 198.18.0.2 --id bk --backup-for prim --rate 45M \
  --receivers r1,r2,r3 --json > "$T/b.log" 2>&1
BPID=$BED_PID
sleep 0.5
bed_bg p "$B" send "$T/f.bin" --group "$G" --iface 198.18.0.1 --id prim --rate 45M --receivers r1,r2,r3 > "$T/p.log" 2>&1
PPID_=$BED_PID
# Kill the primary once r2 holds a few MB (poll with a deadline): 27 blocks
# of 184 kB in its partial file's map (20-byte header, 16 bytes a block).
blocks_at_least() { local m="$T/$1/.f.bin.tmp.cm-part.map"; [[ -f $m ]] && (( $(stat -c %s "$m") >= 20 + 16 * $2 )); }
deadline=$((SECONDS + 20))
until blocks_at_least r2 27; do
  (( SECONDS > deadline )) && fail "r2 never started receiving"
  sleep 0.05
done
kill -KILL "$PPID_"
grep -q takeover "$T/b.log" && fail "backup took over while the primary was alive"
deadline=$((SECONDS + 90))
for i in 1 2 3; do
  while kill -0 "${PID[r$i]}" 2>/dev/null; do (( SECONDS > deadline )) && fail "r$i still running"; sleep 0.1; done
  wait "${PID[r$i]}"; rc=$?
  [[ $rc -eq 0 ]] || fail "r$i exit $rc"
  cmp -s "$T/f.bin" "$T/r$i/f.bin" || fail "r$i copy differs"
done
grep -q '"event":"probing_primary".*"primary":"prim"' "$T/b.log" || fail "backup never probed the primary"
grep -n -m1 probing "$T/b.log" | cut -d: -f1 > "$T/probe.line"
grep -n -m1 takeover "$T/b.log" | cut -d: -f1 > "$T/take.line"
[[ -s $T/take.line ]] || fail "backup never took over"
(( $(cat "$T/probe.line") < $(cat "$T/take.line") )) || fail "backup took over before probing"
while kill -0 "$BPID" 2>/dev/null; do (( SECONDS > deadline )) && fail "backup still running"; sleep 0.1; done
grep -q '"outcome":"all"' "$T/b.log" || fail "backup did not report all receivers complete"
grep "\"outcome\"" "$T/b.log" | tail -1 >&2
echo PASS
