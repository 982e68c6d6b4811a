#!/usr/bin/env bash
# Ordered delivery inside a site, without the CCM (issue 13, docs/protocol/
# ordering.md): site1 of three servers; each runs a relay and a cm-leader that
# orders the assignments in the relay's spool (SAM) and repairs its server from
# its peers.
#   push 1   the whole tree to s1a, s1b, s1c
#   push 2-3 deltas while s1c is down (relay and cm-leader killed): partial
#   s1c back, the CCM gone (cm-push has exited; nothing answers on its host):
#            s1c's cm-leader sees the gap in the leader's Alive, fetches the
#            missing assignments from its peers' spools and applies them in
#            order: its live tree is push 3's, byte for byte
#   push 4   --only s1a,s1b: s1c hears of its number and fetches it, but
#            does not apply it (the CCM's order did not target it)
#   push 5   to all: everyone on push 5's tree
#   s1d      a fourth server joins site1's cm-leader membership, with an empty
#            root, without being in sites.toml: push 6 finds it (the site
#            leader's relay lists its cm-leader's members), replicates push 5's
#            tree to it from the CCM's checkpoint, then the delta; `cm-push
#            servers` shows it
#   s1a down s1a (the site's leader and sequencer) killed: s1b leads and, after
#            recovering the numbers from the commit servers, sequences push 7;
#            s1a comes back and catches up from its peers (the CCM stopped)
# The state files show the ordering: every member's delivered number reaches
# the site's committed number.
set -euo pipefail
source "$(dirname "$0")/bed.inc"
PUSH_SITES=1
source "$(dirname "$0")/push_lib.inc"
bed_require_root
WORK=$(mktemp -d)
push_bed 40mbit
trap 'bed_cleanup; [[ ${KEEP_WORK:-} ]] && echo "work kept: $WORK" >&2 || rm -rf "$WORK"' EXIT
push_content 5
PUSH_SAM=1
push_start_all
PUSH_LETTERS=(a b c d)  # s1d: joins after push 5
S=$WORK/ccm
mkdir -p "$S/shadow"
STAGING=$WORK/new
step=start
fail() {
  echo "FAIL: [$step] $*" >&2
  for h in s1a s1b s1c s1d; do [[ -f $WORK/$h.leader.log ]] && { echo "--- $h cm-leader" >&2; tail -15 "$WORK/$h.leader.log" >&2; }; done
  tail -20 "$WORK/push.log" >&2
  exit 1
}

tree_hash() {  # DIR: a hash of names, kinds, modes, link targets and contents
  (cd "$1" && find . -printf '%y %m %p %l\n' | LC_ALL=C sort &&
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum | cut -c1-16
}
live() { tree_hash "$WORK/$1/root/current"; }
want() { tree_hash "$S/shadow/current"; }

push() {  # push N [cm-push options...]: a cron tick that changes the staging tree
  local n=$1 rc=0
  shift
  step="push $n"
  push_next "$n" || fail "cm-delta or cm-pack"
  bed_exec ccm "$BIN/cm-push" "$S/a$n.cma" --to "$WORK/sites.toml" --state "$S" --shadow "$S/shadow" \
    --require quorum --timeout 60 "$@" >>"$WORK/push.log" 2>&1 || rc=$?
  echo "[push $n] cm-push exit $rc" >&2
}

same() {  # HOST...: their live trees are the CCM's newest release
  local h w
  w=$(want)
  for h in "$@"; do
    [[ $(live "$h") == "$w" ]] || fail "$h serves $(live "$h"), the CCM's release is $w"
  done
}

step="push 1"
bed_exec ccm "$BIN/cm-push" "$WORK/a.cma" --to "$WORK/sites.toml" --state "$S" --shadow "$S/shadow" \
  --require all --timeout 60 >>"$WORK/push.log" 2>&1 || fail "push 1"
same s1a s1b s1c

step="s1c down"
kill -KILL "$PID_s1c" "$LPID_s1c"
push 2
push 3
same s1a s1b
h3=$(want)
[[ $(live s1c) != "$h3" ]] || fail "s1c already has push 3's tree while down"

step="s1c back"
# The CCM is not running: only the site's own members can bring s1c up to date.
! bed_exec ccm bash -c 'exec 3<>/dev/tcp/198.18.0.10/7700' 2>/dev/null || fail "the CCM still answers"
t0=$SECONDS
push_relay s1c
push_leader s1c
for ((i = 0; i < 600; i++)); do
  [[ $(live s1c) == "$h3" ]] && break
  sleep 0.1
done
[[ $(live s1c) == "$h3" ]] || fail "s1c did not reach push 3's tree in 60 s"
echo "[s1c back] caught up 2 pushes from its peers in $((SECONDS - t0)) s (CCM stopped)" >&2
grep -q "applied (repaired from a peer)" "$WORK/s1c.leader.log" || fail "s1c's cm-leader did not apply a repair"
ls "$WORK/s1c/spool/.sam/"*.fetched >/dev/null 2>&1 || fail "s1c's cm-leader fetched nothing from its peers"

step="push 4 (--only s1a,s1b)"
push 4 --only s1a,s1b
same s1a s1b
sleep 3
[[ $(live s1c) == "$h3" ]] || fail "s1c took push 4, whose order did not target it"
grep -q "did not target s1c" "$WORK/s1c.leader.log" || fail "s1c's cm-leader did not skip push 4"

step="push 5"
push 5
same s1a s1b s1c

step="s1d joins"
bed_site_host s1d 198.18.1.13/24 site1 198.18.1.1
mkdir -p "$WORK/s1d/root" "$WORK/s1d/spool"
PUSH_SERVERS+=(s1d)
push_relay s1d
push_leader s1d
grep -q s1d "$WORK/sites.toml" && fail "s1d is in sites.toml"
for ((i = 0; i < 100; i++)); do
  grep -q '"s1d"' "$WORK/s1a/leader.json" 2>/dev/null && break
  sleep 0.1
done
grep -q '"s1d"' "$WORK/s1a/leader.json" || fail "s1a's cm-leader does not list s1d: $(cat "$WORK/s1a/leader.json")"
push 6 -v
same s1a s1b s1c s1d
grep -q "joined site site1" "$WORK/push.log" || fail "the CCM did not say s1d joined"
bed_exec ccm "$BIN/cm-push" servers --state "$S" --json >"$WORK/servers.json"
python3 - "$WORK/servers.json" "$WORK/s1d/root/current" <<'PY' || fail "cm-push servers does not show s1d on its release"
import json, os, sys
d = json.load(open(sys.argv[1]))
rows = d["servers"] if isinstance(d, dict) else d
rel = os.path.basename(os.readlink(sys.argv[2]))
r = next(r for r in rows if r.get("server") == "s1d")
assert r.get("release") == rel, (r, rel)
PY

step="s1a down"
kill -KILL "$PID_s1a" "$LPID_s1a"
sleep 3  # a new leader: s1b (3 heartbeats of 0.5 s, then its claim)
push 7
same s1b s1c s1d
h7=$(want)
step="s1a back"
t0=$SECONDS
push_relay s1a
push_leader s1a
for ((i = 0; i < 600; i++)); do
  [[ $(live s1a) == "$h7" ]] && break
  sleep 0.1
done
[[ $(live s1a) == "$h7" ]] || fail "s1a did not reach push 7's tree in 60 s"
echo "[s1a back] caught up from its peers in $((SECONDS - t0)) s after a fail-over (CCM stopped)" >&2

step="state files"
sleep 2
python3 - "$WORK" <<'PY' || fail "state files disagree"
import json, sys, glob
w = sys.argv[1]
rows = []
for h in ("s1a", "s1b", "s1c", "s1d"):
    # cm-leader keeps no state file here; the edge's applied number is in the spool.
    rows.append(open(f"{w}/{h}/spool/.sam/applied").read().strip())
print("applied numbers:", rows, file=sys.stderr)
assert len(set(rows)) == 1, rows
PY
echo "PASS" >&2
