#!/usr/bin/env bash
# A ROOT/.cm (or its state) that another user could change is refused
# (issue 11: a writable .cm/state let an unprivileged user reset last_serial
# and downgrade): a symlinked .cm, a group/world-writable .cm or state, a
# symlinked state, a .cm owned by another user. Each: exit 12, one error
# line, the live tree and state unchanged, nothing written where .cm points.
source "$(dirname "$0")/../cli/cm_apply_common.inc"
make_trees
R=$W/root
fresh_root "$R"
"$DELTA" "$W/old" "$W/new" | "$PACK" - --source "$W/new" -o "$W/p.cma" --serial 2 --job p || fail pack
base_state=$(cat "$R/.cm/state")
[ "$(stat -c %a "$R/.cm")" = 700 ] || fail ".cm is not 0700"
[ "$(stat -c %a "$R/.cm/state")" = 600 ] || fail ".cm/state is not 0600"

# .cm a symlink to a directory of the attacker's (holding a reset state).
mv "$R/.cm" "$W/real.cm"
mkdir -m 0700 "$W/evil.cm" && printf 'cm-apply-state 1\nlast_serial 0\n' >"$W/evil.cm/state"
ln -s "$W/evil.cm" "$R/.cm"
before=$(cd "$W/evil.cm" && ls -lR)
check_fail 12 '\.cm: is a symlink; refusing' "$R" "$APPLY" "$W/p.cma" --root "$R" --commit
[ "$(cd "$W/evil.cm" && ls -lR)" = "$before" ] || fail "written through the symlinked .cm"
rm "$R/.cm" && mv "$W/real.cm" "$R/.cm"

# World- and group-writable .cm; group-writable state; a symlinked state.
chmod 0777 "$R/.cm"
check_fail 12 '\.cm: is group or world writable \(mode 0777\)' "$R" "$APPLY" "$W/p.cma" --root "$R" --commit
chmod 0770 "$R/.cm"
check_fail 12 'group or world writable \(mode 0770\)' "$R" "$APPLY" "$W/p.cma" --root "$R" --commit
chmod 0700 "$R/.cm"
chmod 0660 "$R/.cm/state"
check_fail 12 '\.cm/state: is group or world writable' "$R" "$APPLY" "$W/p.cma" --root "$R" --commit
check_fail 12 '\.cm/state: is group or world writable' "$R" "$APPLY" rollback --root "$R"
chmod 0600 "$R/.cm/state"
mv "$R/.cm/state" "$W/state.real" && ln -s "$W/evil.cm/state" "$R/.cm/state"
check_fail 12 '\.cm/state: is a symlink' "$R" "$APPLY" "$W/p.cma" --root "$R" --commit
rm "$R/.cm/state" && mv "$W/state.real" "$R/.cm/state"

# Owned by another user (needs root to make).
if [ "$(id -u)" = 0 ]; then
  chown 65534 "$R/.cm"
  check_fail 12 '\.cm: is owned by uid 65534, not by the running user \(uid 0\)' "$R" \
    "$APPLY" "$W/p.cma" --root "$R" --commit
  chown 0 "$R/.cm"
else
  echo "skip: .cm owned by another user (needs root)"
fi
[ "$(cat "$R/.cm/state")" = "$base_state" ] || fail "state changed"
# A readable-by-others .cm is tightened, then the legitimate apply works.
chmod 0755 "$R/.cm"
"$APPLY" "$W/p.cma" --root "$R" --commit || fail "apply after the checks"
[ "$(stat -c %a "$R/.cm")" = 700 ] || fail ".cm not tightened to 0700"
[ "$(manifest "$R/current")" = "$(manifest "$W/new")" ] || fail "live is not the new tree"
echo PASS
