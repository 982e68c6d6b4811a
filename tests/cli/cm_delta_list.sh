#!/usr/bin/env bash
# cm-delta --list on a small tree: exact output, in the documented order.
set -euo pipefail
BIN="${CM_BIN:?CM_BIN not set}/cm-delta"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pin() { find "$1" -depth -exec touch -h -d @1600000000 {} +; }

O=$T/old N=$T/new
mkdir -p "$O/docs/old-dir/sub" "$O/keep" "$O/kind" "$N/docs" "$N/keep" "$N/new dir/empty"
echo same >"$O/keep/same";         echo same >"$N/keep/same"
echo "version 1" >"$O/docs/readme"; echo "version 2, longer" >"$N/docs/readme"
echo x >"$O/docs/old-dir/sub/x"
echo gone >"$O/gone.txt"
echo mode >"$O/keep/mode";         echo mode >"$N/keep/mode"
echo k >"$O/kind/child";           echo "now a file" >"$N/kind"
ln -s target1 "$O/link";           ln -s target2 "$N/link"
echo "odd" >"$N/-dash name"
printf 'new\n' >"$N/new dir/file"
pin "$O"; pin "$N"
chmod 600 "$N/keep/mode"
touch -d @1700000000 "$N/docs/readme"

cat >"$T/want" <<'WANT'
A -dash name
D docs/old-dir/
M docs/readme
D gone.txt
m keep/mode
D kind/
A kind
M link
A new dir/
A new dir/empty/
A new dir/file
WANT
"$BIN" --list "$O" "$N" >"$T/got"
diff -u "$T/want" "$T/got" || fail "--list output differs"

# --list with -o: the listing on stdout and the table in the file.
"$BIN" --list -o "$T/table" "$O" "$N" >"$T/got2"
cmp "$T/want" "$T/got2" || fail "--list -o listing differs"
[ "$(head -c 4 "$T/table")" = CMDT ] || fail "-o did not write a table"

# Excludes: a glob, an excluded directory, --exclude-from and a config file.
printf '# comment\nkind\n' >"$T/ex"
printf 'exclude = ["docs"]\n' >"$T/cfg.toml"
"$BIN" --list --exclude '*name' --exclude 'new dir' --exclude-from "$T/ex" --config "$T/cfg.toml" "$O" "$N" >"$T/got3"
printf 'D gone.txt\nm keep/mode\nM link\n' | diff -u - "$T/got3" || fail "excludes"

# Same size, same mtime, other bytes: only --checksum sees it.
echo aaaa >"$O/keep/same"; echo bbbb >"$N/keep/same"
touch -d @1600000000 "$O/keep/same" "$N/keep/same" "$O/keep" "$N/keep"
"$BIN" --list "$O" "$N" | grep -q 'keep/same' && fail "default mode saw a same-size-same-mtime change"
"$BIN" --list --checksum "$O" "$N" | grep -qx 'M keep/same' || fail "--checksum missed the change"
printf 'checksum = true\n' >"$T/cs.toml"
"$BIN" --list --config "$T/cs.toml" "$O" "$N" | grep -qx 'M keep/same' || fail "config checksum = true ignored"
"$BIN" --list --config "$T/cs.toml" --no-checksum "$O" "$N" | grep -q 'keep/same' && fail "--no-checksum did not override"
printf 'checksum = false\n' >"$T/nocs.toml"
"$BIN" --list --config "$T/nocs.toml" --checksum "$O" "$N" | grep -qx 'M keep/same' || fail "--checksum did not override checksum = false"

# Names with control bytes are escaped so one change is one line.
touch "$N/$(printf 'new\nline')"
"$BIN" --list "$O" "$N" | grep -qx 'A new\\nline' || fail "newline in a name not escaped"
echo PASS
