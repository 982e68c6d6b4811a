#!/usr/bin/env bash
# Bombs are refused before anything is written (issue 11): a few KB of
# assignment that declares 64 MiB of files on a 16 MiB file system, and one
# whose commands outnumber the free inodes: exit 9, one error line, live
# tree and state unchanged, no stage left. Needs root (tmpfs).
source "$(dirname "$0")/../cli/cm_apply_common.inc"
[ "$(id -u)" = 0 ] || { echo "skip: needs root (mounts a tmpfs)"; exit 77; }
make_trees
T=$W/tmpfs
mkdir -p "$T"
mount -t tmpfs -o size=16m tmpfs "$T" || fail "mount tmpfs"
R=$T/root
fresh_root "$R"
mkdir -p "$W/zeros"
cp -a "$W/old/." "$W/zeros/"
head -c $((64 << 20)) /dev/zero >"$W/zeros/zero.bin"
"$DELTA" "$W/old" "$W/zeros" | "$PACK" - --source "$W/zeros" -o "$W/bomb.cma" --serial 2 --job bomb || fail pack
size=$(stat -c %s "$W/bomb.cma")
[ "$size" -lt $((256 << 10)) ] || fail "the bomb is not small ($size bytes)"
free_before=$(df --output=avail -B1 "$T" | tail -1)
check_fail 9 'not enough space in .*declares 6710[0-9]* bytes' "$R" "$APPLY" "$W/bomb.cma" --root "$R" --commit
[ -z "$(ls -A "$R/.cm/stage")" ] || fail "stage left after the refusal"
[ "$(df --output=avail -B1 "$T" | tail -1)" -ge $((free_before - (64 << 10))) ] || fail "space was used"
umount "$T"

# Many empty files: more commands than free inodes.
mount -t tmpfs -o size=16m,nr_inodes=200 tmpfs "$T" || fail "mount tmpfs"
fresh_root "$R"
mkdir -p "$W/many"
cp -a "$W/old/." "$W/many/"
for i in $(seq 1 400); do : >"$W/many/sub/f$i"; done
"$DELTA" "$W/old" "$W/many" | "$PACK" - --source "$W/many" -o "$W/many.cma" --serial 2 --job many || fail pack
check_fail 9 'not enough inodes' "$R" "$APPLY" "$W/many.cma" --root "$R" --commit
[ -z "$(ls -A "$R/.cm/stage")" ] || fail "stage left after the refusal"
umount "$T"
echo PASS
