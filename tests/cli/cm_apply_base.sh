#!/usr/bin/env bash
# A delta names its base (issue 13): cm-delta | cm-pack | cm-apply on a shadow
# copy S and servers R, R2. A server whose live tree is not the delta's base
# (rolled back, missed a delta, a file edited in place) refuses it with exit 8
# and one line saying what it has, live untouched and nothing staged;
# `cm-apply verify-live` finds the edited file; reports and status carry the
# live release's manifest; whole-tree assignments apply to any tree; a stage
# whose tree is not the assignment's result is discarded; a root without
# recorded manifests (an older cm-apply) gets them on first need.
source "$(dirname "$0")/lib.inc"

export CM_CONFIG_DIR=$T/etc
mkdir -p "$CM_CONFIG_DIR" staging S R R2
cm-pack -q keygen -o ccm.key --pub "$CM_CONFIG_DIR/ccm.pub"
P() { cm-pack -q --sign-key ccm.key --serial-file sf "$@"; }
# pack JOB: the delta from the shadow copy to staging, applied to the shadow.
pack() {
  cm-delta --empty-old S/current staging | P - --source staging --job "$1" -o "$1.cma"
  cm-apply -q "$1.cma" --root S --commit
}
rel() { basename "$(readlink "$1/current")"; }
man_of() { cm-apply status "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifest"])'; }
no_stage() { [[ -z $(ls "$1/.cm/stage") ]] || fail "$1: something staged: $(ls "$1/.cm/stage")"; }

echo one >staging/p.html && mkdir staging/d && echo x >staging/d/x.html
pack j1
for r in R R2; do cm-apply -q j1.cma --root $r --commit; done
r1=$(rel S)
echo two >staging/p.html
pack j2
cm-apply -q j2.cma --root R --commit
r2=$(rel S)
echo three >staging/p.html && echo y >staging/d/y.html
pack j3
expect_rc 0 cm-apply j3.cma --root R --commit --json
r3=$(rel S)
[[ $(rel R) == "$r3" && $(cat R/current/p.html) == three ]] || fail "R not at j3"
# Reports and status carry the live release's manifest, the same as the shadow's.
m3=$(man_of S)
[[ ${#m3} == 64 && $(man_of R) == "$m3" ]] || fail "status manifest: S $m3, R $(man_of R)"
python3 - out "$r3" "$m3" <<'PY' || fail "reports: $(cat out)"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert lines[0]["action"] == "staged" and lines[0]["staged_manifest"] == sys.argv[3], lines[0]
assert lines[-1]["action"] == "committed" and lines[-1]["release"] == sys.argv[2], lines[-1]
assert lines[-1]["manifest"] == sys.argv[3], lines[-1]
PY
cm-pack inspect --json j3.cma | python3 -c '
import json, sys
b = json.load(sys.stdin)["base"]
assert b["release"] == sys.argv[1] and len(b["manifest"]) == 64 and b["result_manifest"] == sys.argv[2], b' "$r2" "$m3" ||
  fail "inspect base: $(cm-pack inspect --json j3.cma)"

# A server that missed j2 refuses j3: exit 8, one line, live untouched.
expect_rc 8 cm-apply j3.cma --root R2 --commit
one_error_line cm-apply
grep -q "live tree is $r1 (manifest [0-9a-f]\{16\}); the assignment applies to $r2 (manifest [0-9a-f]\{16\})$" err ||
  fail "missed delta: $(cat err)"
[[ $(rel R2) == "$r1" && $(cat R2/current/p.html) == one ]] || fail "R2 changed"
no_stage R2

# cm-apply rollback on R, then the next delta: exit 8, live untouched.
expect_rc 0 cm-apply rollback R --json
[[ $(rel R) == "$r2" ]] || fail "rollback"
m2=$(man_of R)
[[ $m2 != "$m3" && ${#m2} == 64 ]] || fail "the manifest did not follow the rollback: $m2"
grep -q "\"manifest\":\"$m2\"" out || fail "rollback report: $(cat out)"
echo four >staging/p.html
pack j4
expect_rc 8 cm-apply j4.cma --root R --commit
one_error_line cm-apply
grep -q "live tree is $r2 (manifest ${m2:0:16}); the assignment applies to $r3 (manifest ${m3:0:16})$" err ||
  fail "after rollback: $(cat err)"
[[ $(cat R/current/p.html) == two ]] || fail "R's live tree changed"
no_stage R
# Back to j3 (the manifest is kept per release), and j4 applies.
cm-apply -q rollback R --to-release "$r3"
[[ $(man_of R) == "$m3" ]] || fail "manifest after rolling forward"
expect_rc 0 cm-apply j4.cma --root R --commit
[[ $(cat R/current/p.html) == four ]] || fail "j4 not live on R"

# (A whole tree of j4, used below.)
P replicate S/current --job rep -o rep.cma

# A file edited in place: verify-live lists it, the next delta is refused.
expect_rc 0 cm-apply verify-live R
echo x >>R/current/p.html
expect_rc 8 cm-apply verify-live R
grep -qx "changed p.html" out || fail "verify-live text: $(cat out)"
expect_rc 8 cm-apply verify-live R --json --full
python3 - out "$(rel R)" <<'PY' || fail "verify-live json: $(cat out)"
import json, sys
text = open(sys.argv[1]).read()
assert text.count("\n") == 1, text
v = json.loads(text)
assert list(v) == ["v", "release", "release_serial", "manifest", "live_manifest", "ok", "changed", "missing",
                   "extra", "truncated"], v
assert v["v"] == 1 and v["release"] == sys.argv[2] and v["release_serial"] > 0 and v["ok"] is False, v
assert v["changed"] == ["p.html"] and v["missing"] == [] and v["extra"] == [] and v["truncated"] is False, v
assert v["manifest"] != v["live_manifest"], v
PY
echo five >staging/p.html
pack j5
expect_rc 8 cm-apply j5.cma --root R --commit
one_error_line cm-apply
grep -q ", 1 paths changed behind cm-apply's back, e.g. p.html; the assignment applies to " err || fail "drift: $(cat err)"
[[ $(cat R/current/p.html) == "$(printf 'four\nx')" ]] || fail "R's live tree changed"
no_stage R

# A whole tree applies to any tree (no base), and then the deltas do again.
cm-pack inspect --json rep.cma | python3 -c '
import json, sys
b = json.load(sys.stdin)["base"]
assert b["release"] == "" and b["manifest"] == "" and len(b["result_manifest"]) == 64, b' || fail "replicate base"
expect_rc 0 cm-apply rep.cma --root R --commit
expect_rc 0 cm-apply verify-live R
expect_rc 0 cm-apply j5.cma --root R --commit
[[ $(cat R/current/p.html) == five ]] || fail "j5 not live on R"

# A stage that does not make the assignment's result is discarded.
echo six >staging/p.html
cm-delta S/current staging | P - --source staging --job j6 --result-manifest "$m3" -o j6bad.cma
before=$(rel R)
expect_rc 8 cm-apply j6bad.cma --root R --commit
one_error_line cm-apply
grep -q "the staged tree has manifest [0-9a-f]\{16\}, the assignment makes ${m3:0:16}; stage discarded" err ||
  fail "result: $(cat err)"
[[ $(rel R) == "$before" && $(cat R/current/p.html) == five ]] || fail "live changed by a bad stage"
no_stage R
cm-apply status R --json | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["staged"] is None, s' ||
  fail "a stage is recorded"

# A root from an older cm-apply (no manifests): computed on first need.
m5=$(man_of R)
rm -rf R/.cm/manifests
[[ -z $(man_of R) ]] || fail "status invents a manifest"
expect_rc 0 cm-apply verify-live R --json
grep -q "\"manifest\":\"$m5\",\"live_manifest\":\"$m5\",\"ok\":true" out || fail "migration: $(cat out)"
[[ $(man_of R) == "$m5" ]] || fail "manifest not recorded"
pack j6
expect_rc 0 cm-apply j6.cma --root R --commit
[[ $(cat R/current/p.html) == six ]] || fail "j6 not live on R"
# No live release: verify-live exits 3.
mkdir R3
expect_rc 3 cm-apply verify-live R3
echo "cm_apply_base: ok"
