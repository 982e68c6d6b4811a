#!/usr/bin/env bash
# Serials without traps (man cm-apply, SERIALS): staging assignments and
# switches (commit, rollback) are ordered each among themselves, so a job
# packed before another job's commit is still staged and committed after it;
# replays stay refused (or are no-ops) in each space; an old state's
# last_serial holds for both; clock serials and serial files never block each
# other; reset-serial frees a server stuck behind a far-future serial.
source "$(dirname "$0")/lib.inc"

export CM_CONFIG_DIR=$T/etc
mkdir -p "$CM_CONFIG_DIR" v1 v2 v3 R
echo 1 >v1/f && echo 22 >v2/f && echo 333 >v3/f
A() { cm-apply --allow-unsigned "$@"; }
serial_of() { cm-pack inspect --json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["serial"])'; }
cm-pack -q replicate v1 --job base --serial-file sf -o base.cma
A -q base.cma --root R --commit

# The CCM packs job a, then queues job b, then commits a.
cm-delta v1 v2 | cm-pack -q - --source v2 --job a --serial-file sf -o a.cma
cm-delta v2 v3 | cm-pack -q - --source v3 --job b --serial-file sf -o b.cma
cm-pack -q commit --job a --serial-file sf -o ca.cma
expect_rc 0 A a.cma --root R
expect_rc 0 A ca.cma --root R
[[ $(cat R/current/f) == 22 ]] || fail "a not live"
# b's staging serial is older than a's commit: still staged, then committed.
(( $(serial_of b.cma) < $(serial_of ca.cma) )) || fail "test setup: b should be packed before a's commit"
expect_rc 0 A b.cma --root R
cm-pack -q commit --job b --serial-file sf -o cb.cma
expect_rc 0 A cb.cma --root R
[[ $(cat R/current/f) == 333 ]] || fail "queued job b was not committed"

# Replays: the same files again are no-ops that change nothing (an old
# commit does not switch back), in either space.
for f in a.cma ca.cma b.cma cb.cma; do
  expect_rc 0 A "$f" --root R --json
  grep -q '"action":"already-applied"' out || fail "$f again: $(cat out)"
  [[ $(cat R/current/f) == 333 ]] || fail "replaying $f changed the live tree"
done
# Older than the last in its space, never applied: refused, naming the last.
last_stage=$(serial_of b.cma) last_switch=$(serial_of cb.cma)
cm-delta v3 v1 | cm-pack -q - --source v1 --job c --serial $((last_stage - 1)) -o c_old.cma
expect_rc 6 A c_old.cma --root R
one_error_line cm-apply
grep -q "serial $((last_stage - 1)) is older than the last applied ($last_stage)\$" err || fail "$(cat err)"
cm-pack -q rollback --serial $((last_switch - 1)) -o rb_old.cma
expect_rc 6 A rb_old.cma --root R
grep -q "older than the last applied ($last_switch) commit or rollback" err || fail "$(cat err)"
grep -q "replayed" err && fail "'replayed' for a serial never applied"
[[ $(cat R/current/f) == 333 ]] || fail "a refused assignment changed the live tree"

# A serial from the clock (no --serial-file), then one from the file: both pass.
cm-delta v3 v1 | cm-pack -q - --source v1 --job clock -o clock.cma
expect_rc 0 A clock.cma --root R --commit
cm-delta v1 v2 | cm-pack -q - --source v2 --job file -o file.cma --serial-file sf
expect_rc 0 A file.cma --root R --commit
[[ $(cat R/current/f) == 22 ]] || fail "serial-file job after a clock job not live"

# A state written before the spaces: its last_serial holds for both.
cp -a R R_old
st=R_old/.cm/state
last=$(awk '$1 == "last_serial" {print $2}' "$st")
sed -i '/^last_stage_serial /d; /^last_switch_serial /d' "$st"
cm-pack -q rollback --serial $((last - 1)) -o rb_mig.cma
expect_rc 6 A rb_mig.cma --root R_old
grep -q "older than the last applied ($last) commit or rollback" err || fail "migrated switch space: $(cat err)"
cm-delta v2 v1 | cm-pack -q - --source v1 --job mig --serial $((last - 1)) -o mig.cma
expect_rc 6 A mig.cma --root R_old
grep -q "older than the last applied ($last)\$" err || fail "migrated stage space: $(cat err)"

# Stuck behind a far-future serial (a CCM clock once set to 2255): every
# later push is refused until reset-serial forgets the future.
cm-delta v2 v3 | cm-pack -q - --source v3 --job future --serial 9000000000000000 -o future.cma
expect_rc 0 A future.cma --root R --commit
cm-delta v3 v1 | cm-pack -q - --source v1 --job later --serial-file sf -o later.cma
expect_rc 6 A later.cma --root R
grep -q 'older than the last applied (9000000000000000)' err || fail "$(cat err)"
expect_rc 0 cm-apply reset-serial R
grep -Eq 'last serials were 9000000000000000 \(staging\) and [0-9]+ \(commit/rollback\), now 1[0-9]{15}$' out || fail "$(cat out)"
expect_rc 0 A later.cma --root R --commit
[[ $(cat R/current/f) == 1 ]] || fail "not live after reset-serial"
# Replays of what it remembers are still no-ops; an explicit --to works too.
expect_rc 0 A cb.cma --root R
[[ $(cat R/current/f) == 1 ]] || fail "replay after reset changed the live tree"
expect_rc 0 cm-apply reset-serial --root R --to 5
cm-apply status R --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["last_stage_serial"] == 5 and s["last_switch_serial"] == 5, s' || fail "status after --to 5"
expect_rc 2 cm-apply reset-serial
echo "cm_apply_serials: ok"
