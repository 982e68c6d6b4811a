#!/usr/bin/env bash
# cm-push as an operator runs it (loopback, no root): a relay with the wrong
# name is failed at once with its reason; `servers` shows releases and the
# last error; `retry` pushes only the failed server; two pushes from one CCM
# run at once on disjoint servers (the second on the next free port), a third
# that overlaps is refused with exit 7 and, with --wait, queued; a cm-push
# killed mid-push is reaped by `status` and the same command run again
# converges; a fleet rollback switches every server back and is recorded.
source "$(dirname "$0")/../cli/lib.inc"
base=$((20000 + RANDOM % 12000))  # below the ephemeral range (32768-)
declare -A relay_pid
cleanup() { for p in "${relay_pid[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'cleanup; chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT

cm-pack keygen -o ccm.key >/dev/null
cm-pack keygen --group -o group.key >/dev/null
servers=(a1 a2 b1 b2)
declare -A port
{
  echo "[ccm]"
  echo "listen = \"127.0.0.1:$base\""
  i=0
  for s in a b; do
    g=$([[ $s == a ]] && echo 1 || echo 2)
    printf '\n[[site]]\nname = "%s"\ngroup = "239.255.78.%d:%d"\n' "$s" "$g" $((base + 40 + g))
    for n in 1 2; do
      i=$((i + 1))
      printf '[[site.server]]\nname = "%s%d"\naddress = "127.0.0.%d"\nurl = "http://127.0.0.1:%d"\n' "$s" "$n" $((i + 1)) $((base + 50 + i))
    done
  done
} >sites.toml
i=0
for h in "${servers[@]}"; do i=$((i + 1)); port[$h]=$((base + 50 + i)); mkdir -p "$h/root"; done

RELAY_EXTRA=()
start_relay() {  # NAME [AS-NAME]   (RELAY_EXTRA: more relay options)
  local h=$1 as=${2:-$1}
  cm-push relay --name "$as" --listen "127.0.0.1:${port[$h]}" --spool "$h/spool" --root "$h/root" --member-retry 2 "${RELAY_EXTRA[@]}" \
    --iface 127.0.0.1 --pub-key ccm.key.pub --group-key group.key --cm-apply "$CM_BIN/cm-apply" --cm-mcast "$CM_BIN/cm-mcast" 2>>"$h.log" &
  relay_pid[$h]=$!
  for ((k = 0; k < 50; k++)); do (exec 3<>/dev/tcp/127.0.0.1/${port[$h]}) 2>/dev/null && return; sleep 0.1; done
  cat "$h.log" >&2; fail "relay $h did not start"
}
stop_relay() { kill "${relay_pid[$1]}"; wait "${relay_pid[$1]}" 2>/dev/null || true; }
ARGS=(--to sites.toml --state ccm --sign-key ccm.key --group-key group.key --timeout 120)
push() { cm-push "$@" "${ARGS[@]}"; }
check_live() {  # TREE SERVER...
  local tree=$1; shift
  for h in "$@"; do diff -r "$tree" "$h/root/current" >/dev/null || fail "$h: live tree is not $tree"; done
}

mkdir -m 700 ccm
mkdir -p v1 && for i in 1 2 3; do head -c 200000 /dev/urandom >"v1/f$i"; done
cm-pack replicate v1 --job one --sign-key ccm.key --serial-file ccm/serial -o one.cma

# 1. a1's relay calls itself "web-a1": its refusal is a1's failure, at once, with the reason.
for h in a2 b1 b2; do start_relay "$h"; done
start_relay a1 web-a1
expect_rc 11 push one.cma --report r1.json --require quorum
grep -q 'a1 .*failed.*refused' err || { cat err >&2; fail "a1's failure has no reason on stderr"; }
grep -q '"server":"a1".*"state":"failed"' r1.json || { cat r1.json >&2; fail "report: a1 not failed"; }
grep -q "web-a1" r1.json || { cat r1.json >&2; fail "report does not say why"; }
check_live v1 a2 b1 b2
expect_rc 0 cm-push servers --state ccm
grep -q '^a  *a1 .*failed' out || { cat out >&2; fail "servers: a1's last state"; }
grep -q '^b  *b2  *s[0-9]*-one ' out || { cat out >&2; fail "servers: b2's release"; }

# 2. Fix the name; `retry` pushes only a1.
stop_relay a1
start_relay a1
expect_rc 0 cm-push retry --state ccm
grep -q "^retrying job 1 (one) on a1$" out || { cat out err >&2; fail "retry did not name a1 alone"; }
check_live v1 a1 a2 b1 b2
cm-push servers --state ccm --json >servers.json
[[ $(grep -o '"release":"s[0-9]*-one"' servers.json | wc -l) == 4 ]] || { cat servers.json >&2; fail "servers after retry"; }

# 3. One CCM, several jobs: b1 frozen, a push to site b waits on it; meanwhile a push to
#    site a runs on the next port; an overlapping push is refused (7), then queued (--wait).
cp -a v1 v2 && echo two >v2/new.txt
cm-delta v1 v2 | cm-pack - --source v2 --job two --sign-key ccm.key --serial-file ccm/serial -o two.cma
kill -STOP "${relay_pid[b1]}"
cm-push two.cma --only b "${ARGS[@]}" >pb.out 2>pb.err &
pb=$!
sleep 1
expect_rc 0 push two.cma --only a
grep -q "port $base is taken" err || { cat err >&2; fail "the second job did not move to the next port"; }
check_live v2 a1 a2
expect_rc 7 push two.cma --only b2
one_error_line cm-push
cm-push two.cma --only b2 --wait 120 "${ARGS[@]}" >pw.out 2>pw.err &
pw=$!
sleep 1
kill -CONT "${relay_pid[b1]}"
rc_b=0; wait $pb || rc_b=$?
rc_w=0; wait $pw || rc_w=$?
[[ $rc_w == 0 ]] || { cat pw.err >&2; fail "the queued push (--wait) failed: $rc_w"; }
grep -q "waiting" pw.err || { cat pw.err >&2; fail "the queued push did not wait"; }
[[ $rc_b == 0 || $rc_b == 11 ]] || { cat pb.err >&2; fail "push to site b: exit $rc_b"; }
expect_rc 0 push two.cma
check_live v2 a1 a2 b1 b2

# 4. A cm-push killed mid-push: status reaps it; the same command again converges.
cp -a v2 v3 && head -c 3000000 /dev/urandom >v3/big
cm-delta v2 v3 | cm-pack - --source v3 --job three --sign-key ccm.key --serial-file ccm/serial -o three.cma
cm-push three.cma "${ARGS[@]}" >p3.out 2>p3.err &
p3=$!
for ((k = 0; k < 100; k++)); do grep -q '"running"' <(cm-push status --state ccm --json 2>/dev/null) && break; sleep 0.05; done
kill -9 $p3; wait $p3 2>/dev/null || true
expect_rc 0 cm-push status --state ccm
grep -q aborted out || { cat out >&2; fail "status does not reap the killed push"; }
expect_rc 0 push three.cma
check_live v3 a1 a2 b1 b2
expect_rc 0 push three.cma --report r3.json
[[ $(grep -o '"state":"committed"' r3.json | wc -l) == 4 ]] || { cat r3.json >&2; fail "a rerun of a done job did not converge"; }

# 5. Fleet rollback: back to the release before (job two's) everywhere, recorded.
expect_rc 0 cm-push rollback --to sites.toml --state ccm --sign-key ccm.key --group-key group.key --timeout 120
check_live v2 a1 a2 b1 b2
expect_rc 0 cm-push servers --state ccm
[[ $(grep -c ' s[0-9]*-two ' out) == 4 ]] || { cat out >&2; fail "servers after rollback"; }

# 7. The elected leader leads: site a's relays read cm-leader's state file (as `cm-leader run
#    --state-file` writes it), which names a2 (127.0.0.3); the sites file names no leader, so
#    without it a1 (the first server) would lead. The CCM asks the relays at start.
for h in a1 a2; do stop_relay "$h"; done
now_ms=$(date +%s%3N)
for h in a1 a2; do
  role=$([[ $h == a2 ]] && echo leader || echo member)
  printf '{"v":1,"segment":"a","self":"127.0.0.%d:7800","leader":"127.0.0.3:7800","epoch":7,"role":"%s","updated_unix_ms":%s}\n' \
    "$([[ $h == a1 ]] && echo 2 || echo 3)" "$role" "$now_ms" >"$h.leader.json"
  RELAY_EXTRA=(--leader-state "$h.leader.json")
  start_relay "$h"
done
RELAY_EXTRA=()
cp -a v2 v4 && echo four >v4/four.txt
cm-delta v2 v4 | cm-pack - --source v4 --job four --sign-key ccm.key --serial-file ccm/serial -o four.cma
expect_rc 0 push four.cma --json
first_a=$(grep '"event":"order"' out | grep '"site":"a"' | head -n 1)
[[ $first_a == *'"relay":"a2"'* ]] || { cat out >&2; fail "site a was not led by its elected leader a2: $first_a"; }
check_live v4 a1 a2 b1 b2

# 6. The same mistake, the same exit code as the other tools: a missing state directory is 3,
#    a file given as one is 2; each one line.
expect_rc 3 cm-push servers --state no-such-dir
one_error_line cm-push
touch a-file
expect_rc 2 cm-push status --state a-file
one_error_line cm-push
expect_rc 2 cm-push one.cma --to sites.toml --state a-file --sign-key ccm.key --group-key group.key
one_error_line cm-push
echo "ccm_ops: ok"
