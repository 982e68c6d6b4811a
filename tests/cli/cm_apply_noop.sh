#!/usr/bin/env bash
# No-op jobs: cm-delta says "no changes" (exit 15 with --exit-code) and
# follows a root that is a symlink (a shadow copy's `current`); cm-pack of the
# empty table says so; cm-apply of the empty job makes no stage and no
# release, its commit reports the current release, and retention keeps the
# real rollback target however many no-op jobs run.
source "$(dirname "$0")/lib.inc"

export CM_CONFIG_DIR=$T/etc
mkdir -p "$CM_CONFIG_DIR" staging S R
A() { cm-apply --allow-unsigned "$@"; }
echo 1 >staging/f
# The shadow copy is a content root too: cm-delta reads its current.
cm-delta --empty-old S/current staging | cm-pack -q - --source staging --job j1 --serial-file sf -o 1.cma
A -q 1.cma --root S --commit && A -q 1.cma --root R --commit
echo 22 >staging/f
cm-delta S/current staging | cm-pack -q - --source staging --job j2 --serial-file sf -o 2.cma
A -q 2.cma --root S --commit && A -q 2.cma --root R --commit
[[ $(cat R/current/f) == 22 ]] || fail setup
rels=$(ls R/releases) prev=$(cm-apply status R --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["previous"])')
[[ -n $prev ]] || fail "no previous release"

# cm-delta: OLD as a symlink to a directory; nothing changed.
[[ -L S/current ]] || fail "S/current is not a symlink"
expect_rc 0 cm-delta S/current staging -o d.cmdt
grep -qx 'cm-delta: no changes' err || fail "no 'no changes' line: $(cat err)"
expect_rc 15 cm-delta --exit-code S/current staging -o d.cmdt
[[ -s d.cmdt ]] || fail "--exit-code wrote no table"
expect_rc 15 cm-delta --exit-code -q S/current staging -o d.cmdt
[[ ! -s err ]] || fail "-q still printed: $(cat err)"
expect_rc 15 cm-delta --exit-code --list S/current/ staging
# A change: exit 0 and no such line, also with --exit-code; NEW as a symlink too.
ln -s staging staging.link
echo 333 >staging/g
expect_rc 0 cm-delta --exit-code --list S/current staging.link
grep -qx 'A g' out || fail "listing through symlinked roots: $(cat out)"
grep -q 'no changes' err && fail "'no changes' with a change"
rm staging/g

# cm-pack of the empty table, cm-apply of the empty job: no new release.
for n in 1 2 3 4; do
  cm-delta S/current staging 2>/dev/null | expect_rc 0 cm-pack - --source staging --job noop$n --serial-file sf -o e$n.cma
  grep -q 'cm-pack: no changes: e'$n'.cma changes nothing' err || fail "cm-pack: $(cat err)"
  expect_rc 0 A e$n.cma --root R --commit --json
  python3 - out <<'EOF' || fail "reports: $(cat out)"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert [l["action"] for l in lines] == ["unchanged", "unchanged"], lines
assert all(l["release"].endswith("-j2") and l["release_serial"] > 0 for l in lines), lines
EOF
done
[[ $(ls R/releases) == "$rels" ]] || fail "no-op jobs changed releases/: $(ls R/releases)"
[[ $(cm-apply status R --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["previous"])') == "$prev" ]] ||
  fail "no-op jobs moved previous"
ls R/.cm/stage | grep -q . && fail "a no-op job left a stage: $(ls R/.cm/stage)"

# Staged now, committed later (a commit assignment, or `commit` without --job).
cm-delta S/current staging 2>/dev/null | cm-pack -q - --source staging --job noop5 --serial-file sf -o e5.cma
cm-pack -q commit --job noop5 --serial-file sf -o c5.cma
expect_rc 0 A e5.cma --root R
expect_rc 0 A c5.cma --root R --json
grep -q '"action":"unchanged"' out || fail "commit assignment of an empty job: $(cat out)"
expect_rc 0 cm-apply commit R --json
grep -q '"action":"unchanged".*"release":"[^"]*-j2"' out || fail "commit without --job: $(cat out)"
[[ $(ls R/releases) == "$rels" ]] || fail "releases changed"

# The rollback target is still the real one.
expect_rc 0 cm-apply rollback R
[[ $(cat R/current/f) == 1 ]] || fail "rollback after no-op jobs did not return to j1"
# An empty job on a server without a live tree still makes its (empty) release
# (one that names no base: e1 applies to j2's tree, which R2 does not have).
mkdir R2
expect_rc 8 A e1.cma --root R2 --commit
grep -q "live tree is (none) .*; the assignment applies to .*-j2 (manifest " err || fail "base: $(cat err)"
cm-delta S/current staging 2>/dev/null | cm-pack -q - --source staging --job noop9 --serial-file sf --no-base -o e9.cma
expect_rc 0 A e9.cma --root R2 --commit
[[ -L R2/current ]] || fail "empty first job made no release"
# The cron example of cm-delta(1), as written (shadow/current, staging/):
# nothing changed -> no assignment; a change -> one.
ln -s S shadow
cron() {
  set +e
  rm -f a.cma
  cm-delta --exit-code shadow/current staging/ -o d.cmdt; rc=$?
  if [ $rc = 0 ]; then cm-pack d.cmdt --source staging/ --serial-file serial -o a.cma
  elif [ $rc != 15 ]; then echo "cm-delta failed: exit $rc" >&2; fi
  set -e
}
cron 2>cron.err
[[ ! -e a.cma ]] || fail "the cron example packed a job that changes nothing"
echo 4444 >staging/f
cron 2>cron.err
[[ -s a.cma ]] || fail "the cron example packed nothing after a change: $(cat cron.err)"
echo "cm_apply_noop: ok"
