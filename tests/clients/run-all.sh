#!/usr/bin/env bash
# Starts the release kvcache-server on a free loopback port, runs every real-client
# check against it (and, when memcached is installed, the differential check against
# memcached), stops it with SIGTERM, and fails if any check failed. Some checks start
# their own servers: memcaslap with full verification (MEMCASLAP_SECS, default 30) and a
# three-node cluster behind nutcracker.
#
#   tests/clients/run-all.sh [PATH-TO-kvcache-server]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-${KVCACHE_SERVER_BIN:-$root/target/release/kvcache-server}}
if [ ! -x "$bin" ]; then
    (cd "$root" && cargo build --release -p kvcache-server) || exit 1
fi
log=$(mktemp)
"$bin" -u root -l 127.0.0.1 -p 0 -U 0 -t 2 -m 256 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/^kvcache-server listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "server did not start:"; cat "$log"; exit 1; }
echo "kvcache-server pid $pid on 127.0.0.1:$port"
status=0
run() {
    echo "=== $1"
    if "${@:2}"; then echo "=== $1: ok"; else echo "=== $1: FAILED"; status=1; fi
}
run memccapable bash "$here/memccapable.sh" 127.0.0.1 "$port"
run pymemcache python3 "$here/pymemcache_check.py" 127.0.0.1 "$port"
run perl-Cache-Memcached perl "$here/perl_check.pl" 127.0.0.1 "$port"
run memcached-tool bash "$here/memcached_tool.sh" 127.0.0.1 "$port"
run nutcracker bash "$here/nutcracker_check.sh" 127.0.0.1 "$port"
if command -v memcached >/dev/null; then
    mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    memcached -u nobody -l 127.0.0.1 -p "$mport" -U 0 -t 1 &
    mpid=$!
    sleep 0.5
    run diff-vs-memcached python3 "$here/diff_memcached.py" "$mport" "$port"
    kill $mpid; wait $mpid 2>/dev/null
else
    echo "=== diff-vs-memcached: skipped (memcached not installed)"
fi
run metrics-prometheus-client python3 "$here/metrics_check.py" "$bin"
run memccapable-binary bash "$here/binary_memccapable.sh" "$bin"
run memcaslap-verify bash "$here/memcaslap_check.sh" "$bin"
run cluster-nutcracker bash "$here/cluster_check.sh" "$bin"
if /usr/bin/python3 -c 'import pylibmc' 2>/dev/null; then
    run pylibmc-binary /usr/bin/python3 "$here/binary_pylibmc.py" "$bin"
else
    echo "=== pylibmc-binary: skipped (python3-pylibmc not installed)"
fi
if command -v memcached >/dev/null; then
    run meta-binary-diff-vs-memcached python3 "$here/meta_diff.py" "$bin"
    run full-memory-diff-vs-memcached python3 "$here/oom_diff.py" "$bin"
fi
run transport-clients python3 "$here/transport_clients.py" "$bin"
if command -v memcached >/dev/null; then
    run transport-diff-vs-memcached python3 "$here/transport_diff.py" "$bin"
fi
kill -TERM $pid
wait $pid
rc=$?
trap 'rm -f "$log"' EXIT
if [ $rc -ne 0 ]; then echo "server exited with $rc after SIGTERM"; status=1; fi
[ $status -eq 0 ] && echo "all client checks passed" || echo "some client checks FAILED"
exit $status
