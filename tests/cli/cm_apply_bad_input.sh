#!/bin/bash
# Bad input to cm-apply: each case must give one clear stderr line, the
# documented exit code, and leave the live tree (and the state) untouched.
# Path-escape assignments cannot be made with cm-pack; they are built with the
# writer API in tests/unit/apply/applier_test.cc (which also runs cm-apply).
source "$CM_SRC/tests/cli/cm_apply_common.inc"

make_trees
R=$W/root
fresh_root "$R"
"$DELTA" "$W/old" "$W/new" | "$PACK" - --source "$W/new" -o "$W/pub.cma" --serial 2 --job pub || fail "pack"
SIZE=$(stat -c %s "$W/pub.cma")
DATA=$("$PACK" inspect "$W/pub.cma" --json | grep -o '"data_size":[0-9]*' | cut -d: -f2)
BODY=$("$PACK" inspect "$W/pub.cma" --json | grep -o '"body_size":[0-9]*' | cut -d: -f2)
[ "$DATA" -gt 16 ] && [ "$BODY" -gt 16 ] || fail "unexpected sizes data=$DATA body=$BODY"

# Truncated at several lengths: corrupt (4).
for n in 0 1 100 255 256 300 $((256 + DATA)) $((SIZE - 128)) $((SIZE - 1)); do
  head -c "$n" "$W/pub.cma" >"$W/trunc.cma"
  check_fail 4 'truncated|corrupt|mismatch' "$R" "$APPLY" "$W/trunc.cma" --root "$R"
done

# One flipped byte in each part: corrupt (4).
flip() {  # flip FILE OFFSET OUT
  cp "$1" "$3"
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $(((b ^ 0x5a) & 255)))" | dd of="$3" bs=1 seek="$2" conv=notrunc status=none
}
for where in "header:20" "data:$((256 + DATA / 2))" "body:$((256 + DATA + BODY / 2))" "trailer:$((SIZE - 120))"; do
  flip "$W/pub.cma" "${where#*:}" "$W/flip.cma"
  echo "flipped byte in the ${where%%:*} at ${where#*:}"
  check_fail 4 'hash|corrupt|magic|malformed|signature' "$R" "$APPLY" "$W/flip.cma" --root "$R"
done

# Signatures: unsigned when a key is required, wrong key, tampered signed file: auth (5).
"$PACK" keygen -o "$W/k" >/dev/null || fail keygen
"$PACK" keygen -o "$W/k2" >/dev/null || fail keygen
"$DELTA" "$W/old" "$W/new" | "$PACK" - --source "$W/new" -o "$W/signed.cma" --serial 2 --job pub --sign-key "$W/k" || fail "pack signed"
check_fail 5 'not signed' "$R" "$APPLY_BIN" "$W/pub.cma" --root "$R" --pub-key "$W/k.pub"
check_fail 5 'another key' "$R" "$APPLY" "$W/signed.cma" --root "$R" --pub-key "$W/k2.pub"
SSIZE=$(stat -c %s "$W/signed.cma")
flip "$W/signed.cma" $((SSIZE - 80)) "$W/badsig.cma"
check_fail 5 'bad signature' "$R" "$APPLY" "$W/badsig.cma" --root "$R" --pub-key "$W/k.pub"
# Encrypted without the group key: auth (5).
"$PACK" keygen --group -o "$W/g" >/dev/null || fail "keygen --group"
"$DELTA" "$W/old" "$W/new" | "$PACK" - --source "$W/new" -o "$W/enc.cma" --serial 2 --job pub --group-key "$W/g" || fail "pack enc"
check_fail 5 'encrypted' "$R" "$APPLY" "$W/enc.cma" --root "$R"
# ... and with it, the signed and the encrypted ones apply (on copies of the root).
cp -a "$R" "$W/rs" && "$APPLY" "$W/signed.cma" --root "$W/rs" --pub-key "$W/k.pub" --commit || fail "signed apply"
[ "$(manifest "$W/rs/current")" = "$(manifest "$W/new")" ] || fail "signed apply result"
cp -a "$R" "$W/re" && "$APPLY" "$W/enc.cma" --root "$W/re" --group-key "$W/g" --commit || fail "encrypted apply"
[ "$(manifest "$W/re/current")" = "$(manifest "$W/new")" ] || fail "encrypted apply result"
echo "ok: signed and encrypted assignments apply with their keys"

# Config: a pub_key in the TOML file is enforced; flags override the root.
printf 'root = "%s"\npub_key = "%s"\n' "$R" "$W/k.pub" >"$W/apply.toml"
check_fail 5 'not signed' "$R" "$APPLY_BIN" "$W/pub.cma" --config "$W/apply.toml"
printf 'roots = "/x"\n' >"$W/typo.toml"
check_fail 2 'typo.toml:1: roots: unknown key' "$R" "$APPLY" "$W/pub.cma" --root "$R" --config "$W/typo.toml"
printf 'root = "%s"\n\nkeep = "two"\n' "$R" >"$W/typed.toml"
check_fail 2 'typed.toml:3: keep: expected an integer' "$R" "$APPLY" "$W/pub.cma" --config "$W/typed.toml"
printf 'keep = 1\n' >"$W/range.toml"
check_fail 2 'range.toml:1: keep: expected an integer from 2 to 1000' "$R" "$APPLY" "$W/pub.cma" --root "$R" --config "$W/range.toml"
printf 'space_margin = -5\n' >"$W/margin.toml"
check_fail 2 'margin.toml:1: space_margin: expected a non-negative integer' "$R" "$APPLY" "$W/pub.cma" --root "$R" --config "$W/margin.toml"
# The flag wins over the file: --pub-key k2.pub, not the file's k.pub, checks the signature.
check_fail 5 'another key' "$R" "$APPLY" "$W/signed.cma" --config "$W/apply.toml" --pub-key "$W/k2.pub"
check_fail 2 'No such file' "$R" "$APPLY" "$W/pub.cma" --root "$R" --config "$W/missing.toml"

# Order: replay of the same file is a no-op; other content with an applied or
# older serial is refused (6); a later part without its first is refused (6).
cp -a "$R" "$W/ro_order"
R2=$W/ro_order
"$APPLY" "$W/pub.cma" --root "$R2" || fail "apply"
"$APPLY" "$W/pub.cma" --root "$R2" || fail "same assignment again must be a no-op"
"$DELTA" "$W/old" "$W/new" | "$PACK" - --source "$W/new" -o "$W/other2.cma" --serial 2 --job other || fail pack
check_fail 6 'serial 2 was applied with other content' "$R2" "$APPLY" "$W/other2.cma" --root "$R2"
"$DELTA" "$W/old" "$W/new" | "$PACK" - --source "$W/new" -o "$W/old1.cma" --serial 1 --job older || fail pack
check_fail 6 'serial 1 was applied with other content' "$R2" "$APPLY" "$W/old1.cma" --root "$R2"
"$PACK" commit --job pub --serial 5 -o "$W/c5.cma" && "$APPLY" "$W/c5.cma" --root "$R2" || fail "commit 5"
# Serials are ordered per space (man cm-apply, SERIALS): a job packed before
# that commit (staging serial 4) is still staged after it; a rollback older
# than the last commit, or a staging assignment older than the last staged
# one, is refused.
"$DELTA" "$W/new" "$W/old" | "$PACK" - --source "$W/old" -o "$W/late4.cma" --serial 4 --job late || fail pack
"$APPLY" "$W/late4.cma" --root "$R2" || fail "a staging serial below the last commit's must be accepted"
"$PACK" rollback --serial 3 -o "$W/rb3.cma" || fail pack
check_fail 6 'serial 3 is older than the last applied \(5\) commit or rollback' "$R2" "$APPLY" "$W/rb3.cma" --root "$R2"
"$DELTA" "$W/new" "$W/old" | "$PACK" - --source "$W/old" -o "$W/late3.cma" --serial 3 --job later || fail pack
check_fail 6 'serial 3 is older than the last applied \(4\)$' "$R2" "$APPLY" "$W/late3.cma" --root "$R2"
"$PACK" replicate "$W/new" -o "$W/split.cma" --serial 10 --job split --max-size 1 >/dev/null || fail "pack split"
[ -f "$W/split.part2.cma" ] || fail "no part 2 made"
check_fail 6 'part 2 without parts 1' "$R2" "$APPLY" "$W/split.part2.cma" --root "$R2"
"$PACK" commit --job nosuch --serial 20 -o "$W/nosuch.cma" || fail pack
check_fail 3 'no staged tree' "$R2" "$APPLY" "$W/nosuch.cma" --root "$R2"

# Base mismatch: a live file changed behind cm-apply's back (8).
cp -a "$R" "$W/rb"
echo tampered >>"$W/rb/current/big.txt"
check_fail 8 'base' "$W/rb" "$APPLY" "$W/pub.cma" --root "$W/rb" --commit

# Busy: another cm-apply holds the lock (7).
flock "$R/.cm/lock" sleep 3 &
sleep 0.3
check_fail 7 'another cm-apply holds the lock' "$R" "$APPLY" "$W/pub.cma" --root "$R"
wait

# Usage errors (2).
check_fail 2 'no assignment file' "$R" "$APPLY" --root "$R"
check_fail 2 'not expected|--frobnicate' "$R" "$APPLY" --frobnicate --root "$R"

if [ "$(id -u)" != 0 ]; then
  echo "SKIP (partly): disk-full and read-only cases need root (mount)"
  exit 0
fi

# Disk full: a 2 MiB tmpfs root and a 4 MiB file (9).
T=$W/tmpfs
mkdir -p "$T"
mount -t tmpfs -o size=2m tmpfs "$T" || fail "mount tmpfs"
fresh_root "$T/root" 2>/dev/null || fresh_root "$T/root"
mkdir -p "$W/big"
cp -a "$W/old/." "$W/big/"
head -c $((4 << 20)) /dev/urandom >"$W/big/huge.bin"
"$DELTA" "$W/old" "$W/big" | "$PACK" - --source "$W/big" -o "$W/huge.cma" --serial 5 --job huge || fail pack
check_fail 9 'not enough space' "$T/root" "$APPLY" "$W/huge.cma" --root "$T/root" --commit
umount "$T"
# Too few inodes for the commands: refused before staging (9), live
# untouched, no half stage.
mount -t tmpfs -o size=16m,nr_inodes=64 tmpfs "$T" || fail "mount tmpfs"
fresh_root "$T/root"
mkdir -p "$W/many"
cp -a "$W/old/." "$W/many/"
for i in $(seq 1 100); do echo "$i" >"$W/many/sub/f$i"; done
"$DELTA" "$W/old" "$W/many" | "$PACK" - --source "$W/many" -o "$W/many.cma" --serial 6 --job many || fail pack
check_fail 9 'not enough inodes' "$T/root" "$APPLY" "$W/many.cma" --root "$T/root" --commit
[ -z "$(ls -A "$T/root/.cm/stage")" ] || fail "half stage left after ENOSPC"

# Read-only file system (10).
umount "$T"
mount -t tmpfs -o size=8m tmpfs "$T" || fail "mount tmpfs"
fresh_root "$T/root"
mount -o remount,ro "$T" || fail "remount ro"
check_fail 10 'Read-only file system' "$T/root" "$APPLY" "$W/pub.cma" --root "$T/root" --commit
"$APPLY" status --root "$T/root" >/dev/null || fail "status on a read-only root"
umount "$T"
echo "PASS"
