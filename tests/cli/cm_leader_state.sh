#!/bin/bash
# cm-leader as a daemon on loopback multicast (no root): the configuration
# comes from $CM_CONFIG_DIR/leader.toml by default (flags override it,
# unknown keys are exit 2); --state-file holds the segment's leader for the
# relay (the documented JSON, mode 0644, rewritten on change, removed on a
# clean exit); a CCM that starts after the election still gets the leader's
# report (re-sent until acknowledged); SIGHUP is logged and ignored.
source "$(dirname "$0")/lib.inc"
PORT=$((20000 + RANDOM % 30000))
GROUP=239.255.$((RANDOM % 250)).$((RANDOM % 250 + 1)):$PORT
SINK_PORT=$((PORT + 1))
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  [[ -n ${KEEP:-} ]] && { echo "kept $T" >&2; return; }
  chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"
}
trap cleanup EXIT
wait_for() {  # SECS CMD...: polls CMD every 0.1 s until it succeeds
  local end=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < end)) || return 1; sleep 0.1; done
}
field() { grep -o "\"$2\":[^,}]*" "$1" | head -1 | cut -d: -f2- | tr -d '"'; }

export CM_CONFIG_DIR=$T/etc
mkdir -p "$CM_CONFIG_DIR" "$T/run"
cm-pack keygen --group -o "$CM_CONFIG_DIR/group.key" >/dev/null || fail "keygen --group"

# An unknown key in the default configuration: exit 2, one line naming it.
printf 'group = "%s"\nadress = "127.0.0.1"\n' "$GROUP" >"$CM_CONFIG_DIR/leader.toml"
expect_rc 2 cm-leader run
one_error_line cm-leader
grep -q 'leader.toml:2: .*adress' "$T/err" || fail "unknown key not named: $(cat "$T/err")"
# A key file that does not exist: exit 2, as from every tool.
expect_rc 2 cm-leader run --key-file "$T/no-such.key"
one_error_line cm-leader
expect_rc 2 cm-leader report-sink --listen 127.0.0.1:$SINK_PORT --key-file "$T/no-such.key"
one_error_line cm-leader
# A state file in a directory that does not exist: exit 3 at start.
printf 'group = "%s"\naddress = "127.0.0.1"\n' "$GROUP" >"$CM_CONFIG_DIR/leader.toml"
expect_rc 3 cm-leader run --state-file "$T/nodir/leader.json" --heartbeat 0.2
one_error_line cm-leader

cat >"$CM_CONFIG_DIR/leader.toml" <<TOML
group = "$GROUP"
address = "127.0.0.1"
heartbeat = 0.2
segment = "lyon"
key_file = "$CM_CONFIG_DIR/group.key"
ccm = "127.0.0.1:$SINK_PORT"
state_file = "$T/run/shared.json"
priority = 10
TOML
# The CCM is not up yet. Node 1 is stronger by flag; each has its own state file.
umask 077
cm-leader run --id 1 --priority 200 --state-file "$T/run/one.json" 2>"$T/one.err" & PIDS+=($!); PID1=$!
cm-leader run --id 2 --state-file "$T/run/two.json" 2>"$T/two.err" & PIDS+=($!); PID2=$!
umask 022
leads() { grep -q '"role":"leader"' "$T/run/one.json" 2>/dev/null; }
follows() { grep -q '"role":"member"' "$T/run/two.json" 2>/dev/null; }
wait_for 10 leads || fail "node 1 never wrote role leader: $(cat "$T/run/one.json" 2>/dev/null) $(cat "$T/one.err")"
wait_for 10 follows || fail "node 2 never wrote role member: $(cat "$T/run/two.json" 2>/dev/null)"
[[ ! -e $T/run/shared.json ]] || fail "the TOML state_file was used despite --state-file"
grep -qE '^\{"v":1,"segment":"lyon","self":"127\.0\.0\.1:'"$PORT"'","leader":"127\.0\.0\.1:'"$PORT"'","epoch":[1-9][0-9]*,"committed_seq":0,"role":"leader","updated_unix_ms":[0-9]{13}\}$' \
  "$T/run/one.json" || fail "state file format: $(cat "$T/run/one.json")"
e1=$(field "$T/run/one.json" epoch)
[[ $(field "$T/run/two.json" epoch) == "$e1" ]] || fail "member's epoch differs: $(cat "$T/run/two.json")"
[[ $(field "$T/run/two.json" leader) == "127.0.0.1:$PORT" ]] || fail "member's leader: $(cat "$T/run/two.json")"
[[ $(stat -c %a "$T/run/one.json") == 644 ]] || fail "mode $(stat -c %a "$T/run/one.json") under umask 077"
[[ $(ls -A "$T/run" | wc -l) == 2 ]] || fail "files left in the state directory: $(ls -A "$T/run")"
grep -q 'segment report not taken by the CCM' "$T/one.err" || fail "no word of the unreachable CCM: $(cat "$T/one.err")"

# The CCM comes up after the election: the leader's report still arrives.
sleep 1
cm-leader report-sink --listen 127.0.0.1:$SINK_PORT --key-file "$CM_CONFIG_DIR/group.key" >"$T/reports" 2>"$T/sink.err" &
PIDS+=($!)
wait_for 20 grep -q '"type":"segment-report","segment":"lyon","leader":1' "$T/reports" ||
  fail "the report never reached a CCM that started late: $(cat "$T/one.err")"
wait_for 5 grep -q 'segment reports reach the CCM' "$T/one.err" || fail "no word of the delivery: $(cat "$T/one.err")"
[[ $(grep -c 'segment report not taken by the CCM' "$T/one.err") == 1 ]] ||
  fail "the failure was logged more than once: $(cat "$T/one.err")"

# SIGHUP: logged, ignored; the node keeps leading.
kill -HUP "$PID1"
wait_for 3 grep -q 'SIGHUP ignored' "$T/one.err" || fail "SIGHUP not logged: $(cat "$T/one.err")"
kill -0 "$PID1" 2>/dev/null || fail "SIGHUP killed cm-leader"
grep -q '"role":"leader"' "$T/run/one.json" || fail "node 1 lost the lead after SIGHUP"

# A clean exit removes the leader's state file; node 2 takes over with a
# higher epoch and says so in its own.
kill -TERM "$PID1"
wait "$PID1" || fail "node 1 exited $? on SIGTERM"
[[ ! -e $T/run/one.json ]] || fail "state file left after a clean exit: $(cat "$T/run/one.json")"
takes_over() { grep -q '"role":"leader"' "$T/run/two.json"; }
wait_for 10 takes_over || fail "node 2 never wrote role leader: $(cat "$T/run/two.json")"
(( $(field "$T/run/two.json" epoch) > e1 )) || fail "epoch did not grow: $(cat "$T/run/two.json")"
wait_for 10 grep -q '"leader":2' "$T/reports" || fail "no report from the new leader: $(tail -n 1 "$T/reports")"
kill -TERM "$PID2"; wait "$PID2" || fail "node 2 exited $? on SIGTERM"
[[ -z $(ls -A "$T/run") ]] || fail "files left in the state directory: $(ls -A "$T/run")"
echo "ok: cm-leader state file, late CCM, SIGHUP"
