#!/usr/bin/env bash
# memcaslap (libmemcached's load generator) with every get verified: sets and gets from
# several threads and connections for MEMCASLAP_SECS seconds (default 30), against a
# fresh server with memory to spare so nothing is evicted. memcaslap prints
#   get_misses: N / verify_misses: N / verify_failed: N
# at the end: verify_failed counts values that came back different from what it stored,
# verify_misses verified gets that found nothing, get_misses all misses. All three must
# be 0, and gets and sets must have run. (Checked by hand: through a proxy that rewrites
# one byte value for another in what is stored, every get of a changed value counts in
# verify_failed; after a flush_all mid-run, the misses count in get_misses and
# verify_misses.)
#
#   tests/clients/memcaslap_check.sh PATH-TO-kvcache-server
set -uo pipefail
bin=$1
secs=${MEMCASLAP_SECS:-30}
command -v memcaslap >/dev/null || { echo "memcaslap is not installed"; exit 1; }
tmp=$(mktemp -d)
"$bin" -u root -l 127.0.0.1 -p 0 -U 0 -t 2 -m 1024 2>"$tmp/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/^kvcache-server listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/server.log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "server did not start"; cat "$tmp/server.log"; exit 1; }
timeout $((secs + 60)) memcaslap -s "127.0.0.1:$port" -T 2 -c 16 -t "${secs}s" \
    --verify=1.0 -b >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out" | grep -v '^$' | tail -20
[ $rc -eq 0 ] || { echo "memcaslap exited with $rc"; exit 1; }
field() { sed -n "s/^$1: \([0-9]*\)\$/\1/p" "$tmp/out" | tail -1; }
gets=$(field cmd_get) sets=$(field cmd_set)
misses=$(field get_misses) vmisses=$(field verify_misses) vfailed=$(field verify_failed)
for v in "$gets" "$sets" "$misses" "$vmisses" "$vfailed"; do
    [ -n "$v" ] || { echo "could not parse memcaslap's summary"; exit 1; }
done
[ "$gets" -gt 0 ] && [ "$sets" -gt 0 ] || { echo "memcaslap ran no gets or sets"; exit 1; }
if [ "$vfailed" -ne 0 ] || [ "$vmisses" -ne 0 ] || [ "$misses" -ne 0 ]; then
    echo "memcaslap: verify_failed=$vfailed verify_misses=$vmisses get_misses=$misses"
    exit 1
fi
echo "memcaslap: ${secs}s, -T 2 -c 16, every get verified: $gets gets, $sets sets, 0 failures"
