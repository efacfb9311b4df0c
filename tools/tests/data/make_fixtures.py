#!/usr/bin/env python3
"""Regenerates the memcached fixtures in this folder.

Starts memcached 1.6 with -o track_sizes on a free loopback port, captures the traffic
with tcpdump, stores a known set of items with a plain-socket client, reads them back,
and saves `stats sizes`, `stats slabs` and the capture. The items: for i in 0..300,
key "k%03d" % i (4 bytes), value length 10 + (i * 7) % 400, flags i % 3.
"""
import os, socket, subprocess, sys, time

here = os.path.dirname(os.path.abspath(__file__))

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def cmd(s, data, until):
    s.sendall(data)
    buf = b""
    while not buf.endswith(until):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf

def main():
    port = free_port()
    mc = subprocess.Popen(["memcached", "-u", "nobody", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-o", "track_sizes"])
    cap = os.path.join(here, "memcached_traffic.pcap")
    td = subprocess.Popen(["tcpdump", "-i", "lo", "-w", cap, "-U", "tcp port %d" % port], stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        s = socket.create_connection(("127.0.0.1", port))
        for i in range(300):
            v = b"v" * (10 + (i * 7) % 400)
            cmd(s, b"set k%03d %d 0 %d\r\n%s\r\n" % (i, i % 3, len(v), v), b"\r\n")
        for i in range(0, 300, 10):
            cmd(s, b"get k%03d\r\n" % i, b"END\r\n")
        sizes = cmd(s, b"stats sizes\r\n", b"END\r\n")
        slabs = cmd(s, b"stats slabs\r\n", b"END\r\n")
        s.close()
        open(os.path.join(here, "memcached_stats_sizes.txt"), "wb").write(sizes)
        open(os.path.join(here, "memcached_stats_slabs.txt"), "wb").write(slabs)
        time.sleep(1.0)
    finally:
        td.terminate(); td.wait()
        mc.terminate(); mc.wait()

if __name__ == "__main__":
    main()
