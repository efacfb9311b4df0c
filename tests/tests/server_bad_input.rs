//! Bad input against the real binary: each gets memcached 1.6.18's answer (or a closed
//! connection), the server stays up, and other connections do not notice.

use std::io::{Read, Write};

use integration_tests::{Client, ServerProc};

fn server() -> ServerProc {
    ServerProc::start(&["-t", "2", "-m", "64", "-I", "1m"])
}

/// A second connection that keeps working while the first one misbehaves.
fn still_fine(c: &mut Client) {
    c.roundtrip(
        b"set ok 0 0 2\r\nok\r\nget ok\r\n",
        b"STORED\r\nVALUE ok 0 2\r\nok\r\nEND\r\n",
    );
}

#[test]
fn bad_command_lines() {
    let s = server();
    let mut c = s.connect();
    let mut other = s.connect();
    let long_key = "k".repeat(251);
    // Key over 250 bytes: the error, and the data line then reads as a command.
    c.roundtrip(
        format!("set {long_key} 0 0 1\r\nx\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    );
    c.roundtrip(
        format!("set {long_key} 0 0 1 noreply\r\nx\r\n").as_bytes(),
        b"ERROR\r\n",
    );
    c.roundtrip(
        format!("get a {long_key}\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\n",
    );
    c.roundtrip(
        format!("delete {long_key}\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\n",
    );
    c.roundtrip(
        format!("incr {long_key} 1\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\n",
    );
    c.roundtrip(
        format!("touch {long_key} 1\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\n",
    );
    // memcached drops the unsent replies of the batch when a get has a long key: sent in
    // one write (one read on loopback), the STORED is not answered.
    c.roundtrip(
        format!("set a 0 0 1\r\nx\r\nget a {long_key} a\r\nget a\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
    );
    // A 250-byte key is fine.
    let key250 = "k".repeat(250);
    c.roundtrip(
        format!("set {key250} 0 0 1\r\nx\r\n").as_bytes(),
        b"STORED\r\n",
    );
    // Bad numbers.
    for line in [
        "set a 0 0 -1\r\nx\r\n",
        "set a 0 0 abc\r\nx\r\n",
        "set a abc 0 1\r\nx\r\n",
        "set a -1 0 1\r\nx\r\n",
        "set a 0 abc 1\r\nx\r\n",
        "cas a 0 0 1 abc\r\nx\r\n",
    ] {
        c.roundtrip(
            line.as_bytes(),
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
        );
    }
    // Wrong token counts and unknown commands.
    for line in [
        "set a 0 0\r\n",
        "set a 0 0 1 2 3\r\n",
        "cas a 0 0 1\r\n",
        "foo\r\n",
        "\r\n",
        "GET a\r\n",
        "get\r\n",
        "gets\r\n",
        "incr a 1 2 3\r\n",
        "stats nonsense\r\n",
        "mz\r\n",
    ] {
        c.roundtrip(line.as_bytes(), b"ERROR\r\n");
    }
    // Control characters are part of a key, as in memcached.
    c.roundtrip(
        b"set a\tb 0 0 1\r\nx\r\nget a\tb\r\n",
        b"STORED\r\nVALUE a\tb 0 1\r\nx\r\nEND\r\n",
    );
    still_fine(&mut other);
}

#[test]
fn bad_data_chunk() {
    let s = server();
    let mut c = s.connect();
    c.roundtrip(b"set a 0 0 1\r\nq\r\n", b"STORED\r\n");
    // The block is one byte longer than announced: bad data chunk, the old value stays,
    // and the leftover "\n" is an empty command line.
    c.roundtrip(
        b"set a 0 0 1\r\nxy\r\nget a\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE a 0 1\r\nq\r\nEND\r\n",
    );
    c.roundtrip(
        b"set a 0 0 1 noreply\r\nxy\r\nget a\r\n",
        b"ERROR\r\nVALUE a 0 1\r\nq\r\nEND\r\n",
    );
}

#[test]
fn too_large_is_swallowed_and_deletes_old_value() {
    let s = server();
    let mut c = s.connect();
    c.roundtrip(b"set a 0 0 1\r\nq\r\n", b"STORED\r\n");
    let n = 2_000_000;
    let mut req = format!("set a 0 0 {n}\r\n").into_bytes();
    req.resize(req.len() + n, b'x');
    req.extend_from_slice(b"\r\nget a\r\n");
    c.roundtrip(&req, b"SERVER_ERROR object too large for cache\r\nEND\r\n");
    c.roundtrip(b"set a 0 0 1\r\nq\r\n", b"STORED\r\n");
    let mut req = format!("set a 0 0 {n} noreply\r\n").into_bytes();
    req.resize(req.len() + n, b'x');
    req.extend_from_slice(b"\r\nget a\r\n");
    c.roundtrip(&req, b"END\r\n");
    // Sent in pieces, the swallowing spans reads; as memcached, the answer comes once
    // the value has been discarded.
    c.send(format!("set a 0 0 {n}\r\n").as_bytes());
    c.expect_silence(std::time::Duration::from_millis(200));
    for _ in 0..(n / 100_000) {
        c.send(&vec![b'y'; 100_000]);
    }
    c.roundtrip(
        b"\r\nversion\r\n",
        b"SERVER_ERROR object too large for cache\r\nVERSION 1.6.18-kvcache\r\n",
    );
}

#[test]
fn long_lines() {
    let s = server();
    let mut other = s.connect();
    // 2048 bytes without a newline: still waiting; the newline then gives ERROR.
    let mut c = s.connect();
    c.send(&[b'x'; 2048]);
    c.roundtrip(b"\r\n", b"ERROR\r\n");
    // More than 2048 bytes without a newline: closed.
    let mut c = s.connect();
    c.send(&[b'x'; 2049]);
    c.expect_closed();
    // ...except a long get line.
    let mut c = s.connect();
    let mut line = b"get".to_vec();
    for i in 0..1000 {
        line.extend_from_slice(format!(" key{i:05}").as_bytes());
    }
    c.send(&line);
    c.roundtrip(b"\r\n", b"END\r\n");
    still_fine(&mut other);
}

#[test]
fn garbage_and_disconnects() {
    let s = server();
    let mut other = s.connect();
    // Binary-looking garbage that is not a binary request header, with newlines.
    let mut c = s.connect();
    c.roundtrip(b"\x00\x01\x02garbage\r\n", b"ERROR\r\n");
    // Random bytes, then a disconnect in the middle.
    {
        let mut c = s.connect();
        let mut x: u32 = 12345;
        let junk: Vec<u8> = (0..100_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        c.send(&junk);
    }
    // A client that disconnects in the middle of a value.
    {
        let mut c = s.connect();
        c.send(b"set half 0 0 1000\r\n");
        c.send(&[b'h'; 500]);
    }
    {
        let mut c = s.connect();
        c.send(b"set half 0 0 100000\r\n");
        c.send(&[b'h'; 50_000]);
    }
    still_fine(&mut other);
    other.roundtrip(b"get half\r\n", b"END\r\n");
    let mut c = s.connect();
    still_fine(&mut c);
}

#[test]
fn too_many_connections() {
    let s = ServerProc::start(&["-t", "1", "-c", "2"]);
    let mut a = s.connect();
    let mut b = s.connect();
    a.roundtrip(b"version\r\n", b"VERSION 1.6.18-kvcache\r\n");
    b.roundtrip(b"version\r\n", b"VERSION 1.6.18-kvcache\r\n");
    let mut c = s.connect();
    c.expect(b"ERROR Too many open connections\r\n");
    c.expect_closed();
    drop(a);
    // The slot frees up once the server sees the close; retry a bounded number of times.
    let mut ok = false;
    for _ in 0..100 {
        let mut d = s.connect();
        let _ = d.stream.write_all(b"version\r\n");
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while !got.ends_with(b"\r\n") {
            match d.stream.read(&mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        if got == b"VERSION 1.6.18-kvcache\r\n" {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ok, "a freed connection slot was never reused");
    b.roundtrip(b"version\r\n", b"VERSION 1.6.18-kvcache\r\n");
}

fn stat_u64(c: &mut Client, name: &str) -> u64 {
    c.stats("")
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or_else(|| panic!("no stat {name}"))
}

#[test]
fn aborted_and_refused_values_leave_nothing_behind() {
    let s = ServerProc::start(&["-t", "2", "-m", "64", "-I", "1m"]);
    let mut c = s.connect();
    c.roundtrip(b"set keep 0 0 5\r\nhello\r\n", b"STORED\r\n");
    let bytes = stat_u64(&mut c, "bytes");
    for i in 0..50 {
        let mut d = s.connect();
        d.send(format!("set aborted{i} 0 0 900000\r\n").as_bytes());
        d.send(&vec![b'a'; 300_000 + i * 1000]);
    }
    let mut big = b"set keep2 0 0 2000000\r\n".to_vec();
    big.resize(big.len() + 2_000_000, b'x');
    big.extend_from_slice(b"\r\n");
    c.roundtrip(&big, b"SERVER_ERROR object too large for cache\r\n");
    c.roundtrip(b"get keep\r\n", b"VALUE keep 0 5\r\nhello\r\nEND\r\n");
    assert_eq!(stat_u64(&mut c, "curr_items"), 1);
    assert_eq!(stat_u64(&mut c, "bytes"), bytes);
    // The aborted connections are gone (bounded wait for the server to see the closes).
    let mut conns = 0;
    for _ in 0..200 {
        conns = stat_u64(&mut c, "curr_connections");
        if conns == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(conns, 1);
}

#[test]
fn a_client_that_does_not_read_blocks_nobody_else() {
    let s = ServerProc::start(&["-t", "1", "-m", "64"]);
    let mut slow = s.connect();
    let value = vec![b'z'; 100_000];
    let mut set = b"set big 0 0 100000\r\n".to_vec();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    slow.roundtrip(&set, b"STORED\r\n");
    // 200 gets of 100 KB = 20 MB of replies that the client does not read for now: the
    // server must stop reading this connection instead of buffering without bound.
    let requests = 200;
    let mut writer = slow.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let batch = b"get big\r\n".repeat(requests);
        writer.write_all(&batch).unwrap();
    });
    // Meanwhile another connection on the same worker is served.
    let mut other = s.connect();
    for _ in 0..20 {
        still_fine(&mut other);
    }
    // Now read everything the slow client asked for.
    let one = {
        let mut r = b"VALUE big 0 100000\r\n".to_vec();
        r.extend_from_slice(&value);
        r.extend_from_slice(b"\r\nEND\r\n");
        r
    };
    for _ in 0..requests {
        slow.expect(&one);
    }
    sender.join().unwrap();
    still_fine(&mut slow);
}
