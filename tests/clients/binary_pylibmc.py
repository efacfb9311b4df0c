#!/usr/bin/python3
"""Round trip through pylibmc in binary mode (libmemcached's binary protocol) against
kvcache-server: set/get, get_multi, cas (gets + cas), incr/decr, add/replace,
append/prepend, delete, touch, flush. Starts the server on a free loopback port.

Needs Debian's python3-pylibmc (`apt-get install python3-pylibmc`, then run with
/usr/bin/python3). Usage: tests/clients/binary_pylibmc.py [path to kvcache-server]
"""
import os
import socket
import subprocess
import sys
import time

import pylibmc

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
binary = (sys.argv[1] if len(sys.argv) > 1 else
          os.environ.get("KVCACHE_SERVER_BIN", os.path.join(root, "target/debug/kvcache-server")))

s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
server = subprocess.Popen([binary, "-u", "root", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-t", "2"],
                          stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.05)
    mc = pylibmc.Client(["127.0.0.1:%d" % port], binary=True, behaviors={"cas": True})
    assert mc.set("k", "hello")
    assert mc.get("k") == "hello"
    assert mc.set("b", b"\x00\x01\xff")
    assert mc.get("b") == b"\x00\x01\xff"
    assert mc.get("missing") is None
    assert mc.get_multi(["k", "b", "missing"]) == {"k": "hello", "b": b"\x00\x01\xff"}
    value, cas = mc.gets("k")
    assert value == "hello" and cas
    assert mc.cas("k", "world", cas)
    assert not mc.cas("k", "again", cas)
    assert mc.get("k") == "world"
    assert mc.set("n", 10)
    assert mc.incr("n", 5) == 15
    assert mc.decr("n", 20) == 0
    assert mc.get("n") == 0
    assert not mc.add("k", "x")
    assert mc.add("new", "x")
    assert mc.replace("new", "y")
    assert mc.append("new", "!")
    assert mc.prepend("new", "<")
    assert mc.get("new") == "<y!"
    assert mc.touch("new", 100)
    assert mc.delete("new")
    assert not mc.delete("new")
    big = b"x" * 500000
    assert mc.set("big", big)
    assert mc.get("big") == big
    assert mc.flush_all()
    assert mc.get("k") is None
    print("pylibmc binary round trip: ok")
finally:
    server.kill()
    server.wait()
