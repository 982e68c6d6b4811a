#!/usr/bin/env bash
# cm-mcast with its defaults (no --rate) in network namespaces: a sender
# behind an 80 Mbit/s tbf, 3 receivers each losing LOSS% of their UDP at
# random (10 %, then 20 %). The rate control must find the link without
# taking random loss for congestion: every copy is exact, the sender exits 0
# with outcome all, no receiver is named slow (random loss is not a slow
# link), under 5 % of the frames go by unicast (blocks past the pass cap at
# 20 % loss on a loaded host may), and the rate it settled at (its last rate
# event) is within 60-110 % of the tbf. Skips (77) when not root.
set -u
source "$(dirname "$0")/bed.inc"
bed_require_root
B=${CM_BIN:-build/bin}/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-dr.XXXXXX)
trap 'bed_cleanup; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; tail -5 "$T/s.log" >&2; exit 1; }
bed_init
trap 'bed_cleanup; rm -rf "$T"' EXIT
bed_host s 198.18.0.1
for i in 1 2 3; do bed_host r$i 198.18.0.$((10 + i)); done
bed_rate s 80mbit
head -c 40000000 /dev/urandom > "$T/f.bin"
for loss in 10 20; do
  for i in 1 2 3; do bed_noloss r$i; bed_loss r$i "$loss"; done
  G=239.4.$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 20000))
  PIDS=()
  for i in 1 2 3; do
    rm -rf "$T/r$i"; mkdir -p "$T/r$i"
    bed_bg r$i "$B" recv --group "$G" --iface 198.18.0.$((10 + i)) --id r$i -o "$T/r$i" --timeout 30 -q > /dev/null
    PIDS+=("$BED_PID")
  done
  sleep 0.5
  t0=$(date +%s.%N)
  timeout 120 ip netns exec "$(bed_ns s)" "$B" send "$T/f.bin" --group "$G" --iface 198.18.0.1 \
    --receivers r1,r2,r3 --json > "$T/s.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  [[ $rc -eq 0 ]] || fail "$loss%: sender exit $rc"
  for i in 1 2 3; do cmp -s "$T/f.bin" "$T/r$i/f.bin" || fail "$loss%: r$i copy differs"; done
  summary=$(grep '"outcome"' "$T/s.log" | tail -1)
  [[ $summary == *'"outcome":"all"'* ]] || fail "$loss%: outcome: $summary"
  grep -q '"event":"receiver_slow"' "$T/s.log" && fail "$loss%: random loss taken for a slow receiver"
  [[ $summary =~ \"unicast_frames\":([0-9]+) ]] && (( BASH_REMATCH[1] * 20 <= 27778 )) ||
    fail "$loss%: over 5% of the frames went by unicast: $summary"
  last=$(grep '"event":"rate"' "$T/s.log" | tail -1 | sed 's/.*"rate_bps":\([0-9]*\).*/\1/')
  [[ -n $last ]] || fail "$loss%: no rate event (the rate never moved from the start)"
  (( last >= 48000000 && last <= 88000000 )) || fail "$loss%: settled at $last bit/s for an 80 Mbit/s link"
  echo "loss $loss%: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f s", b - a }'), last rate $((last / 1000000)) Mbit/s"
done
echo PASS
