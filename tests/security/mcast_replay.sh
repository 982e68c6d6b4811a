#!/usr/bin/env bash
# A captured keyed cm-mcast session replayed later is refused
# (docs/protocol/mcast.md, "Replay"). Before wire version 4, a session
# replayed 15 s later delivered the old file, and a `recv --serve --exec`
# daemon replaced its v2 with the replayed v1 and ran --exec.
#   1. a daemon receives v1 (recorded by a tap on the group), then v2;
#   2. v1 replayed at once: the daemon keeps v2 and runs no --exec;
#   3. the daemon restarted, v1 replayed again: still refused (the record in DIR);
#   4. 15 s after the capture, a fresh one-session receiver refuses it.
set -u
B=$(cd "${CM_BIN:-build/bin}" && pwd)/cm-mcast
TAP="$(cd "$(dirname "$0")" && pwd)/mcast_udp_tap.py"
command -v python3 > /dev/null || { echo "SKIP: needs python3"; exit 77; }
T=$(mktemp -d /tmp/cm-mcast-replay.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
G="239.$((RANDOM % 200 + 20)).$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 30000))"
cd "$T" || exit 1
echo "cm-group-key-v1 $(head -c 32 /dev/urandom | base64 -w0)" > g.key
chmod 600 g.key
mkdir v1 v2 dst fresh
head -c 300000 /dev/urandom > v1/a.bin
head -c 300000 /dev/urandom > v2/a.bin
printf '#!/bin/sh\necho "$1" >> %s/exec.log\n' "$T" > hook.sh
chmod +x hook.sh
start_daemon() {
  "$B" recv --group "$G" --id r1 --serve dst --key g.key --exec "$T/hook.sh {}" > /dev/null 2>> daemon.err &
  DPID=$!
  PIDS+=($DPID)
  sleep 0.4
}
start_daemon
python3 "$TAP" record "$G" v1.cap & TAPPID=$!
PIDS+=($TAPPID)
for _ in $(seq 50); do [[ -e v1.cap.ready ]] && break; sleep 0.1; done
"$B" send v1/a.bin --group "$G" --receivers r1 --key g.key > /dev/null 2>&1 || fail "send v1"
kill "$TAPPID"; wait "$TAPPID" 2>/dev/null
CAPTURED=$(date +%s)
cmp -s v1/a.bin dst/a.bin || fail "daemon did not receive v1"
"$B" send v2/a.bin --group "$G" --receivers r1 --key g.key > /dev/null 2>&1 || fail "send v2"
cmp -s v2/a.bin dst/a.bin || fail "daemon did not receive v2"
sleep 0.3
[[ $(wc -l < exec.log) -eq 2 ]] || fail "want 2 --exec runs, got: $(cat exec.log)"
[[ -s v1.cap ]] || fail "the tap recorded nothing"

# 2. Replay v1 at once (inside the freshness window): that run completed here.
N=$(python3 "$TAP" replay "$G" v1.cap) || fail "replay"
sleep 1.5
cmp -s v2/a.bin dst/a.bin || fail "replayed v1 replaced v2 (replayed $N datagrams)"
[[ $(wc -l < exec.log) -eq 2 ]] || fail "--exec ran for the replay: $(cat exec.log)"
grep -q "refused session for a.bin" daemon.err || fail "no refusal logged: $(cat daemon.err)"

# 3. A restarted daemon (the run set is gone): the record in DIR refuses v1.
kill "$DPID"; wait "$DPID" 2>/dev/null
: > daemon.err
start_daemon
python3 "$TAP" replay "$G" v1.cap > /dev/null || fail "replay 2"
sleep 1.5
cmp -s v2/a.bin dst/a.bin || fail "restarted daemon: replayed v1 replaced v2"
[[ $(wc -l < exec.log) -eq 2 ]] || fail "restarted daemon: --exec ran for the replay"
grep -q "started before the session that stored a.bin" daemon.err || fail "restarted: no refusal: $(cat daemon.err)"
[[ -z $(find dst -name '.a.bin*') ]] || fail "restarted: a partial file was left: $(ls -a dst)"
kill "$DPID"; wait "$DPID" 2>/dev/null

# 4. 15 s after the capture, a receiver that never heard v1.
while (( $(date +%s) - CAPTURED < 15 )); do sleep 0.5; done
"$B" recv --group "$G" --id r2 -o fresh --key g.key --timeout 3 > /dev/null 2> fresh.err & RPID=$!
PIDS+=($RPID)
sleep 0.4
python3 "$TAP" replay "$G" v1.cap > /dev/null || fail "replay 3"
wait "$RPID"
rc=$?
[[ $rc -ne 0 ]] || fail "fresh receiver accepted the replay"
[[ -z $(ls -A fresh) ]] || fail "fresh receiver wrote something: $(ls -A fresh)"
grep -q "replay window" fresh.err || fail "fresh receiver: no refusal logged: $(cat fresh.err)"
echo ok
