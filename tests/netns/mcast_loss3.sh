#!/usr/bin/env bash
# cm-mcast in network namespaces: 3 receivers, 10% random loss on each, no
# other fault. Every receiver gets the exact file, the sender exits 0, the
# loss was repaired by parity (repair frames sent) and no block had to go by
# unicast. Skips (77) when not root.
set -u
source "$(dirname "$0")/bed.inc"
bed_require_root
B=${CM_BIN:-build/bin}/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-l3.XXXXXX)
trap 'bed_cleanup; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; tail -3 "$T/s.log" >&2; exit 1; }
bed_init
trap 'bed_cleanup; rm -rf "$T"' EXIT
bed_host s 198.18.0.1
for i in 1 2 3; do bed_host r$i 198.18.0.$((10 + i)); bed_loss r$i 10; done
bed_rate s 100mbit
head -c 30000000 /dev/urandom > "$T/f.bin"
G=239.3.$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 20000))
PIDS=()
for i in 1 2 3; do
  mkdir -p "$T/r$i"
  bed_bg r$i "$B" recv --group "$G" --iface 198.18.0.$((10 + i)) --id r$i -o "$T/r$i" --timeout 30 -q > /dev/null
  PIDS+=("$BED_PID")
done
sleep 0.5
timeout 120 ip netns exec "$(bed_ns s)" "$B" send "$T/f.bin" --group "$G" --iface 198.18.0.1 --rate 95M \
  --receivers r1,r2,r3 --json > "$T/s.log" 2>&1
rc=$?
[[ $rc -eq 0 ]] || fail "sender exit $rc"
for i in 1 2 3; do cmp -s "$T/f.bin" "$T/r$i/f.bin" || fail "r$i copy differs"; done
summary=$(grep '"outcome"' "$T/s.log" | tail -1)
[[ $summary == *'"outcome":"all"'* ]] || fail "outcome: $summary"
[[ $summary =~ \"repair_frames\":([0-9]+) ]] && (( BASH_REMATCH[1] > 0 )) || fail "no repair frames: the loss did not bite"
[[ $summary == *'"unicast_frames":0'* ]] || fail "blocks went by unicast: $summary"
echo PASS
