#!/usr/bin/env bash
# A three-node cluster behind nutcracker (twemproxy, ketama consistent hashing), as
# docs/cluster.md describes: three kvcache-server instances on loopback, 10,000 keys
# stored through the proxy and read back (every value must match), each instance holding
# at least 20% of them (its own `stats` curr_items). Then one node is killed: with
# auto_eject_hosts the proxy drops it after server_failure_limit failures, and sets and
# gets through the proxy succeed again on the two survivors.
#
#   tests/clients/cluster_check.sh PATH-TO-kvcache-server
set -uo pipefail
bin=$1
command -v nutcracker >/dev/null || { echo "nutcracker is not installed"; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
ports=()
for n in 0 1 2; do
    "$bin" -u root -l 127.0.0.1 -p 0 -U 0 -t 1 -m 64 2>"$tmp/server$n.log" &
    pids+=($!)
    port=""
    for _ in $(seq 1 100); do
        port=$(sed -n 's/^kvcache-server listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/server$n.log")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "server $n did not start"; cat "$tmp/server$n.log"; exit 1; }
    ports+=("$port")
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
proxy_port=$(free_port)
stats_port=$(free_port)
cat > "$tmp/nutcracker.yml" <<YML
cluster:
  listen: 127.0.0.1:$proxy_port
  hash: fnv1a_64
  distribution: ketama
  timeout: 1000
  preconnect: true
  auto_eject_hosts: true
  server_retry_timeout: 60000
  server_failure_limit: 2
  servers:
   - 127.0.0.1:${ports[0]}:1 node0
   - 127.0.0.1:${ports[1]}:1 node1
   - 127.0.0.1:${ports[2]}:1 node2
YML
nutcracker -t -c "$tmp/nutcracker.yml" >/dev/null 2>&1 || { nutcracker -t -c "$tmp/nutcracker.yml"; exit 1; }
nutcracker -c "$tmp/nutcracker.yml" -s "$stats_port" -a 127.0.0.1 -o "$tmp/nutcracker.log" &
pids+=($!)
echo "nodes on ${ports[*]}, nutcracker on $proxy_port"
python3 - "$proxy_port" "${ports[@]}" "${pids[2]}" <<'PY'
import os, signal, socket, sys, time

proxy, nodes, victim = int(sys.argv[1]), [int(p) for p in sys.argv[2:5]], int(sys.argv[5])
N = 10_000

def connect(port):
    deadline = time.time() + 10
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            return s, s.makefile("rb")
        except OSError:
            if time.time() > deadline:
                sys.exit(f"cannot connect to 127.0.0.1:{port}")
            time.sleep(0.1)

def value(i, gen):
    return (b"v%d-g%d-" % (i, gen)) * (1 + i % 13)

def store_all(s, f, keys, gen):
    # Pipelined in batches of 200: the proxy keeps replies in request order.
    for b in range(0, len(keys), 200):
        batch = keys[b:b + 200]
        s.sendall(b"".join(b"set %s %d 0 %d\r\n%s\r\n" % (k, i % 1000, len(value(i, gen)), value(i, gen))
                           for i, k in batch))
        for i, k in batch:
            line = f.readline()
            if line != b"STORED\r\n":
                return (i, k, line)
    return None

def read_all(s, f, keys, gen):
    for b in range(0, len(keys), 100):
        batch = keys[b:b + 100]
        s.sendall(b"get " + b" ".join(k for _, k in batch) + b"\r\n")
        for i, k in batch:
            want = b"VALUE %s %d %d\r\n" % (k, i % 1000, len(value(i, gen)))
            line = f.readline()
            if line != want:
                sys.exit(f"get {k!r} through the proxy: expected {want!r}, got {line!r}")
            if f.read(len(value(i, gen)) + 2) != value(i, gen) + b"\r\n":
                sys.exit(f"value of {k!r} differs")
        if f.readline() != b"END\r\n":
            sys.exit("multi-get through the proxy did not end with END")

def curr_items(port):
    s, f = connect(port)
    s.sendall(b"stats\r\n")
    items = None
    while True:
        line = f.readline()
        if line == b"END\r\n":
            break
        if line.startswith(b"STAT curr_items "):
            items = int(line.split()[2])
    s.close()
    return items

s, f = connect(proxy)
keys = [(i, b"cluster:%d" % i) for i in range(N)]
bad = store_all(s, f, keys, 0)
if bad:
    sys.exit(f"set through the proxy failed: {bad}")
read_all(s, f, keys, 0)
counts = [curr_items(p) for p in nodes]
print(f"{N} keys stored and read back through nutcracker; per node: {counts}")
if sum(counts) != N:
    sys.exit(f"the nodes hold {sum(counts)} items, not {N}")
for n, c in enumerate(counts):
    if c < N * 0.2:
        sys.exit(f"node {n} holds {c} of {N} keys, under 20%")

# Node 2 fails. Requests hashed to it fail until the proxy has seen
# server_failure_limit failures and ejects it; then its keys go to the survivors.
os.kill(victim, signal.SIGKILL)
failures = 0
for attempt in range(50):
    bad = store_all(s, f, keys[:2000], 1)
    if bad is None:
        break
    failures += 1
    if not bad[2].startswith(b"SERVER_ERROR"):
        sys.exit(f"unexpected reply while a node is down: {bad}")
    # A failed batch leaves later replies unread: start over on a new connection.
    s.close()
    s, f = connect(proxy)
    time.sleep(0.1)
else:
    sys.exit("the proxy never ejected the dead node")
read_all(s, f, keys[:2000], 1)
counts = [curr_items(p) for p in nodes[:2]]
print(f"node 2 killed: {failures} failed batches before ejection, then 2,000 sets and gets "
      f"through the proxy succeeded; survivors hold {counts}")
PY
