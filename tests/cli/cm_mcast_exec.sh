#!/usr/bin/env bash
# cm-mcast recv --exec runs its command without a shell: a received file
# whose name holds $(...), backquotes and quotes is passed as one argument
# and nothing in the name is ever run (the old --exec built a shell command,
# where {} inside double quotes ran $(...) from a file name).
set -u
B=$(cd "${CM_BIN:-build/bin}" && pwd)/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-ex.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
G="239.$((RANDOM % 200 + 20)).$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 30000))"
cd "$T" || exit 1
NAME='a$(touch pwned1)`touch pwned2`'"'"'"x".bin'
mkdir src dst
head -c 100000 /dev/urandom > "src/$NAME"
for tmpl in 'echo {}' 'echo "{}"' "echo '{}'"; do
  rm -f dst/* out
  "$B" recv --group "$G" --id r1 -o dst --timeout 10 --exec "$tmpl" > /dev/null 2> out & PIDS+=($!)
  RPID=$!
  sleep 0.3
  "$B" send "src/$NAME" --group "$G" --receivers r1 > /dev/null 2>&1 || fail "send: $tmpl"
  wait "$RPID" || fail "recv failed with --exec $tmpl: $(cat out)"
  cmp -s "src/$NAME" "dst/$NAME" || fail "file not received"
  grep -qxF "dst/$NAME" out || fail "--exec $tmpl did not get the name as one argument: $(cat out)"
  [[ ! -e pwned1 && ! -e pwned2 ]] || fail "--exec $tmpl ran a command from the file name"
done
# A malformed --exec is a usage error before anything starts.
"$B" recv --group "$G" -o dst --exec "echo 'unterminated" > /dev/null 2>&1
[[ $? -eq 2 ]] || fail "unterminated quote in --exec: want exit 2"
echo ok
