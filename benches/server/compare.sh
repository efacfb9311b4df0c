#!/usr/bin/env bash
# kvcache-server side by side with memcached 1.6.18 on this machine.
#
#   benches/server/compare.sh [--quick]
#
# 1. Memory: each server alone with `-m 1024 -t 1`, 1M items with 14-byte keys and
#    32-byte (then 100-byte) values loaded by load.py; RSS from /proc/PID/status.
#    Prints RSS per item (total RSS / items) and ours / memcached.
# 2. CPU: each server pinned to CPU 0 (`taskset -c 0`, `-t 1`), memcaslap pinned to
#    CPU 1 with `-T 1 -c 32 -t 10s`:
#      (a) `-X 100` (90% get / 10% set, one key per request);
#      (b) `-X 32 -d 20` (multi-gets of 20 keys).
#    CPU = the server's utime + stime from /proc/PID/stat over the run; requests and keys
#    are counted by the server itself (`stats` cmd_get + cmd_set before/after), the same
#    way for both. Prints ops/s, keys/s, CPU us per request / per key, and ratios.
#
# The CPU runs alternate memcached / kvcache REPEAT times (default 3) and the ratios are
# medians over the repeats: other load on the machine shifts single runs by 10-20%.
#
# --quick: 200k items, 5 s runs, 1 repeat. Environment: MEMCACHED (default
# /usr/bin/memcached), KVCACHE (default target/release/kvcache-server, built if missing),
# ITEMS, SECS, REPEAT.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
KVCACHE=${KVCACHE:-$root/target/release/kvcache-server}
ITEMS=${ITEMS:-1000000}
SECS=${SECS:-10}
REPEAT=${REPEAT:-3}
if [ "${1:-}" = "--quick" ]; then ITEMS=200000; SECS=5; REPEAT=1; fi
tmp=$(mktemp -d)
[ -x "$KVCACHE" ] || (cd "$root" && cargo build --release -p kvcache-server)
command -v memcaslap >/dev/null || echo "memcaslap not found (Debian: libmemcached-tools); CPU runs skipped" >&2
hz=$(getconf CLK_TCK)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pid=""
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
trap 'cleanup; rm -rf "$tmp"' EXIT

# start NAME PORT CPU(-1: no pinning)
start() {
    local name=$1 port=$2 cpu=$3 cmd
    if [ "$name" = memcached ]; then
        cmd=("$MEMCACHED" -u nobody -l 127.0.0.1 -p "$port" -U 0 -m 1024 -t 1 -c 4096)
    else
        cmd=("$KVCACHE" -u root -l 127.0.0.1 -p "$port" -U 0 -m 1024 -t 1 -c 4096)
    fi
    if [ "$cpu" -ge 0 ]; then cmd=(taskset -c "$cpu" "${cmd[@]}"); fi
    "${cmd[@]}" 2>/dev/null &
    pid=$!
    for _ in $(seq 1 100); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),timeout=1)" 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "$name did not start" >&2; exit 1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Sum of cmd_get and cmd_set, and cmd_get, from the server's stats.
counts() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"stats\r\n")
buf = b""
while not buf.endswith(b"END\r\n"):
    buf += s.recv(65536)
st = dict(l.split(" ")[1:3] for l in buf.decode().split("\r\n") if l.startswith("STAT "))
print(int(st["cmd_get"]) + int(st["cmd_set"]), int(st["cmd_get"]))
PY
}

declare -A R
echo "== memory: $ITEMS items, 14-byte keys, -m 1024 -t 1"
for vsize in 32 100; do
    for name in memcached kvcache; do
        port=$(free_port)
        start "$name" "$port" -1
        base=$(rss_kb "$pid")
        python3 "$here/load.py" 127.0.0.1 "$port" "$ITEMS" "$vsize"
        sleep 1
        rss=$(rss_kb "$pid")
        per=$(python3 -c "print(f'{$rss*1024/$ITEMS:.1f}')")
        delta=$(python3 -c "print(f'{($rss-$base)*1024/$ITEMS:.1f}')")
        printf "  %-10s value %3d B: RSS %8d KiB  %6s B/item (%s B/item above the idle %d KiB)\n" "$name" "$vsize" "$rss" "$per" "$delta" "$base"
        R[$name,$vsize]=$per
        cleanup
    done
    printf "  ratio kvcache/memcached at %d B values: %s\n" "$vsize" "$(python3 -c "print(f'{${R[kvcache,$vsize]}/${R[memcached,$vsize]}:.3f}')")"
done

command -v memcaslap >/dev/null || exit 0
run_cpu() { # name label memcaslap-args...
    local name=$1 label=$2; shift 2
    local port; port=$(free_port)
    start "$name" "$port" 0
    # Warm up so both servers hold the key space before the measured run.
    taskset -c 1 memcaslap -s "127.0.0.1:$port" -T 1 -c 32 -t 2s "$@" >/dev/null 2>&1 || true
    read -r req0 get0 < <(counts "$port")
    local t0; t0=$(cpu_ticks "$pid")
    local out; out=$(taskset -c 1 memcaslap -s "127.0.0.1:$port" -T 1 -c 32 -t "${SECS}s" "$@" 2>&1)
    local t1; t1=$(cpu_ticks "$pid")
    read -r req1 get1 < <(counts "$port")
    cleanup
    local reqs=$((req1 - req0)) keys=$((get1 - get0))
    local cpu_s; cpu_s=$(python3 -c "print(($t1-$t0)/$hz)")
    local tps; tps=$(grep -m1 -oE 'TPS: [0-9]+' <<<"$out" | tail -1 | awk '{print $2}')
    python3 - "$name" "$label" "$reqs" "$keys" "$cpu_s" "$SECS" "${tps:-0}" <<'PY'
import sys
name, label, reqs, keys, cpu, secs, tps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
print(f"  {name:<10} {label}: {reqs/secs:10.0f} req/s {keys/secs:10.0f} get keys/s  cpu {cpu:5.2f} s  "
      f"{cpu*1e6/max(reqs,1):6.2f} us/req  {cpu*1e6/max(keys,1):6.2f} us/key  (memcaslap TPS {tps})")
PY
    echo "$reqs $keys $cpu_s" >> "$tmp/$name.$label"
}
ratio() { # label
    python3 - "$tmp" "$1" <<'PY'
import statistics, sys
d, l = sys.argv[1], sys.argv[2]
m = [[float(x) for x in line.split()] for line in open(f"{d}/memcached.{l}")]
k = [[float(x) for x in line.split()] for line in open(f"{d}/kvcache.{l}")]
req = [b[0] / a[0] for a, b in zip(m, k)]
keys = [b[1] / a[1] for a, b in zip(m, k)]
cpr = [(b[2] / b[0]) / (a[2] / a[0]) for a, b in zip(m, k)]
cpk = [(b[2] / max(b[1], 1)) / (a[2] / max(a[1], 1)) for a, b in zip(m, k)]
f = lambda xs: " ".join(f"{x:.3f}" for x in xs)
print(f"  {l}: kvcache/memcached per run: requests [{f(req)}] keys [{f(keys)}] "
      f"cpu/request [{f(cpr)}] cpu/key [{f(cpk)}]")
print(f"  {l}: MEDIAN kvcache/memcached  requests {statistics.median(req):.3f}x  "
      f"keys {statistics.median(keys):.3f}x  cpu/request {statistics.median(cpr):.3f}x  "
      f"cpu/key {statistics.median(cpk):.3f}x")
PY
}
echo "== cpu: server on CPU 0 (-t 1), memcaslap -T 1 -c 32 on CPU 1, ${SECS}s, $REPEAT repeats"
for _ in $(seq 1 "$REPEAT"); do
    for name in memcached kvcache; do run_cpu "$name" a -X 100; done
done
ratio a
for _ in $(seq 1 "$REPEAT"); do
    for name in memcached kvcache; do run_cpu "$name" b -X 32 -d 20; done
done
ratio b
