#!/usr/bin/env python3
"""Records or replays the multicast datagrams of a group on 127.0.0.1, as an
attacker on the LAN would (tests/security/mcast_replay.sh).

  mcast_udp_tap.py record ADDR:PORT FILE   (until SIGTERM)
  mcast_udp_tap.py replay ADDR:PORT FILE   (every datagram again, 0.2 ms apart)
"""
import signal
import socket
import struct
import sys
import time


def main():
    mode, group, path = sys.argv[1], sys.argv[2], sys.argv[3]
    ip, port = group.rsplit(":", 1)
    port = int(port)
    if mode == "record":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        mreq = struct.pack("4s4s", socket.inet_aton(ip), socket.inet_aton("127.0.0.1"))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        s.settimeout(0.2)
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        with open(path, "wb") as out:
            open(path + ".ready", "w").close()
            while not stop:
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                out.write(struct.pack("<I", len(data)) + data)
                out.flush()
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        s.bind(("127.0.0.1", 0))
        data = open(path, "rb").read()
        n, i = 0, 0
        while i + 4 <= len(data):
            (size,) = struct.unpack_from("<I", data, i)
            s.sendto(data[i + 4:i + 4 + size], (ip, port))
            i += 4 + size
            n += 1
            time.sleep(0.0002)
        print(n)


if __name__ == "__main__":
    main()
