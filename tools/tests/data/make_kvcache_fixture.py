#!/usr/bin/env python3
"""Regenerates kvcache_traffic.pcap and kvcache_sizes_fine.txt in this folder.

Starts kvcache-server (path in argv[1]) on a free loopback port, captures its traffic with
tcpdump, drives it with pymemcache (sets with and without flags, add, replace, append,
prepend, cas, delete, multi-gets, incr), then saves `stats sizes_fine`, the server's own
histogram of what it stores, to compare with what slabtune derives from the capture.
"""
import os, socket, subprocess, sys, time
from pymemcache.client.base import Client

here = os.path.dirname(os.path.abspath(__file__))

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def main():
    port = free_port()
    srv = subprocess.Popen([sys.argv[1], "-u", "root", "-l", "127.0.0.1", "-p", str(port), "-U", "0"], stderr=subprocess.DEVNULL)
    cap = os.path.join(here, "kvcache_traffic.pcap")
    td = subprocess.Popen(["tcpdump", "-i", "lo", "-w", cap, "-U", "tcp port %d" % port], stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        c = Client(("127.0.0.1", port))
        for i in range(200):
            c.set("user:%d" % i, b"u" * (5 + (i * 13) % 300), flags=(i % 4), noreply=False)
        for i in range(0, 200, 7):
            c.append("user:%d" % i, b"tail" * (i % 5), noreply=False)
        for i in range(0, 200, 11):
            c.prepend("user:%d" % i, b"head", noreply=False)
        for i in range(0, 200, 9):
            c.replace("user:%d" % i, b"r" * (i % 50), noreply=False)
        for i in range(200, 240):
            c.add("new:%d" % i, b"n" * i, noreply=False)
        for i in range(0, 200, 13):
            c.delete("user:%d" % i, noreply=False)
        for i in range(0, 200, 17):
            v, cas = c.gets("user:%d" % i)
            if v is not None:
                c.cas("user:%d" % i, v + b"!", cas, noreply=False)
        c.get_many(["user:%d" % i for i in range(0, 200, 3)])
        c.set("counter", b"100", noreply=False)
        c.incr("counter", 5)
        c.close()
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"stats sizes_fine\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            buf += s.recv(65536)
        s.close()
        open(os.path.join(here, "kvcache_sizes_fine.txt"), "wb").write(buf)
        time.sleep(1.0)
    finally:
        td.terminate(); td.wait()
        srv.terminate(); srv.wait()

if __name__ == "__main__":
    main()
