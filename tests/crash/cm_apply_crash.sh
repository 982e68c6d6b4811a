#!/bin/bash
# Crash safety of cm-apply: a publish (adds, removes, patches, a dir turned
# into a file and back) and its commit are killed at every crash point
# (CM_CRASH_AT=1..N) and at random instants. After every kill ROOT/current
# must be exactly the old tree or exactly the new one, and a rerun without a
# crash must end at the new tree.
source "$CM_SRC/tests/cli/cm_apply_common.inc"

make_trees
OLD=$(manifest "$W/old")
NEW=$(manifest "$W/new")
R=$W/root
"$PACK" replicate "$W/old" -o "$W/base.cma" --serial 1 --job base || fail "pack replicate"
"$DELTA" "$W/old" "$W/new" | "$PACK" - --source "$W/new" -o "$W/pub.cma" --serial 2 --job pub || fail "pack publish"
"$PACK" commit --job pub --serial 3 -o "$W/commit.cma" || fail "pack commit"

fresh_root "$R"
[ "$(manifest "$R/current")" = "$OLD" ] || fail "replicate does not reproduce the old tree"

live_is_old_or_new() {
  local m
  m=$(manifest "$R/current")
  if [ "$m" = "$OLD" ]; then echo old; elif [ "$m" = "$NEW" ]; then echo new; else
    diff <(echo "$OLD") <(echo "$m") | head -20 >&2
    fail "$1: live tree is neither old nor new"
  fi
}

must_end_new() {
  "$@" 2>"$W/err" || fail "$1 rerun after crash failed: $(cat "$W/err")"
  [ "$(manifest "$R/current")" = "$NEW" ] || fail "rerun did not reach the new tree"
  [ ! -e "$R/.cm/journal" ] || fail "journal left after rerun"
  [ -z "$(ls -A "$R/.cm/stage")" ] || fail "stage left after rerun: $(ls -A "$R/.cm/stage")"
}

count_points() {
  CM_CRASH_TRACE=1 "$@" 2>"$W/trace" || fail "traced run failed: $(cat "$W/trace")"
  grep -c '^crash-point ' "$W/trace"
}

# 1. One process: stage and commit (cm-apply pub.cma --commit).
N=$(count_points "$APPLY" "$W/pub.cma" --root "$R" --commit)
[ "$(manifest "$R/current")" = "$NEW" ] || fail "uncrashed run did not reach the new tree"
echo "apply --commit passes $N crash points: $(grep '^crash-point' "$W/trace" | awk '{print $3}' | sort | uniq -c | tr '\n' ' ')"
[ "$N" -ge 10 ] || fail "too few crash points ($N)"
seen_old=0 seen_new=0
for i in $(seq 1 "$N"); do
  fresh_root "$R"
  (CM_CRASH_AT=$i "$APPLY" "$W/pub.cma" --root "$R" --commit; exit $?) 2>/dev/null
  rc=$?
  [ "$rc" = 137 ] || fail "CM_CRASH_AT=$i: expected SIGKILL, exit $rc"
  case $(live_is_old_or_new "CM_CRASH_AT=$i") in old) seen_old=$((seen_old + 1)) ;; new) seen_new=$((seen_new + 1)) ;; esac
  must_end_new "$APPLY" "$W/pub.cma" --root "$R" --commit
done
echo "ok: apply --commit killed at each of $N points: live old $seen_old times, new $seen_new times, always recovered"
[ "$seen_old" -gt 0 ] && [ "$seen_new" -gt 0 ] || fail "crash points never saw both sides of the switch"

# 2. Separate processes: stage, then a commit assignment killed at each point.
fresh_root "$R"
"$APPLY" "$W/pub.cma" --root "$R" || fail "stage"
N2=$(count_points "$APPLY" "$W/commit.cma" --root "$R")
for i in $(seq 1 "$N2"); do
  fresh_root "$R"
  "$APPLY" "$W/pub.cma" --root "$R" || fail "stage"
  (CM_CRASH_AT=$i "$APPLY" "$W/commit.cma" --root "$R"; exit $?) 2>/dev/null
  [ $? = 137 ] || fail "commit CM_CRASH_AT=$i: expected SIGKILL"
  live_is_old_or_new "commit CM_CRASH_AT=$i" >/dev/null
  must_end_new "$APPLY" "$W/commit.cma" --root "$R"
  # The assignment is recorded exactly once: a third run is a no-op.
  "$APPLY" "$W/commit.cma" --root "$R" || fail "commit replay"
done
echo "ok: commit assignment killed at each of $N2 points, always recovered"

# 3. A crash inside the rollback switch.
N3=$(count_points "$APPLY" rollback --root "$R")
for i in $(seq 1 "$N3"); do
  # Rollback swaps current and previous: start each round from the new tree.
  [ "$(manifest "$R/current")" = "$NEW" ] || "$APPLY" rollback --root "$R" || fail "rollback"
  [ "$(manifest "$R/current")" = "$NEW" ] || fail "rollback did not return to the new tree"
  (CM_CRASH_AT=$i "$APPLY" rollback --root "$R"; exit $?) 2>/dev/null
  [ $? = 137 ] || fail "rollback CM_CRASH_AT=$i: expected SIGKILL"
  live_is_old_or_new "rollback CM_CRASH_AT=$i" >/dev/null
  # The next run finishes the interrupted rollback: live is then the old tree.
  "$APPLY" status --root "$R" >/dev/null || fail status
  "$APPLY" commit --root "$R" 2>/dev/null  # nothing staged: exit 3, but recovery ran
  [ "$(manifest "$R/current")" = "$OLD" ] || fail "interrupted rollback not finished by recovery"
done
echo "ok: rollback killed at each of $N3 points"

# 4. Kills at random instants.
TRIALS=${CM_CRASH_TRIALS:-60}
kills=0
for t in $(seq 1 "$TRIALS"); do
  fresh_root "$R"
  delay=$(printf '0.%03d' $((RANDOM % 40)))
  # Not `timeout -s KILL`: timeout sends the KILL to its own process group
  # too and can die before cm-apply is reaped, so the rerun below could find
  # the lock still held. Kill and reap it here.
  "$APPLY" "$W/pub.cma" --root "$R" --commit 2>/dev/null &
  pid=$!
  sleep "$delay"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid"
  [ $? = 137 ] && kills=$((kills + 1))
  live_is_old_or_new "random kill after ${delay}s" >/dev/null
  must_end_new "$APPLY" "$W/pub.cma" --root "$R" --commit
done
echo "ok: $TRIALS random-instant trials ($kills killed mid-run), live always old or new, always recovered"
