#!/bin/bash
# cm-leader end to end on loopback (no root): usage errors; `who` exit 3 with
# no leader; three nodes from one TOML file with flags overriding it; the
# leader's reports reach an HTTP `report-sink` that checks their CM-Auth
# stamp as the CCM does (POST /v1/leader-report; a report stamped with
# another group key is refused, and an unkeyed --ccm warns); the hooks run with their environment;
# `who --members --json`; SIGTERM hands over (on_demoted, on_elected).
source "$(dirname "$0")/lib.inc"
PORT=$((20000 + RANDOM % 30000))
GROUP=239.255.$((RANDOM % 250)).$((RANDOM % 250 + 1)):$PORT
SINK_PORT=$((PORT + 1))
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  [[ -n $KEEP ]] && { echo "kept $T" >&2; return; }
  chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"
}
KEEP=${KEEP:-}
export CM_CONFIG_DIR=$T/etc  # no host configuration or key leaks in
trap cleanup EXIT
# wait_for SECS CMD...: polls CMD every 0.1 s until it succeeds.
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < end)) || return 1; sleep 0.1; done
}

# Usage errors: exit 2, one line.
expect_rc 2 cm-leader
expect_rc 2 cm-leader who
expect_rc 2 cm-leader who --group 10.0.0.1:7400
one_error_line cm-leader
expect_rc 2 cm-leader run --group 239.1.1.1:7400 --address 127.0.0.1 --timers fast
one_error_line cm-leader
expect_rc 2 cm-leader run --config "$T/missing.toml"

# Nobody leads yet: who exits 3 and prints a null leader.
expect_rc 3 cm-leader who --group "$GROUP" --address 127.0.0.1 --timeout 1 --json
grep -qx '{"leader":null}' "$T/out" || fail "who --json without a leader: $(cat "$T/out")"

cm-pack keygen --group -o "$T/group.key" >/dev/null || fail "keygen --group"
cm-pack keygen --group -o "$T/other.key" >/dev/null || fail "keygen --group (other)"
expect_rc 2 cm-leader run --group 239.1.1.1:7400 --address 127.0.0.1 --ccm 127.0.0.1:7701:3
one_error_line cm-leader
cm-leader report-sink --listen 127.0.0.1:$SINK_PORT --key-file "$T/group.key" >"$T/reports" 2>"$T/sink.err" &
PIDS+=($!)

# One configuration for all; node 3 overrides the priority by flag.
cat >"$T/segment.toml" <<TOML
group = "$GROUP"
address = "127.0.0.1"
priority = 10
heartbeat = 0.2
segment = "loopseg"
location = "Europe/Paris"
ccm = "http://127.0.0.1:$SINK_PORT"
key_file = "$T/group.key"
on_elected = "env | grep ^CM_LEADER_ | sort > $T/elected.\$CM_LEADER_SELF"
on_demoted = "env | grep ^CM_LEADER_ | sort > $T/demoted.\$CM_LEADER_SELF"
on_member_change = "echo \"\$CM_LEADER_SELF \$CM_LEADER_STATE \$CM_LEADER_MEMBERS\" >> $T/members"
TOML
start() {  # id [flags]
  local id=$1; shift
  cm-leader run --config "$T/segment.toml" --id "$id" --name "web$id" --json "$@" >"$T/node$id.json" 2>"$T/node$id.err" &
  PIDS+=($!)
  eval "PID$id=$!"
}
start 1
start 2 --priority 20
start 3 --priority 200

# Node 3 leads (the flag beat the file's priority 10) and runs on_elected.
wait_for 10 test -s "$T/elected.3" || fail "node 3 never ran on_elected: $(cat "$T"/node*.json)"
grep -qx 'CM_LEADER_STATE=leader' "$T/elected.3" || fail "on_elected env: $(cat "$T/elected.3")"
grep -qx 'CM_LEADER_ID=3' "$T/elected.3" || fail "on_elected env: $(cat "$T/elected.3")"
grep -qx "CM_LEADER_ADDR=127.0.0.1:$PORT" "$T/elected.3" || fail "on_elected env: $(cat "$T/elected.3")"
grep -qx 'CM_LEADER_SEGMENT=loopseg' "$T/elected.3" || fail "on_elected env: $(cat "$T/elected.3")"
grep -q '^CM_LEADER_EPOCH=[1-9]' "$T/elected.3" || fail "on_elected env: $(cat "$T/elected.3")"
[[ ! -e $T/elected.1 && ! -e $T/elected.2 ]] || fail "a weaker node was elected"

# The membership converges; on_member_change sees all three.
has_all() { grep -q '^3 leader 1 2 3$' "$T/members" 2>/dev/null; }
wait_for 10 has_all || fail "on_member_change never saw 1 2 3: $(cat "$T/members" 2>/dev/null)"

# The CCM endpoint got segment reports, the last with all three members.
report_ok() {
  tail -n 1 "$T/reports" | grep -q '"type":"segment-report","segment":"loopseg","leader":3' &&
    tail -n 1 "$T/reports" | grep -q '"location":"Europe/Paris"' &&
    [[ $(tail -n 1 "$T/reports" | grep -o '"id":[0-9]*' | sort | tr '\n' ' ') == '"id":1 "id":2 "id":3 ' ]]
}
wait_for 10 report_ok || fail "reports: $(cat "$T/reports")"

# who from outside the segment: the leader, its members, as JSON.
expect_rc 0 cm-leader who --group "$GROUP" --address 127.0.0.1 --members --json
grep -q '"leader":3,"address":"127.0.0.1:'"$PORT"'"' "$T/out" || fail "who --json: $(cat "$T/out")"
grep -q '"members":\[1,2,3\]' "$T/out" || fail "who --members --json: $(cat "$T/out")"
expect_rc 0 cm-leader who --group "$GROUP" --address 127.0.0.1
grep -q '^3 127.0.0.1:'"$PORT"' epoch [1-9]' "$T/out" || fail "who: $(cat "$T/out")"

# --json: stdout has only JSON lines (hook output goes to stderr).
grep -qv '^{' "$T/node3.json" && fail "non-JSON on stdout: $(cat "$T/node3.json")"
grep -q '"event":"state","state":"leader","self":3,"leader":3' "$T/node3.json" || fail "no leader event: $(cat "$T/node3.json")"
# The leader's events name its members (their registrations' names).
grep -q '"member_names":\[{"id":1,"name":"web1"},{"id":2,"name":"web2"},{"id":3,"name":"web3"}\]' "$T/node3.json" ||
  fail "no member names in the leader's events: $(tail -n 2 "$T/node3.json")"

# SIGTERM: node 3 resigns and runs on_demoted; node 2 takes over at once.
kill -TERM "$PID3"
wait "$PID3" || fail "node 3 exited $? on SIGTERM"
wait_for 5 test -s "$T/demoted.3" || fail "node 3 never ran on_demoted"
grep -qx 'CM_LEADER_STATE=unknown' "$T/demoted.3" || fail "on_demoted env: $(cat "$T/demoted.3")"
wait_for 5 test -s "$T/elected.2" || fail "node 2 did not take over: $(cat "$T/node2.json")"
wait_for 10 grep -q '"leader":2' "$T/reports" || fail "no report from the new leader: $(tail -n 2 "$T/reports")"

# Everybody gone: who exits 3 again.
kill -TERM "$PID1" "$PID2"
wait "$PID1" "$PID2" || true
expect_rc 3 cm-leader who --group "$GROUP" --address 127.0.0.1 --timeout 1
grep -q refused "$T/sink.err" && fail "the sink refused a genuine report: $(cat "$T/sink.err")"

# A leader keyed with another group key: its reports are refused (401), it
# says so once, and nothing reaches the sink's output.
lines=$(wc -l <"$T/reports")
GROUP2=239.255.$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((PORT + 2))
cm-leader run --group "$GROUP2" --address 127.0.0.1 --id 7 --static-leader 7 --segment other --heartbeat 0.2 \
  --key-file "$T/other.key" --ccm "127.0.0.1:$SINK_PORT" >"$T/node7.out" 2>"$T/node7.err" &
PIDS+=($!)
PID7=$!
wait_for 10 grep -q 'segment report refused by the CCM: .*401' "$T/node7.err" || fail "node 7: $(cat "$T/node7.err")"
grep -q 'refused a report from 127.0.0.1: unauthenticated: CM-Auth tag does not verify' "$T/sink.err" ||
  fail "sink: $(cat "$T/sink.err")"
[[ $(wc -l <"$T/reports") == "$lines" ]] || fail "a wrongly keyed report was printed: $(tail -n 1 "$T/reports")"
kill -TERM "$PID7"; wait "$PID7" || true

# Unkeyed with --ccm: one warning at start, and no report is sent.
cm-leader run --group "$GROUP2" --address 127.0.0.1 --id 8 --static-leader 8 --segment other --heartbeat 0.2 \
  --ccm "127.0.0.1:$SINK_PORT" >"$T/node8.out" 2>"$T/node8.err" &
PIDS+=($!)
PID8=$!
wait_for 5 grep -q -- '--ccm without a group key' "$T/node8.err" || fail "node 8: $(cat "$T/node8.err")"
sleep 1
kill -TERM "$PID8"; wait "$PID8" || true
[[ $(grep -c -- '--ccm without a group key' "$T/node8.err") == 1 ]] || fail "node 8 warned more than once"
[[ $(wc -l <"$T/reports") == "$lines" ]] || fail "an unkeyed report was printed: $(tail -n 1 "$T/reports")"
echo "ok: cm-leader cli"
