#!/usr/bin/env python3
"""Live re-classing: `slabtune apply` on a loaded kvcache-server, against a fresh server
started with the same classes.

1. kvcache-server (`-m 1024 -t 1`, default classes) is loaded with N items whose sizes
   the default classes fit badly: three clusters, each just above one of the default
   table's 12.5% steps (stored sizes 580-587, 1044-1051 and 1676-1683 bytes, in 648-,
   1168- and 1872-byte chunks: about 10% of each chunk wasted).
2. A checker thread starts: until the end of step 4 it reads loaded items (each must
   come back with its exact value) and sets and reads back keys of its own; every wrong
   or missing reply is counted and the first ones printed.
3. `slabtune apply HOST:PORT` reads the live histogram, prints the recommendation and
   sends `slabs classes <list>`.
4. The same items are stored again (they move to the new classes) and RSS is polled
   until it stops falling: RSS per item.
5. A fresh kvcache-server started with `-o slab_sizes=<the same list>` is loaded the same
   way: RSS per item. Target: the live re-classed server within 5% of it.
memcached cannot re-class while running; for comparison its figures for the same items
with its default classes and, restarted, with the list slabtune recommends for it.

A server that answers `ERROR` to `slabs classes` cannot do this: the script says so and
exits with status 2 (before loading anything).

Writes results/reclass.csv (t, server, rss_mb, phase) and results/reclass.svg.

usage: reclass.py [--ours BIN] [--slabtune BIN] [--memcached BIN|none] [--items N]
                  [--classes K] [--bound S] [--out DIR]
"""
import argparse
import json
import random
import subprocess
import sys
import threading
import time

import common
import svgplot

# Stored size (kvcache-server: 14-byte header + 8 CAS + key + value) = value + 34 with
# the 12-byte keys below. Default chunks above 512 step by 12.5%: ..., 576, 648, ...,
# 1040, 1168, ..., 1664, 1872.
CLUSTERS = [(546, 3), (1010, 4), (1642, 3)]  # (smallest value size, weight of 10)


def key(i):
    return b"r:%010d" % i


def vlen(i):
    """Value size of item i: its cluster's base plus 0-7 bytes."""
    j = i % 10
    for base, w in CLUSTERS:
        if j < w:
            return base + (i * 7) % 8
        j -= w
    raise AssertionError


def value(i):
    n = vlen(i)
    return (b"%010d" % i + b"." * n)[:n]


def items(n):
    return ((key(i), value(i)) for i in range(n))


class Checker(threading.Thread):
    """Gets of loaded items and set/get of its own keys, all checked, until stopped."""

    def __init__(self, port, n):
        super().__init__(daemon=True)
        self.port, self.n = port, n
        self.stop_ev = threading.Event()
        self.ops = self.wrong = self.missing = 0
        self.examples = []

    def bad(self, kind, what):
        if kind == "missing":
            self.missing += 1
        else:
            self.wrong += 1
        if len(self.examples) < 20:
            self.examples.append(f"{time.strftime('%H:%M:%S')} {kind}: {what}")

    def run(self):
        rng = random.Random(11)
        mine = {}
        c = common.Conn(self.port, timeout=30)
        while not self.stop_ev.is_set():
            try:
                i = rng.randrange(self.n)
                got = c.get(key(i))
                if got is None:
                    self.bad("missing", f"get {key(i).decode()}: miss")
                elif got != value(i):
                    self.bad("wrong", f"get {key(i).decode()}: {len(got)} bytes, "
                                      f"want {len(value(i))}")
                k = rng.randrange(500)
                ck = b"c:%06d" % k
                ver = mine.get(ck, (0, b""))[0] + 1
                v = (b"%06d:%08d" % (k, ver) + b"#" * 2000)[:vlen(rng.randrange(10**6))]
                reply = c.command(b"set %s 0 0 %d\r\n%s" % (ck, len(v), v))
                if reply != b"STORED":
                    self.bad("wrong", f"set {ck.decode()}: {reply[:80]!r}")
                else:
                    mine[ck] = (ver, v)
                got = c.get(ck)
                if got != mine.get(ck, (0, None))[1]:
                    self.bad("missing" if got is None else "wrong",
                             f"get {ck.decode()} after set: "
                             f"{'miss' if got is None else f'{len(got)} bytes'}")
                self.ops += 3
            except (OSError, RuntimeError, ConnectionError) as e:
                self.bad("wrong", f"connection: {e}")
                try:
                    c.close()
                    c = common.Conn(self.port, timeout=30)
                except OSError:
                    time.sleep(0.1)
        c.close()


def classes_in_use(srv):
    s = srv.stats("slabs")
    return sorted(int(v) for k, v in s.items()
                  if k.endswith(":chunk_size") and int(s.get(k.split(":")[0] + ":used_chunks",
                                                             "0")) > 0)


def probe(srv):
    """True if the server knows `slabs classes` (a list it must refuse: 8 < 16)."""
    reply = srv.conn.command(b"slabs classes 8")
    if reply == b"ERROR":
        return False
    if reply.startswith(b"CLIENT_ERROR"):
        return True
    raise RuntimeError(f"unexpected answer to an invalid `slabs classes`: {reply!r}")


def load_and_measure(srv, n, sampler, reap, bound):
    sampler.phase = "load"
    common.load(srv.port, items(n))
    sampler.phase = "settle"
    rss, _ = common.settle(srv, bound, window_s=max(1.0, reap), min_s=min(bound, reap))
    return rss


def run_ours(a, t_start):
    out = {"rows": []}
    args = ["-m", "1024", "-t", "1"]
    print(f"\n== kvcache-server live re-class: {a.ours} {' '.join(args)}")
    with common.Server(a.ours, args, name="kvcache-server live") as srv:
        if not probe(srv):
            print(f"\n{a.ours} does not support `slabs classes` (it answered ERROR): it cannot "
                  f"re-class live, so this scenario cannot run against it.")
            return None
        reap = common.reap_interval(srv)
        time.sleep(0.5)
        empty = srv.rss_mb()
        sampler = common.Sampler(srv, t_start)
        before = load_and_measure(srv, a.items, sampler, reap, 5)
        used_before = classes_in_use(srv)
        print(f"RSS empty {empty:.1f} MB; {a.items} items with the default classes: "
              f"{before:.1f} MB = {before * 2**20 / a.items:.1f} B/item "
              f"({len(used_before)} classes in use: {used_before})")
        checker = Checker(srv.port, a.items)
        checker.start()
        time.sleep(1)
        sampler.phase = "apply"
        cmd = [a.slabtune, "apply", f"127.0.0.1:{srv.port}"]
        if a.classes:
            cmd += ["--classes", str(a.classes)]
        print("$ " + " ".join(cmd))
        t = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        apply_s = time.monotonic() - t
        print("  " + p.stdout.rstrip().replace("\n", "\n  "))
        if p.stderr.strip():
            print("  " + p.stderr.rstrip().replace("\n", "\n  "))
        sent = next((line.split("slabs classes ", 1)[1] for line in p.stdout.splitlines()
                     if line.startswith("sending: slabs classes ")), None)
        if p.returncode != 0 or sent is None:
            checker.stop_ev.set()
            checker.join()
            sampler.stop()
            print(f"slabtune apply failed (status {p.returncode})")
            return None
        print(f"apply took {apply_s:.2f} s")
        time.sleep(1)
        sampler.phase = "reload"
        reclassed = load_and_measure(srv, a.items, sampler, reap, a.bound)
        time.sleep(1)
        checker.stop_ev.set()
        checker.join()
        out["rows"] = sampler.stop()
        used_after = classes_in_use(srv)
        counters = common.release_counters(srv.stats())
    print(f"after apply and reloading the same items: {reclassed:.1f} MB = "
          f"{reclassed * 2**20 / a.items:.1f} B/item ({len(used_after)} classes in use: "
          f"{used_after})")
    print("release/compaction counters: " + (", ".join(f"{k}={v}" for k, v in
                                                     counters.items()) or "none"))
    print(f"checker: {checker.ops} operations during apply and reload, {checker.wrong} wrong, "
          f"{checker.missing} missing")
    for e in checker.examples:
        print("  " + e)
    out.update(list=sent, before=before, reclassed=reclassed, checker=checker)

    args2 = args + ["-o", f"slab_sizes={sent}"]
    print(f"\n== kvcache-server fresh: {a.ours} {' '.join(args2)}")
    with common.Server(a.ours, args2, name="kvcache-server fresh") as fresh:
        time.sleep(0.5)
        sampler = common.Sampler(fresh, t_start)
        out["fresh"] = load_and_measure(fresh, a.items, sampler, common.reap_interval(fresh),
                                        10)
        out["rows"] += sampler.stop()
    print(f"fresh with -o slab_sizes: {out['fresh']:.1f} MB = "
          f"{out['fresh'] * 2**20 / a.items:.1f} B/item")
    return out


def run_memcached(a, t_start):
    out = {"rows": []}
    args = ["-m", "1024", "-t", "1", "-o", "track_sizes"]
    print(f"\n== memcached defaults: {a.memcached} {' '.join(args)}")
    with common.Server(a.memcached, args, name="memcached defaults") as srv:
        time.sleep(0.5)
        sampler = common.Sampler(srv, t_start)
        out["defaults"] = load_and_measure(srv, a.items, sampler, 1.0, 5)
        out["rows"] += sampler.stop()
        cmd = [a.slabtune, "live", f"127.0.0.1:{srv.port}", "--target", "memcached", "--json"]
        if a.classes:
            cmd += ["--classes", str(a.classes)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            print(f"slabtune live failed: {p.stderr}")
            return None
        rec = json.loads(p.stdout)["targets"][0]["slab_sizes"]
    sizes = "-".join(map(str, rec))
    print(f"memcached defaults: {out['defaults']:.1f} MB = "
          f"{out['defaults'] * 2**20 / a.items:.1f} B/item")
    args2 = ["-m", "1024", "-t", "1", "-o", f"slab_sizes={sizes}"]
    print(f"\n== memcached restarted: {a.memcached} {' '.join(args2)}")
    with common.Server(a.memcached, args2, name="memcached -o slab_sizes") as srv:
        time.sleep(0.5)
        sampler = common.Sampler(srv, t_start)
        out["tuned"] = load_and_measure(srv, a.items, sampler, 1.0, 5)
        out["rows"] += sampler.stop()
    print(f"memcached with -o slab_sizes: {out['tuned']:.1f} MB = "
          f"{out['tuned'] * 2**20 / a.items:.1f} B/item")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ours", default=str(common.DEFAULT_OURS), help="kvcache-server binary")
    ap.add_argument("--slabtune", default=str(common.DEFAULT_SLABTUNE), help="slabtune binary")
    ap.add_argument("--memcached", default=str(common.DEFAULT_MEMCACHED),
                    help="memcached binary, or 'none' to skip it")
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--classes", type=int, help="passed to slabtune as --classes")
    ap.add_argument("--bound", type=float, default=20,
                    help="seconds to wait at most for RSS to stop falling after the reload")
    ap.add_argument("--out", default=str(common.RESULTS), help="directory for CSV and SVG")
    a = ap.parse_args()
    common.check_binary(a.ours, "kvcache-server")
    common.check_binary(a.slabtune, "slabtune")
    print(f"load average {' '.join(common.machine_load())}")
    t_start = time.monotonic()
    ours = run_ours(a, t_start)
    if ours is None:
        return 2
    mc = None
    if a.memcached != "none":
        common.check_binary(a.memcached, "memcached")
        mc = run_memcached(a, t_start)

    per = 2**20 / a.items
    print("\n== summary: RSS per item (B)")
    print(f"kvcache-server, default classes              {ours['before'] * per:8.1f}")
    print(f"kvcache-server, re-classed live and reloaded {ours['reclassed'] * per:8.1f}")
    print(f"kvcache-server, fresh with -o slab_sizes     {ours['fresh'] * per:8.1f}")
    if mc:
        print(f"memcached, default classes                   {mc['defaults'] * per:8.1f}")
        print(f"memcached, restarted with -o slab_sizes      {mc['tuned'] * per:8.1f}")
    ratio = ours["reclassed"] / ours["fresh"]
    verdict = "PASS" if abs(ratio - 1) <= 0.05 else "MISS"
    print(f"live / fresh = {ratio:.3f}: target within 5%: {verdict}")
    print(f"live re-class saved {100 * (1 - ours['reclassed'] / ours['before']):.1f}% of RSS")
    if mc:
        print(f"kvcache-server live / memcached restarted with its list: "
              f"{ours['reclassed'] / mc['tuned']:.3f}")
    ch = ours["checker"]
    print(f"checker: {ch.ops} operations, {ch.wrong} wrong, {ch.missing} missing "
          f"({'all correct' if ch.wrong + ch.missing == 0 else 'INCORRECT REPLIES'})")

    out = common.Path(a.out)
    rows = ours["rows"] + (mc["rows"] if mc else [])
    common.write_csv(out / "reclass.csv", ["t", "server", "rss_mb", "phase"], rows)
    series = {}
    for t, n, rss, _ in rows:
        series.setdefault(n, []).append((t, rss))
    svgplot.line_chart(str(out / "reclass.svg"),
                       f"RSS: {a.items} items, live re-class vs restart",
                       "seconds since the start", "RSS (MB)", series)
    print(f"wrote {out / 'reclass.csv'} and {out / 'reclass.svg'}")
    return 0 if ch.wrong + ch.missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
