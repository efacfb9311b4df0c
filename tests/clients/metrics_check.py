#!/usr/bin/env python3
"""The metrics endpoint (`-o metrics_port=`) read with the prometheus_client text parser.

Starts kvcache-server with 200 size classes (`-o slab_sizes=`), stores an item in each,
scrapes `/metrics`, parses it with `prometheus_client.parser`, checks the families and
values against `stats`, then measures the server's CPU time per scrape over 200 scrapes.

    metrics_check.py PATH-TO-kvcache-server
"""
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

binary = sys.argv[1]
sizes = [64 + 16 * i for i in range(200)]
proc = subprocess.Popen(
    [binary, "-u", "root", "-l", "127.0.0.1", "-p", "0", "-t", "2", "-o",
     "metrics_port=0,slab_sizes=" + "-".join(map(str, sizes))],
    stderr=subprocess.PIPE, text=True)
try:
    port = murl = None
    deadline = time.time() + 10
    while (port is None or murl is None) and time.time() < deadline:
        line = proc.stderr.readline()
        m = re.match(r"kvcache-server listening on 127.0.0.1:(\d+)", line)
        if m:
            port = int(m.group(1))
        m = re.match(r"kvcache-server metrics on (\S+)", line)
        if m:
            murl = m.group(1)
    assert port and murl, "server did not announce its ports"
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    for i, size in enumerate(sizes):
        # A value that lands in class i: our item header is 14 B + 8 B of CAS.
        v = b"v" * (size - 22 - len(b"k%03d" % i) - 4)
        s.sendall(b"set k%03d 0 0 %d\r\n%s\r\n" % (i, len(v), v))
        assert s.recv(100) == b"STORED\r\n"
    s.sendall(b"get k000\r\n")
    time.sleep(0.1)
    s.recv(65536)

    body = urllib.request.urlopen(murl, timeout=5).read().decode()
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    assert fams["kvcache_curr_items"].type == "gauge"
    assert fams["kvcache_curr_items"].samples[0].value == 200, fams["kvcache_curr_items"]
    assert fams["kvcache_get_hits"].type == "counter"
    assert fams["kvcache_get_hits"].samples[0].value == 1
    per_class = fams["kvcache_items_class_number"].samples
    assert len(per_class) >= 200, len(per_class)
    assert all(x.labels["class"].isdigit() for x in per_class)
    assert sum(x.value for x in per_class) == 200
    assert len(fams["kvcache_slab_class_chunk_size"].samples) >= 200
    assert fams["kvcache_limit_maxbytes"].samples[0].value == 64 << 20
    try:
        urllib.request.urlopen(murl.replace("/metrics", "/other"), timeout=5)
        raise AssertionError("a path other than /metrics was served")
    except urllib.error.HTTPError as e:
        assert e.code == 404

    def cpu():
        f = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    n = 200
    c0, t0 = cpu(), time.time()
    for _ in range(n):
        urllib.request.urlopen(murl, timeout=5).read()
    c1, t1 = cpu(), time.time()
    print(f"metrics: {len(fams)} families, {sum(len(f.samples) for f in fams.values())} samples, "
          f"{len(body)} bytes; server CPU per scrape {1000 * (c1 - c0) / n:.3f} ms "
          f"(200 classes in use, {n} scrapes, {1000 * (t1 - t0) / n:.2f} ms wall each)")
finally:
    proc.terminate()
    proc.wait(10)
print("metrics: ok")
