#!/usr/bin/env bash
# cm-mcast in network namespaces: a backup (--backup-for) raises an alert,
# and does not take over, when receivers NACK to it while the primary lives.
# r1 stops hearing the primary (nftables drops its UDP at r1) for a while:
# r1's reports go to the group for any backup; the backup, which still hears
# the primary's announcements, answers "wait" and alerts. Once r1 hears the
# primary again everyone completes, and the primary exits 0. Skips (77)
# when not root.
set -u
source "$(dirname "$0")/bed.inc"
bed_require_root
B=${CM_BIN:-build/bin}/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-al.XXXXXX)
trap 'bed_cleanup; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log; do echo "== $f" >&2; tail -5 "$f" >&2; done; exit 1; }
bed_init
trap 'bed_cleanup; rm -rf "$T"' EXIT
bed_host p 198.18.0.1
bed_host b 198.18.0.2
for i in 1 2; do bed_host r$i 198.18.0.$((10 + i)); done
bed_rate p 50mbit
head -c 25000000 /dev/urandom > "$T/f.bin"
G=239.5.$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 20000))
declare -A PID
for i in 1 2; do
  mkdir -p "$T/r$i"
  bed_bg r$i "$B" recv --group "$G" --iface 198.18.0.$((10 + i)) --id r$i -o "$T/r$i" --timeout 30 --json \
    > "$T/r$i.log" 2>&1
  PID[r$i]=$BED_PID
done
bed_bg b "$B" send "$T/f.bin" --group "$G" --iface 198.18.0.2 --id bk --backup-for prim --rate 45M \
  --receivers r1,r2 --json > "$T/b.log" 2>&1
BPID=$BED_PID
sleep 0.5
bed_bg p "$B" send "$T/f.bin" --group "$G" --iface 198.18.0.1 --id prim --rate 45M --receivers r1,r2 --json \
  > "$T/p.log" 2>&1
PPID_=$BED_PID
wait_until() {  # SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do (( SECONDS > deadline )) && fail "timed out waiting for: $what"; sleep 0.05; done
}
blocks_at_least() { local m="$T/$1/.f.bin.tmp.cm-part.map"; [[ -f $m ]] && (( $(stat -c %s "$m") >= 20 + 16 * $2 )); }
wait_until 20 "r1 receiving" blocks_at_least r1 5
# r1 stops hearing the primary (its UDP only: r1 still reaches the group).
bed_exec r1 nft -f - <<NFT
table inet cmdeaf {
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr 198.18.0.1 meta l4proto udp drop
  }
}
NFT
wait_until 10 "the backup's alert" grep -q '"event":"primary_alive_nack".*"receiver":"r1","primary":"prim".*"alert":true' "$T/b.log"
bed_exec r1 nft delete table inet cmdeaf
deadline=$((SECONDS + 40))
while kill -0 "$PPID_" 2>/dev/null; do (( SECONDS > deadline )) && fail "the primary still running"; sleep 0.1; done
wait "$PPID_"; rc=$?
[[ $rc -eq 0 ]] || fail "the primary: exit $rc, want 0"
for i in 1 2; do
  while kill -0 "${PID[r$i]}" 2>/dev/null; do (( SECONDS > deadline )) && fail "r$i still running"; sleep 0.1; done
  wait "${PID[r$i]}"; rc=$?
  [[ $rc -eq 0 ]] || fail "r$i exit $rc"
  cmp -s "$T/f.bin" "$T/r$i/f.bin" || fail "r$i copy differs"
done
while kill -0 "$BPID" 2>/dev/null; do (( SECONDS > deadline )) && fail "the backup still running"; sleep 0.1; done
wait "$BPID"; rc=$?
[[ $rc -eq 0 ]] || fail "the backup: exit $rc"
grep -q '"event":"takeover' "$T/b.log" && fail "the backup took over from a live primary"
grep -q '"event":"primary_finished"' "$T/b.log" || fail "the backup did not see the primary finish"
grep -m2 'alert' "$T/b.log" | cut -c1-110 >&2
echo PASS
