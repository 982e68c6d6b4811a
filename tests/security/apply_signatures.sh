#!/usr/bin/env bash
# cm-apply is signed by default (issue 11): an unsigned assignment is refused
# unless --allow-unsigned; a signed one without a key to check it, or with a
# bad signature, is refused even when no key is configured; the default key is
# CONFIG_DIR/ccm.pub. Each refusal: exit 5, one error line, live tree and
# .cm/state unchanged.
source "$(dirname "$0")/../cli/cm_apply_common.inc"
make_trees
R=$W/root
export CM_CONFIG_DIR=$W/etc       # empty: no key configured
fresh_root "$R"
"$PACK" -q keygen -o "$W/ccm.key" --pub "$W/ccm.pub" || fail keygen
"$DELTA" "$W/old" "$W/new" | "$PACK" - --source "$W/new" -o "$W/u.cma" --serial 2 --job u || fail "pack unsigned"
"$DELTA" "$W/old" "$W/new" | "$PACK" - --source "$W/new" -o "$W/s.cma" --serial 2 --job s \
  --sign-key "$W/ccm.key" || fail "pack signed"
# A present-but-bad signature: flip the first signature byte (trailer at
# file size - 128 - 32 * chunk_count; the signature starts 40 bytes in).
chunks=$("$PACK" inspect "$W/s.cma" --json | grep -o '"chunk_count":[0-9]*' | cut -d: -f2)
size=$(stat -c %s "$W/s.cma")
cp "$W/s.cma" "$W/bad.cma"
off=$((size - 128 - 32 * chunks + 40))
printf '\x00' | dd of="$W/bad.cma" bs=1 seek=$off conv=notrunc status=none
cmp -s "$W/s.cma" "$W/bad.cma" && { printf '\x01' | dd of="$W/bad.cma" bs=1 seek=$off conv=notrunc status=none; }

check_fail 5 'not signed; refused \(--allow-unsigned' "$R" "$APPLY_BIN" "$W/u.cma" --root "$R" --commit
check_fail 5 'signed \(key id [0-9a-f]{16}\) but no public key is configured' "$R" \
  "$APPLY_BIN" "$W/s.cma" --root "$R" --commit
check_fail 5 'no public key is configured' "$R" "$APPLY_BIN" "$W/bad.cma" --root "$R" --commit
check_fail 5 'no public key is configured' "$R" "$APPLY" "$W/bad.cma" --root "$R" --commit  # --allow-unsigned
check_fail 5 'not signed' "$R" "$APPLY_BIN" verify "$W/u.cma"
# The default key (CONFIG_DIR/ccm.pub): the bad signature is refused, the good one applies.
cp "$W/ccm.pub" "$CM_CONFIG_DIR/ccm.pub"
check_fail 5 'bad signature' "$R" "$APPLY_BIN" "$W/bad.cma" --root "$R" --commit
check_fail 5 'not signed' "$R" "$APPLY_BIN" "$W/u.cma" --root "$R" --commit
"$APPLY_BIN" "$W/s.cma" --root "$R" --commit || fail "signed apply with the default key"
[ "$(manifest "$R/current")" = "$(manifest "$W/new")" ] || fail "live is not the new tree"
# --allow-unsigned accepts an unsigned one even with a key configured.
"$DELTA" "$W/new" "$W/old" | "$PACK" - --source "$W/old" -o "$W/back.cma" --serial 3 --job back || fail pack
"$APPLY" "$W/back.cma" --root "$R" --commit || fail "--allow-unsigned"
[ "$(manifest "$R/current")" = "$(manifest "$W/old")" ] || fail "live is not the old tree"
echo PASS
