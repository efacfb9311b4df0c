//! The transports and access control on the real binary: unix sockets (`-s`, `-a`), TLS
//! (`-Z`, client-certificate verification, handshake timeout, `refresh_certs`), SASL on
//! the binary protocol (`-S`) and UDP (`-U`), each with its bad inputs. memcached
//! 1.6.18's replies, where they are compared byte for byte, are in
//! `tests/clients/transport_diff.py`.

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

use integration_tests::transport::{
    read_n, read_to_close, roundtrip, stats, tls_connect, tls_connect_versions, Certs, TempDir,
    UnixServer,
};
use integration_tests::{run_server_to_exit, stat_u64, ServerProc};
use kvcache_server::protocol::binary::{opcode, request};

fn stat<'a>(stats: &'a [(String, String)], name: &str) -> &'a str {
    stats
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no stat {name}"))
}

#[test]
fn unix_socket_serves_text_meta_and_binary_and_goes_at_exit() {
    let dir = TempDir::new("unix");
    let path = dir.path("kv.sock");
    let server = UnixServer::start(&path, &["-a", "766", "-t", "2"]);
    let meta = std::fs::symlink_metadata(&path).expect("socket file");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o766);
    let mut c = server.connect();
    roundtrip(&mut c, b"set k 5 0 2\r\nhi\r\n", b"STORED\r\n");
    roundtrip(&mut c, b"get k\r\n", b"VALUE k 5 2\r\nhi\r\nEND\r\n");
    roundtrip(&mut c, b"mg k v f\r\n", b"VA 2 f5\r\nhi\r\n");
    let st = stats(&mut c, "settings");
    assert_eq!(stat(&st, "domain_socket"), path.to_str().unwrap());
    assert_eq!(stat(&st, "umask"), "766");
    let conns = stats(&mut c, "conns");
    let listen = format!("unix:{}", path.display());
    assert!(conns
        .iter()
        .any(|(k, v)| k.ends_with(":addr") && *v == listen));
    assert!(conns
        .iter()
        .any(|(k, v)| k.ends_with(":addr") && v == "?:<AF 0>"));
    assert!(conns
        .iter()
        .any(|(k, v)| k.ends_with(":listen_addr") && *v == listen));
    // A binary connection on the same socket.
    let mut b = server.connect();
    b.write_all(&request(opcode::GET, b"k", &[], &[], 9, 0))
        .unwrap();
    let head = read_n(&mut b, 24);
    assert_eq!((head[0], head[1], &head[6..8]), (0x81, 0x00, &[0u8, 0][..]));
    assert_eq!(&head[12..16], &9u32.to_be_bytes());
    let body = read_n(
        &mut b,
        u32::from_be_bytes(head[8..12].try_into().unwrap()) as usize,
    );
    assert_eq!(&body[4..], b"hi");
    assert_eq!(server.stop(), Some(0));
    assert!(!path.exists(), "the socket file is removed at exit");
}

#[test]
fn stale_socket_replaced_live_one_refused_long_path_rejected() {
    let dir = TempDir::new("stale");
    let path = dir.path("kv.sock");
    // A socket file nobody listens on, as a killed server leaves it.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = UnixServer::start(&path, &[]);
    let mut c = server.connect();
    roundtrip(&mut c, b"version\r\n", b"VERSION 1.6.18-kvcache\r\n");
    // A second server on the live socket: an error naming the path, exit 2; the first
    // goes on serving.
    let p = path.to_str().unwrap();
    let (code, _, err) = run_server_to_exit(&["-s", p], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(p), "{err}");
    roundtrip(&mut c, b"version\r\n", b"VERSION 1.6.18-kvcache\r\n");
    let long = format!("/tmp/{}", "x".repeat(120));
    let (code, _, err) = run_server_to_exit(&["-s", &long], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("too long"), "{err}");
    let (code, _, err) = run_server_to_exit(&["-s", p, "-a", "9x"], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn unix_socket_with_tls_flags_serves_plain_text_as_memcached() {
    // memcached 1.6.18 takes `-s` with `-Z`: TLS applies to TCP listeners, which `-s`
    // turns off, so the socket speaks the plain protocols.
    let certs = Certs::make();
    let dir = TempDir::new("unix-tls");
    let path = dir.path("kv.sock");
    let opts = certs.server_opts("");
    let server = UnixServer::start(&path, &["-Z", "-o", &opts, "-t", "1"]);
    let mut c = server.connect();
    roundtrip(&mut c, b"set k 0 0 2\r\nhi\r\n", b"STORED\r\n");
    roundtrip(&mut c, b"get k\r\n", b"VALUE k 0 2\r\nhi\r\nEND\r\n");
    assert_eq!(stat(&stats(&mut c, "settings"), "ssl_enabled"), "yes");
    assert_eq!(server.stop(), Some(0));
}

fn tls_server(certs: &Certs, extra: &str) -> ServerProc {
    ServerProc::start(&["-Z", "-o", &certs.server_opts(extra), "-t", "2"])
}

#[test]
fn tls_serves_and_reports_and_refreshes_certs() {
    let certs = Certs::make();
    let s = tls_server(&certs, "");
    let mut c = tls_connect(s.addr, &certs, None).expect("handshake");
    roundtrip(&mut c, b"set k 0 0 3\r\nabc\r\n", b"STORED\r\n");
    // A value larger than a TLS record and the socket buffers, both ways.
    let big = vec![b'v'; 700_000];
    let mut req = b"set big 0 0 700000\r\n".to_vec();
    req.extend_from_slice(&big);
    req.extend_from_slice(b"\r\nget big\r\n");
    c.write_all(&req).unwrap();
    let mut want = b"STORED\r\nVALUE big 0 700000\r\n".to_vec();
    want.extend_from_slice(&big);
    want.extend_from_slice(b"\r\nEND\r\n");
    assert!(read_n(&mut c, want.len()) == want, "large value over TLS");
    let st = stats(&mut c, "settings");
    assert_eq!(stat(&st, "ssl_enabled"), "yes");
    assert_eq!(stat(&st, "ssl_chain_cert"), certs.file("server.pem"));
    assert_eq!(stat(&st, "ssl_verify_mode"), "0");
    let st = stats(&mut c, "");
    assert_eq!(stat_u64(&st, "ssl_handshake_errors"), 0);
    stat_u64(&st, "time_since_server_cert_refresh");
    roundtrip(&mut c, b"refresh_certs\r\n", b"OK\r\n");
    // Plain text on the TLS port: no reply in clear, the connection closes.
    let mut plain = s.connect();
    plain.send(b"get k\r\n");
    let got = read_to_close(&mut plain.stream).expect("closed");
    assert!(!got.windows(3).any(|w| w == b"END"), "{got:?}");
    let st = stats(&mut c, "");
    assert_eq!(stat_u64(&st, "ssl_handshake_errors"), 1);
    // Certificates that no longer load: memcached's error, the old ones stay in use.
    std::fs::write(certs.dir.path("server.pem"), b"garbage").unwrap();
    c.write_all(b"refresh_certs\r\n").unwrap();
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        line.extend(read_n(&mut c, 1));
    }
    let line = String::from_utf8_lossy(&line);
    assert!(
        line.starts_with("Error loading the certificate chain: "),
        "{line}"
    );
    let mut again = tls_connect(s.addr, &certs, None).expect("old certificate still served");
    roundtrip(&mut again, b"get k\r\n", b"VALUE k 0 3\r\nabc\r\nEND\r\n");
}

#[test]
fn tls_refresh_certs_without_tls_is_an_error() {
    let s = ServerProc::start(&[]);
    let mut c = s.connect();
    c.roundtrip(b"refresh_certs\r\n", b"Error TLS not enabled\r\n");
}

#[test]
fn tls_client_certificates_by_verify_mode() {
    let certs = Certs::make();
    let ca = format!("ssl_ca_cert={}", certs.file("ca.pem"));
    for mode in 0..=3 {
        let opts = if mode == 0 {
            String::new()
        } else {
            format!("{ca},ssl_verify_mode={mode}")
        };
        let s = tls_server(&certs, &opts);
        let none = tls_connect(s.addr, &certs, None);
        let wrong = tls_connect(s.addr, &certs, Some("wrong"));
        let right = tls_connect(s.addr, &certs, Some("client"));
        assert!(right.is_ok(), "mode {mode}: right certificate refused");
        // 0: nothing asked; 1: a certificate is checked only if presented; 2 and 3: one
        // is required.
        assert_eq!(none.is_ok(), mode <= 1, "mode {mode}: no certificate");
        if mode == 0 {
            assert!(wrong.is_ok(), "mode 0 ignores client certificates");
        } else {
            assert!(wrong.is_err(), "mode {mode}: wrong certificate accepted");
        }
        let mut c = right.unwrap();
        let st = stats(&mut c, "");
        let failed = u64::from(mode >= 1) + u64::from(mode >= 2);
        assert_eq!(stat_u64(&st, "ssl_handshake_errors"), failed, "mode {mode}");
    }
}

#[test]
fn tls_stalled_handshake_times_out_without_blocking_others() {
    let certs = Certs::make();
    let s = tls_server(&certs, "ssl_handshake_timeout=1");
    // Connections that never start their handshake, and one that sends half a record.
    let mut idle: Vec<_> = (0..4).map(|_| s.connect()).collect();
    let mut half = s.connect();
    half.send(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
    // Meanwhile a real client is served on the same worker threads.
    let mut c = tls_connect(s.addr, &certs, None).expect("handshake");
    roundtrip(
        &mut c,
        b"set a 0 0 1\r\nx\r\nget a\r\n",
        b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
    );
    for conn in idle.iter_mut().chain(std::iter::once(&mut half)) {
        assert_eq!(read_to_close(&mut conn.stream), Some(Vec::new()));
    }
    roundtrip(&mut c, b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
    let st = stats(&mut c, "");
    assert_eq!(stat_u64(&st, "ssl_handshake_errors"), 5);
    assert_eq!(stat_u64(&st, "curr_connections"), 1);
}

#[test]
fn tls_min_version_and_session_cache() {
    let certs = Certs::make();
    let s = tls_server(&certs, "ssl_min_version=tlsv1.3,ssl_session_cache");
    let tls12 = [&rustls::version::TLS12];
    assert!(tls_connect_versions(s.addr, &certs, None, &tls12).is_err());
    let mut c = tls_connect(s.addr, &certs, None).expect("TLS 1.3");
    let st = stats(&mut c, "settings");
    assert_eq!(stat(&st, "ssl_min_version"), "tlsv1.3");
    assert_eq!(stat(&st, "ssl_session_cache"), "yes");
    let s = tls_server(&certs, "");
    let mut c = tls_connect_versions(s.addr, &certs, None, &tls12).expect("TLS 1.2");
    roundtrip(&mut c, b"get nothing\r\n", b"END\r\n");
}

#[test]
fn tls_flag_errors() {
    let w = Duration::from_secs(10);
    let (code, _, err) = run_server_to_exit(&["-Z"], w);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = run_server_to_exit(
        &[
            "-p",
            "0",
            "-Z",
            "-o",
            "ssl_chain_cert=/nonexistent,ssl_key=/nonexistent",
        ],
        w,
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Error loading the certificate chain"), "{err}");
    let (code, _, err) = run_server_to_exit(&["-o", "ssl_verify_mode=4"], w);
    assert_eq!(code, Some(2), "{err}");
}

/// Starts a `-S` server whose password file holds `alice:secret` (one test only sets
/// the variable: tests run in parallel threads).
fn sasl_server(dir: &TempDir) -> ServerProc {
    let db = dir.path("pwdb");
    std::fs::write(&db, b"alice:secret\n").unwrap();
    std::env::set_var("MEMCACHED_SASL_PWDB", &db);
    ServerProc::start(&["-S", "-t", "2"])
}

/// Reads one binary response: (opcode, status, body).
fn response(s: &mut impl Read) -> (u8, u16, Vec<u8>) {
    let h = read_n(s, 24);
    assert_eq!(h[0], 0x81);
    let len = u32::from_be_bytes(h[8..12].try_into().unwrap()) as usize;
    (h[1], u16::from_be_bytes([h[6], h[7]]), read_n(s, len))
}

fn auth(op: u8, mech: &[u8], token: &[u8]) -> Vec<u8> {
    request(op, mech, &[], token, 0, 0)
}

#[test]
fn sasl_plain_on_the_binary_protocol_and_sighup() {
    let dir = TempDir::new("sasl");
    let s = sasl_server(&dir);
    let mut c = s.connect();
    c.send(&request(opcode::SASL_LIST_MECHS, &[], &[], &[], 0, 0));
    assert_eq!(response(&mut c.stream), (0x20, 0, b"PLAIN".to_vec()));
    c.send(&request(opcode::VERSION, &[], &[], &[], 0, 0));
    assert_eq!(response(&mut c.stream).1, 0);
    // Step before auth, a wrong password, a broken token, another mechanism.
    for req in [
        auth(opcode::SASL_STEP, b"PLAIN", b"\0alice\0secret"),
        auth(opcode::SASL_AUTH, b"PLAIN", b"\0alice\0wrong"),
        auth(opcode::SASL_AUTH, b"PLAIN", b"alicesecret"),
        auth(opcode::SASL_AUTH, b"PLAIN", b"\0bob\0secret"),
        auth(opcode::SASL_AUTH, b"CRAM-MD5", b"\0alice\0secret"),
    ] {
        c.send(&req);
        let (op, status, body) = response(&mut c.stream);
        assert_eq!(
            (op, status, body),
            (req[1], 0x20, b"Auth failure.".to_vec())
        );
    }
    // Auth without a token continues; the step carries it.
    c.send(&auth(opcode::SASL_AUTH, b"PLAIN", b""));
    assert_eq!(response(&mut c.stream), (0x21, 0x21, Vec::new()));
    c.send(&auth(opcode::SASL_STEP, b"PLAIN", b"\0alice\0secret"));
    assert_eq!(
        response(&mut c.stream),
        (0x22, 0, b"Authenticated".to_vec())
    );
    c.send(&request(opcode::SET, b"k", &[0; 8], b"v", 0, 0));
    assert_eq!(response(&mut c.stream).1, 0);
    let st = {
        c.send(&request(opcode::STAT, &[], &[], &[], 0, 0));
        let mut all = Vec::new();
        loop {
            let h = read_n(&mut c.stream, 24);
            let klen = u16::from_be_bytes([h[2], h[3]]) as usize;
            let len = u32::from_be_bytes(h[8..12].try_into().unwrap()) as usize;
            let body = read_n(&mut c.stream, len);
            if klen == 0 {
                break all;
            }
            all.push((
                String::from_utf8_lossy(&body[..klen]).into_owned(),
                String::from_utf8_lossy(&body[klen..]).into_owned(),
            ));
        }
    };
    // Every failure counts in both (a step before auth too), as in memcached.
    assert_eq!(stat_u64(&st, "auth_cmds"), 6);
    assert_eq!(stat_u64(&st, "auth_errors"), 5);
    // A command before authentication: Auth failure, then the connection closes.
    let mut d = s.connect();
    d.send(&request(opcode::GET, b"k", &[], &[], 0, 0));
    assert_eq!(
        response(&mut d.stream),
        (0, 0x20, b"Auth failure.".to_vec())
    );
    d.expect_closed();
    // Text under -S: its first 24 bytes read as a binary header with a bad magic, closed
    // without a reply.
    let mut t = s.connect();
    t.send(b"get k\r\nget k\r\nget k\r\nget k\r\n");
    t.expect_closed();
    // A mechanism name over 32 bytes: Invalid arguments, the connection stays.
    let mut m = s.connect();
    m.send(&auth(opcode::SASL_AUTH, &[b'P'; 40], b"\0alice\0secret"));
    assert_eq!(response(&mut m.stream).1, 0x04);
    m.send(&request(opcode::VERSION, &[], &[], &[], 0, 0));
    assert_eq!(response(&mut m.stream).1, 0);
    // SIGHUP re-reads the password file.
    std::fs::write(dir.path("pwdb"), b"alice:newpw\n").unwrap();
    // SAFETY: kill(2) with our own child's pid and SIGHUP; it touches no memory.
    assert_eq!(unsafe { libc::kill(s.pid() as i32, libc::SIGHUP) }, 0);
    // The reload is asynchronous: retry (bounded) until the new password is taken.
    let mut ok = false;
    for _ in 0..100 {
        let mut c = s.connect();
        c.send(&auth(opcode::SASL_AUTH, b"PLAIN", b"\0alice\0newpw"));
        if response(&mut c.stream).1 == 0 {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ok, "new password not taken after SIGHUP");
    let mut c = s.connect();
    c.send(&auth(opcode::SASL_AUTH, b"PLAIN", b"\0alice\0secret"));
    assert_eq!(response(&mut c.stream).1, 0x20);
}

#[test]
fn sasl_flag_errors() {
    let w = Duration::from_secs(10);
    let (code, _, err) = run_server_to_exit(&["-S", "-U", "11999"], w);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("Cannot enable UDP while using binary SASL"),
        "{err}"
    );
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn udp_client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    c
}

/// Sends one datagram and collects the replies until half a second passes without one.
fn udp_ask(c: &UdpSocket, to: SocketAddr, dgram: &[u8]) -> Vec<Vec<u8>> {
    c.send_to(dgram, to).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while let Ok((n, _)) = c.recv_from(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    got
}

fn frame(rid: u16, seq: u16, total: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    for v in [rid, seq, total, 0] {
        d.extend_from_slice(&v.to_be_bytes());
    }
    d.extend_from_slice(payload);
    d
}

/// Stores `a` = `hello` and `big` = 3,000 bytes over UDP.
fn store_a_and_big(c: &UdpSocket, to: SocketAddr, big: &str) {
    assert_eq!(
        udp_ask(c, to, &frame(1, 0, 1, b"set a 0 0 5\r\nhello\r\n")),
        [frame(1, 0, 1, b"STORED\r\n")]
    );
    let mut req = format!("set {big} 0 0 3000\r\n").into_bytes();
    req.extend(std::iter::repeat_n(b'x', 3000));
    req.extend_from_slice(b"\r\n");
    assert_eq!(
        udp_ask(c, to, &frame(2, 0, 1, &req)),
        [frame(2, 0, 1, b"STORED\r\n")]
    );
}

#[test]
fn udp_frames_split_and_drops() {
    let port = free_udp_port();
    let s = ServerProc::start(&["-U", &port.to_string(), "-t", "2"]);
    let to: SocketAddr = ([127, 0, 0, 1], port).into();
    let c = udp_client();
    store_a_and_big(&c, to, "big");
    let got = udp_ask(&c, to, &frame(9, 0, 1, b"get big\r\n"));
    let heads: Vec<&[u8]> = got.iter().map(|d| &d[..8]).collect();
    assert_eq!(
        heads,
        [
            &frame(9, 0, 3, b"")[..],
            &frame(9, 1, 3, b""),
            &frame(9, 2, 3, b"")
        ]
    );
    assert_eq!(
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        [1400, 1400, 249]
    );
    // memcached 1.6: one response per key, an empty one for a miss.
    assert_eq!(
        udp_ask(&c, to, &frame(3, 0, 1, b"get zz a\r\n")),
        [
            frame(3, 0, 0, b""),
            frame(3, 0, 1, b"VALUE a 0 5\r\nhello\r\nEND\r\n")
        ]
    );
    // Dropped: a request spanning datagrams, a header alone, a truncated header, an
    // incomplete command; an oversized datagram is answered up to its first command.
    for bad in [
        frame(1, 0, 2, b"get a\r\n"),
        frame(1, 0, 1, b""),
        vec![0, 1, 0],
        frame(1, 0, 1, b"get a"),
    ] {
        assert!(udp_ask(&c, to, &bad).is_empty(), "{bad:?}");
    }
    let mut huge = b"get a\r\nget ".to_vec();
    huge.extend(std::iter::repeat_n(b'k', 60_000));
    let got = udp_ask(&c, to, &frame(2, 0, 1, &huge));
    assert_eq!(got[0], frame(2, 0, 1, b"VALUE a 0 5\r\nhello\r\nEND\r\n"));
    // Binary over UDP, and the TCP port is unaffected.
    let got = udp_ask(
        &c,
        to,
        &frame(5, 0, 1, &request(opcode::VERSION, &[], &[], &[], 0, 0)),
    );
    assert_eq!(&got[0][..10], &[0, 5, 0, 0, 0, 1, 0, 0, 0x81, 0x0b]);
    let mut t = s.connect();
    let st = t.stats("");
    assert_eq!(stat_u64(&st, "udp_dropped"), 3);
    assert!(stat_u64(&st, "udp_requests") >= 7);
    assert_eq!(stat_u64(&t.stats("settings"), "udpport"), u64::from(port));
}

/// This machine's address on its default route, if it has one.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn udp_replies_to_other_hosts_are_bounded() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("no non-loopback address: the reflection bound is not exercised here");
        return;
    };
    let port = free_udp_port();
    let s = ServerProc::start(&["-U", &port.to_string(), "-l", &ip.to_string()]);
    let _ = &s;
    let to = SocketAddr::new(ip, port);
    let c = UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    store_a_and_big(&c, to, "b");
    // 15 bytes asking for 33: within 4x.
    assert_eq!(
        udp_ask(&c, to, &frame(2, 0, 1, b"get a\r\n")),
        [frame(2, 0, 1, b"VALUE a 0 5\r\nhello\r\nEND\r\n")]
    );
    // 15 bytes asking for 3 KB: nothing is sent.
    assert!(udp_ask(&c, to, &frame(3, 0, 1, b"get b\r\n")).is_empty());
    let mut t = integration_tests::Client::connect(SocketAddr::new(ip, s.addr.port()));
    assert_eq!(stat_u64(&t.stats(""), "udp_replies_dropped"), 1);
}
