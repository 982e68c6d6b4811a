#!/usr/bin/env bash
# Rollback to a named release: `cm-pack rollback --release NAME` makes a signed
# assignment naming it; cm-apply switches current to releases/NAME (the old
# current becomes previous) or fails with exit 3 naming what the server has,
# live untouched; without --release it swaps with previous as before;
# `cm-apply rollback --to-release NAME` locally. Every report carries the
# live release and its serial.
source "$(dirname "$0")/lib.inc"

export CM_CONFIG_DIR=$T/etc
mkdir -p "$CM_CONFIG_DIR" v1 v2 v3 R
cm-pack -q keygen -o ccm.key --pub "$CM_CONFIG_DIR/ccm.pub"
echo 1 >v1/f && echo 22 >v2/f && echo 333 >v3/f
P() { cm-pack -q --sign-key ccm.key --serial-file sf "$@"; }
P replicate v1 --job j1 -o 1.cma
cm-delta v1 v2 | P - --source v2 --job j2 -o 2.cma
cm-delta v2 v3 | P - --source v3 --job j3 -o 3.cma
for f in 1 2 3; do cm-apply -q $f.cma --root R --commit --keep 3; done
rel() { ls R/releases | grep -- "-$1\$"; }
r1=$(rel j1) r2=$(rel j2) r3=$(rel j3)
[[ $(cat R/current/f) == 333 ]] || fail setup

# Fleet rollback to j1 (not the previous release, j2).
P rollback --release "$r1" -o rb1.cma
cm-pack inspect rb1.cma | grep -q "to        release $r1" || fail "inspect: $(cm-pack inspect rb1.cma)"
expect_rc 0 cm-apply rb1.cma --root R --keep 3 --json
[[ $(cat R/current/f) == 1 ]] || fail "not switched to $r1"
python3 - out "$r1" <<'EOF' || fail "report: $(cat out)"
import json, sys
r = json.loads(open(sys.argv[1]).read())
want = sys.argv[2]
assert r["action"] == "rolled-back" and r["release"] == want, r
assert r["release_serial"] == int(want[1:want.index("-")]), r
EOF
cm-apply status R --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["current"] == sys.argv[1] and s["previous"] == sys.argv[2], s
assert s["release"] == sys.argv[1] and s["release_serial"] > 0, s' "$r1" "$r3" || fail "status after rollback"
# The same file again: a no-op.
expect_rc 0 cm-apply rb1.cma --root R --keep 3
[[ $(cat R/current/f) == 1 ]] || fail "replay moved current"

# A release this server does not have: exit 3, one line naming what it has.
P rollback --release s000000000007-gone -o rbx.cma
before=$(readlink R/current)
expect_rc 3 cm-apply rbx.cma --root R --keep 3
one_error_line cm-apply
grep -q "release s000000000007-gone is not on this server (current $r1; releases: .*$r3.*$r1" err || fail "$(cat err)"
[[ $(readlink R/current) == "$before" ]] || fail "live changed on a missing release"

# A plain rollback assignment still swaps with previous (back to j3).
P rollback -o rbp.cma
expect_rc 0 cm-apply rbp.cma --root R --keep 3
[[ $(cat R/current/f) == 333 ]] || fail "plain rollback did not swap with previous"

# Locally, by name; to the live release it is a no-op; a missing one is 3.
expect_rc 0 cm-apply rollback R --to-release "$r2" --keep 3 --json
[[ $(cat R/current/f) == 22 ]] || fail "local rollback to $r2"
grep -q "\"release\":\"$r2\"" out || fail "report: $(cat out)"
expect_rc 0 cm-apply rollback R --to-release "$r2" --keep 3 --json
grep -q '"action":"already-applied"' out || fail "rollback to the live release: $(cat out)"
expect_rc 3 cm-apply rollback R --to-release s000000000001-nope
one_error_line cm-apply

# Bad names are usage errors before any serial is used.
cp sf sf.before
for bad in nope s1-j s0000000000001-j "$r1/x" s000000000001-.x; do
  expect_rc 2 cm-pack rollback --release "$bad" --serial-file sf -o bad.cma
done
cmp -s sf sf.before || fail "a refused --release used a serial"
expect_rc 2 cm-pack rollback --release "$r1" --job other -o bad.cma
expect_rc 2 cm-pack commit --release "$r1" --job j1 -o bad.cma
echo "cm_apply_rollback_release: ok"
