#!/usr/bin/env python3
"""Differential check of the transports: the text-protocol cases of diff_memcached.py,
sent over a unix socket and over TLS to memcached 1.6.18 and to kvcache-server, must
get identical replies (CAS values and the version string normalised); then the same UDP
datagrams and the same SASL exchanges (memcached through Cyrus SASL with `mech_list:
plain`, kvcache-server through MEMCACHED_SASL_PWDB) are compared byte for byte. Each
server is started here, on its own socket, certificates and password files.

usage: transport_diff.py PATH-TO-kvcache-server [PATH-TO-memcached]
"""
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from diff_memcached import CASES, HOSTILE, norm  # noqa: E402

KV = sys.argv[1]
MC = sys.argv[2] if len(sys.argv) > 2 else "/usr/bin/memcached"
WAIT = 0.2


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(argv, env=None, ready=None):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env)
    for _ in range(200):
        try:
            if ready():
                return p
        except OSError:
            pass
        if p.poll() is not None:
            sys.exit(f"{argv[0]} exited with {p.returncode}: {argv}")
        time.sleep(0.05)
    p.kill()
    sys.exit(f"{argv} did not start")


def unix_ready(path):
    def f():
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        s.close()
        return True
    return f


def tcp_ready(port):
    def f():
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    return f


def drain(s):
    out = b""
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                return out + b"<closed>"
            out += d
    except (socket.timeout, ssl.SSLWantReadError):
        return out
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
        return out + b"<closed>"


def talk(connect, data):
    s = connect()
    s.settimeout(WAIT)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass
    out = drain(s)
    s.close()
    return out


def flush(connect):
    s = connect()
    s.settimeout(5)
    try:
        s.sendall(b"flush_all\r\n")
        got = b""
        while not got.endswith(b"OK\r\n"):
            d = s.recv(100)
            if not d:
                break
            got += d
    except OSError:
        pass
    s.close()


def tls_known(case, mc, kv):
    """memcached 1.6.18 over TLS leaves the commands that follow a value larger than
    its 16 KiB read buffer unanswered until the client sends more (they wait, decrypted,
    inside OpenSSL); kvcache-server answers them. Its replies then start with
    memcached's."""
    return len(case) > 16384 and kv.startswith(mc) and len(kv) > len(mc)


def compare(name, connects, cases, sasl=False):
    """Sends each case to both servers at once; returns the number that differ."""
    failures = 0
    known = 0
    for case in cases:
        answers = [None, None]

        def one(i):
            if not sasl:
                flush(connects[i])
            answers[i] = norm(talk(connects[i], case))
        ts = [threading.Thread(target=one, args=(i,)) for i in (0, 1)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if answers[0] == answers[1]:
            continue
        if name == "TLS" and tls_known(case, answers[0], answers[1]):
            known += 1
            continue
        failures += 1
        print(f"DIFFERS over {name}: {case[:100]!r}\n  memcached: {answers[0][:300]!r}\n"
              f"  kvcache:   {answers[1][:300]!r}")
    extra = f", {known} where memcached's TLS leaves requests unanswered" if known else ""
    print(f"transport_diff {name}: {len(cases) - failures - known} of {len(cases)} cases "
          f"identical{extra}")
    return failures


UDP_CASES = [
    b"set a 0 0 5\r\nhello\r\n",
    b"get a\r\n",
    b"get zz a yy\r\n",
    b"get a zz\r\n",
    b"gets zz\r\n",
    b"set big 0 0 3000\r\n" + b"x" * 3000 + b"\r\nget big a\r\n",
    b"get a\r\nget a\r\n",
    b"set n 0 0 1 noreply\r\nz\r\n",
    b"bogus\r\n",
    b"get a",
    b"mg a v\r\nmn\r\n",
    b"quit\r\n",
]


def udp_compare(ports):
    failures = 0
    frames = [struct.pack(">HHHH", 7, 0, 1, 0) + c for c in UDP_CASES]
    frames += [struct.pack(">HHHH", 8, 0, 2, 0) + b"get a\r\n", b"\x00\x01\x00",
               struct.pack(">HHHH", 9, 0, 1, 0)]
    for f in frames:
        answers = []
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(WAIT)
            s.sendto(f, ("127.0.0.1", port))
            got = []
            try:
                while True:
                    got.append(s.recvfrom(70000)[0])
            except socket.timeout:
                pass
            s.close()
            answers.append(got)
        if answers[0] != answers[1]:
            failures += 1
            print(f"DIFFERS over udp: {f[:60]!r}\n  memcached: {answers[0]!r:.300}\n"
                  f"  kvcache:   {answers[1]!r:.300}")
    print(f"transport_diff udp: {len(frames) - failures} of {len(frames)} datagrams identical")
    return failures


def breq(op, key=b"", val=b"", extra=b""):
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extra), 0, 0,
                       len(key) + len(extra) + len(val), 0, 0) + extra + key + val


SASL_CASES = [
    breq(0x20),
    breq(0x00, b"foo"),
    breq(0x0b),
    b"get foo\r\n" * 4,
    breq(0x21, b"PLAIN", b"\0alice\0wrong"),
    breq(0x21, b"PLAIN", b"\0alice\0secret") + breq(0x00, b"foo"),
    breq(0x21, b"PLAIN", b"alice\0alice\0secret"),
    breq(0x21, b"PLAIN", b"alicesecret"),
    breq(0x21, b"PLAIN", b""),
    breq(0x21, b"PLAIN", b"") + breq(0x22, b"PLAIN", b"\0alice\0secret") + breq(0x00, b"foo"),
    breq(0x22, b"PLAIN", b"\0alice\0secret"),
    breq(0x21, b"CRAM-MD5", b"\0alice\0secret"),
    breq(0x21, b"", b"\0alice\0secret"),
    breq(0x20, b"x"),
    breq(0x21, b"PLAIN", b"\0alice\0secret") + breq(0x21, b"PLAIN", b"\0alice\0x")
    + breq(0x00, b"foo"),
    breq(0x21, b"PLAIN", b"\0alice\0secret\0"),
    breq(0x21, b"P" * 40, b"\0alice\0secret") + breq(0x0b),
]


def main():
    if not os.path.exists(MC):
        sys.exit(f"{MC} is missing (scripts/setup.sh installs memcached)")
    tmp = tempfile.mkdtemp(prefix="kvdiff-")
    os.chmod(tmp, 0o777)  # memcached, as nobody, creates its socket here
    procs = []
    try:
        failures = 0
        # Unix sockets.
        socks = [os.path.join(tmp, "mc.sock"), os.path.join(tmp, "kv.sock")]
        procs.append(start([MC, "-u", "nobody", "-s", socks[0], "-a", "777", "-t", "1"],
                           ready=unix_ready(socks[0])))
        procs.append(start([KV, "-u", "root", "-s", socks[1], "-t", "1"], ready=unix_ready(socks[1])))

        def unix(path):
            def c():
                s = socket.socket(socket.AF_UNIX)
                s.connect(path)
                return s
            return c
        failures += compare("unix socket", [unix(p) for p in socks], CASES + HOSTILE)

        # TLS, on the same self-signed certificate.
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
        os.chmod(cert, 0o644)
        os.chmod(key, 0o644)
        opts = f"ssl_chain_cert={cert},ssl_key={key}"
        tports = [free_port(), free_port()]
        procs.append(start([MC, "-u", "nobody", "-l", "127.0.0.1", "-p", str(tports[0]), "-U",
                            "0", "-t", "1", "-Z", "-o", opts], ready=tcp_ready(tports[0])))
        procs.append(start([KV, "-u", "root", "-l", "127.0.0.1", "-p", str(tports[1]), "-t", "1", "-Z", "-o",
                            opts], ready=tcp_ready(tports[1])))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        def tls(port):
            def c():
                raw = socket.create_connection(("127.0.0.1", port), timeout=5)
                return ctx.wrap_socket(raw)
            return c
        failures += compare("TLS", [tls(p) for p in tports], CASES + HOSTILE)

        # UDP.
        uports = [free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)]
        pp = [free_port(), free_port()]
        procs.append(start([MC, "-u", "nobody", "-l", "127.0.0.1", "-p", str(pp[0]), "-U",
                            str(uports[0]), "-t", "1"], ready=tcp_ready(pp[0])))
        procs.append(start([KV, "-u", "root", "-l", "127.0.0.1", "-p", str(pp[1]), "-U", str(uports[1]),
                            "-t", "1"], ready=tcp_ready(pp[1])))
        failures += udp_compare(uports)

        # SASL on the binary protocol.
        if shutil.which("saslpasswd2"):
            db = os.path.join(tmp, "sasldb2")
            with open(os.path.join(tmp, "memcached.conf"), "w") as f:
                f.write(f"mech_list: plain\nsasldb_path: {db}\n")
            subprocess.run(["saslpasswd2", "-a", "memcached", "-c", "-p", "-f", db, "alice"],
                           input=b"secret\n", check=True)
            os.chmod(db, 0o644)
            pwdb = os.path.join(tmp, "pwdb")
            with open(pwdb, "w") as f:
                f.write("alice:secret\n")
            sp = [free_port(), free_port()]
            procs.append(start([MC, "-u", "nobody", "-l", "127.0.0.1", "-p", str(sp[0]), "-U",
                                "0", "-t", "1", "-S"], ready=tcp_ready(sp[0]),
                               env=dict(os.environ, SASL_CONF_PATH=tmp)))
            procs.append(start([KV, "-u", "root", "-l", "127.0.0.1", "-p", str(sp[1]), "-t", "1", "-S"],
                               ready=tcp_ready(sp[1]),
                               env=dict(os.environ, MEMCACHED_SASL_PWDB=pwdb)))

            def tcp(port):
                return lambda: socket.create_connection(("127.0.0.1", port), timeout=5)
            failures += compare("SASL", [tcp(p) for p in sp], SASL_CASES, sasl=True)
        else:
            failures += 1
            print("transport_diff SASL: saslpasswd2 missing (apt-get install sasl2-bin)")
        sys.exit(1 if failures else 0)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
