#!/usr/bin/env bash
# The multi-site bed (cm-push): two sites and a CCM net behind a router; hosts
# reach each other across sites, the uplink rate limit holds, multicast stays
# inside its site, and cleanup leaves nothing behind.
set -euo pipefail
source "$(dirname "$0")/bed.inc"
bed_require_root
bed_init
bed_router r
for s in 0 1 2; do
  bed_bridge "site$s"
  bed_router_port r "site$s" "198.18.$s.1/24"
done
bed_site_host ccm 198.18.0.10/24 site0 198.18.0.1
bed_site_host a1 198.18.1.10/24 site1 198.18.1.1
bed_site_host a2 198.18.1.11/24 site1 198.18.1.1
bed_site_host b1 198.18.2.10/24 site2 198.18.2.1
bed_uplink_rate site1 40mbit
bed_exec ccm ping -c 1 -W 2 198.18.1.10 >/dev/null
bed_exec a1 ping -c 1 -W 2 198.18.2.10 >/dev/null
# 4 MiB into site1 over a 40 Mbit/s uplink takes about 0.84 s; well under 0.5 s means no limit.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; bed_cleanup' EXIT
bed_bg a1 python3 -c 'import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("",9000)); s.listen(1)
c,_=s.accept(); n=0
while True:
    d=c.recv(65536)
    if not d: break
    n+=len(d)
print(n)' >"$tmp/n"
sleep 0.3
t0=$(date +%s.%N)
bed_exec ccm python3 -c 'import socket; s=socket.create_connection(("198.18.1.10",9000)); s.sendall(b"x"*(4<<20)); s.close()'
wait "$BED_PID"
t1=$(date +%s.%N)
[[ $(cat "$tmp/n") == $((4 << 20)) ]] || { echo "FAIL: bytes lost" >&2; exit 1; }
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a > 0.5) }' || { echo "FAIL: uplink not limited ($t0 -> $t1)" >&2; exit 1; }
prefix=$BED_PREFIX
bed_cleanup
trap - EXIT
rm -rf "$tmp"
if ip netns list | grep -q "^$prefix"; then echo "FAIL: namespaces left behind" >&2; exit 1; fi
echo "bed_sites: ok"
