#!/usr/bin/env bash
# cm-mcast on loopback (no root): a receiver daemon with a want list
# (recv --serve DIR --want LIST) asks for what DIR lacks; a server
# (cm-mcast serve) sends only that; a file the daemon loses is asked for and
# served again by a sender that stays (send --stay); a want list rewritten
# while the daemon runs is re-read.
set -u
B=${CM_BIN:-build/bin}/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-want.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log; do echo "== $f" >&2; tail -5 "$f" >&2; done; exit 1; }
group() { echo "239.$((RANDOM % 200 + 20)).$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 30000))"; }
wait_for() {  # SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do (( SECONDS > deadline )) && fail "timed out waiting for: $what"; sleep 0.1; done
}
same() { cmp -s "$1" "$2"; }
head -c 3000000 /dev/urandom > "$T/a.bin"
head -c 1000000 /dev/urandom > "$T/b.bin"
head -c 2000000 /dev/urandom > "$T/c.bin"
G=$(group)

# The list format: "HASH SIZE NAME", one per line.
"$B" hash "$T/a.bin" "$T/b.bin" > "$T/want.list" || fail "cm-mcast hash"
[[ $(wc -l < "$T/want.list") -eq 2 ]] || fail "hash: want 2 lines: $(cat "$T/want.list")"
grep -qE '^[0-9a-f]{64} 3000000 a\.bin$' "$T/want.list" || fail "hash line format: $(cat "$T/want.list")"
echo "not-a-hash 12 x" > "$T/bad.list"
"$B" recv --group "$G" --serve "$T" --want "$T/bad.list" > /dev/null 2>&1; rc=$?
[[ $rc -eq 2 ]] || fail "a malformed want list: exit $rc, want 2"
"$B" recv --group "$G" -o "$T" --want "$T/want.list" > /dev/null 2>&1; rc=$?
[[ $rc -eq 2 ]] || fail "--want without --serve: exit $rc, want 2"

# 1. The daemon holds b.bin already: it asks for a.bin only, and the server
#    sends a.bin only.
mkdir -p "$T/d"
cp "$T/b.bin" "$T/d/b.bin"
"$B" recv --group "$G" --id d1 --serve "$T/d" --want "$T/want.list" --want-period 0.3 \
  --exec "sh -c 'echo done \"\$1\" >> $T/exec.txt' sh {}" --json > "$T/d.log" 2>&1 &
DPID=$!; PIDS+=($DPID)
"$B" serve "$T/a.bin" "$T/b.bin" --group "$G" --id srv --rate 300M --json > "$T/srv.log" 2>&1 &
SPID=$!; PIDS+=($SPID)
wait_for 20 "a.bin served to the daemon" same "$T/a.bin" "$T/d/a.bin"
wait_for 5 "exec for a.bin" grep -qx "done $T/d/a.bin" "$T/exec.txt"
grep -q '"event":"want_sent".*"file":"a.bin"' "$T/d.log" || fail "the daemon did not ask for a.bin"
grep -q '"event":"want_sent".*"file":"b.bin"' "$T/d.log" && fail "the daemon asked for b.bin, which it holds"
wait_for 10 "the server's report" grep -q '"file":"a.bin","receiver":"d1","state":"complete"' "$T/srv.log"
grep -q '"event":"session_start".*"file":"b.bin"' "$T/srv.log" && fail "the server sent b.bin, which nobody lacked"
kill $SPID; wait $SPID 2>/dev/null

# 2. A sender that stays: it pushes c.bin to d1, then serves it again when
#    d1 loses it (the list now names c.bin too; rewritten while d1 runs).
"$B" hash "$T/a.bin" "$T/b.bin" "$T/c.bin" > "$T/want.new" && mv "$T/want.new" "$T/want.list"
"$B" send "$T/c.bin" --group "$G" --id stay --receivers d1 --rate 300M --stay --json > "$T/stay.log" 2>&1 &
SPID=$!; PIDS+=($SPID)
wait_for 20 "the push of c.bin" grep -q '"file":"c.bin","outcome":"all"' "$T/stay.log"
same "$T/c.bin" "$T/d/c.bin" || fail "d1's c.bin differs after the push"
kill -0 $SPID 2>/dev/null || fail "send --stay exited after its push"
rm "$T/d/c.bin"
wait_for 20 "c.bin served again after d1 lost it" same "$T/c.bin" "$T/d/c.bin"
grep -q '"event":"want_sent".*"file":"c.bin"' "$T/d.log" || fail "the daemon did not ask for the lost c.bin"
wait_for 10 "the staying sender's report" grep -q '"event":"served".*"file":"c.bin","outcome":"all"' "$T/stay.log"
[[ $(grep -c "^done $T/d/c.bin\$" "$T/exec.txt") -eq 2 ]] || fail "exec for c.bin: want 2 runs: $(cat "$T/exec.txt")"

# 3. Stopping the daemons is their normal end: exit 0.
kill $SPID; wait $SPID; rc=$?
[[ $rc -eq 0 ]] || fail "send --stay stopped by SIGTERM: exit $rc, want 0"
kill $DPID; wait $DPID; rc=$?
[[ $rc -eq 0 ]] || fail "recv --serve stopped by SIGTERM: exit $rc, want 0"
ls -a "$T/d" | grep -q 'cm-part' && fail "the daemon left partial files: $(ls -a "$T/d")"
echo PASS
exit 0
