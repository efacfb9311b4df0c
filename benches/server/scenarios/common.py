"""What the memory scenarios share: starting kvcache-server and memcached on free loopback
ports (and killing them whatever happens), reading RSS and `stats`, pipelined loading, and
an RSS sampler. Python 3 standard library only.

The loader is benches/server/load.py's: batches of `set ... noreply` sent in one write,
then a `version` round trip so that every set has been processed; here the keys and
values come from a function so that scenarios can load any distribution and check the
values they read back.
"""
import atexit
import csv
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_OURS = ROOT / "target" / "release" / "kvcache-server"
DEFAULT_MEMCACHED = Path("/usr/bin/memcached")
DEFAULT_SLABTUNE = ROOT / "target" / "release" / "slabtune"
RESULTS = Path(__file__).resolve().parent / "results"

_running = []


def _kill_all():
    for s in list(_running):
        s.stop()


atexit.register(_kill_all)


def _on_signal(signum, _frame):
    _kill_all()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_memcached(binary):
    return "memcached" in Path(binary).name and "kvcache" not in Path(binary).name


class Server:
    """One server process on 127.0.0.1, killed by `stop()`, at exit, or on SIGTERM."""

    def __init__(self, binary, args=(), name=None):
        self.binary = str(binary)
        self.kind = "memcached" if is_memcached(binary) else "kvcache-server"
        self.name = name or self.kind
        self.port = free_port()
        cmd = [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0"]
        if self.kind == "memcached" and os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        if self.kind == "kvcache-server":
            # Refused as root without -u, as memcached does; -u root keeps the identity.
            cmd += ["-u", "root"]
        cmd += list(args)
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        _running.append(self)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                self.stop()
                raise RuntimeError(f"{' '.join(cmd)} exited with {self.proc.returncode}: {err}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{' '.join(cmd)} did not listen within 10 s")
                time.sleep(0.02)
        # Drain stderr so a chatty server never blocks on a full pipe.
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        self.conn = Conn(self.port)

    def stop(self):
        if self in _running:
            _running.remove(self)
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def rss_kb(self):
        """VmRSS of the process, in KiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def rss_mb(self):
        return self.rss_kb() / 1024

    def stats(self, group=""):
        return self.conn.stats(group)


class Conn:
    """A blocking text-protocol connection with a 60 s timeout."""

    def __init__(self, port, timeout=60):
        self.port = port
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("connection closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            d = self.s.recv(max(65536, n - len(self.buf)))
            if not d:
                raise ConnectionError("connection closed")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def command(self, line):
        """Sends one command line and returns its one-line reply."""
        self.send(line + b"\r\n")
        return self.line()

    def stats(self, group=""):
        self.send(b"stats" + (b" " + group.encode() if group else b"") + b"\r\n")
        out = {}
        while True:
            line = self.line()
            if line == b"END":
                return out
            if not line.startswith(b"STAT "):
                raise RuntimeError(f"unexpected stats line {line!r}")
            _, k, v = line.decode().split(" ", 2)
            out[k] = v

    def get(self, key):
        """The value of `key`, or None on a miss."""
        self.send(b"get " + key + b"\r\n")
        line = self.line()
        if line == b"END":
            return None
        parts = line.split()
        if len(parts) != 4 or parts[0] != b"VALUE" or parts[1] != key:
            raise RuntimeError(f"unexpected reply {line[:100]!r}")
        data = self.exact(int(parts[3]) + 2)
        end = self.line()
        if data[-2:] != b"\r\n" or end != b"END":
            raise RuntimeError(f"bad value framing for {key!r}")
        return data[:-2]

    def sync(self):
        """A `version` round trip: every earlier command has been processed."""
        line = self.command(b"version")
        if not line.startswith(b"VERSION"):
            raise RuntimeError(f"unexpected reply {line[:200]!r}")


def load(port, items, batch=2000):
    """Loads (key, value) pairs from the iterable `items` as pipelined `set ... noreply`
    batches on a new connection, then waits for a `version` reply. Returns the count."""
    c = Conn(port)
    n = 0
    chunk = []
    for k, v in items:
        chunk.append(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k, len(v), v))
        if len(chunk) == batch:
            c.send(b"".join(chunk))
            n += len(chunk)
            chunk = []
    if chunk:
        c.send(b"".join(chunk))
        n += len(chunk)
    c.sync()
    c.close()
    return n


def delete(port, keys, batch=4000):
    """Deletes keys with pipelined `delete ... noreply`, then a `version` round trip."""
    c = Conn(port)
    n = 0
    chunk = []
    for k in keys:
        chunk.append(b"delete %s noreply\r\n" % k)
        if len(chunk) == batch:
            c.send(b"".join(chunk))
            n += len(chunk)
            chunk = []
    if chunk:
        c.send(b"".join(chunk))
        n += len(chunk)
    c.sync()
    c.close()
    return n


class Sampler:
    """Samples a server's RSS every `period` seconds in a thread: rows (t, name, rss_mb,
    phase), t in seconds since `t0` (time.monotonic())."""

    def __init__(self, server, t0, period=0.25):
        self.server, self.t0, self.period = server, t0, period
        self.rows = []
        self.phase = "start"
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                rss = self.server.rss_mb()
            except (OSError, RuntimeError):
                return
            self.rows.append((time.monotonic() - self.t0, self.server.name, rss, self.phase))
            self._stop.wait(self.period)

    def stop(self):
        self._stop.set()
        self._t.join()
        return self.rows


def settle(server, bound_s, period=0.25, window_s=2.0, tolerance=0.005, min_s=0.0):
    """Polls RSS until, after at least `min_s` seconds, it has not fallen by more than
    `tolerance` (relative) over the last `window_s` seconds, or `bound_s` has passed.
    Returns (rss_mb, seconds waited)."""
    t0 = time.monotonic()
    hist = []
    while True:
        now = time.monotonic() - t0
        rss = server.rss_mb()
        hist.append((now, rss))
        old = [r for t, r in hist if t <= now - window_s]
        if now >= min_s and old and old[-1] - rss <= tolerance * old[-1]:
            return rss, now
        if now >= bound_s:
            return rss, now
        time.sleep(period)


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow([f"{x:.3f}" if isinstance(x, float) else x for x in r])


def release_counters(stats):
    """The stats fields about giving memory back or compacting (names vary by build)."""
    words = ("munmap", "released", "release", "shrink", "trim", "compact", "retention",
             "mmap", "reap")
    return {k: v for k, v in stats.items() if any(w in k for w in words)}


def reap_interval(server, default=1.0):
    """kvcache-server's `reap_interval` from `stats settings` (seconds), or `default`."""
    try:
        v = server.conn.stats("settings").get("reap_interval")
        return float(v) if v is not None else default
    except (RuntimeError, OSError, ValueError):
        return default


def check_binary(path, what):
    if not Path(path).exists():
        sys.exit(f"{what} {path} does not exist (build it: cargo build --release -p "
                 f"kvcache-server -p slabtune)")


def machine_load():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]
