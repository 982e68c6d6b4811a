#!/usr/bin/env bash
# Hooks around the switch (man cm-apply, HOOKS): a failing pre_commit leaves
# current as it was (exit 13, one line with the hook's status and last output
# line, the JSON report says so); a hanging one is killed with its process
# group at hook_timeout; the CM_* environment is set; argv is not run by a
# shell; a failing post_commit keeps the switch (exit 14, a warning); a
# rollback runs the hooks too.
source "$(dirname "$0")/lib.inc"

export CM_CONFIG_DIR=$T/etc
mkdir -p "$CM_CONFIG_DIR" old R
echo one >old/f
cp -a old new && echo two >new/f
cm-pack -q replicate old --job base --serial-file serial -o base.cma
cm-apply -q --allow-unsigned base.cma --root R --commit
cm-delta old new | cm-pack -q - --source new --job j2 --serial-file serial -o a.cma
cm-pack -q commit --job j2 --serial-file serial -o c.cma
live() { basename "$(readlink R/current)"; }
base=$(live)

# A hook that records its environment and fails with $HOOK_RC when it is $FAIL_HOOK.
cat >hook <<'EOF'
#!/bin/sh
env | grep '^CM_' | sort >"$HOOK_DIR/env.$CM_HOOK"
echo "first line"
echo "the $CM_HOOK hook says no" >&2
[ "$CM_HOOK" = "${FAIL_HOOK:-}" ] && exit "$HOOK_RC"
exit 0
EOF
chmod +x hook
export HOOK_DIR=$T
cat >"$CM_CONFIG_DIR/apply.toml" <<EOF
pre_commit = ["$T/hook"]
post_commit = ["$T/hook"]
hook_timeout = 2
EOF

# 1. pre_commit fails: nothing switched, exit 13, one line, report says so.
cm-apply -q --allow-unsigned a.cma --root R
expect_rc 13 env FAIL_HOOK=pre_commit HOOK_RC=3 cm-apply --allow-unsigned c.cma --root R --json
one_error_line cm-apply
grep -q 'pre_commit hook refused the commit to .*-j2 (live tree unchanged): exit 3: the pre_commit hook says no' err ||
  fail "error line: $(cat err)"
[[ $(live) == "$base" && $(cat R/current/f) == one ]] || fail "a refused commit changed current"
python3 - out <<'EOF' || fail "report: $(cat out)"
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert r["code"] == "hook-refused" and r["action"] == "none" and r["result"] == "error", r
assert r["release"].endswith("-base") and r["hooks"][0]["name"] == "pre_commit" and r["hooks"][0]["exit"] == 3, r
assert "says no" in r["hooks"][0]["output"], r
EOF
[[ ! -f env.post_commit ]] || fail "post_commit ran after a refused switch"
# The report on disk says so too.
grep -q '"code":"hook-refused"' R/.cm/reports/"$(cm-pack inspect --json c.cma | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["serial"])')".json ||
  fail "no hook-refused report on disk"

# 2. The environment, after a successful commit (both hooks).
expect_rc 0 cm-apply --allow-unsigned c.cma --root R
[[ $(cat R/current/f) == two ]] || fail "commit did not switch"
serial=$(cm-pack inspect --json c.cma | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["serial"])')
new=$(live)
for h in pre_commit post_commit; do
  grep -qx "CM_HOOK=$h" env.$h || fail "$h: CM_HOOK: $(cat env.$h)"
  grep -qx "CM_ACTION=commit" env.$h || fail "$h: CM_ACTION"
  grep -qx "CM_ROOT=$T/R" env.$h || fail "$h: CM_ROOT: $(cat env.$h)"
  grep -qx "CM_RELEASE_FROM=$base" env.$h || fail "$h: CM_RELEASE_FROM"
  grep -qx "CM_RELEASE_TO=$new" env.$h || fail "$h: CM_RELEASE_TO: $(cat env.$h)"
  grep -qx "CM_SERIAL=$serial" env.$h || fail "$h: CM_SERIAL"
  grep -qx "CM_JOB=j2" env.$h || fail "$h: CM_JOB"
done
grep -qx "CM_TREE=$T/R/.cm/stage/j2.p1" env.pre_commit || fail "pre_commit CM_TREE: $(cat env.pre_commit)"
grep -qx "CM_TREE=$T/R/releases/$new" env.post_commit || fail "post_commit CM_TREE"

# 3. post_commit fails: the switch stays done, exit 14, a warning (also with -q).
rm -f env.*
expect_rc 14 env FAIL_HOOK=post_commit HOOK_RC=4 cm-apply -q rollback R
[[ $(cat R/current/f) == one ]] || fail "rollback with a failing post_commit was undone"
[[ $(wc -l <err) == 1 ]] && grep -q '^cm-apply: warning: post_commit hook failed after the rollback to .*-base (the switch is done): exit 4: the post_commit hook says no' err ||
  fail "post_commit line: $(cat err)"
grep -qx "CM_ACTION=rollback" env.pre_commit || fail "rollback: pre_commit did not run"

# 4. A hook that hangs (with a child in its process group) is killed at hook_timeout.
cat >hang <<'EOF'
#!/bin/sh
echo $$ >"$HOOK_DIR/hang.pid"
sleep 300 &
echo $! >"$HOOK_DIR/child.pid"
echo "waiting forever"
wait
EOF
chmod +x hang
start=$(date +%s)
expect_rc 13 cm-apply rollback R --pre-commit "$T/hang" --hook-timeout 1
took=$(( $(date +%s) - start ))
(( took < 10 )) || fail "the hook ran ${took}s past a 1 s timeout"
grep -q 'killed after the 1 s timeout: waiting forever' err || fail "timeout line: $(cat err)"
[[ $(cat R/current/f) == one ]] || fail "a timed-out pre_commit changed current"
sleep 0.2
# (A killed child whose parent is gone may stay a zombie where pid 1 does not reap.)
alive() { [[ -r /proc/$1/stat ]] && ! awk '{exit $3 != "Z"}' "/proc/$1/stat"; }
for p in $(cat hang.pid child.pid); do
  alive "$p" && fail "process $p of the hook survived its timeout"
done

# 5. argv is not run by a shell: $(...) and ; are bytes of an argument.
cat >"$CM_CONFIG_DIR/apply.toml" <<EOF
pre_commit = ["/bin/echo", "\$(touch $T/pwned); touch $T/pwned2"]
EOF
expect_rc 0 cm-apply rollback R --json
[[ ! -e pwned && ! -e pwned2 ]] || fail "the hook's argv went through a shell"
grep -q 'touch .*pwned); touch' out || fail "echo did not get the literal argument: $(cat out)"
[[ $(cat R/current/f) == two ]] || fail "rollback did not switch"

# 6. A hook that cannot be started refuses the switch; bad hook config is exit 2.
printf 'pre_commit = ["%s/nonexistent"]\n' "$T" >"$CM_CONFIG_DIR/apply.toml"
expect_rc 13 cm-apply rollback R
grep -q 'cannot run: .*nonexistent' err || fail "unstartable hook: $(cat err)"
[[ $(cat R/current/f) == two ]] || fail "current changed"
printf 'pre_commit = "/bin/true"\n' >"$CM_CONFIG_DIR/apply.toml"
expect_rc 2 cm-apply rollback R
printf 'hook_timeout = 0\n' >"$CM_CONFIG_DIR/apply.toml"
expect_rc 2 cm-apply rollback R
echo "cm_apply_hooks: ok"
