//! The memory limit seen from a client: with evictions (the default) every store
//! succeeds and old items make room; with `-M` a full cache answers memcached's
//! out-of-memory error.

use tests::{Client, ServerProc};

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
