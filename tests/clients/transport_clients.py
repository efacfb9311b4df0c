#!/usr/bin/env python3
"""Real clients over the transports: pymemcache over a unix socket and over TLS (its
`tls_context`), and libmemcached's tools (memccp, memccat, memcstat; Debian's names for
memcp, memcat, memstat) over the unix socket.

usage: transport_clients.py PATH-TO-kvcache-server
"""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from pymemcache.client.base import Client

KV = sys.argv[1]


def wait_for(connect, proc):
    for _ in range(200):
        try:
            connect().close()
            return
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"server exited with {proc.returncode}")
            time.sleep(0.05)
    sys.exit("server did not start")


def exercise(c, tag):
    c.set("k", "v1")
    assert c.get("k") == b"v1", tag
    c.set("big", b"x" * 500_000)
    assert c.get("big") == b"x" * 500_000, tag
    assert c.add("k", "v2", noreply=False) is False, tag
    c.set("n", "10")
    assert c.incr("n", 5) == 15, tag
    assert c.get_many(["k", "n", "missing"]) == {"k": b"v1", "n": b"15"}, tag
    assert c.delete("k", noreply=False) is True, tag
    assert c.get("k") is None, tag
    stats = c.stats()
    assert stats[b"curr_connections"] >= 1, tag
    print(f"pymemcache over {tag}: ok")


def main():
    tmp = tempfile.mkdtemp(prefix="kvclients-")
    procs = []
    try:
        sock = os.path.join(tmp, "kv.sock")
        p = subprocess.Popen([KV, "-u", "root", "-s", sock, "-t", "2"], stderr=subprocess.DEVNULL)
        procs.append(p)

        def unix():
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            return s
        wait_for(unix, p)
        exercise(Client(sock), "unix socket")
        hosts = f"--servers={sock}"
        src = os.path.join(tmp, "greeting")
        with open(src, "w") as f:
            f.write("hello over a unix socket\n")
        subprocess.run(["memccp", hosts, src], check=True, cwd=tmp)
        out = subprocess.run(["memccat", hosts, "greeting"], check=True, capture_output=True)
        assert out.stdout.startswith(b"hello over a unix socket\n"), out.stdout
        out = subprocess.run(["memcstat", hosts], check=True, capture_output=True).stdout
        assert f"Server: {sock}".encode() in out and b"curr_items" in out, out
        print("libmemcached tools (memccp, memccat, memcstat) over unix socket: ok")

        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        p = subprocess.Popen([KV, "-u", "root", "-p", str(port), "-t", "2", "-Z", "-o",
                              f"ssl_chain_cert={cert},ssl_key={key}"], stderr=subprocess.DEVNULL)
        procs.append(p)
        wait_for(lambda: socket.create_connection(("127.0.0.1", port)), p)
        ctx = ssl.create_default_context(cafile=cert)
        exercise(Client(("127.0.0.1", port), tls_context=ctx), "TLS")
        # A client that does not trust the certificate is refused at the handshake.
        try:
            Client(("127.0.0.1", port), tls_context=ssl.create_default_context()).get("k")
            sys.exit("an untrusted certificate was accepted")
        except ssl.SSLError:
            pass
        print("transport_clients: 3 passed, 0 failed")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
