#!/usr/bin/env bash
# cm-mcast on loopback (no root): the receiver daemon (--serve/--exec), the
# TOML config, and --backup-for (standing by while the primary lives; taking
# over when there is no primary to answer its probe).
set -u
B=${CM_BIN:-build/bin}/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-sv.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
group() { echo "239.$((RANDOM % 200 + 20)).$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 30000))"; }
# Waits for a child PID with a deadline; its exit code in WRC ("timeout"
# when killed). Not in $(...): a subshell cannot wait for our children.
wait_pid() {
  local pid=$1 deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    (( SECONDS > deadline )) && { kill "$pid"; WRC=timeout; return; }
    sleep 0.05
  done
  wait "$pid"; WRC=$?
}
head -c 3000000 /dev/urandom > "$T/a.bin"
head -c 1000000 /dev/urandom > "$T/b.bin"

# 1. The daemon receives every session into DIR and runs --exec once per
#    completed file, with {} replaced by the file's path (no shell: one
#    that wants one runs sh itself and takes the path as "$1").
G=$(group)
mkdir -p "$T/srv"
$B recv --group "$G" --id d1 --serve "$T/srv" --exec "sh -c 'echo done \"\$1\" >> $T/exec.log' sh {}" > "$T/srv.out" 2>&1 &
DPID=$!; PIDS+=($DPID)
sleep 0.3
$B send "$T/a.bin" "$T/b.bin" --group "$G" --receivers d1 --rate 300M > "$T/send.out" 2>&1 || fail "send to daemon: $(cat "$T/send.out")"
cmp -s "$T/a.bin" "$T/srv/a.bin" || fail "daemon lacks a.bin"
cmp -s "$T/b.bin" "$T/srv/b.bin" || fail "daemon lacks b.bin"
deadline=$((SECONDS + 5))
until [[ $(grep -c '^done ' "$T/exec.log" 2>/dev/null) -eq 2 ]]; do (( SECONDS > deadline )) && fail "exec ran $(grep -c . "$T/exec.log" 2>/dev/null) times, want 2"; sleep 0.05; done
grep -qx "done $T/srv/a.bin" "$T/exec.log" || fail "exec did not get a.bin's path: $(cat "$T/exec.log")"
kill -0 $DPID 2>/dev/null || fail "the daemon exited after its sessions"
kill $DPID

# 2. The TOML config supplies group, rate and receivers; flags still win.
G=$(group)
cat > "$T/mcast.toml" <<TOML
group = "$G"
rate = "250M"
receivers = ["c1"]
TOML
mkdir -p "$T/c1"
$B --config "$T/mcast.toml" recv --id c1 -o "$T/c1" --timeout 15 > /dev/null 2>&1 & PIDS+=($!)
RPID=$!
sleep 0.3
$B --config "$T/mcast.toml" send "$T/b.bin" -v > "$T/cfg.out" 2> "$T/cfg.err" || fail "send with config: $(cat "$T/cfg.err")"
grep -q 'sending at 250 Mbit/s' "$T/cfg.err" || fail "config rate not used: $(cat "$T/cfg.err")"
grep -q 'c1 complete' "$T/cfg.out" || fail "config receivers not used: $(cat "$T/cfg.out")"
wait_pid $RPID 10; [[ $WRC == 0 ]] || fail "config receiver did not exit 0"
cmp -s "$T/b.bin" "$T/c1/b.bin" || fail "config receiver copy differs"
$B --config "$T/missing.toml" send "$T/b.bin" > /dev/null 2>&1; rc=$?
[[ $rc -ne 0 ]] || fail "a missing --config file was accepted"

# 3. A backup stands by while its primary lives and ends with the primary's
#    outcome, never taking over.
G=$(group)
rm -rf "$T/r1"; mkdir -p "$T/r1"
$B recv --group "$G" --id r1 -o "$T/r1" --timeout 15 > /dev/null 2>&1 & PIDS+=($!)
$B send "$T/a.bin" --group "$G" --id bk --backup-for prim --receivers r1 --json > "$T/bk.json" 2>/dev/null & PIDS+=($!)
BPID=$!
sleep 0.3
$B send "$T/a.bin" --group "$G" --id prim --receivers r1 --rate 300M > /dev/null 2>&1 || fail "primary failed"
wait_pid $BPID 10; [[ $WRC == 0 ]] || fail "backup did not exit 0 after the primary finished"
grep -q '"event":"primary_finished"' "$T/bk.json" || fail "backup did not see the primary finish"
grep -q takeover "$T/bk.json" && fail "backup took over from a live primary"
cmp -s "$T/a.bin" "$T/r1/a.bin" || fail "r1 copy differs (primary alive)"

# 4. With no primary at all, the backup probes, takes over and serves.
G=$(group)
rm -rf "$T/r1"; mkdir -p "$T/r1"
$B recv --group "$G" --id r1 -o "$T/r1" --timeout 30 > /dev/null 2>&1 & PIDS+=($!)
RPID=$!
$B send "$T/b.bin" --group "$G" --id bk --backup-for nobody --receivers r1 --json > "$T/bk2.json" 2>/dev/null & PIDS+=($!)
BPID=$!
wait_pid $RPID 40
[[ $WRC == 0 ]] || fail "receiver (exit $WRC) not served by the backup: $(tail -3 "$T/bk2.json")"
cmp -s "$T/b.bin" "$T/r1/b.bin" || fail "r1 copy differs (backup)"
[[ $(grep -n -m1 '"event":"probing_primary".*"primary":"nobody"' "$T/bk2.json" | cut -d: -f1) -lt $(grep -n -m1 takeover "$T/bk2.json" | cut -d: -f1) ]] \
  || fail "backup did not probe before taking over"
wait_pid $BPID 10; [[ $WRC == 0 ]] || fail "backup did not exit 0 after serving"
echo PASS
exit 0
