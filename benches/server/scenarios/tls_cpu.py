#!/usr/bin/env python3
"""Server CPU per request over TLS, kvcache-server -Z against memcached -Z on the same
certificate: a memcaslap-style mix (90% get, 10% set of 100-byte values over 10,000
keys), from client processes that each keep several TLS connections and pipeline
batches of requests. The servers run one after the other, ROUNDS times alternately;
CPU is the server process's user + system time (/proc/PID/stat) over the measured
window, divided by the requests answered in it. Prints each round, the medians and the
ratio ours / memcached (the target: at most 0.9x).

usage: tls_cpu.py [--ours BIN] [--memcached BIN] [--seconds S] [--rounds R]
                  [--procs P] [--conns C] [--batch B]
"""
import argparse
import multiprocessing as mp
import os
import random
import socket
import ssl
import statistics
import subprocess
import tempfile
import time

import common

VALUE = b"v" * 100
KEYS = 10_000


def client(port, conns, batch, seconds, counter):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    socks = [ctx.wrap_socket(socket.create_connection(("127.0.0.1", port))) for _ in range(conns)]
    rng = random.Random(os.getpid())
    done = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s in socks:
            req = []
            for _ in range(batch):
                k = b"key:%05d" % rng.randrange(KEYS)
                if rng.random() < 0.1:
                    req.append(b"set %s 0 0 100\r\n%s\r\n" % (k, VALUE))
                else:
                    req.append(b"get %s\r\n" % k)
            s.sendall(b"".join(req))
            buf = b""
            while buf.count(b"END\r\n") + buf.count(b"STORED\r\n") < batch:
                buf += s.recv(1 << 16)
            done += batch
    with counter.get_lock():
        counter.value += done
    for s in socks:
        s.close()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(binary, name, opts, a):
    with common.Server(binary, ["-t", "2", "-Z", "-o", opts], name=name) as srv:
        counter = mp.Value("l", 0)
        c0 = cpu_seconds(srv.proc.pid)
        procs = [mp.Process(target=client, args=(srv.port, a.conns, a.batch, a.seconds, counter))
                 for _ in range(a.procs)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        cpu = cpu_seconds(srv.proc.pid) - c0
        reqs = counter.value
    us = cpu / max(reqs, 1) * 1e6
    print(f"  {name}: {reqs} requests, {cpu:.2f} s CPU, {us:.2f} us CPU per request, "
          f"{reqs / a.seconds:.0f} requests/s")
    return us, reqs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default=str(common.DEFAULT_OURS))
    ap.add_argument("--memcached", default=str(common.DEFAULT_MEMCACHED))
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    common.check_binary(a.ours, "kvcache-server")
    common.check_binary(a.memcached, "memcached")
    tmp = tempfile.mkdtemp(prefix="tlscpu-")
    os.chmod(tmp, 0o755)
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost"], check=True,
                   capture_output=True)
    os.chmod(key, 0o644)
    opts = f"ssl_chain_cert={cert},ssl_key={key}"
    print(f"machine load: {common.machine_load()}")
    ours, theirs = [], []
    for r in range(a.rounds):
        print(f"round {r + 1}")
        ours.append(measure(a.ours, "kvcache-server", opts, a))
        theirs.append(measure(a.memcached, "memcached", opts, a))
    o = statistics.median(u for u, _ in ours)
    m = statistics.median(u for u, _ in theirs)
    orps = statistics.median(n for _, n in ours)
    mrps = statistics.median(n for _, n in theirs)
    print(f"median CPU per request: kvcache-server {o:.2f} us, memcached {m:.2f} us, "
          f"ratio {o / m:.2f}x (target <= 0.90x) at {orps / mrps:.2f}x the requests")


if __name__ == "__main__":
    main()
