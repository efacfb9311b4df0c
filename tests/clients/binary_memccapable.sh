#!/usr/bin/env bash
# Runs libmemcached's `memccapable -b` (all binary-protocol tests) against kvcache-server
# on a free loopback port. Needs libmemcached-tools; builds nothing (run
# `cargo build -p kvcache-server` first or set KVCACHE_SERVER_BIN).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${1:-${KVCACHE_SERVER_BIN:-$root/target/debug/kvcache-server}}"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" -u root -l 127.0.0.1 -p "$port" -U 0 -t 2 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$port)).close()" 2>/dev/null && break
    sleep 0.1
done
out="$(timeout 120 memccapable -h 127.0.0.1 -p "$port" -b 2>&1)"
echo "$out"
echo "$out" | grep -q "All tests passed"
