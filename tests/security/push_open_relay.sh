#!/usr/bin/env bash
# The attack that deployed an outsider's content: a relay started as README
# shows it, then two curl POSTs (/v1/fetch pointing at the attacker's file
# server, /v1/expect planting a spool file). Both are refused (401) with a log
# line, the live tree and the spool stay empty, and 1,000 bogus orders leave
# the relay's thread count and open files where they were.
source "$(dirname "$0")/../cli/lib.inc"
base=$((20000 + RANDOM % 20000))
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT

cm-pack keygen -o ccm.key >/dev/null
cm-pack keygen -o evil.key >/dev/null
cm-pack keygen --group -o group.key >/dev/null
mkdir -p evil root spool
echo "owned" >evil/index.html
cm-pack replicate evil --job evil --sign-key evil.key -o evil.cma >/dev/null
cm-push relay --name web1 --listen "127.0.0.1:$base" --spool spool --root root --iface 127.0.0.1 \
  --pub-key ccm.key.pub --group-key group.key --cm-apply "$CM_BIN/cm-apply" --cm-mcast "$CM_BIN/cm-mcast" \
  2>relay.log &
pid=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$base/v1/status" >/dev/null 2>&1 && break; sleep 0.1; done

serial=$(cm-pack inspect evil.cma --json | sed -n 's/.*"serial":\([0-9]*\).*/\1/p' | head -1)
order="{\"serial\":$serial,\"job\":\"evil\",\"size\":$(stat -c %s evil.cma),\"source\":\"http://127.0.0.1:9\",\"ccm\":\"http://127.0.0.1:9\",\"relay\":\"web1\",\"site\":\"a\",\"members\":[]}"
code=$(curl -s -o body -w '%{http_code}' -H 'Content-Type: application/json' -d "$order" "http://127.0.0.1:$base/v1/fetch")
[[ $code == 401 ]] || fail "unsigned /v1/fetch answered $code: $(cat body)"
grep -q unauthenticated body || fail "refusal does not say why: $(cat body)"
expect="{\"serial\":$serial,\"job\":\"evil\",\"size\":1,\"name\":\"web1\",\"leader\":\"x\",\"leader_url\":\"http://127.0.0.1:9\",\"group\":\"\"}"
code=$(curl -s -o body -w '%{http_code}' -H 'Content-Type: application/json' -d "$expect" "http://127.0.0.1:$base/v1/expect")
[[ $code == 401 ]] || fail "unsigned /v1/expect answered $code: $(cat body)"
# A made-up header is no better.
code=$(curl -s -o body -w '%{http_code}' -H 'CM-Auth: v=1 alg=ed25519 from=ccm to=web1 exp=9999999999 nonce=00000000000000000000000000000000 tag=AAAA' \
  -d "$order" "http://127.0.0.1:$base/v1/fetch")
[[ $code == 401 ]] || fail "forged CM-Auth answered $code"
grep -q "refused POST /v1/fetch from 127.0.0.1" relay.log || fail "no log line for the refusal: $(cat relay.log)"

# 1,000 bogus orders: no thread or file outlives them.
threads0=$(ls /proc/$pid/task | wc -l)
fds0=$(ls /proc/$pid/fd | wc -l)
for i in $(seq 1 1000); do echo "url = \"http://127.0.0.1:$base/v1/fetch\""; echo "data = \"$order\""; echo 'header = "Content-Type: application/json"'; echo "output = /dev/null"; done >curl.cfg
curl -s -K curl.cfg >/dev/null || true
sleep 0.5
threads1=$(ls /proc/$pid/task | wc -l)
fds1=$(ls /proc/$pid/fd | wc -l)
(( threads1 <= threads0 + 2 )) || fail "threads grew from $threads0 to $threads1 after 1,000 bogus orders"
(( fds1 <= fds0 + 2 )) || fail "open files grew from $fds0 to $fds1 after 1,000 bogus orders"

[[ -z $(ls -A root) ]] || fail "the live tree changed: $(ls -A root)"
[[ -z $(find spool -type f) ]] || fail "the spool changed: $(find spool -type f)"
kill -0 "$pid" || fail "the relay died"
echo ok
