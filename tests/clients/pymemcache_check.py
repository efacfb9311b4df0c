#!/usr/bin/env python3
"""pymemcache round trips against HOST PORT: set/get/gets/cas/incr/decr/delete,
multi-get, touch, noreply, and binary-safe values."""
import sys

from pymemcache.client.base import Client


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2])
    c = Client((host, port), connect_timeout=5, timeout=5)
    assert c.set("py:a", b"hello", noreply=False) is True
    assert c.get("py:a") == b"hello"
    value, cas = c.gets("py:a")
    assert value == b"hello" and int(cas) > 0
    assert c.cas("py:a", b"world", cas, noreply=False) is True
    assert c.cas("py:a", b"again", cas, noreply=False) is False  # EXISTS
    assert c.get("py:a") == b"world"
    assert c.set("py:n", b"10", noreply=False)
    assert c.incr("py:n", 5) == 15
    assert c.decr("py:n", 20) == 0
    assert c.incr("py:missing", 1) is None
    assert c.add("py:a", b"x", noreply=False) is False
    assert c.replace("py:a", b"r", noreply=False) is True
    assert c.append("py:a", b"!", noreply=False) is True
    assert c.prepend("py:a", b"<", noreply=False) is True
    assert c.get("py:a") == b"<r!"
    many = {f"py:m{i}": bytes([i % 256]) * (i + 1) for i in range(200)}
    assert c.set_many(many, noreply=False) == []
    got = c.get_many(list(many) + ["py:absent"])
    assert got == many, "get_many differs"
    binary = bytes(range(256)) * 40 + b"\r\nEND\r\n"
    assert c.set("py:bin", binary, noreply=False)
    assert c.get("py:bin") == binary
    assert c.touch("py:bin", 100, noreply=False) is True
    assert c.delete("py:a", noreply=False) is True
    assert c.delete("py:a", noreply=False) is False
    assert c.get("py:a") is None
    c.set("py:quiet", b"q", noreply=True)
    assert c.get("py:quiet") == b"q"
    stats = c.stats()
    assert int(stats[b"curr_items"]) >= 200
    assert c.version().startswith(b"1.6.18")
    c.close()
    print("pymemcache: all checks passed")


if __name__ == "__main__":
    main()
