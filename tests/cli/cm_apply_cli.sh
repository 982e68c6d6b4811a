#!/bin/bash
# cm-apply's command line: help, version, usage errors, status, the pipe from
# cm-delta through cm-pack, stdin input, --json, commit/rollback subcommands,
# and silence on success when stdout is not a terminal.
source "$CM_SRC/tests/cli/cm_apply_common.inc"

"$APPLY" --help >"$W/help" || fail "--help exit $?"
grep -q 'rollback' "$W/help" || fail "--help lacks the subcommands"
[ "$("$APPLY" --version)" = "cm-apply $(sed -n 's/^project(.* VERSION \([0-9.]*\).*/\1/p' "$CM_SRC/CMakeLists.txt")" ] ||
  fail "--version: $("$APPLY" --version)"
"$APPLY" --no-such-option 2>"$W/err"
[ $? = 2 ] || fail "bad option must exit 2"
[ "$(wc -l <"$W/err")" = 1 ] || fail "bad option: more than one line: $(cat "$W/err")"
"$APPLY" status 2>"$W/err"
[ $? = 2 ] || fail "status without a root must exit 2"
"$APPLY" status --root "$W/none" 2>"$W/err"
[ $? = 3 ] || fail "status of a missing root must exit 3"

# Status on an empty root: nothing created, nothing current.
mkdir -p "$W/empty"
"$APPLY" status --root "$W/empty" >"$W/out" || fail "status on empty root"
grep -q '^current: *(none)' "$W/out" || fail "status text: $(cat "$W/out")"
"$APPLY" status --root "$W/empty" --json >"$W/out" || fail "status --json"
grep -q '"current":null' "$W/out" && grep -q '"last_serial":0' "$W/out" || fail "status json: $(cat "$W/out")"
[ -z "$(ls -A "$W/empty")" ] || fail "status wrote into the root"

# The pipe, as in the design: cm-delta old new | cm-pack - ... && cm-apply a.cma --root R --commit
make_trees
R=$W/root
fresh_root "$R"
"$DELTA" "$W/old" "$W/new" | "$PACK" - --source "$W/new" -o "$W/a.cma" --serial 2 --job pub &&
  "$APPLY" "$W/a.cma" --root "$R" --commit >"$W/out" 2>"$W/err" || fail "pipe: $(cat "$W/err")"
[ ! -s "$W/out" ] && [ ! -s "$W/err" ] || fail "not silent on success: $(cat "$W/out" "$W/err")"
[ "$(manifest "$R/current")" = "$(manifest "$W/new")" ] || fail "live differs from the new tree"
[ "$(readlink "$R/current")" = "releases/s000000000002-pub" ] || fail "current -> $(readlink "$R/current")"
echo "ok: cm-delta | cm-pack | cm-apply --commit"

# Status now.
"$APPLY" status --root "$R" --json >"$W/out" || fail status
grep -q '"current":"s000000000002-pub"' "$W/out" && grep -q '"previous":"s000000000001-base"' "$W/out" &&
  grep -q '"last_serial":2' "$W/out" && grep -q '"last_report":{' "$W/out" || fail "status: $(cat "$W/out")"

# Rollback and back (rollback swaps current and previous).
"$APPLY" rollback --root "$R" || fail rollback
[ "$(manifest "$R/current")" = "$(manifest "$W/old")" ] || fail "rollback did not restore old"
"$APPLY" rollback --root "$R" --json >"$W/out" || fail "second rollback"
grep -q '"action":"rolled-back"' "$W/out" || fail "rollback json: $(cat "$W/out")"
[ "$(manifest "$R/current")" = "$(manifest "$W/new")" ] || fail "second rollback did not return to new"

# Standard input, --json reports, separate commit subcommand.
"$DELTA" "$W/new" "$W/old" | "$PACK" - --source "$W/old" -o - --serial 3 --job back |
  "$APPLY" - --root "$R" --json >"$W/out" || fail "stdin apply"
grep -q '"file":"-".*"action":"staged".*"result":"ok"' "$W/out" || fail "json report: $(cat "$W/out")"
[ -f "$R/.cm/reports/3.json" ] || fail "report file missing"
ls "$R/.cm" | grep -q spool && fail "spool file left behind"
"$APPLY" status --root "$R" | grep -q 'staged: *job back' || fail "status does not show the staged job"
[ "$(manifest "$R/current")" = "$(manifest "$W/new")" ] || fail "staging changed live"
"$APPLY" commit --root "$R" --job nosuch 2>/dev/null
[ $? = 3 ] || fail "commit of an unknown job must exit 3"
"$APPLY" commit --root "$R" --job back -v >"$W/out" 2>&1 || fail "commit"
grep -q 'committed job back' "$W/out" || fail "-v summary: $(cat "$W/out")"
[ "$(manifest "$R/current")" = "$(manifest "$W/old")" ] || fail "commit result"
"$APPLY" commit --root "$R" 2>/dev/null
[ $? = 3 ] || fail "commit with nothing staged must exit 3"

# verify subcommand and --dry-run.
"$APPLY" verify "$W/a.cma" || fail "verify"
"$APPLY" verify "$W/a.cma" --json | grep -q '"action":"verified"' || fail "verify --json"
head -c 100 "$W/a.cma" >"$W/t.cma"
"$APPLY" verify "$W/t.cma" 2>/dev/null
[ $? = 4 ] || fail "verify of a truncated file must exit 4"
"$DELTA" "$W/old" "$W/new" | "$PACK" - --source "$W/new" -o "$W/d.cma" --serial 9 --job dry || fail pack
before=$(cat "$R/.cm/state")
"$APPLY" "$W/d.cma" --root "$R" --dry-run --json | grep -q '"action":"verified"' || fail "dry run"
[ "$(cat "$R/.cm/state")" = "$before" ] || fail "dry run changed the state"

# Retention: at most `keep` releases (default 2).
[ "$(ls "$R/releases" | wc -l)" -le 2 ] || fail "retention: $(ls "$R/releases")"

# A job split into parts: parts apply in order; commit needs the last one.
mkdir -p "$W/mp/a"
for i in 1 2 3; do head -c 3000 /dev/urandom >"$W/mp/a/f$i"; done
"$PACK" replicate "$W/mp" -o "$W/s.cma" --serial 20 --job split --max-size 2000 || fail "pack split"
[ -f "$W/s.part3.cma" ] || fail "expected at least 3 parts"
parts=("$W/s.cma")
for p in "$W"/s.part*.cma; do parts+=("$p"); done
IFS=$'\n' parts=($(printf '%s\n' "${parts[@]}" | sort -V)); unset IFS
"$APPLY" "${parts[@]:0:2}" --root "$R" --commit 2>"$W/err"
[ $? = 3 ] && grep -q 'incomplete' "$W/err" || fail "commit of an incomplete job: $(cat "$W/err")"
"$APPLY" "${parts[@]:2}" --root "$R" --commit || fail "remaining parts"
[ "$(manifest "$R/current")" = "$(manifest "$W/mp")" ] || fail "split job result"
echo "ok: a job in ${#parts[@]} parts"

# Configuration file supplies the root; --root overrides it.
printf 'root = "%s"\nkeep = 3\n' "$R" >"$W/apply.toml"
"$APPLY" status --config "$W/apply.toml" | grep -q "root: *$R" || fail "config root"
"$APPLY" status --config "$W/apply.toml" --root "$W/empty" | grep -q "root: *$W/empty" || fail "flag override"

# Report retention: .cm/reports keeps the newest report_keep reports.
[ "$(ls "$R/.cm/reports" | wc -l)" -gt 3 ] || fail "test setup: expected more than 3 reports"
printf 'report_keep = 3\n' >"$W/rk.toml"
"$DELTA" "$W/mp" "$W/old" | "$PACK" - --source "$W/old" -o "$W/rk.cma" --serial 40 --job rk || fail pack
"$APPLY" "$W/rk.cma" --root "$R" --config "$W/rk.toml" || fail "apply with report_keep"
[ "$(ls "$R/.cm/reports" | sort -V | tr '\n' ' ')" = "$(ls "$R/.cm/reports" | sort -V | tail -3 | tr '\n' ' ')" ] &&
  [ "$(ls "$R/.cm/reports" | wc -l)" = 3 ] && [ -f "$R/.cm/reports/40.json" ] || fail "report_keep: $(ls "$R/.cm/reports")"
printf 'report_keep = 0\n' >"$W/rk0.toml"
check_fail 2 'report_keep: expected an integer from 1' "$R" "$APPLY" "$W/rk.cma" --root "$R" --config "$W/rk0.toml"
echo PASS
