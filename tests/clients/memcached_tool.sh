#!/usr/bin/env bash
# memcached-tool (from the memcached package) against HOST PORT: `display` must show
# the classes that hold items, and `stats` must parse.
set -euo pipefail
host=${1:-127.0.0.1}
port=${2:?usage: memcached_tool.sh HOST PORT}
tool=$(command -v memcached-tool || echo /usr/share/memcached/scripts/memcached-tool)
[ -x "$tool" ] || [ -f "$tool" ] || { echo "memcached-tool not found" >&2; exit 1; }
python3 - "$host" "$port" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
for i in range(50):
    s.sendall(b"set tool:%d 0 0 %d noreply\r\n%s\r\n" % (i, 10 + i * 20, b"t" * (10 + i * 20)))
s.sendall(b"version\r\n")
buf = b""
while not buf.endswith(b"\r\n"):
    buf += s.recv(100)
PY
out=$(perl "$tool" "$host:$port" display)
echo "$out"
rows=$(grep -cE '^ +[0-9]+ +[0-9.]+[BKM] ' <<<"$out" || true)
echo "memcached-tool display: $rows class rows"
[ "$rows" -ge 2 ] || { echo "memcached-tool display shows no classes" >&2; exit 1; }
perl "$tool" "$host:$port" stats | grep -q curr_items || { echo "memcached-tool stats failed" >&2; exit 1; }
# `keys` and `dump` read `lru_crawler metadump all`.
keys=$(perl "$tool" "$host:$port" keys 2>/dev/null | grep -c '^key=tool%3A' || true)
[ "$keys" -eq 50 ] || { echo "memcached-tool keys listed $keys of 50 keys" >&2; exit 1; }
adds=$(perl "$tool" "$host:$port" dump 2>/dev/null | grep -c '^add tool:' || true)
[ "$adds" -eq 50 ] || { echo "memcached-tool dump gave $adds of 50 items" >&2; exit 1; }
echo "memcached-tool: ok"
