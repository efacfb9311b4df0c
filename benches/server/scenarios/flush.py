#!/usr/bin/env python3
"""Memory after `flush_all`: does the server give it back to the OS?

Each server runs alone (`-m 1024 -t 1`): RSS before, load N items (14-byte keys,
VALUE-byte values, pipelined as benches/server/load.py does), `flush_all`, then RSS every
250 ms for a number of reap intervals. Prints RSS before / at the peak / at each second
after the flush, kvcache-server's release counters from `stats`, and the target: ours
back within 10% of the pre-load RSS within two reap intervals (PASS or MISS; the script
does not fail on a MISS). memcached keeps its memory (its RSS stays at the peak).

Writes results/flush.csv (t = seconds since flush_all, server, rss_mb, phase) and
results/flush.svg (RSS over time).

usage: flush.py [--ours BIN] [--memcached BIN|none] [--items N] [--value-size B]
                [--intervals K] [--out DIR]
"""
import argparse
import sys
import time

import common
import svgplot


def run_one(binary, name, args, a):
    print(f"\n== {name}: {binary} {' '.join(args)}")
    rows = []
    with common.Server(binary, args, name=name) as srv:
        reap = common.reap_interval(srv) if srv.kind == "kvcache-server" else None
        time.sleep(0.5)
        before = srv.rss_mb()
        t0 = time.monotonic()
        sampler = common.Sampler(srv, t0)
        sampler.phase = "load"
        value = b"v" * a.value_size
        t_load = time.monotonic()
        common.load(srv.port, ((b"k:%012d" % i, value) for i in range(a.items)))
        load_s = time.monotonic() - t_load
        items = int(srv.stats()["curr_items"])
        loaded = srv.rss_mb()
        sampler.phase = "flush"
        t_flush = time.monotonic()
        reply = srv.conn.command(b"flush_all")
        if reply != b"OK":
            raise RuntimeError(f"flush_all answered {reply!r}")
        # Watch for `intervals` reap intervals (memcached has none: the same time as ours
        # at its default of 1 s).
        watch = a.intervals * (reap or 1.0) + 0.5
        time.sleep(watch)
        rows = sampler.stop()
        after = srv.rss_mb()
        stats = srv.stats()
        settings = srv.conn.stats("settings")
    rows = [(t - (t_flush - t0), n, r, p) for t, n, r, p in rows]
    peak = max([loaded] + [r for _, _, r, _ in rows])
    print(f"loaded {items} items in {load_s:.1f} s")
    print(f"RSS before load {before:8.1f} MB")
    print(f"RSS after load  {loaded:8.1f} MB")
    print(f"RSS peak        {peak:8.1f} MB")
    after_flush = [(t, r) for t, _, r, _ in rows if t >= 0]
    print(f"RSS at flush_all {loaded:8.1f} MB")
    sec = 1
    while sec <= int(watch):
        near = [r for t, _, r, _ in rows if t <= sec]
        if near:
            print(f"RSS {sec:2d} s after flush_all {near[-1]:8.1f} MB")
        sec += 1
    print(f"RSS at the end  {after:8.1f} MB ({watch:.1f} s after flush_all)")
    result = {"name": name, "before": before, "peak": peak, "after": after, "rows": rows,
              "reap": reap}
    if srv.kind == "kvcache-server":
        counters = common.release_counters(stats)
        if counters:
            print("release counters: " + ", ".join(f"{k}={v}" for k, v in counters.items()))
        else:
            print("release counters: none in `stats` (not reported by this build)")
        ri = settings.get("reap_interval")
        print(f"reap interval: {ri + ' s' if ri else 'not reported (taken as 1 s)'}")
        limit = 1.10 * before
        hit = next((t for t, r in after_flush if r <= limit), None)
        bound = 2 * (reap or 1.0)
        ok = hit is not None and hit <= bound
        when = f"after {hit:.2f} s" if hit is not None else "not within the run"
        print(f"target: RSS <= {limit:.1f} MB (pre-load + 10%) within {bound:.0f} s of "
              f"flush_all: {'PASS' if ok else 'MISS'} (reached {when})")
        growth = before + 0.1 * (peak - before)
        t90 = next((t for t, r in after_flush if r <= growth), None)
        print(f"90% of the load's growth released (RSS <= {growth:.1f} MB): "
              f"{f'after {t90:.2f} s' if t90 is not None else 'not within the run'}")
        result["pass"] = ok
        result["reached"] = hit
    else:
        print(f"RSS at the end / peak: {after / peak:.3f} (memcached keeps its slabs)")
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ours", default=str(common.DEFAULT_OURS), help="kvcache-server binary")
    ap.add_argument("--memcached", default=str(common.DEFAULT_MEMCACHED),
                    help="memcached binary, or 'none' to skip it")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--intervals", type=float, default=4,
                    help="reap intervals to watch after flush_all")
    ap.add_argument("--out", default=str(common.RESULTS), help="directory for CSV and SVG")
    a = ap.parse_args()
    common.check_binary(a.ours, "kvcache-server")
    print(f"load average {' '.join(common.machine_load())}")
    args = ["-m", "1024", "-t", "1"]
    results = [run_one(a.ours, "kvcache-server", args, a)]
    if a.memcached != "none":
        common.check_binary(a.memcached, "memcached")
        results.append(run_one(a.memcached, "memcached", args, a))

    print("\n== summary (MB)")
    print(f"{'server':<16}{'before':>9}{'peak':>9}{'end':>9}{'end/peak':>10}")
    for r in results:
        print(f"{r['name']:<16}{r['before']:9.1f}{r['peak']:9.1f}{r['after']:9.1f}"
              f"{r['after'] / r['peak']:10.3f}")
    if len(results) == 2:
        o, m = results
        print(f"RSS at the end, kvcache-server / memcached: {o['after'] / m['after']:.3f}")
    out = common.Path(a.out)
    rows = [row for r in results for row in r["rows"]]
    common.write_csv(out / "flush.csv", ["t", "server", "rss_mb", "phase"], rows)
    series = {}
    for t, n, rss, _ in rows:
        series.setdefault(n, []).append((t, rss))
    svgplot.line_chart(str(out / "flush.svg"),
                       f"RSS around flush_all ({a.items} items of {a.value_size} B)",
                       "seconds since flush_all", "RSS (MB)", series)
    print(f"wrote {out / 'flush.csv'} and {out / 'flush.svg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
