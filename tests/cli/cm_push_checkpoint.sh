#!/usr/bin/env bash
# cm-push checkpoint list|create|prune: the shadow copy's current release by
# default, --from a plain directory, files stored once across releases, a
# materialized... (the library test covers that), --verify finding a damaged
# object (exit 4), prune keeping the newest, and a create killed at every
# crash point leaving either no release or the whole one.
source "$(dirname "$0")/lib.inc"

export CM_CONFIG_DIR=$T/etc
mkdir -p "$CM_CONFIG_DIR" staging state/shadow
A() { cm-apply --allow-unsigned -q "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Usage and missing things: one error line, documented exit codes.
expect_rc 3 cm-push checkpoint list --state nowhere
one_error_line cm-push
expect_rc 2 cm-push checkpoint create --state state --from staging
one_error_line cm-push
grep -q 'needs --release' err || fail "--from without --release: $(cat err)"
expect_rc 3 cm-push checkpoint create --state state
one_error_line cm-push
grep -q 'no shadow copy' err || fail "empty shadow: $(cat err)"
expect_rc 2 cm-push checkpoint prune --state state --keep 0
expect_rc 2 cm-push checkpoint create --state state --from staging --release ../x
one_error_line cm-push
expect_rc 0 cm-push checkpoint list --state state --json
[[ $(json 'len(d["checkpoints"])' <out) == 0 ]] || fail "not empty: $(cat out)"
[[ ! -e state/checkpoints ]] || fail "list created the store"

# The shadow copy (a content root as cm-push --shadow keeps it), three releases.
mkdir -p staging/css
for i in $(seq 1 40); do head -c 20000 /dev/urandom >staging/f$i.bin; done
echo body >staging/index.html && echo 'p{}' >staging/css/site.css && ln -s index.html staging/home.html
cm-delta --empty-old state/shadow/current staging | cm-pack -q - --source staging --job j1 --serial 11 -o 1.cma
A 1.cma --root state/shadow --commit
expect_rc 0 cm-push checkpoint create --state state --json
[[ $(json 'd["checkpoint"]["release"]' <out) == s000000000011-j1 ]] || fail "release: $(cat out)"
[[ $(json 'd["checkpoint"]["serial"]' <out) == 11 ]] || fail "serial: $(cat out)"
[[ $(json 'd["checkpoint"]["files"]' <out) == 42 ]] || fail "files: $(cat out)"
tree_bytes=$(json 'd["checkpoint"]["bytes"]' <out)
for n in 2 3; do
  echo "version $n" >staging/index.html && head -c 20000 /dev/urandom >staging/f$n.bin
  cm-delta state/shadow/current staging | cm-pack -q - --source staging --job j$n --serial 1$n -o $n.cma
  A $n.cma --root state/shadow --commit
  expect_rc 0 cm-push checkpoint create --state state --json
  # Unchanged files are hard links in the shadow's releases: only the two new ones are read.
  [[ $(json 'd["hashed_bytes"]' <out) -lt 30000 ]] || fail "release $n re-read the tree: $(cat out)"
  [[ $(json 'd["new_objects"]' <out) == 2 ]] || fail "release $n: $(cat out)"
done
# Again: already stored, nothing new.
expect_rc 0 cm-push checkpoint create --state state --json
[[ $(json 'd["existed"]' <out) == True ]] || fail "again: $(cat out)"
# Three releases of 40 x 20 KB with two files changed each: about one tree.
expect_rc 0 cm-push checkpoint list --state state --json
[[ $(json '[c["release"] for c in d["checkpoints"]]' <out) == "['s000000000013-j3', 's000000000012-j2', 's000000000011-j1']" ]] ||
  fail "list order: $(cat out)"
disk=$(json 'd["disk_bytes"]' <out)
(( disk < tree_bytes * 12 / 10 )) || fail "store $disk bytes for a tree of $tree_bytes"
expect_rc 0 cm-push checkpoint list --state state
grep -q '^s000000000012-j2 *12 ' out || fail "human list: $(cat out)"
grep -q '^3 checkpoints, ' out || fail "human list: $(cat out)"

# --from a plain directory, serial from the name or --serial.
expect_rc 0 cm-push checkpoint create --state state --from staging --release hand-made --serial 14 --json
[[ $(json 'd["checkpoint"]["serial"]' <out) == 14 ]] || fail "--serial: $(cat out)"
[[ $(json 'd["new_objects"]' <out) == 0 ]] || fail "same content stored again: $(cat out)"

# --verify: a damaged object is found (exit 4, one line naming the release).
expect_rc 0 cm-push checkpoint list --state state --verify
grep -q ' ok$' out || fail "verify column: $(cat out)"
cp -a state damaged
obj=$(find damaged/checkpoints/objects -type f -print -quit)
chmod u+w "$obj" && printf 'x' >>"$obj"
expect_rc 4 cm-push checkpoint list --state damaged --verify --json
one_error_line cm-push
grep -q 'is damaged' err || fail "verify error: $(cat err)"
[[ $(json 'sum(1 for c in d["checkpoints"] if not c["ok"])' <out) -ge 1 ]] || fail "verify json: $(cat out)"
rm -f "$obj"
expect_rc 4 cm-push checkpoint list --state damaged --verify
grep -q 'object missing' err || fail "missing object: $(cat err)"

# Prune: the newest two by serial stay, and exactly their objects.
expect_rc 0 cm-push checkpoint prune --state state --keep 2 --json
[[ $(json 'd["pruned"]' <out) == "['s000000000012-j2', 's000000000011-j1']" ]] || fail "pruned: $(cat out)"
expect_rc 0 cm-push checkpoint list --state state --json
[[ $(json '[c["release"] for c in d["checkpoints"]]' <out) == "['hand-made', 's000000000013-j3']" ]] || fail "after prune: $(cat out)"
want=$(cat state/checkpoints/releases/*.mf | awk '$1=="f"{print $4}' | sort -u | wc -l)
have=$(find state/checkpoints/objects -type f | wc -l)
[[ $want == "$have" ]] || fail "after prune: $have objects, the manifests name $want"
# create prunes to --keep by itself; --pin keeps an older one.
expect_rc 0 cm-push checkpoint create --state state --from staging/css --release css-only --serial 1 --keep 1
# (the new one always stays, even with a lower serial than the kept newest)
grep -qx 'pruned s000000000013-j3' out || fail "create --keep 1: $(cat out)"
expect_rc 0 cm-push checkpoint list --state state --json
[[ $(json '[c["release"] for c in d["checkpoints"]]' <out) == "['hand-made', 'css-only']" ]] || fail "after create: $(cat out)"
expect_rc 0 cm-push checkpoint prune --state state --keep 1 --pin css-only
grep -q '^0 checkpoints pruned' out || fail "--pin: $(cat out)"

# A create killed at each crash point: afterwards the release is whole or absent.
rm -rf state/checkpoints
mkdir -p small/d && echo one >small/one && echo two >small/d/two && echo two >small/d/same && ln -s d small/link
CM_CRASH_TRACE=1 cm-push checkpoint create --state state --from small --release r4 >/dev/null 2>trace
points=$(grep -c '^crash-point' trace)
(( points >= 5 )) || fail "only $points crash points: $(cat trace)"
manifest_hash=$(cm-push checkpoint list --state state --json | json 'd["checkpoints"][0]["manifest"]')
for ((n = 1; n <= points; n++)); do
  rm -rf state/checkpoints
  set +e
  CM_CRASH_AT=$n cm-push checkpoint create --state state --from small --release r4 >/dev/null 2>&1
  rc=$?
  set -e
  [[ $rc == 137 ]] || fail "crash point $n: exit $rc, expected SIGKILL"
  expect_rc 0 cm-push checkpoint list --state state --json --verify
  count=$(json 'len(d["checkpoints"])' <out)
  [[ -z $(ls -A state/checkpoints/tmp) ]] || fail "crash point $n: tmp not cleaned: $(ls -A state/checkpoints/tmp)"
  stray=$(ls -A state/checkpoints/releases | grep -v '\.info$\|\.mf$' || true)
  [[ -z $stray ]] || fail "crash point $n: stray files in releases/: $stray"
  if [[ $count == 1 ]]; then
    [[ $(json 'd["checkpoints"][0]["manifest"]' <out) == "$manifest_hash" ]] || fail "crash point $n: other manifest"
  else
    [[ -z $(ls state/checkpoints/releases) ]] || fail "crash point $n: half release $(ls state/checkpoints/releases)"
  fi
  # The next create completes it.
  expect_rc 0 cm-push checkpoint create --state state --from small --release r4
  expect_rc 0 cm-push checkpoint list --state state --verify
done
echo "cm_push_checkpoint: ok ($points crash points)"
