#!/bin/bash
# A patch reads its base with pread in bounded memory: patching a large file
# (CM_RSS_FILE_MB, default 192 MiB; 1 GiB measured by hand at ~7.5 MiB peak)
# must stay under 64 MiB peak RSS, and so must creating it whole.
source "$CM_SRC/tests/cli/cm_apply_common.inc"
[ -x /usr/bin/time ] || { echo "SKIP: /usr/bin/time (GNU time) not installed"; exit 77; }
MB=${CM_RSS_FILE_MB:-192}
LIMIT_KB=$((64 * 1024))
mkdir -p "$W/old" "$W/new" "$W/R"
head -c $((MB << 20)) /dev/urandom >"$W/old/big.bin"
cp "$W/old/big.bin" "$W/new/big.bin"
printf 'PATCHED' | dd of="$W/new/big.bin" bs=1 seek=$(((MB / 2) << 20)) conv=notrunc status=none
echo tail >>"$W/new/big.bin"
"$PACK" replicate "$W/old" -o "$W/base.cma" --serial 1 --job base --level 1 || fail "pack replicate"
"$DELTA" "$W/old" "$W/new" | "$PACK" - --source "$W/new" -o "$W/p.cma" --serial 2 --job p || fail "pack delta"
grep -q '"op":"patch"' <("$PACK" inspect "$W/p.cma" --json) || fail "expected a patch command"

peak() {  # peak RSS in KiB of a command
  /usr/bin/time -f '%M' -o "$W/rss" "$@" || fail "$*"
  cat "$W/rss"
}
create_kb=$(peak "$APPLY" "$W/base.cma" --root "$W/R" --commit)
rm -f "$W/base.cma"
patch_kb=$(peak "$APPLY" "$W/p.cma" --root "$W/R" --commit)
cmp -s "$W/R/current/big.bin" "$W/new/big.bin" || fail "patched file differs"
echo "peak RSS for a $MB MiB file: create ${create_kb} KiB, patch ${patch_kb} KiB (limit $LIMIT_KB KiB)"
[ "$create_kb" -lt "$LIMIT_KB" ] || fail "create used ${create_kb} KiB"
[ "$patch_kb" -lt "$LIMIT_KB" ] || fail "patch used ${patch_kb} KiB"

# The largest ZSTD delta cm-delta writes: an 8 MiB rebuilt library against an
# 8 MiB base (the base mapped, a 16 MiB window) stays under the limit too.
rm -rf "$W/old" "$W/new" "$W/p.cma"
mkdir -p "$W/old2" "$W/new2" "$W/R2"
python3 - "$W/old2/lib.so" "$W/new2/lib.so" <<'PY'
import random, struct, sys
r = random.Random(3)
words = [r.randrange(4096) for _ in range(2 << 20)]
open(sys.argv[1], "wb").write(struct.pack("<%dI" % len(words), *words))
open(sys.argv[2], "wb").write(struct.pack("<%dI" % len(words), *[w + (32 if i % 5 == 0 else 0) for i, w in enumerate(words)]))
PY
"$PACK" replicate "$W/old2" -o "$W/base2.cma" --serial 1 --job base2 --level 1 || fail "pack replicate 2"
"$APPLY" "$W/base2.cma" --root "$W/R2" --commit >/dev/null || fail "apply replicate 2"
"$DELTA" "$W/old2" "$W/new2" | "$PACK" - --source "$W/new2" -o "$W/z.cma" --serial 2 --job z || fail "pack zstd delta"
zsize=$(stat -c %s "$W/z.cma")
[ "$zsize" -lt $((2 << 20)) ] || fail "the 8 MiB library's delta is $zsize bytes"
zstd_kb=$(peak "$APPLY" "$W/z.cma" --root "$W/R2" --commit)
cmp -s "$W/R2/current/lib.so" "$W/new2/lib.so" || fail "ZSTD-patched file differs"
echo "peak RSS for an 8 MiB ZSTD delta ($zsize bytes): ${zstd_kb} KiB"
[ "$zstd_kb" -lt "$LIMIT_KB" ] || fail "ZSTD patch used ${zstd_kb} KiB"
echo PASS
