#!/usr/bin/env bash
# `cm-mcast recv --exec` runs its argv without a shell: received files whose
# names hold $(...), backquotes, ';', quotes and a newline are each passed as
# exactly one argument, and nothing in a name ever runs (before, `{}` inside
# double quotes ran `$(...)` from a file name). Daemon mode (--serve), keyed.
set -u
B=$(cd "${CM_BIN:-build/bin}" && pwd)/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-exinj.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
G="239.$((RANDOM % 200 + 20)).$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 30000))"
cd "$T" || exit 1
echo "cm-group-key-v1 $(head -c 32 /dev/urandom | base64 -w0)" > g.key
chmod 600 g.key
mkdir src dst
NAMES=('$(touch pwned1)' 'a;touch pwned2;b' 'q'"'"'"x`touch pwned3`' $'n\ntouch pwned4' '|touch pwned5&')
for n in "${NAMES[@]}"; do head -c 5000 /dev/urandom > "src/$n"; done
# The hook records its arguments, NUL-separated, one record per run.
printf '#!/bin/sh\nprintf "%%s\\0" "$#" "$@" >> %s/argv.log\n' "$T" > rec.sh
chmod +x rec.sh
for tmpl in "$T/rec.sh {}" "$T/rec.sh \"{}\"" "$T/rec.sh '{}'"; do
  rm -f dst/* argv.log
  "$B" recv --group "$G" --id r1 --serve dst --key g.key --exec "$tmpl" > /dev/null 2> recv.err & RPID=$!
  PIDS+=($RPID)
  sleep 0.4
  for n in "${NAMES[@]}"; do
    "$B" send "src/$n" --group "$G" --receivers r1 --key g.key > /dev/null 2>&1 || fail "send '$n' ($tmpl)"
  done
  sleep 0.5
  kill "$RPID"; wait "$RPID" 2>/dev/null
  for n in "${NAMES[@]}"; do cmp -s "src/$n" "dst/$n" || fail "'$n' not received ($tmpl)"; done
  # Expected: for each name, "1" then "dst/NAME" — one argument each, verbatim.
  want=$(for n in "${NAMES[@]}"; do printf '%s\0%s\0' 1 "dst/$n"; done | od -c)
  got=$(od -c < argv.log)
  [[ "$want" == "$got" ]] || fail "--exec $tmpl: arguments differ: $(tr '\0' '|' < argv.log)"
  ls pwned* > /dev/null 2>&1 && fail "--exec $tmpl ran a command from a file name: $(ls pwned*)"
  ls dst/pwned* src/pwned* > /dev/null 2>&1 && fail "--exec $tmpl ran a command from a file name"
done
echo ok
