#!/usr/bin/env bash
# Job mode (docs/protocol/jobs.md) on loopback, no root: a base and two sites
# of two relays; a client opens a job, adds a file and a live stream, ends it
# and waits; every relay's copy of the job's signed log is the base's, byte
# for byte. A second job carries an assignment and the commands stage,
# commit and a hook: every relay's live tree is the release, the hook ran on
# each, the notify program heard every notice. Then bad input: one error
# line, documented codes.
source "$(dirname "$0")/lib.inc"
base=$((20000 + RANDOM % 12000))
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'cleanup; chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT

cm-pack keygen -o ccm.key >/dev/null
cm-pack keygen --group -o group.key >/dev/null
head -c 3000000 /dev/urandom >payload.bin
servers=(a1 a2 b1 b2)
{
  echo "[ccm]"
  echo "listen = \"127.0.0.1:$base\""
  for s in a b; do
    g=$([[ $s == a ]] && echo 1 || echo 2)
    printf '\n[[site]]\nname = "%s"\ngroup = "239.255.78.%d:%d"\n' "$s" "$g" $((base + 10 + g))
    for n in 1 2; do
      i=$(( (g - 1) * 2 + n ))
      printf '[[site.server]]\nname = "%s%d"\naddress = "127.0.0.%d"\nurl = "http://127.0.0.1:%d"\n' "$s" "$n" $((i + 1)) $((base + i))
    done
  done
} >sites.toml
cat >hook.sh <<'HOOK'
#!/bin/sh
echo "$CM_JOB $CM_ENTRY $(cat "$CM_ROOT/current/index.html")" >"$CM_ROOT/../hook-ran"
HOOK
cat >notify.sh <<'NOTE'
#!/bin/sh
echo "$CM_NOTICE $CM_JOB $CM_NODE $CM_ENTRY" >>"$(dirname "$0")/notices.txt"
NOTE
chmod +x hook.sh notify.sh
i=0
for h in "${servers[@]}"; do
  i=$((i + 1))
  mkdir -p "$h/root"
  cm-push relay --name "$h" --listen "127.0.0.1:$((base + i))" --spool "$h/spool" --root "$h/root" \
    --iface 127.0.0.1 --pub-key ccm.key.pub --group-key group.key --job-hook "warm=$PWD/hook.sh" 2>"$h.log" &
  pids+=($!)
done
cm-push base --to sites.toml --state state --sign-key ccm.key --group-key group.key --hook warm \
  --notify "$PWD/notify.sh" 2>base.log &
pids+=($!)
for ((i = 0; i <= 4; i++)); do
  for ((k = 0; k < 50; k++)); do (exec 3<>/dev/tcp/127.0.0.1/$((base + i))) 2>/dev/null && break; sleep 0.1; done
done
for ((k = 0; k < 50; k++)); do [[ -s state/base.token ]] && break; sleep 0.1; done
[[ $(stat -c %a state/base.token) == 600 ]] || fail "the token must be the base's alone: $(stat -c %a state/base.token)"

expect_rc 0 cm-push job open --to sites.toml --state state --client ci
job=$(head -1 out)
[[ $job == ci-1 ]] || fail "job id: $job"
[[ $(tail -n +2 out | tr '\n' ' ') == "a1 a2 b1 b2 " ]] || fail "servers: $(cat out)"
expect_rc 0 cm-push job add "$job" payload.bin --to sites.toml --state state
# A live stream: lines written over two seconds, cut by time (long enough for
# the relays to measure a rate: a job's rates are kept for the next).
(for n in $(seq 1 20); do echo "line $n"; sleep 0.1; done) | cm-push stream - --job "$job" --name feed.log --to sites.toml \
  --state state || fail "job stream"
expect_rc 0 cm-push job end "$job" --to sites.toml --state state
expect_rc 0 cm-push job wait "$job" --to sites.toml --state state --timeout 60 --json
grep -q '"finished":true' out || { cat out >&2; fail "wait did not report the job over"; }
grep -q '"complete":4' out || { cat out >&2; fail "not every server holds the job"; }
grep -q '"ok":4' out || { cat out >&2; fail "not every server received every entry"; }
for h in "${servers[@]}"; do
  cmp -s "state/jobs/$job.log" "$h/spool/jobs/$job.log" || fail "$h: its log differs from the base's"
  cmp -s payload.bin "$h/spool/jobs/$job/1-payload.bin" || fail "$h: the file item differs"
  [[ $(cat "$h/spool/jobs/$job/2-feed.log") == "$(seq 1 20 | sed 's/^/line /')" ]] || fail "$h: the stream differs"
done
# The log carries the file and the stream (records of 256-byte headers around them).
size=$(stat -c %s "state/jobs/$job.log")
(( size > 3000000 + 70 )) || fail "log too small: $size"
expect_rc 0 cm-push job status "$job" --to sites.toml --state state
grep -q "4 of 4 servers" out || { cat out >&2; fail "status"; }
sleep 0.5   # the base retires a job that is over: its status keeps the last transfer state
expect_rc 0 cm-push job status "$job" --to sites.toml --state state --json
[[ $(grep -o '"state":"received"' out | wc -l) == 4 ]] || { cat out >&2; fail "a retired job's status"; }
# The job measured the sites' upload rates; the base keeps them for the next
# jobs' objects (docs/protocol/jobs.md, "Rates kept between jobs").
for ((k = 0; k < 100; k++)); do [[ -s state/rates.json ]] && break; sleep 0.1; done
python3 -c 'import json; r=json.load(open("state/rates.json"))["sites"]; assert set(r) <= {"a","b"} and r and all(v > 0 for v in r.values()), r' \
  || fail "rates kept: $(cat state/rates.json 2>&1)"

# Content and commands: an assignment, then stage, commit and a hook, run by
# every relay in order on its own root.
mkdir -p tree && echo "release one" >tree/index.html && head -c 200000 /dev/urandom >tree/blob.bin
cm-pack -q replicate tree --job rel1 --serial 1 --sign-key ccm.key -o rel1.cma || fail "cm-pack"
expect_rc 0 cm-push job open --to sites.toml --state state --client ci
job2=$(head -1 out)
grep -aq '"up_bps":[1-9]' "state/jobs/$job2.log" || fail "the next job's object carries the kept rates"
expect_rc 0 cm-push job add "$job2" rel1.cma --to sites.toml --state state --json
grep -q '"kind":"assignment"' out || fail "an assignment is queued as one: $(cat out)"
expect_rc 0 cm-push job cmd "$job2" --to sites.toml --state state -- stage
expect_rc 0 cm-push job cmd "$job2" --to sites.toml --state state -- commit
expect_rc 0 cm-push job cmd "$job2" --to sites.toml --state state -- hook warm
expect_rc 2 cm-push job cmd "$job2" --to sites.toml --state state -- hook not-configured
one_error_line cm-push
expect_rc 2 cm-push job cmd "$job2" --to sites.toml --state state -- reboot
one_error_line cm-push
expect_rc 0 cm-push job end "$job2" --to sites.toml --state state
expect_rc 0 cm-push job wait "$job2" --to sites.toml --state state --timeout 60
grep -q "(over): 4 of 4 servers finished every entry;" out || { cat out >&2; fail "job 2 status"; }
for h in "${servers[@]}"; do
  cmp -s tree/index.html "$h/root/current/index.html" || fail "$h: the release is not live"
  cmp -s tree/blob.bin "$h/root/current/blob.bin" || fail "$h: blob"
  [[ $(cat "$h/hook-ran") == "$job2 4 release one" ]] || fail "$h: the hook: $(cat "$h/hook-ran" 2>&1)"
done
for ((k = 0; k < 150; k++)); do grep -q "^finished $job2" notices.txt 2>/dev/null && break; sleep 0.1; done
for h in "${servers[@]}"; do
  for e in 2 3 4; do grep -q "^completed $job2 $h $e\$" notices.txt || fail "notify: no 'completed' of $e on $h"; done
  grep -q "^received $job2 $h 1\$" notices.txt || fail "notify: no 'received' on $h"
done
grep -q '"notice":"finished"' "state/jobs/$job2.notices" || fail "the notices file"
# Two clients' jobs at once, each with its own queue and ids.
expect_rc 0 cm-push job open --to sites.toml --state state --client ops
jo=$(head -1 out)
[[ $jo == ops-1 ]] || fail "another client's ids: $jo"
expect_rc 0 cm-push job open --to sites.toml --state state --client ci
jc=$(head -1 out)
head -c 500000 /dev/urandom >one.bin && head -c 700000 /dev/urandom >two.bin
cm-push job add "$jo" one.bin --to sites.toml --state state & p1=$!
cm-push job add "$jc" two.bin --to sites.toml --state state & p2=$!
wait $p1 && wait $p2 || fail "concurrent adds"
expect_rc 0 cm-push job end "$jo" --to sites.toml --state state
expect_rc 0 cm-push job end "$jc" --to sites.toml --state state
cm-push job wait "$jo" --to sites.toml --state state --timeout 60 >/dev/null & p1=$!
cm-push job wait "$jc" --to sites.toml --state state --timeout 60 >/dev/null & p2=$!
wait $p1 && wait $p2 || fail "concurrent waits"
for h in "${servers[@]}"; do
  cmp -s one.bin "$h/spool/jobs/$jo/1-one.bin" && cmp -s two.bin "$h/spool/jobs/$jc/1-two.bin" || fail "$h: concurrent jobs"
done
# A command that fails on the servers (nothing to roll back to: one release):
# wait says so and exits 11; the live tree is untouched.
expect_rc 0 cm-push job open --to sites.toml --state state --client ci --servers a1,b1
job3=$(head -1 out)
expect_rc 0 cm-push job cmd "$job3" --to sites.toml --state state -- rollback
expect_rc 0 cm-push job end "$job3" --to sites.toml --state state
expect_rc 11 cm-push job wait "$job3" --to sites.toml --state state --timeout 60 --json
python3 -c 'import json,sys; j=json.load(open("out")); assert j["finished"] and j["ok"] == 0 and j["failed"] == 2, j
assert all(s["entries"] == ["failed"] for s in j["servers"]), j' || fail "a failed rollback: $(cat out)"
cmp -s tree/index.html a1/root/current/index.html || fail "a1: a failed rollback changed the live tree"

# Bad input: one error line and a documented exit code.
expect_rc 3 cm-push job status nope-1 --to sites.toml --state state
one_error_line cm-push
expect_rc 2 cm-push job add "$job" payload.bin --to sites.toml   # no --state: no token
one_error_line cm-push
mkdir other && echo 0000000000000000000000000000000000000000 >other/base.token
expect_rc 5 cm-push job open --to sites.toml --state other        # another token: refused
one_error_line cm-push
expect_rc 2 cm-push job add "$job" payload.bin --to sites.toml --state state   # ended: nothing more
one_error_line cm-push
expect_rc 0 cm-push job open --to sites.toml --state state --client ci --servers a1
[[ $(head -1 out) == ci-5 ]] || fail "fifth job id: $(head -1 out)"
expect_rc 2 cm-push job add ci-5 missing.bin --to sites.toml --state state
one_error_line cm-push
expect_rc 2 cm-push job open --to sites.toml --state state --servers zz
one_error_line cm-push
echo "cm_push_job_loopback: ok"
