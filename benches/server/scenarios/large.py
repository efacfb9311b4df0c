#!/usr/bin/env python3
"""Large and mixed values, kvcache-server against memcached 1.6, in one run.

    large.py [mixed|big|all] [--ours BIN] [--memcached BIN] [--seconds S] [--repeats N]
             [--clients N ...] [--memory MB] [--driver rust|python] [--out DIR]

`mixed`: for each size distribution (`uniform`: every size from 1 B to 1 MB equally
likely; `log`: log-uniform over the same range) and each client count (default 4 and 32),
both servers are started with `-m MB -t 2` (default 64) and, alternating
(ours, memcached, ours, ...; `--repeats` each, default 3), driven for `--seconds` by
client processes running get-or-set-on-miss over a key space whose value sizes are fixed
per key (the key's size is drawn once from the distribution with a fixed seed, so both
servers see the same keys and sizes). Every value read back is checked (its length and
its first and last bytes, which encode the key). Per run: requests/s, MB/s moved (value
bytes sent plus received), the server's CPU (utime + stime from /proc/PID/stat) per MB,
replies by kind (hits, misses, STORED, `SERVER_ERROR out of memory storing object`,
other errors), and per size bucket (powers of 4 from 1 B) requests/s and MB/s. The
median of the repeats is printed for both, with the ratio ours / memcached.

Per-bucket CPU needs a run per bucket: the `--buckets` option adds, for each bucket, a
run whose sizes are uniform within that bucket, and those give the CPU/MB per bucket
drawn in the graph.

`big`: 1 MB (10^6-byte) sets (every client sets its own keys over and over) and 1 MB gets (the keys
preloaded), 1 and 8 clients (`--big-clients`), `-m 1024 -t 2`; MB/s and CPU per MB.
It also measures a plain loopback TCP sink (one writer, one reader, 1 MB writes, in
this process's children) to give the ceiling of the machine.

Clients (`--driver`): threads of `target/release/kvload` (`cargo build --release -p
peer-benches --bin kvload`; the default when it is built), which run the same load with a
`writev` per set and no value assembled, so on this 2-core machine the client takes far
less of the CPU the servers share it with; or Python processes (`python`, standard
library only, processes so the GIL does not bind them), which bound the figures.

Results: a table on stdout, `large.csv` and `large.svg` in `--out`.
"""
import argparse
import math
import multiprocessing as mp
import os
import random
import socket
import json
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import svgplot  # noqa: E402

MB = 1 << 20
MAX = 1 << 20
# "1 MB" values: 10^6 bytes, which fit the default item size limit (-I 1m) of both servers
# with their item headers (a value of 2^20 bytes does not).
BIG = 1_000_000
OOM = b"SERVER_ERROR out of memory storing object"
# The Rust client (`cargo build --release -p peer-benches --bin kvload`): the same load as
# `client_loop`, with far less client CPU per request, so the server is what bounds it.
KVLOAD = common.ROOT / "target" / "release" / "kvload"


def bucket_of(size):
    """Powers of 4: bucket b holds sizes in [4^b, 4^(b+1)); the last one includes 1 MB."""
    return min(9, int(math.log(size, 4) + 1e-9))


def bucket_label(b):
    def h(n):
        if n >= MB:
            return f"{n // MB}M"
        if n >= 1024:
            return f"{n // 1024}K"
        return str(n)
    return f"{h(4 ** b)}-{h(min(MAX, 4 ** (b + 1)))}"


def sizes_for(dist, nkeys, seed=17, lo=1, hi=MAX):
    rnd = random.Random(seed)
    out = []
    for _ in range(nkeys):
        if dist == "uniform":
            out.append(rnd.randint(lo, hi))
        elif dist == "log":
            out.append(max(lo, min(hi, int(math.exp(rnd.uniform(math.log(lo), math.log(hi + 1)))))))
        elif dist == "fixed":
            out.append(hi)
        else:
            raise ValueError(dist)
    return out


def value_for(key, size, pattern):
    """`size` bytes; the first and last bytes depend on the key so a mixed-up reply shows."""
    tag = (sum(key) % 26) + 65
    if size <= 2:
        return bytes([tag]) * size
    return bytes([tag]) + pattern[: size - 2] + bytes([tag])


class Client:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return ln
            # A small read: the value after the line is received into place by `take`.
            d = self.s.recv(16384)
            if not d:
                raise ConnectionError("server closed the connection")
            self.buf += d

    def take(self, n):
        """The next `n` bytes: what is buffered, the rest received straight into place."""
        have = min(n, len(self.buf))
        out = bytearray(n)
        out[:have] = self.buf[:have]
        del self.buf[:have]
        view = memoryview(out)
        while have < n:
            got = self.s.recv_into(view[have:])
            if not got:
                raise ConnectionError("server closed the connection")
            have += got
        return out


def client_loop(port, keys, sizes, seconds, seed, mode, start, q):
    """One client: get-or-set-on-miss (`mixed`), `set` only or `get` only, until the
    deadline. Puts (counts, per-bucket requests, per-bucket bytes) on `q`."""
    rnd = random.Random(seed)
    pattern = bytes(random.Random(0).randrange(256) for _ in range(4096)) * (MAX // 4096 + 1)
    c = Client(port)
    counts = {"get": 0, "hit": 0, "miss": 0, "stored": 0, "oom": 0, "error": 0, "bad": 0}
    breq = [0] * 10
    bbytes = [0] * 10
    # The 1 MB loads use few keys: their values and set requests are built once, so the
    # client spends its time on the socket, not on building megabyte strings.
    cached = {}
    if mode != "mixed":
        for k, size in zip(keys, sizes):
            v = value_for(k, size, pattern)
            cached[k] = (v, b"set %s 0 0 %d\r\n%s\r\n" % (k, size, v))
    start.wait()
    deadline = time.monotonic() + seconds
    n = len(keys)
    while time.monotonic() < deadline:
        i = rnd.randrange(n)
        k, size = keys[i], sizes[i]
        b = bucket_of(size)
        if mode != "set":
            c.s.sendall(b"get " + k + b"\r\n")
            counts["get"] += 1
            breq[b] += 1
            ln = c.line()
            if ln.startswith(b"VALUE "):
                parts = ln.split()
                ln_size = int(parts[3])
                data = c.take(ln_size + 2)
                end = c.line()
                want = cached[k][0] if cached else value_for(k, size, pattern)
                if ln_size != size or not data.endswith(b"\r\n") or end != b"END" or \
                        not data.startswith(want):
                    counts["bad"] += 1
                counts["hit"] += 1
                bbytes[b] += ln_size
                continue
            if ln != b"END":
                counts["error"] += 1
                continue
            counts["miss"] += 1
            if mode == "get":
                continue
        if cached:
            c.s.sendall(cached[k][1])
        else:
            v = value_for(k, size, pattern)
            c.s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (k, size, v))
        breq[b] += 1
        ln = c.line()
        if ln == b"STORED":
            counts["stored"] += 1
            bbytes[b] += size
        elif ln == OOM:
            counts["oom"] += 1
        else:
            counts["error"] += 1
    c.s.close()
    q.put((counts, breq, bbytes))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(server, keys, sizes, clients, seconds, mode, seed):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    start = ctx.Event()
    procs = [ctx.Process(target=client_loop,
                         args=(server.port, keys, sizes, seconds, seed * 1000 + j, mode, start, q))
             for j in range(clients)]
    for p in procs:
        p.start()
    time.sleep(0.3)
    cpu0 = cpu_seconds(server.proc.pid)
    t0 = time.monotonic()
    start.set()
    results = [q.get(timeout=seconds + 120) for _ in procs]
    wall = time.monotonic() - t0
    cpu = cpu_seconds(server.proc.pid) - cpu0
    for p in procs:
        p.join()
    counts = {k: sum(r[0][k] for r in results) for k in results[0][0]}
    breq = [sum(r[1][b] for r in results) for b in range(10)]
    bbytes = [sum(r[2][b] for r in results) for b in range(10)]
    reqs = counts["get"] + counts["stored"] + counts["oom"] + (
        counts["error"] if mode != "get" else 0)
    moved = sum(bbytes) / MB
    return {"reqs_s": reqs / wall, "mb_s": moved / wall, "cpu": cpu,
            "cpu_per_mb_ms": 1000 * cpu / moved if moved else float("nan"),
            "counts": counts, "breq_s": [x / wall for x in breq],
            "bmb_s": [x / MB / wall for x in bbytes], "wall": wall}


def drive_rust(server, sizes, clients, seconds, mode, seed, preload_first):
    """`drive` with `kvload` as the clients (which also preloads, with its own values)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sizes") as f:
        f.write("\n".join(map(str, sizes)) + "\n")
        f.flush()
        cmd = [str(KVLOAD), "--addr", f"127.0.0.1:{server.port}", "--sizes", f.name,
               "--clients", str(clients), "--seconds", str(seconds), "--mode", mode,
               "--seed", str(seed)] + (["--preload"] if preload_first else [])
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "ready":
            p.kill()
            raise RuntimeError(f"kvload did not start: {cmd}")
        time.sleep(0.3)
        cpu0 = cpu_seconds(server.proc.pid)
        t0 = time.monotonic()
        p.stdin.write("go\n")
        p.stdin.flush()
        out = p.stdout.readline()
        wall = time.monotonic() - t0
        cpu = cpu_seconds(server.proc.pid) - cpu0
        if p.wait() != 0 or not out:
            raise RuntimeError(f"kvload failed: {cmd}")
    r = json.loads(out)
    counts = r["counts"]
    reqs = counts["get"] + counts["stored"] + counts["oom"] + (
        counts["error"] if mode != "get" else 0)
    moved = sum(r["bbytes"]) / MB
    return {"reqs_s": reqs / wall, "mb_s": moved / wall, "cpu": cpu,
            "cpu_per_mb_ms": 1000 * cpu / moved if moved else float("nan"),
            "counts": counts, "breq_s": [x / wall for x in r["breq"]],
            "bmb_s": [x / MB / wall for x in r["bbytes"]], "wall": wall}


def preload(server, keys, sizes):
    pattern = bytes(random.Random(0).randrange(256) for _ in range(4096)) * (MAX // 4096 + 1)
    c = common.Conn(server.port)
    for k, s in zip(keys, sizes):
        c.send(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k, s, value_for(k, s, pattern)))
    c.sync()
    c.close()


def median_of(runs, key):
    return statistics.median(r[key] for r in runs)


def ratio(a, b):
    return a / b if b else float("nan")


def scenario(args, name, dist, clients, nkeys, lo=1, hi=MAX, mode="mixed", memory=None,
             preload_first=False):
    sizes = sizes_for(dist, nkeys, lo=lo, hi=hi)
    keys = [b"k%07d" % i for i in range(nkeys)]
    runs = {"ours": [], "memcached": []}
    mem = memory or args.memory
    srv_args = ["-m", str(mem), "-t", "2"]
    for rep in range(args.repeats):
        for who, binary in (("ours", args.ours), ("memcached", args.memcached)):
            with common.Server(binary, srv_args) as s:
                if args.driver == "rust":
                    r = drive_rust(s, sizes, clients, args.seconds, mode, rep + 1, preload_first)
                else:
                    if preload_first:
                        preload(s, keys, sizes)
                    r = drive(s, keys, sizes, clients, args.seconds, mode, seed=rep + 1)
                r["stats"] = s.stats()
                runs[who].append(r)
    o, m = runs["ours"], runs["memcached"]
    row = {
        "name": name, "dist": dist, "clients": clients, "mode": mode,
        "ours_reqs_s": median_of(o, "reqs_s"), "mc_reqs_s": median_of(m, "reqs_s"),
        "ours_mb_s": median_of(o, "mb_s"), "mc_mb_s": median_of(m, "mb_s"),
        "ours_cpu_mb": median_of(o, "cpu_per_mb_ms"), "mc_cpu_mb": median_of(m, "cpu_per_mb_ms"),
    }
    row["reqs_ratio"] = ratio(row["ours_reqs_s"], row["mc_reqs_s"])
    row["mb_ratio"] = ratio(row["ours_mb_s"], row["mc_mb_s"])
    row["cpu_ratio"] = ratio(row["ours_cpu_mb"], row["mc_cpu_mb"])
    print(f"\n== {name}: {dist} {lo}-{hi} B, {mode}, {clients} {args.driver} clients, "
          f"-m {mem} -t 2, "
          f"{args.seconds} s x {args.repeats} (load {' '.join(common.machine_load())})")
    for who, rs in runs.items():
        for r in rs:
            c = r["counts"]
            print(f"  {who:9s} {r['reqs_s']:9.0f} req/s {r['mb_s']:8.1f} MB/s "
                  f"cpu {r['cpu']:5.2f} s = {r['cpu_per_mb_ms']:6.3f} ms/MB  "
                  f"hit {c['hit']} miss {c['miss']} stored {c['stored']} oom {c['oom']} "
                  f"err {c['error']} bad {c['bad']} evictions {r['stats'].get('evictions')}")
            if c["bad"]:
                print(f"  !! {who} returned {c['bad']} wrong values")
    print(f"  median: req/s {row['ours_reqs_s']:.0f} vs {row['mc_reqs_s']:.0f} "
          f"({row['reqs_ratio']:.3f}x), MB/s {row['ours_mb_s']:.1f} vs {row['mc_mb_s']:.1f} "
          f"({row['mb_ratio']:.3f}x), CPU/MB {row['ours_cpu_mb']:.3f} vs "
          f"{row['mc_cpu_mb']:.3f} ms ({row['cpu_ratio']:.3f}x)")
    if mode == "mixed":
        print("  per bucket (median req/s ours / memcached):")
        for b in range(10):
            ob = statistics.median(r["breq_s"][b] for r in o)
            mb = statistics.median(r["breq_s"][b] for r in m)
            if ob or mb:
                print(f"    {bucket_label(b):>9s} {ob:9.1f} {mb:9.1f}  {ratio(ob, mb):.3f}x")
        row["buckets"] = [(b, statistics.median(r["breq_s"][b] for r in o),
                           statistics.median(r["breq_s"][b] for r in m)) for b in range(10)]
    return row


def sink_worker(port, total, q):
    s = socket.create_connection(("127.0.0.1", port))
    buf = b"x" * MB
    t0 = time.monotonic()
    sent = 0
    while sent < total:
        s.sendall(buf)
        sent += MB
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    q.put(time.monotonic() - t0)


def tcp_sink(total_mb=4096):
    """A plain loopback TCP sink: a writer process sends 1 MB writes, this process reads
    them into a reused buffer. Returns MB/s."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=sink_worker, args=(ls.getsockname()[1], total_mb * MB, q))
    p.start()
    c, _ = ls.accept()
    buf = bytearray(MB)
    got = 0
    while True:
        n = c.recv_into(buf)
        if not n:
            break
        got += n
    c.close()
    wall = q.get()
    p.join()
    ls.close()
    return got / MB / wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", nargs="?", default="all", choices=["mixed", "big", "all", "sink"])
    ap.add_argument("--ours", default=str(common.DEFAULT_OURS))
    ap.add_argument("--memcached", default=str(common.DEFAULT_MEMCACHED))
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clients", type=int, nargs="+", default=[4, 32])
    ap.add_argument("--big-clients", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--dists", nargs="+", default=["uniform", "log"])
    ap.add_argument("--keys", type=int, default=2000)
    ap.add_argument("--memory", type=int, default=64)
    ap.add_argument("--buckets", action="store_true",
                    help="one more run per size bucket, for CPU/MB per bucket")
    ap.add_argument("--out", default=str(common.RESULTS / "large"))
    ap.add_argument("--driver", choices=["rust", "python"],
                    default="rust" if KVLOAD.exists() else "python",
                    help="clients: threads of target/release/kvload (default when built) "
                         "or Python processes")
    args = ap.parse_args()
    common.check_binary(args.ours, "kvcache-server")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    rows = []
    if args.what in ("mixed", "all"):
        for dist in args.dists:
            for clients in args.clients:
                rows.append(scenario(args, "mixed", dist, clients, args.keys))
        if args.buckets:
            for b in range(10):
                lo, hi = 4 ** b, min(MAX, 4 ** (b + 1) - 1)
                rows.append(scenario(args, f"bucket {bucket_label(b)}", "uniform",
                                     args.clients[0], args.keys, lo=lo, hi=hi))
                rows[-1]["bucket"] = b
    if args.what in ("big", "all"):
        for clients in args.big_clients:
            rows.append(scenario(args, "1MB set", "fixed", clients, 16 * clients, mode="set",
                                 memory=1024, hi=BIG))
            rows.append(scenario(args, "1MB get", "fixed", clients, 64, mode="get",
                                 memory=1024, preload_first=True, hi=BIG))
    if args.what in ("big", "all", "sink"):
        sinks = [tcp_sink() for _ in range(3)]
        print(f"\n== loopback TCP sink, 1 MB writes: {' '.join(f'{x:.0f}' for x in sinks)} "
              f"MB/s (median {statistics.median(sinks):.0f})")
        for r in rows:
            if r["name"].startswith("1MB"):
                print(f"  {r['name']} {r['clients']} clients: ours "
                      f"{r['ours_mb_s'] / statistics.median(sinks):.3f} of the sink, memcached "
                      f"{r['mc_mb_s'] / statistics.median(sinks):.3f}")
    header = ["name", "dist", "clients", "mode", "ours_reqs_s", "mc_reqs_s", "reqs_ratio",
              "ours_mb_s", "mc_mb_s", "mb_ratio", "ours_cpu_mb", "mc_cpu_mb", "cpu_ratio"]
    common.write_csv(common.Path(out) / "large.csv", header,
                     [[r[h] for h in header] for r in rows])
    mixed = [r for r in rows if r["name"] == "mixed" and "buckets" in r]
    if mixed:
        r0 = mixed[0]
        series = {"kvcache-server": [(b, o) for b, o, _ in r0["buckets"] if o],
                  "memcached": [(b, m) for b, _, m in r0["buckets"] if m]}
        more = []
        per_bucket = [r for r in rows if "bucket" in r]
        if per_bucket:
            more.append({"title": "server CPU per MB moved, one run per bucket",
                         "y_label": "CPU ms / MB",
                         "series": {"kvcache-server": [(r["bucket"], r["ours_cpu_mb"])
                                                       for r in per_bucket],
                                    "memcached": [(r["bucket"], r["mc_cpu_mb"])
                                                  for r in per_bucket]}})
        svgplot.line_chart(os.path.join(out, "large.svg"),
                           f"requests/s per size bucket ({r0['dist']}, {r0['clients']} clients, "
                           f"-m {args.memory} -t 2)", "size bucket (log4 of bytes)", "requests/s",
                           series, more=more)
        print(f"\nwrote {out}/large.csv and {out}/large.svg")


if __name__ == "__main__":
    main()
