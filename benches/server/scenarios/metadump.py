#!/usr/bin/env python3
"""`lru_crawler metadump all` side by side: dump throughput and a concurrent client's
latency during it.

Each server runs alone (`-m 1024 -t 4`): load N items (14-byte keys, 32-byte values),
then one connection reads `lru_crawler metadump all` to its END as fast as it can while
a second connection sends one `get` at a time (random loaded keys) and records each
round trip. Prints items/s of the dump, and the p50/p99/max of the concurrent gets during
it and, as a baseline, during as long a time without a dump; then the ratios to memcached.

usage: metadump.py [--ours BIN] [--memcached BIN|none] [--items N]
"""
import argparse
import random
import socket
import threading
import time

import common


def getter(port, n, stop, lat):
    c = common.Conn(port)
    rnd = random.Random(7)
    while not stop.is_set():
        k = b"k:%012d" % rnd.randrange(n)
        t = time.perf_counter()
        if c.get(k) is None:
            raise RuntimeError(f"miss on {k!r}")
        lat.append(time.perf_counter() - t)
    c.close()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1e3 if xs else float("nan")


def run_one(binary, name, a):
    print(f"\n== {name}: {binary}")
    with common.Server(binary, ["-m", "1024", "-t", "4"], name=name) as srv:
        value = b"v" * 32
        common.load(srv.port, ((b"k:%012d" % i, value) for i in range(a.items)))
        # Baseline: the getter alone for a second.
        stop, base = threading.Event(), []
        t = threading.Thread(target=getter, args=(srv.port, a.items, stop, base))
        t.start()
        time.sleep(1.0)
        stop.set()
        t.join()
        stop, during = threading.Event(), []
        t = threading.Thread(target=getter, args=(srv.port, a.items, stop, during))
        t.start()
        time.sleep(0.1)
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"lru_crawler metadump all\r\n")
        t0 = time.perf_counter()
        tail, lines = b"", 0
        while True:
            d = s.recv(1 << 20)
            if not d:
                raise RuntimeError("connection closed mid-dump")
            lines += d.count(b"\n")
            tail = (tail + d)[-16:]
            if tail.endswith(b"END\r\n"):
                break
        took = time.perf_counter() - t0
        stop.set()
        t.join()
        s.close()
    items = lines - 1
    rate = items / took
    print(f"dumped {items} items in {took:.2f} s: {rate:,.0f} items/s")
    print(f"concurrent get ms  p50 {pct(during, .5):.3f}  p99 {pct(during, .99):.3f}  "
          f"max {pct(during, 1):.3f}  ({len(during)} gets)")
    print(f"baseline get ms    p50 {pct(base, .5):.3f}  p99 {pct(base, .99):.3f}  "
          f"max {pct(base, 1):.3f}  ({len(base)} gets)")
    return rate, pct(during, .99)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default=str(common.DEFAULT_OURS))
    ap.add_argument("--memcached", default=str(common.DEFAULT_MEMCACHED))
    ap.add_argument("--items", type=int, default=1_000_000)
    a = ap.parse_args()
    common.check_binary(a.ours, "kvcache-server")
    ours = run_one(a.ours, "kvcache-server", a)
    if a.memcached != "none":
        theirs = run_one(a.memcached, "memcached", a)
        print(f"\nmetadump throughput: {ours[0]:,.0f} vs {theirs[0]:,.0f} items/s "
              f"({ours[0] / theirs[0]:.2f}x); concurrent get p99 {ours[1]:.3f} vs "
              f"{theirs[1]:.3f} ms ({ours[1] / theirs[1]:.2f}x)")


if __name__ == "__main__":
    main()
