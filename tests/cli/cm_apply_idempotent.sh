#!/usr/bin/env bash
# Retrying apply-and-commit after a lost connection: the same publish and the
# same commit again are no-ops (exit 0), also with serials from the clock
# (16 digits, wider than the 12 a release id pads to).
source "$(dirname "$0")/lib.inc"

mkdir -p old R
echo a >old/f
cp -a old new && echo bb >new/f
cm-pack -q replicate old -o r.cma                      # serial from the clock
cm-apply -q r.cma --root R --commit
cm-delta old new | cm-pack - --source new --job j2 -o a.cma
expect_rc 0 cm-apply a.cma --root R --commit
expect_rc 0 cm-apply a.cma --root R --commit            # retried: already live
expect_rc 0 cm-apply commit --root R --job j2
[[ $(cat R/current/f) == bb ]] || fail "live tree is not the new one"

# A later job with a smaller serial is refused: serials only grow.
cm-delta new old | cm-pack - --source old --job j3 --serial 5 -o b.cma
expect_rc 6 cm-apply b.cma --root R --commit
one_error_line cm-apply
echo "cm_apply_idempotent: ok"
