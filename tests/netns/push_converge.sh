#!/usr/bin/env bash
# Convergence without an operator (issue 13): 2 sites x 3 servers, cron-style
# pushes (cm-delta from the shadow, cm-pack, cm-push --shadow --require quorum).
#   push 1   the whole tree (replicate)
#   push 2-4 deltas while s1b is down (partial); after push 3 a file on s2a is
#            edited by hand
#   push 5   s1b is back: caught up from its checkpoint, then the delta
#   push 6   s1d is added to site1 (sites.toml) with an empty root
#   rollback cm-push rollback (s1d never had the release by name)
#   restore  cm-push checkpoint restore to push 3's release
#   push 7   a delta on top of the restored tree
#   converge a file deleted by hand on s2b; `cm-push converge` (no job) brings it back
# After every step: every live server's tree hashes equal to the shadow's
# (the CCM's newest release), and `cm-push servers --json` names the release
# each server's ROOT/current points at.
set -euo pipefail
source "$(dirname "$0")/bed.inc"
PUSH_SITES=2
source "$(dirname "$0")/push_lib.inc"
bed_require_root
WORK=$(mktemp -d)
push_bed 40mbit
trap 'bed_cleanup; [[ ${KEEP_WORK:-} ]] && echo "work kept: $WORK" >&2 || rm -rf "$WORK"' EXIT
push_content 20
push_start_all
PUSH_LETTERS=(a b c d)  # s1d: added after push 5
S=$WORK/ccm
mkdir -p "$S/shadow"
STAGING=$WORK/new
fail() {
  echo "FAIL: [$step] $*" >&2
  exit 1
}

tree_hash() {  # DIR: a hash of names, kinds, modes, link targets and contents
  (cd "$1" && find . -printf '%y %m %p %l\n' | LC_ALL=C sort &&
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum | cut -c1-16
}

# up: the servers in sites.toml whose relay runs
declare -A down=()
in_sites=("${PUSH_SERVERS[@]}")

check() {
  local want h got rel rec
  want=$(tree_hash "$S/shadow/current")
  bed_exec ccm "$BIN/cm-push" servers --state "$S" --json >"$WORK/servers.json" ||
    fail "cm-push servers failed"
  for h in "${in_sites[@]}"; do
    [[ ${down[$h]:-} ]] && continue
    [[ -e $WORK/$h/root/current ]] || fail "$h has no live tree"
    got=$(tree_hash "$WORK/$h/root/current")
    [[ $got == "$want" ]] || fail "$h serves $got, the CCM's release is $want"
    rel=$(basename "$(readlink "$WORK/$h/root/current")")
    rec=$(python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
rows=d["servers"] if isinstance(d,dict) else d
print(next((r.get("release","") for r in rows if r.get("server")==sys.argv[2]), "?"))' "$WORK/servers.json" "$h")
    [[ $rec == "$rel" ]] || fail "cm-push servers says $h runs '$rec', its ROOT/current is $rel"
  done
  echo "[$step] ok: ${#in_sites[@]} servers, ${#down[@]} down, tree $want" >&2
}

push() {  # push N [WANT_RC...]: a cron tick that changes the staging tree
  local n=$1 rc=0
  shift
  step="push $n"
  push_next "$n" || fail "cm-delta or cm-pack"
  run_push "$S/a$n.cma" "$@"
}

run_push() {  # FILE [WANT_RC...]
  local f=$1 rc=0 w
  shift
  bed_exec ccm "$BIN/cm-push" "$f" --to "$WORK/sites.toml" --state "$S" --shadow "$S/shadow" \
    --require quorum --timeout 120 -v >>"$WORK/push.log" 2>&1 || rc=$?
  for w in "${@:-0}"; do [[ $rc == "$w" ]] && { check; return 0; }; done
  tail -30 "$WORK/push.log" >&2
  fail "cm-push exit $rc, want ${*:-0}"
}

step="push 1"
run_push "$WORK/a.cma"

step="s1b down"
eval "kill -KILL \$PID_s1b \$LPID_s1b"
down[s1b]=1
push 2 11
push 3 11
step="hand edit"
echo "edited by hand" >>"$WORK/s2a/root/current/txt/2.txt"
push 4 11
grep -q "changed behind cm-apply's back" "$WORK/push.log" || fail "the edited server was not synchronized"

step="s1b back"
push_relay s1b
push_leader s1b
unset 'down[s1b]'
sleep 2
t0=$SECONDS
push 5
echo "push 5 (s1b catches up 3 pushes, then the delta): $((SECONDS - t0)) s" >&2

step="s1d added"
bed_site_host s1d 198.18.1.13/24 site1 198.18.1.1
mkdir -p "$WORK/s1d/root" "$WORK/s1d/spool"
python3 - "$WORK/sites.toml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
i = s.index('[[site]]\nname = "site2"')
open(p, "w").write(s[:i] + '[[site.server]]\nname = "s1d"\naddress = "198.18.1.13"\n\n' + s[i:])
PY
push_relay s1d
push_leader s1d
in_sites+=(s1d)
sleep 2
push 6

step="rollback"
rc=0
bed_exec ccm "$BIN/cm-push" rollback --to "$WORK/sites.toml" --state "$S" --shadow "$S/shadow" --timeout 120 \
  >>"$WORK/push.log" 2>&1 || rc=$?
[[ $rc == 0 || $rc == 11 ]] || fail "cm-push rollback exit $rc"
check

step="restore"
r3=$(bed_exec ccm "$BIN/cm-push" checkpoint list --state "$S" --json |
  python3 -c 'import json,sys; print(next(r["release"] for r in json.load(sys.stdin)["checkpoints"] if r["release"].endswith("-push3")))')
rc=0
bed_exec ccm "$BIN/cm-push" checkpoint restore "$r3" --to "$WORK/sites.toml" --state "$S" --shadow "$S/shadow" \
  --timeout 120 >>"$WORK/push.log" 2>&1 || rc=$?
[[ $rc == 0 ]] || { tail -20 "$WORK/push.log" >&2; fail "cm-push checkpoint restore exit $rc"; }
check
grep -q "edited by hand" "$S/shadow/current/txt/2.txt" && fail "the restored tree has the hand edit"

push 7

step="converge"  # between pushes (cron): a file removed by hand on s2b comes back without a job
rm "$WORK/s2b/root/current/txt/3.txt"
rc=0
bed_exec ccm "$BIN/cm-push" converge --to "$WORK/sites.toml" --state "$S" --shadow "$S/shadow" --timeout 120 \
  >>"$WORK/push.log" 2>&1 || rc=$?
[[ $rc == 0 ]] || { tail -20 "$WORK/push.log" >&2; fail "cm-push converge exit $rc"; }
grep -q "^converge .*: 7 of 7 servers run it (1 caught up" "$WORK/push.log" || fail "s2b was not caught up by cm-push converge"
check
du=$(du -sb "$S/checkpoints" | cut -f1)
echo "checkpoint store: $du bytes for $(ls "$S/checkpoints/releases" | grep -c '\.info$') releases of a $(du -sb "$STAGING" | cut -f1)-byte tree" >&2
echo "push_converge: ok"
