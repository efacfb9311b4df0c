#!/usr/bin/env python3
"""CPU time of the server per `GET /metrics` scrape, with 200 size classes in use.

kvcache-server alone (`-t 2 -o metrics_port=<free port>,slab_sizes=<200 sizes>`), one
item stored in each class, then N scrapes one after another, each on a new connection as a
Prometheus server makes them. The server's CPU time (utime + stime from
/proc/PID/stat, in clock ticks: 10 ms each, hence the many scrapes) over the N scrapes,
divided by N, is the figure; the target is under 1 ms. With `--ours` given twice the two
binaries alternate (A B A B ..., `--rounds` each) and the median of each is printed with
their ratio. memcached has no metrics endpoint (its users run an exporter): no peer.

usage: metrics_scrape.py [--ours BIN [--ours BIN2]] [--scrapes N] [--rounds R]
"""
import argparse
import os
import socket
import statistics
import urllib.request

import common

SIZES = [64 + 16 * i for i in range(200)]


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_scrape_ms(binary, scrapes):
    mport = common.free_port()
    opts = f"metrics_port={mport},slab_sizes=" + "-".join(map(str, SIZES))
    with common.Server(binary, ["-t", "2", "-o", opts]) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        for i, size in enumerate(SIZES):
            # A value that lands in class i: our item header is 14 B + 8 B of CAS.
            v = b"v" * (size - 22 - len(b"k%03d" % i) - 4)
            s.sendall(b"set k%03d 0 0 %d\r\n%s\r\n" % (i, len(v), v))
            if s.recv(100) != b"STORED\r\n":
                raise RuntimeError("store failed")
        url = f"http://127.0.0.1:{mport}/metrics"
        size = len(urllib.request.urlopen(url, timeout=5).read())
        c0 = cpu_s(srv.proc.pid)
        for _ in range(scrapes):
            urllib.request.urlopen(url, timeout=5).read()
        ms = 1000 * (cpu_s(srv.proc.pid) - c0) / scrapes
        s.close()
    return ms, size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", action="append")
    ap.add_argument("--scrapes", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    bins = a.ours or [str(common.DEFAULT_OURS)]
    for b in bins:
        common.check_binary(b, "kvcache-server")
    got = {b: [] for b in bins}
    for r in range(a.rounds):
        for b in bins:
            ms, size = per_scrape_ms(b, a.scrapes)
            got[b].append(ms)
            print(f"round {r + 1} {b}: {ms:.3f} ms CPU per scrape ({size} bytes, "
                  f"{a.scrapes} scrapes)")
    med = {b: statistics.median(v) for b, v in got.items()}
    for b in bins:
        print(f"median {b}: {med[b]:.3f} ms CPU per scrape (target < 1 ms)")
    if len(bins) == 2:
        print(f"ratio {bins[1]} / {bins[0]}: {med[bins[1]] / med[bins[0]]:.2f}")


if __name__ == "__main__":
    main()
