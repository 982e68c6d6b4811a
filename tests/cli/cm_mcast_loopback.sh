#!/usr/bin/env bash
# cm-mcast end to end on loopback (no root): multicast on 127.0.0.1, several
# receivers sharing the group port. Random group/port per run.
set -u
B=${CM_BIN:-build/bin}/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-lo.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
group() { echo "239.$((RANDOM % 200 + 20)).$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 30000))"; }
# Waits for a PID with a deadline; prints its exit code.
wait_pid() {
  local pid=$1 deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    (( SECONDS > deadline )) && { kill "$pid"; echo timeout; return; }
    sleep 0.05
  done
  wait "$pid"; echo $?
}
head -c 5000000 /dev/urandom > "$T/a.bin"

# 1. Three receivers get the exact file; exit 0; one line per receiver.
G=$(group)
for i in 1 2 3; do mkdir -p "$T/r$i"; $B recv --group "$G" --id r$i -o "$T/r$i" --timeout 15 > "$T/r$i.out" 2>&1 & PIDS+=($!); done
sleep 0.3
$B send "$T/a.bin" --group "$G" --receivers r1,r2,r3 --rate 300M > "$T/send.out" 2> "$T/send.err"
rc=$?
[[ $rc -eq 0 ]] || { cat "$T/send.err"; fail "send exit $rc, want 0"; }
[[ $(grep -c ' complete$' "$T/send.out") -eq 3 ]] || fail "want 3 complete lines: $(cat "$T/send.out")"
for i in 1 2 3; do
  [[ $(wait_pid "${PIDS[$((i-1))]}" 10) == 0 ]] || fail "receiver r$i did not exit 0"
  cmp -s "$T/a.bin" "$T/r$i/a.bin" || fail "r$i copy differs"
  ls -a "$T/r$i" | grep -q tmp && fail "r$i left a temporary file"
done
PIDS=()

# 2. A receiver already holding the object answers complete at once (no data needed).
G=$(group)
$B recv --group "$G" --id r1 -o "$T/r1" --timeout 15 --json > "$T/r1.json" 2>/dev/null & PIDS+=($!)
sleep 0.3
$B send "$T/a.bin" --group "$G" --receivers r1 --json > "$T/send.json" 2>/dev/null || fail "resend to holder failed"
grep -q '"already_had":true' "$T/r1.json" || fail "holder did not answer from what it had: $(cat "$T/r1.json")"
grep -q '"outcome":"all"' "$T/send.json" || fail "no outcome record"
PIDS=()

# 3. Authenticated session; a receiver without the key cannot take part:
#    the sender ends with quorum (exit 11) and reports that receiver failed.
echo "cm-group-key-v1 $(head -c 32 /dev/urandom | base64 -w0)" > "$T/g.key"
chmod 600 "$T/g.key"
G=$(group)
rm -rf "$T/r1" "$T/r2"; mkdir -p "$T/r1" "$T/r2"
$B recv --group "$G" --id r1 -o "$T/r1" --timeout 8 --key "$T/g.key" > /dev/null 2>&1 & PIDS+=($!)
$B recv --group "$G" --id r2 -o "$T/r2" --timeout 4 > /dev/null 2>&1 & PIDS+=($!)
sleep 0.3
$B send "$T/a.bin" --group "$G" --receivers r1,r2 --quorum 1 --key "$T/g.key" > "$T/send.out" 2> "$T/send.err"
rc=$?
[[ $rc -eq 11 ]] || { cat "$T/send.err"; fail "auth quorum: exit $rc, want 11"; }
cmp -s "$T/a.bin" "$T/r1/a.bin" || fail "keyed receiver lacks the file"
[[ ! -e "$T/r2/a.bin" ]] || fail "unkeyed receiver got the file"
grep -q 'r2 failed' "$T/send.out" || fail "r2 not reported failed"
echo PASS
exit 0
