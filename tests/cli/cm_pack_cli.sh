#!/usr/bin/env bash
# cm-pack from the command line: help, version, errors, keys, control
# assignments, inspect/verify, tamper detection, and the pipe from cm-delta.
source "$(dirname "$0")/lib.inc"

expect_rc 0 cm-pack --help
grep -q "cm-delta shadow/ staging/ | cm-pack - --source staging/" out || fail "help lacks the pipeline example"
expect_rc 0 cm-pack --version
grep -qx "cm-pack [0-9.]*" out || fail "version format"
expect_rc 2 cm-pack --no-such-option
one_error_line cm-pack
expect_rc 2 cm-pack
one_error_line cm-pack
expect_rc 2 cm-pack commit -o c.cma          # --job missing
one_error_line cm-pack
expect_rc 2 cm-pack commit --job 'bad job!' -o c.cma
one_error_line cm-pack
expect_rc 3 cm-pack no-such-table --source . -o x.cma
one_error_line cm-pack

# Keys
expect_rc 0 cm-pack keygen -o ccm.key
[[ -f ccm.key && -f ccm.key.pub ]] || fail "keygen files"
[[ $(stat -c %a ccm.key) == 600 ]] || fail "secret key mode"
expect_rc 2 cm-pack keygen -o ccm.key        # never overwrites
one_error_line cm-pack
expect_rc 0 cm-pack keygen -o other.key
expect_rc 0 cm-pack keygen --group -o group.key

# Control assignments, inspect, verify
expect_rc 0 cm-pack commit --job rel-1 --serial 10 --sign-key ccm.key -o c.cma
expect_rc 0 cm-pack inspect c.cma --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["header"]["type"]=="commit" and d["header"]["serial"]==10 and d["header"]["job"]=="rel-1" and d["verified"]' out
# Control assignments are format 3 too; nothing lies between header and trailer, so the table is empty.
python3 -c 'import json,sys; h=json.load(open(sys.argv[1]))["header"]; assert h["version"]==3 and h["chunk_size"]==65536 and h["chunk_count"]==0, h' out
[[ $(stat -c %s c.cma) == 384 ]] || fail "commit assignment size"
expect_rc 0 cm-pack verify c.cma --pub-key ccm.key.pub
expect_rc 5 cm-pack verify c.cma --pub-key other.key.pub
one_error_line cm-pack
grep -q "another key" err || fail "wrong key message"

# pack.toml under the flags: a key fills what no flag gave, a flag wins, typos are errors with FILE:LINE.
printf 'sign_key = "ccm.key"\nchunk_size = 131072\n' >p.toml
expect_rc 0 cm-pack --config p.toml commit --job j --serial 3 -o p1.cma
expect_rc 0 cm-pack verify p1.cma --pub-key ccm.key.pub      # signed with the file's sign_key
expect_rc 0 cm-pack inspect p1.cma --json
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["header"]["chunk_size"]==131072' out || fail "chunk_size from pack.toml"
expect_rc 0 cm-pack --config p.toml commit --job j --serial 4 --chunk-size 256K -o p2.cma
expect_rc 0 cm-pack inspect p2.cma --json
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["header"]["chunk_size"]==262144' out || fail "--chunk-size did not win"
printf 'sign_key = "ccm.key"\nlevl = 3\n' >p.toml
expect_rc 2 cm-pack --config p.toml commit --job j --serial 5 -o p3.cma
one_error_line cm-pack
grep -q "p.toml:2: levl: unknown key" err || fail "pack.toml unknown key: $(cat err)"
printf 'level = 30\n' >p.toml
expect_rc 2 cm-pack --config p.toml commit --job j --serial 5 -o p3.cma
grep -q "p.toml:1: level: expected a zstd level from 1 to 22" err || fail "pack.toml level range: $(cat err)"
expect_rc 2 cm-pack --config nonexistent.toml commit --job j --serial 5 -o p3.cma
# The default CONFIG_DIR/pack.toml is read when present ($CM_CONFIG_DIR stands for /etc/content-mover).
mkdir -p pconf && printf 'bogus = 1\n' >pconf/pack.toml
expect_rc 2 env CM_CONFIG_DIR="$T/pconf" cm-pack commit --job j --serial 5 -o p3.cma
grep -q "pack.toml:1: bogus: unknown key" err || fail "default pack.toml not read: $(cat err)"

# A missing key file is exit 2 (configuration) from every tool, naming the file.
mkdir -p sp && printf 'x' >x.cma
for cmd in "cm-pack commit --job j --serial 1 --sign-key nokey -o n.cma" \
           "cm-pack commit --job j --serial 1 --group-key nokey -o n.cma" \
           "cm-pack verify c.cma --pub-key nokey" \
           "cm-apply verify c.cma --pub-key nokey" \
           "cm-apply verify c.cma --group-key nokey" \
           "cm-mcast recv --group 239.255.77.1:7 --key nokey -o sp" \
           "cm-leader run --group 239.255.77.2:7 --key-file nokey --id 1" \
           "cm-push relay --spool sp --listen 127.0.0.1:1 --pub-key ccm.key.pub --group-key nokey" \
           "cm-push relay --spool sp --listen 127.0.0.1:1 --pub-key nokey --group-key group.key"; do
  # shellcheck disable=SC2086
  expect_rc 2 timeout 20 $cmd
  grep -q "nokey" err || fail "'$cmd': the missing key file is not named: $(cat err)"
done

# Serial file advances: max(last + 1, clock in microseconds), so a serial
# file never falls behind serials taken from the clock (and the other way).
serial_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["header"]["serial"])' "$1"; }
before=$(( $(date +%s) * 1000000 ))
expect_rc 0 cm-pack rollback --job rel-1 --serial-file serial -o r1.cma
expect_rc 0 cm-pack rollback --job rel-1 --serial-file serial -o r2.cma
cm-pack inspect --json r1.cma >i1 && cm-pack inspect --json r2.cma >i2
s1=$(serial_of i1) s2=$(serial_of i2)
(( s1 >= before && s2 > s1 )) || fail "serial file serials $s1, $s2 should follow the clock ($before)"
[[ $(cat serial) == "$s2" ]] || fail "serial file should hold $s2, has $(cat serial)"
echo 9000000000000000 >serial    # ahead of the clock: last + 1
expect_rc 0 cm-pack rollback --job rel-1 --serial-file serial -o r3.cma
cm-pack inspect --json r3.cma >i3
[[ $(serial_of i3) == 9000000000000001 && $(cat serial) == 9000000000000001 ]] || fail "serial after 9000000000000000: $(serial_of i3)"

# The pipe: cm-delta | cm-pack -
mkdir -p old new/sub
echo hello >new/a.txt
seq 1 5000 >new/sub/numbers.txt
head -c 100000 /dev/urandom >new/sub/blob.bin
ln -s a.txt new/link
cm-delta old new | cm-pack - --source new --sign-key ccm.key --group-key group.key --json -o p.cma >out
# 5 entries + the BASE command cm-delta's table names (man cm-pack(1), BASE).
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); f=d["files"][0]; assert f["signed"] and f["encrypted"] and f["commands"]==6, d' out
# Encrypted: integrity and signature verify without the group key; only the commands stay unread.
expect_rc 0 cm-pack verify p.cma --pub-key ccm.key.pub
expect_rc 0 cm-pack inspect p.cma --pub-key ccm.key.pub --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["verified"] and d["commands_sealed"] and d["commands"]==[], d' out
expect_rc 5 cm-pack verify p.cma --pub-key other.key.pub
expect_rc 0 cm-pack verify p.cma --pub-key ccm.key.pub --group-key group.key
expect_rc 0 cm-pack inspect p.cma --group-key group.key
grep -q "numbers.txt" out || fail "inspect lists the commands"

# Output to stdout when piped; refused to a terminal is not testable here.
cm-delta old new | cm-pack - --source new > s.cma
expect_rc 0 cm-pack verify s.cma

# Chunk table (format 3, the default): version, chunk size and count in inspect and the pack summary.
cm-delta old new | cm-pack - --source new --chunk-size 1M --json -o v3.cma >out
python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["files"][0]; assert f["version"]==3 and f["chunk_size"]==1048576 and f["chunk_count"]==1, f' out
expect_rc 0 cm-pack inspect v3.cma
grep -q "^  version   3 (compact commands), chunk table: 1 chunk of 1.0 MiB$" out || fail "inspect shows version and chunks: $(cat out)"
# --format 2: the chunk table with the v2 body, for servers that read no format 3.
cm-delta old new | cm-pack - --source new --format 2 --json -o v2.cma >out
python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["files"][0]; assert f["version"]==2, f' out
expect_rc 0 cm-pack inspect v2.cma
grep -q "^  version   2, chunk table: [0-9]* chunks of 64.0 KiB$" out || fail "inspect of format 2: $(cat out)"
expect_rc 2 cm-pack - --source new --format 2 --chunk-size 0 -o bad.cma <v2.cma
expect_rc 2 cm-pack - --source new --format 4 -o bad.cma <v2.cma
cm-delta old new | cm-pack - --source new --json -o small.cma >out   # the default: 64 KiB chunks
expect_rc 0 cm-pack inspect small.cma --json
python3 - out small.cma <<'PY'
import json, os, sys
h = json.load(open(sys.argv[1]))["header"]
covered = h["data_size"] + h["body_size"]
assert h["version"] == 3 and h["chunk_size"] == 65536, h
assert h["chunk_count"] == (covered + 65535) // 65536 and h["chunk_count"] >= 2, h
assert os.path.getsize(sys.argv[2]) == 256 + covered + 128 + 32 * h["chunk_count"], h
PY
# --chunk-size 0 writes format 1, which every reader still accepts.
cm-delta old new | cm-pack - --source new --chunk-size 0 -o v1.cma
expect_rc 0 cm-pack inspect v1.cma --json
python3 - out v1.cma <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1]))
h = d["header"]
assert d["verified"] and h["version"] == 1 and h["chunk_size"] == 0 and h["chunk_count"] == 0, h
assert os.path.getsize(sys.argv[2]) == 256 + h["data_size"] + h["body_size"] + 128, h
PY
expect_rc 0 cm-pack inspect v1.cma
grep -q "^  version   1 (no chunk table)$" out || fail "inspect of format 1"
for bad in 1000 32K 128M 3M x; do
  expect_rc 2 cm-pack commit --job j --chunk-size "$bad" -o bad.cma
  one_error_line cm-pack
  grep -q -- "--chunk-size" err || fail "chunk size error names the option"
done
[[ ! -e bad.cma ]] || fail "no output on a bad chunk size"

# Tampering: a flipped byte anywhere is refused with exit 4 (or 5 for the signature):
# header, data, body, trailer (body hash, signature) and chunk table; in both formats.
for cs in 1M 0; do
cm-delta old new | cm-pack - --source new --sign-key ccm.key --chunk-size $cs -o t.cma
size=$(stat -c %s t.cma)
cm-pack inspect t.cma --json >out
chunks=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["header"]["chunk_count"])' out)
trailer=$((size - 128 - 32 * chunks))
for off in 0 20 100 140 180 230 300 $((size / 2)) $((trailer + 8)) $((trailer + 60)) $((size - 1)); do
  cp t.cma bad.cma
  printf '\xff' | dd of=bad.cma bs=1 seek=$off conv=notrunc status=none
  cmp -s t.cma bad.cma && printf '\x00' | dd of=bad.cma bs=1 seek=$off conv=notrunc status=none
  set +e; cm-pack verify bad.cma --pub-key ccm.key.pub 2>err; rc=$?; set -e
  [[ $rc == 4 || $rc == 5 ]] || fail "chunk size $cs: flip at $off: exit $rc"
done
done
# Truncation
head -c $((size - 1)) t.cma >trunc.cma
expect_rc 4 cm-pack verify trunc.cma
one_error_line cm-pack

# Split at a size cap: several parts, serials increasing, only the last flagged.
mkdir -p big
for i in 1 2 3 4; do head -c 300000 /dev/urandom >big/f$i.bin; done
cm-delta old big | cm-pack - --source big --max-size 400K --serial 100 --json -o split.cma >out
python3 - out <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
f = d["files"]
assert len(f) >= 3, f
assert [x["serial"] for x in f] == list(range(100, 100 + len(f))), f
assert [x["last_part"] for x in f] == [False] * (len(f) - 1) + [True], f
assert f[1]["path"] == "split.part2.cma", f
# --max-size counts the whole file (header, data, commands, trailer, chunk table).
assert all(x["file_size"] <= 400 * 1024 for x in f), [x["file_size"] for x in f]
PY
# Also when the commands are what fills the parts: 3000 files whose mtime alone
# changed, a metadata command each (--no-time-runs) in the uncompressed body of
# format 2, under a 16 KiB cap; by default the same change is one TOUCH run in
# one small part.
mkdir -p many.old
for d in $(seq 1 30); do mkdir many.old/dir-$d; for f in $(seq 1 100); do echo "$d $f" >many.old/dir-$d/file-$f.txt; done; done
touch -d @1600000000 many.old/*/* && cp -a many.old many.new && touch -d @1700000000 many.new/*/* many.new/*
cm-delta --no-time-runs many.old many.new | cm-pack - --source many.new --format 2 --max-size 16K --json -o meta.cma >out
python3 - out <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))["files"]
assert len(f) >= 3, [x["file_size"] for x in f]
assert all(x["file_size"] <= 16 * 1024 for x in f), [x["file_size"] for x in f]
PY
cm-delta many.old many.new | cm-pack - --source many.new --max-size 16K --json -o runs.cma >out
python3 - out <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))["files"]
assert len(f) == 1 and f[0]["file_size"] < 1024, f
PY
expect_rc 0 cm-pack inspect runs.cma
grep -q "touch *dir-1 \.\. dir-9/file-99.txt  (3030 entries)" out || fail "inspect shows the run: $(cat out)"
echo "cm_pack_cli: ok"
