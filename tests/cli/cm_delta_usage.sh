#!/usr/bin/env bash
# cm-delta: --help/--version, usage errors (exit 2, one stderr line), missing
# trees (exit 3), the terminal refusal is not tested (needs a tty).
set -euo pipefail
BIN="${CM_BIN:?CM_BIN not set}/cm-delta"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect CODE CMD...: runs CMD, checks the exit code, keeps stdout/stderr.
expect() {
  local want=$1; shift
  local rc=0
  "$@" >"$T/out" 2>"$T/err" || rc=$?
  [ "$rc" -eq "$want" ] || { cat "$T/err" >&2; fail "$* exited $rc, want $want"; }
}
one_error_line() {
  [ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err" >&2; fail "want exactly one stderr line"; }
  grep -q '^cm-delta: error: ' "$T/err" || fail "stderr line lacks 'cm-delta: error: '"
}

expect 0 "$BIN" --help
grep -q 'Usage: cm-delta' "$T/out" || fail "--help lacks usage"
grep -q 'cm-pack - --source staging/' "$T/out" || fail "--help lacks the pipeline example"
[ ! -s "$T/err" ] || fail "--help wrote to stderr"

expect 0 "$BIN" --version
grep -Eq '^cm-delta [0-9]+\.[0-9]+\.[0-9]+$' "$T/out" || fail "--version output: $(cat "$T/out")"

mkdir -p "$T/old" "$T/new"
expect 2 "$BIN" --no-such-option "$T/old" "$T/new"; one_error_line
expect 2 "$BIN" "$T/old"; one_error_line
expect 2 "$BIN" --list --json "$T/old" "$T/new"; one_error_line
expect 2 "$BIN" --list -o - "$T/old" "$T/new"; one_error_line
expect 2 "$BIN" --block-size nonsense -o "$T/x" "$T/old" "$T/new"; one_error_line

# Missing trees: exit 3 with one line naming the path.
expect 3 "$BIN" -o "$T/t" "$T/missing" "$T/new"; one_error_line
grep -q "$T/missing" "$T/err" || fail "error does not name the missing tree"
expect 3 "$BIN" -o "$T/t" "$T/old" "$T/missing"; one_error_line
[ ! -e "$T/t" ] || fail "a failed run left an output file"
ls -a "$T" | grep -q '\.tmp-' && fail "a failed run left a temporary file"

# --empty-old accepts a missing OLD.
echo hi >"$T/new/f"
expect 0 "$BIN" --empty-old --list "$T/missing" "$T/new"
[ "$(cat "$T/out")" = "A f" ] || fail "--empty-old listing: $(cat "$T/out")"

# A NEW that is a file is a usage error.
expect 2 "$BIN" -o "$T/t" "$T/old" "$T/new/f"; one_error_line

# Bad config: unknown key, bad TOML and a missing file are usage errors (2).
printf 'exclude = ["*.o"]\nbogus = 1\n' >"$T/bad.toml"
expect 2 "$BIN" --config "$T/bad.toml" --list "$T/old" "$T/new"; one_error_line
grep -q "bad.toml:2: bogus: unknown key" "$T/err" || fail "unknown key without file:line: $(cat "$T/err")"
printf 'checksum = "yes"\n' >"$T/typed.toml"
expect 2 "$BIN" --config "$T/typed.toml" --checksum --list "$T/old" "$T/new"; one_error_line
grep -q "typed.toml:1: checksum: expected true or false" "$T/err" || fail "mistyped key: $(cat "$T/err")"
printf 'exclude = "*.o"\n' >"$T/typed.toml"
expect 2 "$BIN" --config "$T/typed.toml" --list "$T/old" "$T/new"; one_error_line
grep -q "typed.toml:1: exclude: expected an array of strings" "$T/err" || fail "exclude not an array: $(cat "$T/err")"
printf 'exclude = [\n' >"$T/broken.toml"
expect 2 "$BIN" --config "$T/broken.toml" --list "$T/old" "$T/new"; one_error_line
expect 2 "$BIN" --config "$T/nope.toml" --list "$T/old" "$T/new"; one_error_line
expect 3 "$BIN" --exclude-from "$T/nope.txt" --list "$T/old" "$T/new"; one_error_line

# Special files: one warning each, never listed; -q silences warnings.
mkfifo "$T/new/fifo"
expect 0 "$BIN" --list "$T/old" "$T/new"
[ "$(cat "$T/out")" = "A f" ] || fail "fifo listed: $(cat "$T/out")"
[ "$(wc -l <"$T/err")" -eq 1 ] && grep -q '^cm-delta: warning: .*fifo: skipping fifo$' "$T/err" || fail "fifo warning: $(cat "$T/err")"
expect 0 "$BIN" -q --list "$T/old" "$T/new"
[ ! -s "$T/err" ] || fail "-q still warned"

# Unreadable file in NEW: I/O error 10 (not meaningful as root).
if [ "$(id -u)" -ne 0 ]; then
  echo x >"$T/new/secret"; chmod 000 "$T/new/secret"
  expect 10 "$BIN" -o "$T/t" "$T/old" "$T/new"; one_error_line
  chmod 600 "$T/new/secret"
fi
echo PASS
