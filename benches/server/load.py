#!/usr/bin/env python3
"""Loads N items with 14-byte keys ("k:" + 12 digits) and VALUE-byte values into a
memcached-protocol server, as pipelined `set ... noreply`, then waits for a final
`version` reply so every set has been processed.

usage: load.py HOST PORT N VALUE_SIZE
"""
import socket
import sys


def main():
    host, port, n, vsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    s = socket.create_connection((host, port), timeout=120)
    value = b"v" * vsize
    batch = 2000
    for start in range(0, n, batch):
        buf = b"".join(
            b"set k:%012d 0 0 %d noreply\r\n%s\r\n" % (i, vsize, value)
            for i in range(start, min(n, start + batch))
        )
        s.sendall(buf)
    s.sendall(b"version\r\n")
    got = b""
    while not got.endswith(b"\r\n"):
        d = s.recv(4096)
        if not d:
            sys.exit("connection closed during the load")
        got += d
    if not got.startswith(b"VERSION"):
        sys.exit(f"unexpected reply after the load: {got[:200]!r}")
    s.close()


if __name__ == "__main__":
    main()
