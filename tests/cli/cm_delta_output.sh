#!/usr/bin/env bash
# cm-delta output: the binary table on stdout or -o (atomic), determinism,
# --json lines that parse.
set -euo pipefail
BIN="${CM_BIN:?CM_BIN not set}/cm-delta"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

O=$T/old N=$T/new
mkdir -p "$O/d" "$N/d" "$N/e"
python3 - "$O" "$N" <<'PY'
import os, random, sys
random.seed(1)
o, n = sys.argv[1], sys.argv[2]
words = ["alpha", "beta", "gamma", "delta", "content", "mover"]
for i in range(20):
    lines = [" ".join(random.choice(words) for _ in range(8)) for _ in range(200)]
    open(f"{o}/d/f{i}.txt", "w").write("\n".join(lines))
    if i % 3 == 0:
        lines.insert(50, "an inserted line")
        del lines[120]
    open(f"{n}/d/f{i}.txt", "w").write("\n".join(lines))
data = os.urandom(300000)
open(f"{o}/blob", "wb").write(data)
open(f"{n}/blob", "wb").write(b"head" + data[:100000] + os.urandom(1000) + data[101000:])
open(f"{n}/e/new", "w").write("new file\n")
PY
find "$O" "$N" -depth -exec touch -d @1600000000 {} +
touch -d @1700000000 "$N"/d/f0.txt "$N"/d/f3.txt "$N"/d/f6.txt "$N"/d/f9.txt "$N"/d/f12.txt "$N"/d/f15.txt "$N"/d/f18.txt "$N/blob"

"$BIN" "$O" "$N" >"$T/a"
"$BIN" "$O" "$N" >"$T/b"
cmp "$T/a" "$T/b" || fail "two runs differ"
[ "$(head -c 4 "$T/a")" = CMDT ] || fail "no CMDT magic on stdout"
"$BIN" -o "$T/c" "$O" "$N" >"$T/stdout"
[ ! -s "$T/stdout" ] || fail "-o also wrote to stdout"
cmp "$T/a" "$T/c" || fail "-o differs from stdout"
"$BIN" -o - "$O" "$N" >"$T/d"
cmp "$T/a" "$T/d" || fail "-o - differs"
ls -a "$T" | grep -q '\.tmp-' && fail "temporary file left behind"
# -o replaces an existing file.
echo junk >"$T/c"
"$BIN" -o "$T/c" "$O" "$N"
cmp "$T/a" "$T/c" || fail "-o did not replace the file"

# --json: every line parses; entries then one summary; deltas are small.
"$BIN" --json "$O" "$N" >"$T/j"
python3 - "$T/j" <<'PY' || fail "--json"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
entries = [r for r in recs if r["type"] == "entry"]
summary = recs[-1]
assert summary["type"] == "summary", summary
assert [r for r in recs[:-1] if r["type"] != "entry"] == []
assert summary["entries"] == len(entries), summary
paths = {r["path"]: r for r in entries}
assert paths["e"]["op"] == "add" and paths["e"]["kind"] == "dir"
assert paths["e/new"]["size"] == 9 and len(paths["e/new"]["hash"]) == 64
b = paths["blob"]
assert b["op"] == "modify" and b["encoding"] == "delta", b
assert b["delta_bytes"] < 1200, b
assert b["base_size"] == 300000 and len(b["base_hash"]) == 64
for i in (0, 3, 6, 9, 12, 15, 18):
    r = paths[f"d/f{i}.txt"]
    assert r["encoding"] == "delta" and r["delta_bytes"] < 64, r
assert summary["delta_files"] == 8, summary
PY
# The JSON listing agrees with the JSON emitted next to a table.
"$BIN" --json -o "$T/e" "$O" "$N" >"$T/j2"
cmp "$T/a" "$T/e" || fail "--json -o table differs"
python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' <"$T/j2" || fail "--json -o does not parse"
head -n -1 "$T/j" | cmp - <(head -n -1 "$T/j2") || fail "--json entries differ with -o"
echo PASS
