#!/usr/bin/env python3
"""Warm restart (`-e <file>` on /dev/shm) side by side with memcached 1.6.18.

usage: restart.py [restore|cpu|all] [--quick]

restore: for each server, load a data set, read every item back with `gets` (value,
  flags, CAS), send SIGUSR1, start the same command line again as soon as the old process
  has exited, and time SIGUSR1 -> first answered request of the new process. Then every
  item is read again and compared byte for byte (value, flags, CAS), and RSS after the
  restart is compared with RSS before the stop. Data sets: 1M items of 100 B (14-byte
  keys), and 200k items of mixed sizes (10 B to 200 KB, log-uniform: chained values
  included). memcached refuses a restart begun within the second of the stop
  (`time_delta <= 0` in memcached.c) and starts cold then; the script waits for the next
  whole second before starting it and leaves that wait out of memcached's time.

cpu: kvcache-server pinned to CPU 0 (`-t 1`), memcaslap (`-X 100`, `-T 1 -c 32`) pinned
  to CPU 1, as benches/server/compare.sh does: alternately without `-e` and with
  `-e /dev/shm/...`, REPEAT times (default 3); CPU per request from /proc/PID/stat over
  the requests the server counted. Prints the median ratio with / without.

Environment: MEMCACHED (default /usr/bin/memcached), KVCACHE (default
target/release/kvcache-server), SECS (default 10), REPEAT (default 3). --quick: a tenth
of the items, 5 s runs, 1 repeat. Files live in a temporary directory under /dev/shm,
removed at the end.
"""
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "scenarios"))
from common import free_port  # noqa: E402  (the scenarios' helper)

ROOT = os.path.dirname(os.path.dirname(HERE))
MEMCACHED = os.environ.get("MEMCACHED", "/usr/bin/memcached")
KVCACHE = os.environ.get("KVCACHE", os.path.join(ROOT, "target/release/kvcache-server"))
QUICK = "--quick" in sys.argv
SECS = int(os.environ.get("SECS", "5" if QUICK else "10"))
REPEAT = int(os.environ.get("REPEAT", "1" if QUICK else "3"))


def command(name, port, memfile, mb, threads=2):
    if name == "memcached":
        return [MEMCACHED, "-u", "nobody", "-l", "127.0.0.1", "-p", str(port), "-U", "0",
                "-m", str(mb), "-t", str(threads), "-c", "4096", "-e", memfile]
    return [KVCACHE, "-u", "root", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", str(mb),
            "-t", str(threads), "-c", "4096"] + (["-e", memfile] if memfile else [])


def first_reply(port, deadline=60.0):
    """Connects and sends `version` until a reply arrives."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"version\r\n")
            if s.recv(64).startswith(b"VERSION"):
                s.close()
                return
        except OSError:
            time.sleep(0.001)
    sys.exit("the server did not answer")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


PATTERN = bytes(97 + (j * 7) % 26 for j in range(256 << 10))


def dataset(kind, n):
    """(key, flags, value) triples."""
    rnd = random.Random(7)
    out = []
    for i in range(n):
        if kind == "fixed":
            size = 100
        elif rnd.random() < 0.99:
            size = int(10 ** rnd.uniform(1, 3.6))  # 10 B .. 4 KB
        else:
            size = int(10 ** rnd.uniform(3.6, 5.3))  # 4 KB .. 200 KB: chained values
        start = i % 1000
        out.append((b"k:%012d" % i, i % 1000, PATTERN[start:start + size]))
    return out


def load(port, items):
    s = socket.create_connection(("127.0.0.1", port), timeout=300)
    buf = []
    size = 0
    for k, f, v in items:
        buf.append(b"set %s %d 0 %d noreply\r\n%s\r\n" % (k, f, len(v), v))
        size += len(v)
        if size > 1 << 20 or len(buf) > 2000:
            s.sendall(b"".join(buf))
            buf, size = [], 0
    s.sendall(b"".join(buf) + b"version\r\n")
    got = b""
    while not got.endswith(b"\r\n"):
        got += s.recv(4096)
    s.close()


def read_all(port, items):
    """{key: (flags, value, cas)} through pipelined multi-key `gets`."""
    s = socket.create_connection(("127.0.0.1", port), timeout=300)
    f = s.makefile("rb", buffering=1 << 20)
    out = {}
    for i in range(0, len(items), 100):
        keys = [k for k, _, _ in items[i:i + 100]]
        s.sendall(b"gets " + b" ".join(keys) + b"\r\n")
        while True:
            line = f.readline()
            if line == b"END\r\n":
                break
            _, key, flags, n, cas = line.split()
            data = f.read(int(n) + 2)[:-2]
            out[key] = (int(flags), data, int(cas))
    s.close()
    return out


def restore(name, kind, n, mb, shm):
    items = dataset(kind, n)
    memfile = os.path.join(shm, f"{name}-{kind}.mem")
    port = free_port()
    cmd = command(name, port, memfile, mb)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_reply(port)
    load(port, items)
    before = read_all(port, items)
    rss_before = rss_kb(p.pid)
    t0 = time.monotonic()
    p.send_signal(signal.SIGUSR1)
    p.wait(timeout=120)
    t_exit = time.monotonic()
    waited = 0.0
    if name == "memcached":
        # memcached needs a later second than its stop (see the docs above).
        w0 = time.monotonic()
        time.sleep(1.0 - (time.time() % 1.0) + 0.01)
        waited = time.monotonic() - w0
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_reply(port)
    t1 = time.monotonic()
    after = read_all(port, items)
    rss_after = rss_kb(p.pid)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    for f in os.listdir(shm):
        os.remove(os.path.join(shm, f))
    missing = sum(1 for k in before if k not in after)
    differ = sum(1 for k, v in before.items() if k in after and after[k] != v)
    secs = t1 - t0 - waited
    print(f"  {name:<10} {kind:<6} {len(before):8d} items: restore {secs:6.3f} s "
          f"(stop {t_exit - t0:5.3f} s), RSS {rss_before / 1024:7.1f} -> {rss_after / 1024:7.1f} MiB "
          f"({rss_after / max(rss_before, 1):.3f}x), missing {missing}, different {differ}",
          flush=True)
    return secs, rss_after / max(rss_before, 1), missing + differ


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        w = f.read().rsplit(")", 1)[1].split()
    return int(w[11]) + int(w[12])


def counted(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"stats\r\n")
    got = b""
    while not got.endswith(b"END\r\n"):
        got += s.recv(65536)
    s.close()
    st = dict(l.split()[1:3] for l in got.decode().splitlines() if l.startswith("STAT "))
    return int(st["cmd_get"]) + int(st["cmd_set"])


def cpu_run(with_file, shm):
    port = free_port()
    memfile = os.path.join(shm, "cpu.mem") if with_file else None
    cmd = ["taskset", "-c", "0"] + command("kvcache", port, memfile, 1024, threads=1)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_reply(port)
    slap = ["taskset", "-c", "1", "memcaslap", "-s", f"127.0.0.1:{port}", "-T", "1",
            "-c", "32", "-X", "100"]
    subprocess.run(slap + ["-t", "2s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r0, c0 = counted(port), cpu_ticks(p.pid)
    subprocess.run(slap + ["-t", f"{SECS}s"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    r1, c1 = counted(port), cpu_ticks(p.pid)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    if memfile and os.path.exists(memfile):
        os.remove(memfile)
    hz = os.sysconf("SC_CLK_TCK")
    us = (c1 - c0) / hz * 1e6 / max(r1 - r0, 1)
    label = "-e /dev/shm" if with_file else "anonymous"
    print(f"  kvcache {label:<12} {(r1 - r0) / SECS:10.0f} req/s  {us:6.2f} us/req", flush=True)
    return us


def main():
    what = next((a for a in sys.argv[1:] if not a.startswith("--")), "all")
    shm = tempfile.mkdtemp(prefix="kvcache-restart-bench-", dir="/dev/shm")
    os.chmod(shm, 0o777)  # memcached runs as nobody
    try:
        if what in ("restore", "all"):
            scale = 10 if QUICK else 1
            print("== restore: SIGUSR1 -> first reply of the new process; RSS after / before")
            for kind, n, mb in [("fixed", 1_000_000 // scale, 512),
                                ("mixed", 200_000 // scale, 1024)]:
                res = {name: restore(name, kind, n, mb, shm) for name in ("memcached", "kvcache")}
                k, m = res["kvcache"], res["memcached"]
                print(f"  {kind}: restore time kvcache/memcached {k[0] / m[0]:.3f}x; "
                      f"RSS after/before kvcache {k[1]:.3f} memcached {m[1]:.3f}; "
                      f"wrong or missing: kvcache {k[2]}, memcached {m[2]}")
        if what in ("cpu", "all"):
            if shutil.which("memcaslap") is None:
                print("memcaslap not found (Debian: libmemcached-tools); cpu skipped")
                return
            print(f"== cpu: -X 100, {SECS}s runs, {REPEAT} repeats, anonymous vs -e")
            ratios = []
            for _ in range(REPEAT):
                anon = cpu_run(False, shm)
                filed = cpu_run(True, shm)
                ratios.append(filed / anon)
            print(f"  cpu/request with -e / without: per run "
                  f"[{' '.join(f'{r:.3f}' for r in ratios)}] median {statistics.median(ratios):.3f}x")
    finally:
        shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
