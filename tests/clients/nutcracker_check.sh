#!/usr/bin/env bash
# nutcracker (twemproxy) in front of the server: the proxy speaks memcached's text protocol
# to it, so every reply must parse as memcached's would. Sets, gets, multi-gets (which the
# proxy splits and merges), incr/decr, cas-less deletes and a miss go through the proxy.
#
#   tests/clients/nutcracker_check.sh HOST PORT
set -euo pipefail
host=$1 port=$2
here=$(cd "$(dirname "$0")" && pwd)
command -v nutcracker >/dev/null || { echo "nutcracker is not installed"; exit 1; }
tmp=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
proxy_port=$(free_port)
stats_port=$(free_port)
cat > "$tmp/nutcracker.yml" <<YML
kv:
  listen: 127.0.0.1:$proxy_port
  hash: fnv1a_64
  distribution: ketama
  timeout: 2000
  preconnect: true
  auto_eject_hosts: false
  servers:
   - $host:$port:1
YML
nutcracker -t -c "$tmp/nutcracker.yml" >/dev/null
nutcracker -c "$tmp/nutcracker.yml" -s "$stats_port" -a 127.0.0.1 -o "$tmp/nutcracker.log" &
npid=$!
trap 'kill $npid 2>/dev/null; wait $npid 2>/dev/null || true; rm -rf "$tmp"' EXIT
python3 - "$proxy_port" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
deadline = time.time() + 10
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("nutcracker did not start")
        time.sleep(0.1)
s.settimeout(5)
buf = b""
def expect(req, want):
    global buf
    s.sendall(req)
    while len(buf) < len(want):
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(f"proxy closed the connection after {req!r}")
        buf += chunk
    got, buf = buf[:len(want)], buf[len(want):]
    if got != want:
        sys.exit(f"{req!r}: expected {want!r}, got {got!r}")
keys = [f"nut:{i}".encode() for i in range(50)]
for i, k in enumerate(keys):
    v = (b"v%d-" % i) * (i + 1)
    expect(b"set %s %d 0 %d\r\n%s\r\n" % (k, i, len(v), v), b"STORED\r\n")
for i, k in enumerate(keys):
    v = (b"v%d-" % i) * (i + 1)
    expect(b"get %s\r\n" % k, b"VALUE %s %d %d\r\n%s\r\nEND\r\n" % (k, i, len(v), v))
# A multi-get the proxy fans out and merges; the order of the keys is kept.
want = b"".join(b"VALUE %s %d %d\r\n%s\r\n" % (k, i, len((b"v%d-" % i) * (i + 1)), (b"v%d-" % i) * (i + 1)) for i, k in enumerate(keys[:20]))
expect(b"get " + b" ".join(keys[:20]) + b" nut:missing\r\n", want + b"END\r\n")
expect(b"set nut:n 0 0 2\r\n41\r\n", b"STORED\r\n")
expect(b"incr nut:n 1\r\n", b"42\r\n")
expect(b"decr nut:n 50\r\n", b"0\r\n")
expect(b"add nut:n 0 0 1\r\nx\r\n", b"NOT_STORED\r\n")
expect(b"delete nut:n\r\n", b"DELETED\r\n")
expect(b"delete nut:n\r\n", b"NOT_FOUND\r\n")
expect(b"get nut:n\r\n", b"END\r\n")
print(f"nutcracker: {len(keys)} sets, {len(keys)} gets, a 21-key multi-get, incr/decr/add/delete through the proxy: ok")
PY
