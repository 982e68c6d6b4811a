#!/usr/bin/env bash
# Retrying apply-and-commit after a lost connection: the same publish and the
# same commit again are no-ops (exit 0), also with serials from the clock
# (16 digits, wider than the 12 a release id pads to).
source "$(dirname "$0")/lib.inc"

# Signed the default way: the public key in CONFIG_DIR/ccm.pub, no --pub-key.
export CM_CONFIG_DIR=$T/etc
mkdir -p old R "$CM_CONFIG_DIR"
cm-pack -q keygen -o ccm.key --pub "$CM_CONFIG_DIR/ccm.pub"
echo a >old/f
cp -a old new && echo bb >new/f
cm-pack -q replicate old --sign-key ccm.key -o r.cma                      # serial from the clock
cm-apply -q r.cma --root R --commit
cm-delta old new | cm-pack - --source new --job j2 --sign-key ccm.key -o a.cma
expect_rc 0 cm-apply a.cma --root R --commit
expect_rc 0 cm-apply a.cma --root R --commit            # retried: already live
expect_rc 0 cm-apply commit --root R --job j2
[[ $(cat R/current/f) == bb ]] || fail "live tree is not the new one"

# Already live: staging a part of the live job, or committing it (a new
# commit assignment), answers at once "already-applied" with the live
# release, also when the state no longer remembers the assignment (more than
# 256 later ones).
live=$(basename "$(readlink R/current)")
sed -i '/^applied /d' R/.cm/state
cm-pack -q commit --job j2 --sign-key ccm.key -o c2.cma
for f in a.cma c2.cma; do
  expect_rc 0 cm-apply "$f" --root R --json
  grep -q "\"action\":\"already-applied\".*\"release\":\"$live\",\"release_serial\":[1-9]" out ||
    fail "$f on its live job: $(cat out)"
done
expect_rc 0 cm-apply commit R --job j2 --json
grep -q "\"action\":\"already-applied\".*\"release\":\"$live\"" out || fail "commit --job of the live job: $(cat out)"
[[ $(basename "$(readlink R/current)") == "$live" && ! -e R/.cm/stage/j2.p1 ]] || fail "already-live staged or switched"

# A later job with a smaller serial is refused: serials only grow.
cm-delta new old | cm-pack - --source old --job j3 --serial 5 --sign-key ccm.key -o b.cma
expect_rc 6 cm-apply b.cma --root R --commit
one_error_line cm-apply
# Files cm-apply wrote remember their hash (so patches skip re-hashing the
# base); an in-place change of the same size with a new mtime must still be
# caught as a base mismatch.
seq 1 20000 >new/big && cp -a new new2 && sed -i 's/^1000$/one thousand/' new2/big
# (R is at `new`, not at this delta's base `old`: no base check for it.)
cm-delta old new | cm-pack - --source new --job j4 --sign-key ccm.key --base-manifest none -o c.cma
expect_rc 0 cm-apply c.cma --root R --commit
cm-delta new new2 | cm-pack - --source new2 --job j5 --sign-key ccm.key -o d.cma
cm-pack inspect d.cma | grep -q "patch .* big" || fail "expected a patch of big"
printf 'X' | dd of=R/current/big bs=1 seek=10 conv=notrunc status=none
touch -d '2001-01-01' R/current/big
expect_rc 8 cm-apply d.cma --root R --commit
one_error_line cm-apply
echo "cm_apply_idempotent: ok"
