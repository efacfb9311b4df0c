//! Slabs follow demand: `slabs reassign` / `slabs automove` answer as memcached 1.6.18
//! does, and after the item size changes, automove lets the new size's class grow while a
//! server with automove off stays calcified (measured side by side in one run).

use std::time::{Duration, Instant};

use integration_tests::{Client, ServerProc};

fn stat(c: &mut Client, sub: &str, name: &str) -> String {
    c.stats(sub)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no stat {name}"))
}

/// Sets 100-byte values under fresh keys until the server evicts, then a fifth more.
fn fill_small(c: &mut Client) {
    let v = "s".repeat(100);
    let mut i = 0;
    let mut target = None;
    loop {
        let mut batch = String::new();
        for k in i..i + 2000 {
            batch.push_str(&format!("set fill:{k} 0 0 100 noreply\r\n{v}\r\n"));
        }
        c.send(batch.as_bytes());
        i += 2000;
        if target.is_none() && stat(c, "", "evictions") != "0" {
            target = Some(i + i / 5);
        }
        if target.is_some_and(|t| i >= t) {
            return;
        }
        assert!(i < 2_000_000, "the server never evicted");
    }
}

/// A get / set-if-miss loop over `keys` keys of 2,000-byte values for `run`; returns the
/// hit ratio of the gets in the last `measure` of it, and the out-of-memory replies.
fn big_values(c: &mut Client, keys: usize, run: Duration, measure: Duration) -> (f64, u64) {
    let v = "L".repeat(2000);
    let start = Instant::now();
    let (mut gets, mut hits, mut oom) = (0u64, 0u64, 0u64);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while start.elapsed() < run {
        let counting = start.elapsed() >= run - measure;
        let batch: Vec<usize> = (0..32)
            .map(|_| {
                // xorshift: a uniform key stream, the same in every run.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % keys as u64) as usize
            })
            .collect();
        let req: String = batch.iter().map(|k| format!("get big:{k}\r\n")).collect();
        c.send(req.as_bytes());
        let mut missed = Vec::new();
        for &k in &batch {
            let line = c.read_line();
            if line.starts_with(b"VALUE ") {
                c.read_n(2002);
                assert_eq!(c.read_line(), b"END\r\n");
                hits += u64::from(counting);
            } else {
                assert_eq!(line, b"END\r\n");
                missed.push(k);
            }
            gets += u64::from(counting);
        }
        if missed.is_empty() {
            continue;
        }
        let req: String = missed
            .iter()
            .map(|k| format!("set big:{k} 0 0 2000\r\n{v}\r\n"))
            .collect();
        c.send(req.as_bytes());
        for _ in &missed {
            let line = c.read_line();
            if line == b"SERVER_ERROR out of memory storing object\r\n" {
                oom += 1;
            } else {
                assert_eq!(line, b"STORED\r\n");
            }
        }
    }
    (hits as f64 / gets.max(1) as f64, oom)
}

#[test]
fn automove_cures_calcification() {
    // 16 MB: 5,000 keys of 2,000 bytes (~10.5 MB of chunks) fit if the slabs follow.
    let run = |automove: &'static str| {
        std::thread::spawn(move || {
            let opt = format!("slab_automove={automove}");
            let s = ServerProc::start(&["-t", "1", "-m", "16", "-o", &opt]);
            let mut c = s.connect();
            fill_small(&mut c);
            let r = big_values(
                &mut c,
                5000,
                Duration::from_secs(14),
                Duration::from_secs(4),
            );
            let moved: u64 = stat(&mut c, "", "slabs_moved").parse().unwrap();
            (r, moved)
        })
    };
    let on = run("1");
    let off = run("0");
    let ((on_ratio, on_oom), on_moved) = on.join().unwrap();
    let ((off_ratio, _), off_moved) = off.join().unwrap();
    eprintln!(
        "automove 1: hit ratio {on_ratio:.3}, {on_moved} slabs moved, {on_oom} OOM; \
         automove 0: hit ratio {off_ratio:.3}, {off_moved} slabs moved"
    );
    assert!(
        on_ratio > 0.8,
        "automove did not let the new size's class grow: {on_ratio:.3}"
    );
    assert!(
        on_ratio > off_ratio + 0.5,
        "automove {on_ratio:.3} vs calcified {off_ratio:.3}"
    );
    assert!(on_moved > off_moved + 50, "{on_moved} vs {off_moved}");
    assert_eq!(on_oom, 0);
}

#[test]
fn reassign_and_automove_replies_match_memcached() {
    let s = ServerProc::start(&["-t", "1", "-m", "64", "-o", "slab_automove=0"]);
    let mut c = s.connect();
    assert_eq!(stat(&mut c, "settings", "slab_reassign"), "yes");
    assert_eq!(stat(&mut c, "settings", "slab_automove"), "0");
    // Replies recorded from memcached 1.6.18 (`-m 64`, reassignment on).
    for (req, reply) in [
        ("slabs", "ERROR"),
        ("slabs reassign", "ERROR"),
        ("slabs reassign 1", "ERROR"),
        (
            "slabs reassign 1 2",
            "NOSPARE source class has no spare pages",
        ),
        ("slabs reassign 1 1", "SAME src and dst class are identical"),
        (
            "slabs reassign -1 -1",
            "SAME src and dst class are identical",
        ),
        (
            "slabs reassign -1 2",
            "BADCLASS invalid src or dst class id",
        ),
        (
            "slabs reassign 0 1",
            "NOSPARE source class has no spare pages",
        ),
        (
            "slabs reassign 1 0",
            "NOSPARE source class has no spare pages",
        ),
        (
            "slabs reassign 1 1000",
            "BADCLASS invalid src or dst class id",
        ),
        (
            "slabs reassign -2 1",
            "BADCLASS invalid src or dst class id",
        ),
        (
            "slabs reassign 1 -1",
            "BADCLASS invalid src or dst class id",
        ),
        ("slabs reassign a b", "CLIENT_ERROR bad command line format"),
        (
            "slabs reassign 1x 2",
            "CLIENT_ERROR bad command line format",
        ),
        (
            "slabs reassign 99999999999999999999 1",
            "CLIENT_ERROR bad command line format",
        ),
        (
            "slabs reassign 4294967297 1",
            "SAME src and dst class are identical",
        ),
        ("slabs reassign 1 2 noreply", "ERROR"),
        ("slabs reassign 1 2 3", "ERROR"),
        ("slabs automove", "ERROR"),
        ("slabs automove 3", "ERROR"),
        ("slabs automove -1", "CLIENT_ERROR bad command line format"),
        ("slabs automove x", "CLIENT_ERROR bad command line format"),
        ("slabs automove 1.5", "CLIENT_ERROR bad command line format"),
        ("slabs automove ratio", "ERROR"),
        ("slabs automove ratio x", "ERROR"),
        ("slabs automove ratio 0.5", "OK"),
        ("slabs automove 2", "OK"),
        ("slabs automove 1 2 3", "OK"),
        ("slabs foo", "ERROR"),
    ] {
        c.send(format!("{req}\r\n").as_bytes());
        assert_eq!(
            String::from_utf8(c.read_line()).unwrap(),
            format!("{reply}\r\n"),
            "{req}"
        );
    }
    assert_eq!(stat(&mut c, "settings", "slab_automove"), "1");
    assert_eq!(stat(&mut c, "settings", "slab_automove_ratio"), "0.50");
    // 2^32 truncates to 0, as in memcached; noreply silences automove's replies.
    c.roundtrip(b"slabs automove 4294967296\r\n", b"OK\r\n");
    assert_eq!(stat(&mut c, "settings", "slab_automove"), "0");
    c.send(b"slabs automove 2 noreply\r\nslabs automove 9 noreply\r\nslabs automove x noreply\r\n");
    c.roundtrip(b"mn\r\n", b"MN\r\n");
    assert_eq!(stat(&mut c, "settings", "slab_automove"), "2");
    c.roundtrip(b"slabs automove 0\r\n", b"OK\r\n");

    // A class with slabs to spare gives one: its items are evicted or moved, the counters
    // say so, and what stays is readable.
    let v = "v".repeat(10);
    let mut batch = String::new();
    for k in 0..20_000 {
        batch.push_str(&format!("set k{k:05} 0 0 10 noreply\r\n{v}\r\n"));
    }
    c.send(batch.as_bytes());
    c.roundtrip(b"mn\r\n", b"MN\r\n");
    let slabs = c.stats("slabs");
    let (id, pages) = slabs
        .iter()
        .filter_map(|(k, v)| {
            let (id, f) = k.split_once(':')?;
            (f == "total_pages").then(|| (id.to_string(), v.parse::<u64>().unwrap()))
        })
        .max_by_key(|&(_, p)| p)
        .unwrap();
    assert!(pages >= 2, "{pages} pages");
    let before: u64 = stat(&mut c, "", "curr_items").parse().unwrap();
    c.roundtrip(format!("slabs reassign {id} 0\r\n").as_bytes(), b"OK\r\n");
    let after: u64 = stat(&mut c, "", "curr_items").parse().unwrap();
    let evicted: u64 = stat(&mut c, "", "slab_reassign_evictions_nomem")
        .parse()
        .unwrap();
    let rescued: u64 = stat(&mut c, "", "slab_reassign_rescues").parse().unwrap();
    assert_eq!(before - after, evicted);
    assert!(evicted + rescued > 0);
    assert_eq!(stat(&mut c, "", "slabs_moved"), "1");
    c.roundtrip(b"slabs reassign -1 1\r\n", b"OK\r\n");
    assert_eq!(stat(&mut c, "", "slabs_moved"), "2");
    // Every get answers a stored value or a miss.
    let mut found = 0;
    for k in (0..20_000).step_by(97) {
        c.send(format!("get k{k:05}\r\n").as_bytes());
        let line = c.read_line();
        if line != b"END\r\n" {
            assert_eq!(line, format!("VALUE k{k:05} 0 10\r\n").as_bytes());
            assert_eq!(c.read_n(12), format!("{v}\r\n").as_bytes());
            c.expect(b"END\r\n");
            found += 1;
        }
    }
    assert!(found > 0);
}

#[test]
fn no_slab_reassign_refuses_reassign() {
    let s = ServerProc::start(&["-t", "1", "-o", "no_slab_reassign,slab_automove=2"]);
    let mut c = s.connect();
    assert_eq!(stat(&mut c, "settings", "slab_reassign"), "no");
    assert_eq!(stat(&mut c, "settings", "slab_automove"), "2");
    for req in [
        "slabs reassign 1 2",
        "slabs reassign a b",
        "slabs reassign -1 -1",
    ] {
        c.roundtrip(
            format!("{req}\r\n").as_bytes(),
            b"CLIENT_ERROR slab reassignment disabled\r\n",
        );
    }
    c.roundtrip(b"slabs reassign 1\r\n", b"ERROR\r\n");
    c.roundtrip(b"slabs automove 1\r\n", b"OK\r\n");
}
