#!/bin/bash
# cm-leader, unkeyed, on loopback: a forged Leader Alive claiming priority
# 0xffffffff and epoch 2^64-1 (then epoch +5000) does not take over, does not
# move or wrap the epoch, and runs no hook; the node warns at start that no
# key is configured. Before: the forged priority took over, the forged epoch
# wrapped the group to 0.
source "$(dirname "$0")/../cli/lib.inc"
command -v python3 > /dev/null || { echo "SKIP: needs python3"; exit 77; }
PORT=$((20000 + RANDOM % 30000))
GROUP=239.255.$((RANDOM % 250)).$((RANDOM % 250 + 1)):$PORT
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
for id in 1 2; do
  cm-leader run --group "$GROUP" --address 127.0.0.1 --id $id --priority $((id * 50)) --heartbeat 0.2 --json \
    --on-elected "echo elected >> $T/hooks.$id" --on-demoted "echo demoted >> $T/hooks.$id" \
    > "$T/node$id.json" 2> "$T/node$id.err" &
  PIDS+=($!)
done
end=$((SECONDS + 10))
until grep -q '"state":"leader"' "$T/node2.json" 2>/dev/null; do ((SECONDS < end)) || fail "no leader"; sleep 0.1; done
sleep 1
grep -q "no group key" "$T/node1.err" || fail "no warning without a key: $(cat "$T/node1.err")"
epoch=$(grep -o '"epoch":[0-9]*' "$T/node2.json" | tail -1 | cut -d: -f2)
cp "$T/hooks.2" "$T/hooks.2.before"
# Forge: "CL" v2 Alive, sender 777, epoch, priority, 127.0.0.1:PORT, interval, dead, count, seq, beat.
python3 - "$GROUP" "$epoch" <<'PY'
import socket, struct, sys, time
ip, port = sys.argv[1].rsplit(":", 1); port = int(port); epoch = int(sys.argv[2])
def varint(n):
    out = b""
    while True:
        b = n & 0x7f; n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n: return out
def alive(ep, prio, beat):
    return (b"CL" + bytes([2, 1, 0]) + struct.pack("<Q", 777) + varint(ep) + varint(prio) +
            socket.inet_aton("127.0.0.1")[::-1] + struct.pack("<H", port) +
            varint(200000) + bytes([3]) + varint(0) + varint(0) + varint(beat))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
for beat in range(1, 31):
    s.sendto(alive(2**64 - 1, 0xffffffff, beat), (ip, port))
    s.sendto(alive(epoch + 5000, 0xffffffff, beat), (ip, port))
    s.sendto(alive(2**64 - 1, 10, beat), (ip, port))
    time.sleep(0.05)
PY
sleep 1.5
last=$(grep '"state"' "$T/node2.json" | tail -1)
echo "$last" | grep -q '"state":"leader"' || fail "node 2 lost the leadership: $last"
echo "$last" | grep -q "\"epoch\":$epoch," || fail "epoch moved from $epoch: $last"
grep -q '"leader":777' "$T/node1.json" "$T/node2.json" && fail "a node followed the forger"
cmp -s "$T/hooks.2" "$T/hooks.2.before" || fail "a hook ran: $(cat "$T/hooks.2")"
[[ ! -e $T/hooks.1 ]] || fail "node 1 ran a hook: $(cat "$T/hooks.1")"
grep -q "out of bounds" "$T/node1.err" || fail "no refusal logged: $(cat "$T/node1.err")"
echo ok
