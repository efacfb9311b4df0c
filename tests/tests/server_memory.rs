//! The memory limit seen from a client: with evictions (the default) every store
//! succeeds and old items make room; with `-M` a full cache answers memcached's
//! out-of-memory error.

use integration_tests::{Client, ServerProc};

fn stat(c: &mut Client, name: &str) -> u64 {
    c.stats("")
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or_else(|| panic!("no stat {name}"))
}

fn fill(c: &mut Client, n: usize) -> Vec<Vec<u8>> {
    let value = "v".repeat(10_000);
    (0..n)
        .map(|i| {
            c.send(format!("set fill{i} 0 0 {}\r\n{value}\r\n", value.len()).as_bytes());
            c.read_line()
        })
        .collect()
}

#[test]
fn evicts_when_full() {
    let s = ServerProc::start(&["-t", "1", "-m", "4", "-I", "1m"]);
    let mut c = s.connect();
    let replies = fill(&mut c, 2000);
    assert!(replies.iter().all(|r| r == b"STORED\r\n"), "a store failed");
    assert!(stat(&mut c, "evictions") > 0);
    assert!(stat(&mut c, "curr_items") < 2000);
    // The newest item is there.
    c.send(b"get fill1999\r\n");
    assert_eq!(c.read_line(), b"VALUE fill1999 0 10000\r\n");
}

#[test]
fn without_evictions_a_full_cache_says_out_of_memory() {
    let s = ServerProc::start(&["-t", "1", "-m", "4", "-I", "1m", "-M"]);
    let mut c = s.connect();
    let replies = fill(&mut c, 2000);
    let first_error = replies
        .iter()
        .position(|r| r != b"STORED\r\n")
        .expect("4 MB cannot hold 20 MB of values");
    assert!(first_error > 0);
    assert_eq!(
        replies[first_error],
        b"SERVER_ERROR out of memory storing object\r\n"
    );
    assert_eq!(stat(&mut c, "evictions"), 0);
    // What was stored is still there.
    c.send(b"get fill0\r\n");
    assert_eq!(c.read_line(), b"VALUE fill0 0 10000\r\n");
}

/// Live chunks over all classes (`used_chunks` of `stats slabs`).
fn used_chunks(c: &mut Client) -> u64 {
    c.stats("slabs")
        .into_iter()
        .filter(|(k, _)| k.ends_with(":used_chunks"))
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum()
}

/// Waits until the server holds at least `more` chunks beyond `base`: a large value's
/// item has been allocated (its command line read).
fn wait_for_chunks(c: &mut Client, base: u64, more: u64) {
    let until = std::time::Instant::now() + integration_tests::READ_TIMEOUT;
    while used_chunks(c) < base + more {
        assert!(std::time::Instant::now() < until, "no item was allocated");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| b'a' + ((i / 7 + seed as usize) % 26) as u8)
        .collect()
}

/// A value being received lives in its item, allocated within `-m` when the command
/// line arrives (as memcached does): evictions do not take it from under the writer,
/// values in flight count against the limit (one that does not fit is answered
/// memcached's out-of-memory error once it has arrived, and the connection goes on), and
/// a connection closed mid-value gives its memory back.
#[test]
fn values_in_flight_count_against_the_limit() {
    const N: usize = 3_000_000;
    let s = ServerProc::start(&["-t", "2", "-m", "8", "-I", "4m"]);
    let mut mon = s.connect();
    let held = pattern(N, 1);
    let mut c1 = s.connect();
    let base = used_chunks(&mut mon);
    c1.send(b"set held 7 0 3000000\r\n");
    c1.send(&held[..N / 2]);
    wait_for_chunks(&mut mon, base, 40);
    // Fill the cache several times over: evictions, but not of the value in flight.
    let replies = fill(&mut mon, 2000);
    assert!(replies.iter().all(|r| r == b"STORED\r\n"), "a store failed");
    assert!(stat(&mut mon, "evictions") > 0);
    c1.send(&held[N / 2..]);
    c1.roundtrip(b"\r\n", b"STORED\r\n");
    c1.send(b"get held\r\n");
    assert_eq!(c1.read_line(), b"VALUE held 7 3000000\r\n");
    assert!(c1.read_n(N) == held, "the stored value differs");
    c1.expect(b"\r\nEND\r\n");

    drop(c1);

    // On an empty server, two values in flight hold 6 of the 8 MB: a third cannot have
    // its 3 MB.
    let s = ServerProc::start(&["-t", "2", "-m", "8", "-I", "4m"]);
    let mut mon = s.connect();
    let (mut c2, mut c3, mut c4) = (s.connect(), s.connect(), s.connect());
    for (c, key) in [(&mut c2, "a2"), (&mut c3, "a3")] {
        let base = used_chunks(&mut mon);
        c.send(format!("set {key} 0 0 {N}\r\n").as_bytes());
        c.send(&pattern(N / 2, 2));
        wait_for_chunks(&mut mon, base, 40);
    }
    c4.send(format!("set a4 0 0 {N}\r\n").as_bytes());
    c4.send(&pattern(N / 2, 4));
    // memcached answers once the refused value has been read and discarded.
    c4.expect_silence(std::time::Duration::from_millis(200));
    c4.send(&pattern(N - N / 2, 4));
    c4.roundtrip(b"\r\n", b"SERVER_ERROR out of memory storing object\r\n");
    c4.roundtrip(b"get a4 held\r\n", b"END\r\n");
    // c2 goes away mid-value: its 3 MB come back, and c4's value fits now.
    drop(c2);
    let value = pattern(N, 5);
    let mut stored = false;
    for _ in 0..100 {
        c4.send(format!("set a4 0 0 {N}\r\n").as_bytes());
        c4.send(&value);
        c4.send(b"\r\n");
        if c4.read_line() == b"STORED\r\n" {
            stored = true;
            break;
        }
        // The close is noticed asynchronously.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        stored,
        "the memory of a value abandoned mid-way did not come back"
    );
    c3.send(&pattern(N - N / 2, 3));
    c3.roundtrip(b"\r\n", b"STORED\r\n");
    c3.send(b"get a3\r\n");
    assert_eq!(c3.read_line(), b"VALUE a3 0 3000000\r\n");
    let mut want = pattern(N / 2, 2);
    want.extend_from_slice(&pattern(N - N / 2, 3));
    assert!(c3.read_n(N) == want, "the stored value differs");
    c3.expect(b"\r\nEND\r\n");
    assert_eq!(stat(&mut mon, "curr_connections"), 3);
}
