#!/usr/bin/env bash
# cm-mcast with its defaults in network namespaces, one receiver behind a
# slow link: the sender behind an 80 Mbit/s tbf, r1 and r2 losing 10 % of
# their UDP at random, r3 behind a 16 Mbit/s tbf (1/5 of the link) that also
# loses 2 % of its TCP (and 10 % of its UDP). r3 must be named slow and
# finished by unicast: every copy exact, exit 0, r1 and r2 complete before
# r3, and each missing block sent to r3 once (its unicast frames at most the
# file's frames plus 2 %: no duplicates queued). The times are printed (the
# benchmark, bench/mcast/run, measures them). Skips (77) when not root.
set -u
source "$(dirname "$0")/bed.inc"
bed_require_root
B=${CM_BIN:-build/bin}/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-su.XXXXXX)
trap 'bed_cleanup; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; tail -5 "$T/s.log" >&2; exit 1; }
bed_init
trap 'bed_cleanup; rm -rf "$T"' EXIT
bed_host s 198.18.0.1
for i in 1 2 3; do bed_host r$i 198.18.0.$((10 + i)); done
bed_rate s 80mbit
bed_loss r1 10
bed_loss r2 10
# r3: the hub's port towards it (the 4th host: v4) is the slow link; its
# input drops UDP and TCP at random.
ip netns exec "$(bed_ns hub)" tc qdisc replace dev v4 root tbf rate 16mbit burst 64kb latency 50ms
ip netns exec "$(bed_ns r3)" nft -f - <<NFT
table inet cmloss {
  chain input {
    type filter hook input priority 0; policy accept;
    meta l4proto udp numgen random mod 100 < 10 drop
    meta l4proto tcp numgen random mod 100 < 2 drop
  }
}
NFT
SIZE=20000000
head -c $SIZE /dev/urandom > "$T/f.bin"
FRAMES=$(( (SIZE + 1439) / 1440 ))
G=239.5.$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 20000))
PIDS=()
for i in 1 2 3; do
  mkdir -p "$T/r$i"
  bed_bg r$i "$B" recv --group "$G" --iface 198.18.0.$((10 + i)) --id r$i -o "$T/r$i" --timeout 60 -q > /dev/null
  PIDS+=("$BED_PID")
done
sleep 0.5
timeout 300 ip netns exec "$(bed_ns s)" "$B" send "$T/f.bin" --group "$G" --iface 198.18.0.1 \
  --receivers r1,r2,r3 --json > "$T/s.log" 2>&1
rc=$?
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
[[ $rc -eq 0 ]] || fail "sender exit $rc"
for i in 1 2 3; do cmp -s "$T/f.bin" "$T/r$i/f.bin" || fail "r$i copy differs"; done
grep -q '"event":"receiver_slow".*"receiver":"r3"' "$T/s.log" || fail "r3 was not named slow"
grep -q '"event":"receiver_slow".*"receiver":"r[12]"' "$T/s.log" && fail "a receiver with random loss only was named slow"
t_of() { grep "\"event\":\"receiver_complete\".*\"receiver\":\"$1\"" "$T/s.log" | sed 's/.*"t":\([0-9.]*\).*/\1/'; }
t1=$(t_of r1) t2=$(t_of r2) t3=$(t_of r3)
[[ -n $t1 && -n $t2 && -n $t3 ]] || fail "missing completions: r1 '$t1' r2 '$t2' r3 '$t3'"
awk -v a="$t1" -v b="$t2" -v c="$t3" 'BEGIN { exit !(a < c && b < c) }' || fail "r1/r2 ($t1 s, $t2 s) waited for r3 ($t3 s)"
uni=$(grep '"event":"receiver_result".*"receiver":"r3"' "$T/s.log" | sed 's/.*"unicast_frames":\([0-9]*\).*/\1/')
[[ -n $uni ]] || fail "no result record for r3"
(( uni <= FRAMES * 102 / 100 )) || fail "r3 got $uni unicast frames for a $FRAMES-frame file: duplicates"
echo "r1 $t1 s, r2 $t2 s, r3 $t3 s; r3 unicast frames $uni of $FRAMES"
echo PASS
