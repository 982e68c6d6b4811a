#!/usr/bin/env bash
# cm-mcast with its defaults (no --rate) in network namespaces: a sender
# behind an 80 Mbit/s tbf, 3 receivers each losing LOSS% of their UDP at
# random (10 %, then 20 %). The rate control must find the link without
# taking random loss for congestion: every copy is exact, the sender exits 0
# with outcome all, no receiver is named slow (random loss is not a slow
# link), under 5 % of the frames go by unicast (blocks past the pass cap at
# 20 % loss on a loaded host may), and the rate it settled at (its mean
# from 1 s until all data was sent) is within 60-110 % of the tbf. Skips (77) when not root.
set -u
source "$(dirname "$0")/bed.inc"
bed_require_root
B=${CM_BIN:-build/bin}/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-dr.XXXXXX)
trap 'bed_cleanup; rm -rf "$T"' EXIT
# On failure: the sender's events but the rate steps (each names its time),
# then the last rate steps.
fail() {
  echo "FAIL: $*" >&2
  grep -v '"event":"rate"' "$T/s.log" | tail -20 >&2
  grep '"event":"rate"' "$T/s.log" | tail -5 >&2
  exit 1
}
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
  # The rate it settled at: the time-weighted mean of its rate from 1 s (past
  # the start-up) until all data was sent. The rate saws around the link
  # (+3-9 % per clear epoch, cut on a queue), so one sample of it (the last
  # rate event) may sit anywhere from 0.75x to 1.25x the link.
  sent=$(grep '"event":"data_sent"' "$T/s.log" | head -1 | sed 's/.*"t":\([0-9.]*\).*/\1/')
  [[ -n $sent ]] || fail "$loss%: no data_sent event"
  mean=$(grep '"event":"rate"' "$T/s.log" | sed 's/.*"t":\([0-9.]*\).*"rate_bps":\([0-9]*\).*/\1 \2/' |
    awk -v from=1 -v to="$sent" '
      { if (NR > 1) span($1); t = $1; r = $2 }
      END { if (NR > 0) span(to); if (w > 0) printf "%d", sum / w }
      function span(u,  a, b) { a = t < from ? from : t; b = u > to ? to : u; if (b > a) { sum += r * (b - a); w += b - a } }')
  [[ -n $mean ]] || fail "$loss%: no rate event after 1 s (the rate never moved from the start-up)"
  (( mean >= 48000000 && mean <= 88000000 )) || fail "$loss%: settled at $mean bit/s (mean from 1 s) for an 80 Mbit/s link"
  echo "loss $loss%: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f s", b - a }'), mean rate from 1 s $((mean / 1000000)) Mbit/s"
done
echo PASS
