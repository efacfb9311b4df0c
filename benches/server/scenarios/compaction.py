#!/usr/bin/env python3
"""Memory after deleting every other key: does the server compact its sparse slabs?

For each server (`-m 1024 -t 1`, alone): load N items (14-byte keys, VALUE-byte values),
delete every other key (the even ones), then poll RSS every 250 ms until it stops falling
(or a bound passes) and check that the survivors read back and the deleted keys miss.
Then a fresh server of the same kind loaded with only the N/2 survivors. Prints both RSS
figures and their ratio (target for kvcache-server: compacted within 15% of fresh; the poll lasts at
least four reap intervals so that a compaction step has had its turn),
memcached's figures side by side, and kvcache-server's release/compaction counters.

Writes results/compaction.csv (t = seconds since the deletes were sent, server, rss_mb,
phase) and results/compaction.svg.

usage: compaction.py [--ours BIN] [--memcached BIN|none] [--items N] [--value-size B]
                     [--bound S] [--out DIR]
"""
import argparse
import random
import sys
import time

import common
import svgplot


def key(i):
    return b"k:%012d" % i


def check_contents(srv, n, value, samples=2000):
    """Reads `samples` survivors (odd i) and deleted keys (even i): returns the counts of
    (wrong survivors, deleted keys still present)."""
    rng = random.Random(7)
    c = common.Conn(srv.port)
    wrong = present = 0
    for _ in range(samples):
        i = rng.randrange(n // 2) * 2 + 1
        if i < n and c.get(key(i)) != value:
            wrong += 1
        if c.get(key(rng.randrange((n + 1) // 2) * 2)) is not None:
            present += 1
    c.close()
    return wrong, present


def run_one(binary, name, a):
    args = ["-m", "1024", "-t", "1"]
    value = b"v" * a.value_size
    print(f"\n== {name}: {binary} {' '.join(args)}")
    with common.Server(binary, args, name=name) as srv:
        reap = common.reap_interval(srv) if srv.kind == "kvcache-server" else 1.0
        time.sleep(0.5)
        empty = srv.rss_mb()
        t0 = time.monotonic()
        sampler = common.Sampler(srv, t0)
        sampler.phase = "load"
        common.load(srv.port, ((key(i), value) for i in range(a.items)))
        loaded = srv.rss_mb()
        sampler.phase = "delete"
        t_del = time.monotonic()
        deleted = common.delete(srv.port, (key(i) for i in range(0, a.items, 2)))
        del_s = time.monotonic() - t_del
        just_after = srv.rss_mb()
        sampler.phase = "compaction"
        compacted, waited = common.settle(srv, a.bound, window_s=max(2.0, 2 * reap),
                                          min_s=min(a.bound, 4 * reap))
        rows = sampler.stop()
        stats = srv.stats()
        wrong, present = check_contents(srv, a.items, value)
    items = int(stats["curr_items"])
    rows = [(t - (t_del - t0), n, r, p) for t, n, r, p in rows]
    print(f"RSS empty {empty:.1f} MB, loaded {a.items} items {loaded:.1f} MB; deleted "
          f"{deleted} in {del_s:.1f} s, {items} left; RSS just after {just_after:.1f} MB, "
          f"after {waited:.1f} s {compacted:.1f} MB")
    print(f"contents: {wrong} of 2000 sampled survivors wrong or missing, {present} of 2000 "
          f"sampled deleted keys still present")
    if srv.kind == "kvcache-server":
        counters = common.release_counters(stats)
        print("release/compaction counters: " + (", ".join(f"{k}={v}" for k, v in
                                                         counters.items()) or "none"))

    survivors = list(range(1, a.items, 2))
    with common.Server(binary, args, name=name + " fresh") as fresh:
        time.sleep(0.5)
        common.load(fresh.port, ((key(i), value) for i in survivors))
        fresh_rss, _ = common.settle(fresh, 10, window_s=1.0)
    ratio = compacted / fresh_rss
    print(f"fresh server with the {len(survivors)} survivors only: {fresh_rss:.1f} MB; "
          f"compacted / fresh = {ratio:.3f}")
    return {"name": name, "empty": empty, "loaded": loaded, "after": compacted,
            "fresh": fresh_rss, "ratio": ratio, "waited": waited, "rows": rows,
            "ok": wrong == 0 and present == 0, "kind": srv.kind}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ours", default=str(common.DEFAULT_OURS), help="kvcache-server binary")
    ap.add_argument("--memcached", default=str(common.DEFAULT_MEMCACHED),
                    help="memcached binary, or 'none' to skip it")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--bound", type=float, default=30,
                    help="seconds to wait at most for RSS to stop falling")
    ap.add_argument("--out", default=str(common.RESULTS), help="directory for CSV and SVG")
    a = ap.parse_args()
    common.check_binary(a.ours, "kvcache-server")
    print(f"load average {' '.join(common.machine_load())}")
    results = [run_one(a.ours, "kvcache-server", a)]
    if a.memcached != "none":
        common.check_binary(a.memcached, "memcached")
        results.append(run_one(a.memcached, "memcached", a))

    print("\n== summary (MB)")
    print(f"{'server':<16}{'loaded':>9}{'half deleted':>14}{'fresh half':>12}{'ratio':>8}")
    for r in results:
        print(f"{r['name']:<16}{r['loaded']:9.1f}{r['after']:14.1f}{r['fresh']:12.1f}"
              f"{r['ratio']:8.3f}")
    ours = results[0]
    verdict = "PASS" if ours["ratio"] <= 1.15 else "MISS"
    print(f"target: kvcache-server half-deleted within 15% of fresh: {verdict} "
          f"({ours['ratio']:.3f})")
    if len(results) == 2:
        print(f"half deleted, kvcache-server / memcached: "
              f"{ours['after'] / results[1]['after']:.3f}")
    bad = [r["name"] for r in results if not r["ok"]]
    if bad:
        print(f"WRONG CONTENTS after the deletes: {', '.join(bad)}")
    out = common.Path(a.out)
    rows = [row for r in results for row in r["rows"]]
    common.write_csv(out / "compaction.csv", ["t", "server", "rss_mb", "phase"], rows)
    series = {}
    for t, n, rss, _ in rows:
        series.setdefault(n, []).append((t, rss))
    for r in results:  # the fresh servers' level, as flat reference lines
        pts = series[r["name"]]
        series[r["name"] + " (fresh, survivors only)"] = [(pts[0][0], r["fresh"]),
                                                           (pts[-1][0], r["fresh"])]
    svgplot.line_chart(str(out / "compaction.svg"),
                       f"RSS: load {a.items}, delete every other key",
                       "seconds since the deletes", "RSS (MB)", series)
    print(f"wrote {out / 'compaction.csv'} and {out / 'compaction.svg'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
