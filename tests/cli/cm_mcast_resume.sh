#!/usr/bin/env bash
# cm-mcast on loopback (no root): a receiver killed mid-session resumes from
# its partial file (.NAME.tmp.cm-part + .map) in the next session for the
# same object; a partial file corrupted on disk is caught by the whole-file
# hash (exit 4), removed, and the session after that starts clean.
set -u
B=${CM_BIN:-build/bin}/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-rs.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
group() { echo "239.$((RANDOM % 200 + 20)).$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 30000))"; }
wait_pid() {  # PID SECONDS -> exit code in WRC
  local pid=$1 deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    (( SECONDS > deadline )) && { kill "$pid"; WRC=timeout; return; }
    sleep 0.05
  done
  wait "$pid"; WRC=$?
}
head -c 8000000 /dev/urandom > "$T/a.bin"
mkdir -p "$T/r"
PART="$T/r/.a.bin.tmp.cm-part"

# Interrupted session: slow sender, receiver killed once ~20 blocks are on disk.
kill_midway() {
  local G; G=$(group)
  $B recv --group "$G" --id r1 -o "$T/r" --timeout 20 > /dev/null 2>&1 & PIDS+=($!)
  local rp=$!
  sleep 0.3
  $B send "$T/a.bin" --group "$G" --receivers r1 --rate 16M > /dev/null 2>&1 & PIDS+=($!)
  local sp=$!
  local deadline=$((SECONDS + 20))
  until [[ -f $PART.map ]] && (( $(stat -c %s "$PART.map") > 20 + 20 * 16 )); do
    (( SECONDS > deadline )) && fail "the receiver never wrote 20 blocks"
    sleep 0.05
  done
  kill -9 "$rp" "$sp"
  wait "$rp" "$sp" 2>/dev/null
  [[ -f $PART && -f $PART.map ]] || fail "no partial file left by the killed receiver"
  [[ ! -e $T/r/a.bin ]] || fail "a killed receiver left a final file"
}

# 1. Resume: the second session takes what is on disk and completes.
kill_midway
G=$(group)
$B recv --group "$G" --id r1 -o "$T/r" --timeout 20 --json > "$T/r.json" 2>/dev/null & PIDS+=($!)
RP=$!
sleep 0.3
$B send "$T/a.bin" --group "$G" --receivers r1 --rate 300M > /dev/null 2>&1 || fail "resumed send failed"
wait_pid $RP 10; [[ $WRC == 0 ]] || fail "resumed receiver exit $WRC"
cmp -s "$T/a.bin" "$T/r/a.bin" || fail "resumed copy differs"
[[ $(grep -o '"resumed_bytes":[0-9]*' "$T/r.json" | cut -d: -f2) -gt 2000000 ]] || fail "nothing resumed: $(cat "$T/r.json")"
[[ ! -e $PART && ! -e $PART.map ]] || fail "partial files left after completion"

# 2. A corrupted partial: the hash check fails (exit 4) and the partial goes.
rm -f "$T/r/a.bin"
kill_midway
printf 'X' | dd of="$PART" bs=1 seek=1000 conv=notrunc status=none
G=$(group)
$B recv --group "$G" --id r1 -o "$T/r" --timeout 20 > /dev/null 2>&1 & PIDS+=($!)
RP=$!
sleep 0.3
$B send "$T/a.bin" --group "$G" --receivers r1 --rate 300M > /dev/null 2>&1
wait_pid $RP 10; [[ $WRC == 4 ]] || fail "corrupted resume: receiver exit $WRC, want 4"
[[ ! -e $T/r/a.bin ]] || fail "a corrupted object was renamed into place"
[[ ! -e $PART && ! -e $PART.map ]] || fail "corrupted partial kept"

# 3. The next session starts clean and completes.
G=$(group)
$B recv --group "$G" --id r1 -o "$T/r" --timeout 20 > /dev/null 2>&1 & PIDS+=($!)
RP=$!
sleep 0.3
$B send "$T/a.bin" --group "$G" --receivers r1 --rate 300M > /dev/null 2>&1 || fail "clean send failed"
wait_pid $RP 10; [[ $WRC == 0 ]] || fail "clean receiver exit $WRC"
cmp -s "$T/a.bin" "$T/r/a.bin" || fail "clean copy differs"
echo PASS
exit 0
