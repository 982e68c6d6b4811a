#!/usr/bin/env bash
# cm-push on loopback, no root: a CCM and two sites of two servers (relays on
# 127.0.0.1, site multicast on loopback), a signed push, commit, every live
# tree checked; then status/history, a second push of a delta, and bad input.
source "$(dirname "$0")/lib.inc"
base=$((20000 + RANDOM % 12000))  # below the ephemeral range (32768-)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'cleanup; chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT

cm-pack keygen -o ccm.key >/dev/null
cm-pack keygen --group -o group.key >/dev/null
mkdir -p new/sub
for i in $(seq 1 6); do head -c $((300000 + i)) /dev/urandom >"new/f$i.bin"; done
seq 1 50000 >new/sub/numbers.txt
ln -s f1.bin new/link
cm-pack replicate new --job first --sign-key ccm.key --serial-file serial -o a.cma

servers=(a1 a2 b1 b2)
{
  echo "[ccm]"
  echo "listen = \"127.0.0.1:$base\""
  echo 'order = ["b"]'
  for s in a b; do
    g=$([[ $s == a ]] && echo 1 || echo 2)
    printf '\n[[site]]\nname = "%s"\ngroup = "239.255.77.%d:%d"\n' "$s" "$g" $((base + 10 + g))
    for n in 1 2; do
      h=$s$n
      i=$(( (g - 1) * 2 + n ))
      printf '[[site.server]]\nname = "%s"\naddress = "127.0.0.%d"\nurl = "http://127.0.0.1:%d"\n' "$h" $((i + 1)) $((base + i))
    done
  done
} >sites.toml
i=0
for h in "${servers[@]}"; do
  i=$((i + 1))
  mkdir -p "$h/root"
  cm-push relay --name "$h" --listen "127.0.0.1:$((base + i))" --spool "$h/spool" --root "$h/root" \
    --iface 127.0.0.1 --pub-key ccm.key.pub --group-key group.key --cm-apply "$CM_BIN/cm-apply" --cm-mcast "$CM_BIN/cm-mcast" 2>"$h.log" &
  pids+=($!)
done
for ((i = 1; i <= 4; i++)); do
  for ((k = 0; k < 50; k++)); do (exec 3<>/dev/tcp/127.0.0.1/$((base + i))) 2>/dev/null && break; sleep 0.1; done
done

# A symlink planted where the report goes is replaced, never followed.
echo "precious" >precious
ln -s precious report.json
expect_rc 0 cm-push a.cma --to sites.toml --state ccm --sign-key ccm.key --group-key group.key --serial-file serial \
  --report report.json --json
[[ $(cat precious) == precious && ! -L report.json ]] || fail "--report followed a planted symlink"
# The CCM's records are its own: state directory 0700, database 0600, spools 0700.
[[ $(stat -c %a ccm) == 700 && $(stat -c %a ccm/state.db) == 600 ]] || fail "state modes: $(stat -c '%n %a' ccm ccm/state.db)"
[[ $(stat -c %a a1/spool) == 700 ]] || fail "spool mode: $(stat -c %a a1/spool)"
for h in "${servers[@]}"; do
  diff -r new "$h/root/current" >/dev/null || fail "$h: live tree differs"
done
grep -q '"event":"done"' out || fail "no done event"
[[ $(grep -o '"state":"committed"' report.json | wc -l) == 4 ]] || { cat report.json >&2; fail "report"; }
# Site b was put first by the admin order.
first=$(grep -m1 '"event":"order"' out)
[[ $first == *'"site":"b"'* ]] || fail "admin order not honoured: $first"
expect_rc 0 cm-push status --state ccm
grep -q committed out || fail "status shows no committed server"
expect_rc 0 cm-push history --state ccm --json
grep -q first out || fail "history lacks the job"

# A delta push on top; the human table on stdout.
echo changed >>new/sub/numbers.txt
rm new/f6.bin
mkdir shadow && cp -a "a1/root/current/." shadow/
cm-delta shadow new | cm-pack - --source new --job second --sign-key ccm.key --serial-file serial -o b.cma
expect_rc 0 cm-push b.cma --to sites.toml --state ccm --sign-key ccm.key --group-key group.key --serial-file serial
grep -q '^b2 .*committed' out || { cat out >&2; fail "table"; }
for h in "${servers[@]}"; do
  diff -r new "$h/root/current" >/dev/null || fail "$h: live tree differs after the delta"
done

# Bad input: one error line and a documented exit code.
expect_rc 2 cm-push a.cma --to missing.toml
one_error_line cm-push
echo 'not toml [' >bad.toml
expect_rc 2 cm-push a.cma --to bad.toml
one_error_line cm-push
expect_rc 4 cm-push new/f1.bin --to sites.toml
one_error_line cm-push
expect_rc 2 cm-push --to sites.toml
one_error_line cm-push
echo "cm_push_loopback: ok"
