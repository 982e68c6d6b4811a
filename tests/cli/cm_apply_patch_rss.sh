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
echo PASS
