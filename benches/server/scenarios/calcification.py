#!/usr/bin/env python3
"""Slab calcification, side by side: kvcache-server and memcached 1.6.

    calcification.py SERVER_BIN MEMCACHED_BIN DURATION [--keys N] [--memory MB]
                      [--zipf S] [--out DIR] [--port P]

For each server in turn (same workload, same seed), started with `-m MB -t 1` and its
default automove:

1. fill: `set` 100-byte values under fresh keys until the server evicts (memory is full
   of one small size class), plus a little more;
2. switch: for DURATION seconds, a get / set-if-miss loop over `--keys` keys (default
   20,000) of 2,000-byte values, uniform (or Zipf with `--zipf S`). That key space fits in
   memory if the slabs follow the new size.

Every second it records, per server: the hit ratio of the gets, the number of
`SERVER_ERROR out of memory storing object` replies to the sets, the server's RSS, and
`stats` evictions / slabs_moved. It prints the per-second table, a summary (time to a
steady hit ratio, the steady ratio, OOM replies), writes `calcification.csv` and
`calcification.svg` (hit ratio and RSS over time; drawn with `svgplot.py`) into `--out`.

"Steady" is the mean hit ratio of the last quarter of the run; the time to steady is the
first second from which the hit ratio stays within 0.05 of that mean (or above it), and
"not steady" if the last quarter still spans more than 0.1.
Plain Python 3, sockets only.
"""
import argparse
import csv
import os
import random
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svgplot  # noqa: E402

OOM = b"SERVER_ERROR out of memory storing object"


class Client:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln, self.buf = self.buf[:i], self.buf[i + 2:]
                return ln
            d = self.s.recv(1 << 20)
            if not d:
                raise ConnectionError("server closed the connection")
            self.buf += d

    def take(self, n):
        while len(self.buf) < n:
            d = self.s.recv(1 << 20)
            if not d:
                raise ConnectionError("server closed the connection")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def stats(self):
        self.send(b"stats\r\n")
        out = {}
        while True:
            ln = self.line()
            if ln == b"END":
                return out
            _, k, v = ln.decode().split(" ", 2)
            out[k] = v

    def close(self):
        self.s.close()


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def start(cmd, port):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"{cmd[0]} did not start on port {port}")


def fill(c):
    """Sets 100-byte values until the server has evicted, then 20% more."""
    v = b"s" * 100
    i = 0
    batch = 2000
    target = None
    while True:
        c.send(b"".join(b"set fill:%d 0 0 100 noreply\r\n%s\r\n" % (i + k, v)
                        for k in range(batch)))
        i += batch
        if i % 20000 == 0 or target is not None:
            ev = int(c.stats()["evictions"])
            if target is None and ev > 0:
                target = int(i * 1.2)
            if target is not None and i >= target:
                return i


def zipf_sampler(n, s, rnd):
    if s <= 0:
        return lambda: rnd.randrange(n)
    import bisect
    import itertools
    w = [1.0 / (k + 1) ** s for k in range(n)]
    cum = list(itertools.accumulate(w))
    total = cum[-1]
    return lambda: min(n - 1, bisect.bisect_left(cum, rnd.random() * total))


def run_phase2(c, pid, duration, nkeys, vsize, zipf, seed):
    rnd = random.Random(seed)
    pick = zipf_sampler(nkeys, zipf, rnd)
    val = b"L" * vsize
    rows = []
    t0 = time.monotonic()
    sec = 0
    hits = gets = ooms = sets = 0
    batch = 64
    while True:
        now = time.monotonic() - t0
        if now >= sec + 1:
            st = c.stats()
            rows.append({
                "t": sec + 1,
                "gets": gets,
                "hits": hits,
                "hit_ratio": hits / gets if gets else 0.0,
                "sets": sets,
                "oom": ooms,
                "rss_mb": rss_mb(pid),
                "evictions": int(st.get("evictions", 0)),
                "slabs_moved": int(st.get("slabs_moved", 0)),
            })
            hits = gets = ooms = sets = 0
            sec += 1
            if sec >= duration:
                return rows
        keys = [b"big:%d" % pick() for _ in range(batch)]
        c.send(b"".join(b"get %s\r\n" % k for k in keys))
        missed = []
        for k in keys:
            ln = c.line()
            gets += 1
            if ln.startswith(b"VALUE "):
                n = int(ln.split()[3])
                c.take(n + 2)
                if c.line() != b"END":
                    raise RuntimeError("get: no END")
                hits += 1
            elif ln == b"END":
                missed.append(k)
            else:
                raise RuntimeError(f"get: {ln!r}")
        if missed:
            c.send(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, vsize, val) for k in missed))
            for _ in missed:
                ln = c.line()
                sets += 1
                if ln == OOM:
                    ooms += 1
                elif ln != b"STORED":
                    raise RuntimeError(f"set: {ln!r}")


def scenario(name, cmd, port, args):
    p = start(cmd, port)
    try:
        c = Client(port)
        t = time.monotonic()
        n = fill(c)
        st = c.stats()
        print(f"{name}: filled {n} 100-byte items in {time.monotonic() - t:.1f} s; "
              f"curr_items {st['curr_items']}, evictions {st['evictions']}, "
              f"RSS {rss_mb(p.pid):.1f} MB", flush=True)
        rows = run_phase2(c, p.pid, args.duration, args.keys, args.value_size, args.zipf,
                          args.seed)
        c.close()
        return rows
    finally:
        p.terminate()
        p.wait()


def steady(rows):
    """(steady ratio, seconds to reach it); the time is None when the last quarter of the
    run still moves by more than 0.1 (not steady within the run)."""
    if not rows:
        return 0.0, None
    tail = rows[-max(1, len(rows) // 4):]
    target = sum(r["hit_ratio"] for r in tail) / len(tail)
    spread = max(r["hit_ratio"] for r in tail) - min(r["hit_ratio"] for r in tail)
    if spread > 0.1:
        return target, None
    t = None
    for r in rows:
        if r["hit_ratio"] >= target - 0.05:
            if t is None:
                t = r["t"]
        else:
            t = None
    return target, t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("server")
    ap.add_argument("memcached")
    ap.add_argument("duration", type=int)
    ap.add_argument("--keys", type=int, default=20000)
    ap.add_argument("--value-size", type=int, default=2000)
    ap.add_argument("--memory", type=int, default=64)
    ap.add_argument("--zipf", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port", type=int, default=22400)
    ap.add_argument("--out", default=".")
    ap.add_argument("--server-args", default="", help="extra kvcache-server arguments")
    ap.add_argument("--only", choices=["kvcache-server", "memcached"],
                    help="run one of the two servers only")
    args = ap.parse_args(argv)

    servers = [
        ("kvcache-server", [args.server, "-u", "root", "-p", str(args.port), "-l", "127.0.0.1", "-m",
                            str(args.memory), "-t", "1"] + args.server_args.split()),
        ("memcached", [args.memcached, "-p", str(args.port + 1), "-l", "127.0.0.1", "-m",
                       str(args.memory), "-t", "1", "-U", "0"]
         + (["-u", "nobody"] if os.geteuid() == 0 else [])),
    ]
    if args.only:
        servers = [s for s in servers if s[0] == args.only]
    results = {}
    for i, (name, cmd) in enumerate(servers):
        results[name] = scenario(name, cmd, args.port + i, args)

    names = [n for n, _ in servers]
    head = f"{'t':>4}" + "".join(
        f" | {n[:14]:>14} hit  oom   rss_MB  moved" for n in names)
    print(head)
    for k in range(args.duration):
        line = f"{k + 1:>4}"
        for n in names:
            r = results[n][k] if k < len(results[n]) else None
            if r is None:
                line += " |" + " " * 37
            else:
                line += (f" | {'':>14} {r['hit_ratio']:4.2f} {r['oom']:4d} "
                         f"{r['rss_mb']:8.1f} {r['slabs_moved']:6d}")
        print(line)

    print("\nsummary")
    summary = {}
    for n in names:
        ratio, t = steady(results[n])
        rows = results[n]
        ooms = sum(r["oom"] for r in rows)
        gets = sum(r["gets"] for r in rows)
        hits = sum(r["hits"] for r in rows)
        summary[n] = (ratio, t)
        print(f"  {n}: steady hit ratio {ratio:.3f}, time to steady "
              f"{'not steady within the run' if t is None else f'{t} s'}, overall hit ratio "
              f"{hits / max(1, gets):.3f}, OOM replies {ooms}, gets {gets}, "
              f"final RSS {rows[-1]['rss_mb']:.1f} MB, slabs_moved {rows[-1]['slabs_moved']}")

    os.makedirs(args.out, exist_ok=True)
    csv_path = os.path.join(args.out, "calcification.csv")
    with open(csv_path, "w", newline="") as f:
        fields = ["server", "t", "gets", "hits", "hit_ratio", "sets", "oom", "rss_mb",
                  "evictions", "slabs_moved"]
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for n in names:
            for r in results[n]:
                w.writerow(dict(server=n, **r))
    svg_path = os.path.join(args.out, "calcification.svg")
    svgplot.line_chart(
        svg_path,
        f"Hit ratio after switching 100 B -> {args.value_size} B values "
        f"(-m {args.memory}, {args.keys} keys)",
        "seconds after the switch", "hit ratio",
        {n: [(r["t"], r["hit_ratio"]) for r in results[n]] for n in names},
        more=[{"title": "RSS", "y_label": "RSS (MB)",
               "series": {n: [(r["t"], r["rss_mb"]) for r in results[n]] for n in names}}],
    )
    print(f"\nwrote {csv_path} and {svg_path}")


if __name__ == "__main__":
    main()
