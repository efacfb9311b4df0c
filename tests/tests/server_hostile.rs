//! Hostile input: what memcached 1.6.18 answers to it (the byte-for-byte comparison
//! against a live memcached is `tests/clients/diff_memcached.py`, whose hostile cases
//! these mirror), and that no such input costs the server memory beyond its limits or
//! stops it serving others.

use std::io::{Read, Write};
use std::time::Duration;

use integration_tests::{rss_kib, Client, ServerProc};

/// Sends `request` on a fresh connection and returns everything the server sends back
/// within a short wait, with `<closed>` appended if it closed the connection.
fn talk(s: &ServerProc, request: &[u8]) -> Vec<u8> {
    let mut c = s.connect();
    c.send(request);
    c.stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => {
                out.extend_from_slice(b"<closed>");
                break;
            }
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                out.extend_from_slice(b"<closed>");
                break;
            }
            Err(_) => break,
        }
    }
    out
}

/// Cases with memcached 1.6.18's answers (recorded from it with `diff_memcached.py`).
#[test]
fn hostile_requests_answered_as_memcached_answers() {
    let s = ServerProc::start(&["-t", "2", "-m", "64"]);
    let cases: &[(&[u8], &[u8])] = &[
        // Huge declared lengths: memcached reads them with strtol into 32 bits.
        (
            b"set k 0 0 4294967295\r\nx\r\nget k\r\n",
            b"CLIENT_ERROR bad command line format\r\nERROR\r\nEND\r\n",
        ),
        (
            b"set k 0 0 4294967296\r\nx\r\n",
            b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        ),
        (
            b"set k 0 0 4294967297\r\nx\r\nget k\r\n",
            b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n",
        ),
        (
            b"set k 0 0 18446744073709551615\r\nx\r\n",
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
        ),
        // Negative numbers.
        (
            b"set k 0 0 -5\r\nx\r\n",
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
        ),
        (
            b"set n 0 0 1\r\n5\r\nincr n -5\r\n",
            b"STORED\r\nCLIENT_ERROR invalid numeric delta argument\r\n",
        ),
        // NUL bytes end the line, as in memcached's C strings.
        (
            b"set a\x00b 0 0 1\r\nx\r\nget a\x00b\r\nget a\r\n",
            b"ERROR\r\nERROR\r\nEND\r\nEND\r\n",
        ),
        (b"get \x00\r\n", b"ERROR\r\n"),
        // Keys are bytes: invalid UTF-8 is stored and found like any key.
        (
            b"set \xff\xfe 0 0 1\r\nx\r\nget \xff\xfe\r\n",
            b"STORED\r\nVALUE \xff\xfe 0 1\r\nx\r\nEND\r\n",
        ),
        // An overlong line without an end: memcached closes the connection.
        (&[b'x'; 10_000], b"<closed>"),
    ];
    for (req, want) in cases {
        assert_eq!(
            String::from_utf8_lossy(&talk(&s, req)),
            String::from_utf8_lossy(want),
            "request {:?}",
            String::from_utf8_lossy(&req[..req.len().min(80)])
        );
    }
}

/// Random bytes, and random mixes of protocol tokens, on many connections: the server
/// neither dies nor stops answering a well-behaved client.
#[test]
fn random_garbage_does_not_stop_the_server() {
    let mut s = ServerProc::start(&["-t", "2", "-m", "64"]);
    let tokens: &[&[u8]] = &[
        b"get",
        b"set",
        b"gets",
        b"cas",
        b"incr",
        b"ms",
        b"mg",
        b"ma",
        b"md",
        b"mn",
        b"\r\n",
        b"\n",
        b" ",
        b"0",
        b"-1",
        b"4294967295",
        b"18446744073709551616",
        b"k",
        b"noreply",
        b"\x00",
        b"\xff",
        b"\x80",
        b"T0",
        b"v",
        b"b",
        b"q",
        b"HTTP/1.1",
        b"stats",
        b"flush_all",
    ];
    let mut x: u64 = 0x5eed;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..300 {
        let mut req = Vec::new();
        let len = 1 + next() % 200;
        for _ in 0..len {
            if round % 2 == 0 {
                req.push(next() as u8);
            } else {
                req.extend_from_slice(tokens[(next() % tokens.len() as u64) as usize]);
            }
        }
        let mut c = s.connect();
        // The server may close on us mid-write; that is allowed.
        let _ = c.stream.write_all(&req);
        drop(c);
    }
    assert!(s.is_running(), "the server died");
    let mut c = s.connect();
    // The garbage may have scheduled a delayed `flush_all`; an immediate one replaces it.
    c.roundtrip(b"flush_all\r\n", b"OK\r\n");
    c.roundtrip(b"set alive 0 0 2\r\nok\r\n", b"STORED\r\n");
    c.roundtrip(b"get alive\r\n", b"VALUE alive 0 2\r\nok\r\nEND\r\n");
}

/// An endless line, and a get line longer than any memcached accepts, are cut off (the
/// connection closed) without the server holding them in memory.
#[test]
fn endless_lines_are_cut_off() {
    let s = ServerProc::start(&["-t", "2", "-m", "64"]);
    for prefix in [&b""[..], b"get ", b"set k 0 0 1"] {
        let mut c = s.connect();
        c.send(prefix);
        let chunk = vec![b'k'; 64 * 1024];
        let mut sent = 0;
        // At most 64 MiB: the server must close long before.
        let closed = (0..1024).any(|_| match c.stream.write(&chunk) {
            Ok(n) => {
                sent += n;
                false
            }
            Err(_) => true,
        });
        assert!(
            closed,
            "{:?}: the server kept reading {sent} bytes of one line",
            String::from_utf8_lossy(prefix)
        );
    }
    let (rss, _) = rss_kib(s.pid()).expect("status");
    assert!(rss < 32 * 1024, "RSS {rss} KiB after endless lines");
    let mut c = s.connect();
    c.roundtrip(b"version\r\n", b"VERSION 1.6.18-kvcache\r\n");
}

/// Declaring a large value costs what arrives, not what is declared: 200 connections
/// that each declare a 1,000,000-byte value and send 64 KiB of it (200 MB declared,
/// 13 MB sent) leave the server's RSS small, and it keeps serving.
#[test]
fn declared_lengths_cost_only_what_arrives() {
    let s = ServerProc::start(&["-t", "2", "-m", "64"]);
    let mut conns: Vec<Client> = Vec::new();
    for i in 0..200 {
        let mut c = s.connect();
        let mut req = format!("set decl:{i} 0 0 1000000\r\n").into_bytes();
        req.resize(req.len() + (64 << 10), b'd');
        c.send(&req);
        conns.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut probe = s.connect();
    probe.roundtrip(b"version\r\n", b"VERSION 1.6.18-kvcache\r\n");
    let (rss, hwm) = rss_kib(s.pid()).expect("status");
    assert!(
        hwm < 64 * 1024,
        "RSS {rss} KiB (peak {hwm} KiB) with 200 declared 1 MB values of 64 KiB each"
    );
    // The connections still complete their values.
    for c in conns.iter_mut().take(3) {
        let mut rest = vec![b'd'; 1_000_000 - (64 << 10)];
        rest.extend_from_slice(b"\r\n");
        c.send(&rest);
        c.expect(b"STORED\r\n");
    }
}

/// Many connections each declaring a large value and sending only part of it: the
/// partial values must not cost memory beyond `-m` and the fixed overhead (memcached
/// holds them in items it allocates within `-m`).
#[test]
fn partial_large_values_stay_within_the_memory_limit() {
    let s = ServerProc::start(&["-t", "2", "-m", "64"]);
    let mut conns: Vec<Client> = Vec::new();
    for i in 0..200 {
        let mut c = s.connect();
        let mut req = format!("set part:{i} 0 0 1000000\r\n").into_bytes();
        req.resize(req.len() + 500_000, b'p');
        c.send(&req);
        conns.push(c);
    }
    // Everything sent has been read once a round trip on each connection would follow;
    // a fresh connection's round trip orders after the server has seen the bytes.
    std::thread::sleep(Duration::from_millis(500));
    let mut probe = s.connect();
    probe.roundtrip(b"version\r\n", b"VERSION 1.6.18-kvcache\r\n");
    let (rss, hwm) = rss_kib(s.pid()).expect("status");
    assert!(
        hwm <= (64 + 16) * 1024,
        "RSS {rss} KiB (peak {hwm} KiB) with 200 half-sent 1 MB values under -m 64"
    );
    // The values complete: those whose item fitted are stored, the others were refused
    // with memcached's out-of-memory error when their line arrived (answered now).
    let mut rest = vec![b'q'; 500_000];
    rest.extend_from_slice(b"\r\n");
    for c in conns.iter_mut() {
        c.send(&rest);
    }
    let mut stored = 0;
    for c in conns.iter_mut() {
        match c.read_line().as_slice() {
            b"STORED\r\n" => stored += 1,
            b"SERVER_ERROR out of memory storing object\r\n" => {}
            other => panic!("unexpected reply {:?}", String::from_utf8_lossy(other)),
        }
    }
    assert!(stored > 0 && stored < 200, "{stored} of 200 stored");
    let (rss, hwm) = rss_kib(s.pid()).expect("status");
    assert!(
        hwm <= (64 + 16) * 1024,
        "RSS {rss} KiB (peak {hwm} KiB) after completing 200 1 MB values under -m 64"
    );
}

/// Sends `bytes` in pieces of irregular sizes with short pauses, so the server reads a
/// large value in many parts (into its item, across chunk boundaries).
fn send_in_pieces(c: &mut Client, bytes: &[u8]) {
    let sizes = [1, 7_000, 40_000, 3, 100_000, 16_384, 65_537];
    let mut at = 0;
    for &n in sizes.iter().cycle() {
        if at == bytes.len() {
            break;
        }
        let end = (at + n).min(bytes.len());
        c.send(&bytes[at..end]);
        at = end;
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn large_values_arriving_in_pieces_are_stored_whole() {
    let s = ServerProc::start(&["-t", "2", "-m", "64"]);
    let value = |n: usize, seed: usize| -> Vec<u8> {
        (0..n).map(|i| b'a' + ((i * 7 + seed) % 26) as u8).collect()
    };
    let mut check = s.connect();
    let mut read_back = |key: &str, v: &[u8]| {
        check.send(format!("get {key}\r\n").as_bytes());
        assert_eq!(
            check.read_line(),
            format!("VALUE {key} 0 {}\r\n", v.len()).into_bytes()
        );
        assert!(check.read_n(v.len()) == v, "{key}: value differs");
        check.expect(b"\r\nEND\r\n");
    };
    for (i, n) in [20_000, 300_000, 1_000_000].into_iter().enumerate() {
        // Text.
        let v = value(n, i);
        let mut c = s.connect();
        let mut req = format!("set text:{n} 0 0 {n}\r\n").into_bytes();
        req.extend_from_slice(&v);
        req.extend_from_slice(b"\r\nversion\r\n");
        send_in_pieces(&mut c, &req);
        c.expect(b"STORED\r\nVERSION 1.6.18-kvcache\r\n");
        read_back(&format!("text:{n}"), &v);
        // Meta.
        let v = value(n, i + 1);
        let mut req = format!("ms meta:{n} {n} T0\r\n").into_bytes();
        req.extend_from_slice(&v);
        req.extend_from_slice(b"\r\nmn\r\n");
        send_in_pieces(&mut c, &req);
        c.expect(b"HD\r\nMN\r\n");
        read_back(&format!("meta:{n}"), &v);
        // Binary set, then a no-op.
        let v = value(n, i + 2);
        let key = format!("bin:{n}");
        let mut b = s.connect();
        let mut req = vec![0x80, 0x01];
        req.extend_from_slice(&(key.len() as u16).to_be_bytes());
        req.extend_from_slice(&[8, 0, 0, 0]);
        req.extend_from_slice(&((8 + key.len() + n) as u32).to_be_bytes());
        req.extend_from_slice(&[0; 12]);
        req.extend_from_slice(&[0; 8]);
        req.extend_from_slice(key.as_bytes());
        req.extend_from_slice(&v);
        req.extend_from_slice(&[0x80, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        req.extend_from_slice(&[0; 12]);
        send_in_pieces(&mut b, &req);
        let set_reply = b.read_n(24);
        assert_eq!(&set_reply[..2], &[0x81, 0x01]);
        assert_eq!(&set_reply[6..8], &[0, 0], "binary set status");
        assert_eq!(&b.read_n(24)[..2], &[0x81, 0x0a]);
        read_back(&key, &v);
        // A value not followed by "\r\n" is refused and the old value stays.
        let mut req = format!("set text:{n} 0 0 {n}\r\n").into_bytes();
        req.extend_from_slice(&value(n, i + 3));
        req.extend_from_slice(b"XYversion\r\n");
        send_in_pieces(&mut c, &req);
        c.expect(b"CLIENT_ERROR bad data chunk\r\nVERSION 1.6.18-kvcache\r\n");
        read_back(&format!("text:{n}"), &value(n, i));
    }
}
