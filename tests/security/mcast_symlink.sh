#!/usr/bin/env bash
# cm-mcast recv never follows a symlink planted in its output directory: at
# the partial file, its map, the final name or the replay record
# (.cm-mcast-sessions). Each points at a file outside DIR; after a keyed
# session every target is byte-for-byte unchanged and DIR holds the real
# file. Before, the partial file was opened O_CREAT|O_TRUNC through the link
# (truncating and then filling the target).
set -u
B=$(cd "${CM_BIN:-build/bin}" && pwd)/cm-mcast
T=$(mktemp -d /tmp/cm-mcast-link.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
G="239.$((RANDOM % 200 + 20)).$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 30000))"
cd "$T" || exit 1
echo "cm-group-key-v1 $(head -c 32 /dev/urandom | base64 -w0)" > g.key
chmod 600 g.key
mkdir src dst outside
head -c 200000 /dev/urandom > src/a.bin
LINKS=(.a.bin.tmp.cm-part .a.bin.tmp.cm-part.map a.bin .cm-mcast-sessions)
for i in "${!LINKS[@]}"; do
  echo "precious $i" > "outside/t$i"
  ln -s "$T/outside/t$i" "dst/${LINKS[$i]}"
done
sha_before=$(cd outside && sha256sum t* && stat -c '%n %s %Y' t*)
"$B" recv --group "$G" --id r1 -o dst --key g.key --timeout 10 > /dev/null 2> recv.err & RPID=$!
PIDS+=($RPID)
sleep 0.4
"$B" send src/a.bin --group "$G" --receivers r1 --key g.key > /dev/null 2>&1 || fail "send: $(cat recv.err)"
wait "$RPID" || fail "recv: $(cat recv.err)"
sha_after=$(cd outside && sha256sum t* && stat -c '%n %s %Y' t*)
[[ "$sha_before" == "$sha_after" ]] || fail "a target outside DIR changed: $sha_after"
[[ -f dst/a.bin && ! -L dst/a.bin ]] || fail "dst/a.bin is not a regular file"
cmp -s src/a.bin dst/a.bin || fail "dst/a.bin differs from the source"
for l in .a.bin.tmp.cm-part .a.bin.tmp.cm-part.map; do
  [[ ! -L "dst/$l" ]] || fail "the planted link dst/$l is still there"
done
[[ -f dst/.cm-mcast-sessions && ! -L dst/.cm-mcast-sessions ]] || fail "the replay record is not a regular file"
echo ok
