//! Clients that misbehave at the transport level: they disconnect mid-request, mid-value
//! and mid-reply, reset their connections (`SO_LINGER` 0), or stop reading until both
//! socket buffers are full. Afterwards nothing may leak: `curr_connections` returns to
//! its baseline, and the item and allocator accounting (`curr_items`, `bytes`, and the
//! allocator's live chunks per class, `used_chunks` of `stats slabs`) equal what they
//! were before the faults, while the values stored before are intact.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use integration_tests::{set_linger_zero, stat_u64, Client, ServerProc, READ_TIMEOUT};

/// The accounting that must come back to baseline.
#[derive(Debug, PartialEq, Eq)]
struct Accounting {
    curr_connections: u64,
    curr_items: u64,
    bytes: u64,
    /// (class id, used_chunks) for every class with pages.
    used_chunks: Vec<(u32, u64)>,
}

fn accounting(c: &mut Client) -> Accounting {
    let st = c.stats("");
    let mut used_chunks: Vec<(u32, u64)> = c
        .stats("slabs")
        .into_iter()
        .filter_map(|(k, v)| {
            let (class, name) = k.split_once(':')?;
            (name == "used_chunks").then(|| (class.parse().ok(), v.parse().ok()))
        })
        .map(|(c, v)| (c.expect("class id"), v.expect("used_chunks")))
        .filter(|&(_, used)| used > 0)
        .collect();
    used_chunks.sort_unstable();
    Accounting {
        curr_connections: stat_u64(&st, "curr_connections"),
        curr_items: stat_u64(&st, "curr_items"),
        bytes: stat_u64(&st, "bytes"),
        used_chunks,
    }
}

/// Polls until the accounting equals `baseline` (connection teardown is asynchronous),
/// failing the test with both if it does not within [`READ_TIMEOUT`].
fn expect_back_to(c: &mut Client, baseline: &Accounting, after: &str) {
    let until = Instant::now() + READ_TIMEOUT;
    loop {
        let now = accounting(c);
        if now == *baseline {
            return;
        }
        assert!(
            Instant::now() < until,
            "after {after}, accounting did not return to baseline\n  before: {baseline:?}\n  \
             after:  {now:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

const BIG: usize = 300_000;

fn big_value(i: usize) -> Vec<u8> {
    (0..BIG).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect()
}

/// Preloads the values the faults ask for and checks them afterwards.
fn preload(c: &mut Client) {
    for i in 0..4 {
        let v = big_value(i);
        let mut req = format!("set big:{i} {i} 0 {}\r\n", v.len()).into_bytes();
        req.extend_from_slice(&v);
        req.extend_from_slice(b"\r\n");
        c.roundtrip(&req, b"STORED\r\n");
    }
    for i in 0..50 {
        c.roundtrip(
            format!(
                "set small:{i} 0 0 {}\r\nsmall-{i}\r\n",
                format!("small-{i}").len()
            )
            .as_bytes(),
            b"STORED\r\n",
        );
    }
}

fn check_preloaded(c: &mut Client) {
    for i in 0..4 {
        let v = big_value(i);
        c.send(format!("get big:{i}\r\n").as_bytes());
        c.expect(format!("VALUE big:{i} {i} {BIG}\r\n").as_bytes());
        assert!(c.read_n(BIG) == v, "big:{i} changed");
        c.expect(b"\r\nEND\r\n");
    }
    for i in 0..50 {
        let v = format!("small-{i}");
        c.roundtrip(
            format!("get small:{i}\r\n").as_bytes(),
            format!("VALUE small:{i} 0 {}\r\n{v}\r\nEND\r\n", v.len()).as_bytes(),
        );
    }
}

/// Starts a server, preloads it, takes the baseline with a monitor connection.
fn setup() -> (ServerProc, Client, Accounting) {
    let s = ServerProc::start(&["-t", "2", "-m", "64"]);
    let mut monitor = s.connect();
    preload(&mut monitor);
    let baseline = accounting(&mut monitor);
    assert_eq!(baseline.curr_connections, 1);
    assert_eq!(baseline.curr_items, 54);
    (s, monitor, baseline)
}

fn raw(s: &ServerProc) -> TcpStream {
    let c = s.connect();
    c.stream
}

#[test]
fn disconnect_mid_request() {
    let (s, mut monitor, baseline) = setup();
    let partial: &[&[u8]] = &[
        b"get big:0",
        b"get big:0 big:1 sma",
        b"set new:a 0 0",
        b"set new:a 0 0 5",
        b"set new:a 0 0 5\r",
        b"gets small:1 small:2",
        b"incr small:1",
        b"delete small:1",
        b"ms new:b 5 T0",
        b"mg small:3 v",
        b"\x80\x01\x00\x05", // the start of a binary header
        b"stats sla",
        b"x",
    ];
    for round in 0..5 {
        for p in partial {
            let mut t = raw(&s);
            t.write_all(p).expect("send");
            if round % 2 == 1 {
                set_linger_zero(&t);
            }
            drop(t);
        }
    }
    expect_back_to(&mut monitor, &baseline, "partial requests");
    monitor.roundtrip(b"get new:a new:b\r\n", b"END\r\n");
    check_preloaded(&mut monitor);
}

#[test]
fn disconnect_mid_value() {
    let (s, mut monitor, baseline) = setup();
    for (round, &n) in [1usize, 10, 1000, 40_000, 300_000, 1_000_000]
        .iter()
        .enumerate()
    {
        // A new key, and an existing one that must keep its old value.
        for key in [format!("new:{n}"), "small:7".to_owned(), "big:2".to_owned()] {
            let mut t = raw(&s);
            let mut req = format!("set {key} 0 0 {n}\r\n").into_bytes();
            req.resize(req.len() + n / 2, b'z');
            t.write_all(&req).expect("send");
            // Give the server a chance to read the partial value before the close.
            std::thread::sleep(Duration::from_millis(5));
            if round % 2 == 1 {
                set_linger_zero(&t);
            }
            drop(t);
        }
        // The same through the meta protocol.
        let mut t = raw(&s);
        let mut req = format!("ms new:m{n} {n} T0\r\n").into_bytes();
        req.resize(req.len() + n / 2, b'z');
        t.write_all(&req).expect("send");
        drop(t);
        // And a binary set (header, 8 bytes of extras, key, half the value).
        let mut t = raw(&s);
        let key = format!("new:b{n}");
        let mut req = vec![0x80, 0x01];
        req.extend_from_slice(&(key.len() as u16).to_be_bytes());
        req.extend_from_slice(&[8, 0, 0, 0]);
        req.extend_from_slice(&((8 + key.len() + n) as u32).to_be_bytes());
        req.extend_from_slice(&[0; 12]);
        req.extend_from_slice(&[0; 8]);
        req.extend_from_slice(key.as_bytes());
        req.resize(req.len() + n / 2, b'z');
        t.write_all(&req).expect("send");
        std::thread::sleep(Duration::from_millis(5));
        drop(t);
    }
    expect_back_to(&mut monitor, &baseline, "partial values");
    monitor.roundtrip(
        b"get new:1 new:1000 new:1000000 new:m1000 new:b1000000\r\n",
        b"END\r\n",
    );
    check_preloaded(&mut monitor);
}

#[test]
fn disconnect_mid_reply() {
    let (s, mut monitor, baseline) = setup();
    let all_big = b"get big:0 big:1 big:2 big:3\r\n";
    for round in 0..8 {
        let mut t = raw(&s);
        for _ in 0..10 {
            t.write_all(all_big).expect("send");
        }
        // Read a little of the reply (or nothing), then go.
        let mut buf = vec![0u8; 1000 * round];
        t.read_exact(&mut buf).expect("first bytes of the reply");
        if round % 2 == 0 {
            set_linger_zero(&t);
        }
        drop(t);
    }
    // A binary-protocol get whose reply is never read.
    let mut t = raw(&s);
    let mut pkt = vec![0x80, 0x00, 0x00, 0x05, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0];
    pkt.extend_from_slice(&[0; 8]);
    pkt.extend_from_slice(b"big:1");
    for _ in 0..20 {
        t.write_all(&pkt).expect("send");
    }
    drop(t);
    expect_back_to(&mut monitor, &baseline, "unread replies");
    check_preloaded(&mut monitor);
}

#[test]
fn reset_connections() {
    let (s, mut monitor, baseline) = setup();
    for i in 0..40 {
        let mut t = raw(&s);
        // Complete requests, some of which store, then a reset with replies in flight.
        let req = format!(
            "set reset:{i} 0 0 3\r\nabc\r\nget big:{}\r\ndelete reset:{i}\r\n",
            i % 4
        );
        t.write_all(req.as_bytes()).expect("send");
        if i % 3 == 0 {
            // Wait for the server to have run them all (the reply to `delete` is last).
            let mut got = Vec::new();
            let mut buf = [0u8; 65536];
            while !got.ends_with(b"DELETED\r\n") {
                let n = t.read(&mut buf).expect("read");
                assert!(n > 0, "server closed");
                got.extend_from_slice(&buf[..n]);
            }
        }
        set_linger_zero(&t);
        drop(t);
    }
    // A reset discards what the server had not read yet, so some deletes above may
    // never have run: delete what is left, then nothing of the resets may remain.
    let until = Instant::now() + READ_TIMEOUT;
    while accounting(&mut monitor).curr_connections != 1 {
        assert!(
            Instant::now() < until,
            "reset connections were not released"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    for i in 0..40 {
        monitor.send(format!("delete reset:{i}\r\n").as_bytes());
        let l = monitor.read_line();
        assert!(l == b"DELETED\r\n" || l == b"NOT_FOUND\r\n");
    }
    expect_back_to(&mut monitor, &baseline, "resets");
    monitor.roundtrip(b"get reset:0 reset:39\r\n", b"END\r\n");
    check_preloaded(&mut monitor);
}

/// A client that sends requests without reading replies until both socket buffers are
/// full: the server must stop reading from it (not buffer without bound), keep serving
/// others, and release everything when it goes.
#[test]
fn full_socket_buffers() {
    let (s, mut monitor, baseline) = setup();
    let mut hogs = Vec::new();
    for h in 0..3 {
        let t = raw(&s);
        t.set_nonblocking(true).expect("nonblocking");
        let mut t = t;
        // A block of 100 requests (1.2 MB of replies each); 10,000 blocks would be 29 MB
        // of requests, more than both kernel buffers hold: the write must block first.
        let req = b"get big:0 big:1 big:2 big:3\r\n".repeat(100);
        let mut sent = 0usize;
        let mut blocked = false;
        for _ in 0..10_000 {
            match t.write(&req) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    blocked = true;
                    break;
                }
                Err(e) => panic!("hog {h}: write failed: {e}"),
            }
        }
        assert!(
            blocked,
            "hog {h}: the server kept reading {sent} bytes of requests"
        );
        hogs.push(t);
    }
    // The server still answers others while the hogs hold full buffers.
    check_preloaded(&mut monitor);
    let rss = integration_tests::rss_kib(s.pid()).expect("status").0;
    assert!(
        rss < 512 * 1024,
        "server RSS {rss} KiB: replies to unread requests are being buffered"
    );
    assert_eq!(accounting(&mut monitor).curr_connections, 4);
    for (i, t) in hogs.into_iter().enumerate() {
        if i == 0 {
            set_linger_zero(&t);
        }
        drop(t);
    }
    expect_back_to(&mut monitor, &baseline, "full buffers");
    check_preloaded(&mut monitor);
}
