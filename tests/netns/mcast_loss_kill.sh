#!/usr/bin/env bash
# cm-mcast in network namespaces: a sender and 4 receivers on a bridge, 10%
# loss on two receivers, one receiver killed mid-session. The three live
# receivers get the exact file; the sender reports the dead one failed and
# exits 11 (quorum 3). Skips (77) when not root.
set -u
source "$(dirname "$0")/bed.inc"
bed_require_root
B=${CM_BIN:-build/bin}/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-ns.XXXXXX)
trap 'bed_cleanup; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
bed_init
trap 'bed_cleanup; rm -rf "$T"' EXIT
bed_host s 198.18.0.1
for i in 1 2 3 4; do bed_host r$i 198.18.0.$((10 + i)); done
bed_rate s 100mbit
bed_loss r1 10
bed_loss r2 10
head -c 40000000 /dev/urandom > "$T/f.bin"
G=239.1.$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 20000))
declare -A PID
for i in 1 2 3 4; do
  mkdir -p "$T/r$i"
  bed_bg r$i "$B" recv --group "$G" --iface 198.18.0.$((10 + i)) --id r$i -o "$T/r$i" --timeout 30
  PID[r$i]=$BED_PID
done
sleep 0.5
bed_bg s "$B" send "$T/f.bin" --group "$G" --iface 198.18.0.1 --rate 95M --receivers r1,r2,r3,r4 --quorum 3
SPID=$BED_PID
# Kill r4 once it has started receiving (poll with a deadline).
deadline=$((SECONDS + 20))
until ls -a "$T/r4" | grep -q tmp; do (( SECONDS > deadline )) && fail "r4 never started"; sleep 0.05; done
kill -KILL "${PID[r4]}"
deadline=$((SECONDS + 120))
while kill -0 "$SPID" 2>/dev/null; do (( SECONDS > deadline )) && fail "sender still running"; sleep 0.1; done
wait "$SPID"; rc=$?
[[ $rc -eq 11 ]] || fail "sender exit $rc, want 11 (quorum)"
for i in 1 2 3; do cmp -s "$T/f.bin" "$T/r$i/f.bin" || fail "r$i copy differs"; done
[[ ! -e "$T/r4/f.bin" ]] || fail "killed r4 has a final file"
echo PASS
