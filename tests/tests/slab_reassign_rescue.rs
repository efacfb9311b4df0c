//! `slabs reassign` under live traffic loses nothing while `-m` has room.
//!
//! Three clients set, delete and read their own keys (values of 20 B to 40 KB, log-uniform,
//! about 70 MB live) on `-m 1024 -t 2` while a fourth sends `slabs reassign -1 <n>` every
//! 0.4 s. A read of a key its client stored and never deleted must hit with the value it
//! stored; with 95% of the limit free, the moved slabs' live items must be rescued into
//! fresh memory of their class rather than evicted: `slab_reassign_evictions_nomem` stays 0.
//!
//! `RESCUE_SECS` sets the mixed phase's length (default 12 s).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::rng::Rng;
use integration_tests::{env_secs, stat_u64, Client, ServerProc};

/// Keys per client: 3 x 6,000 keys of ~5.4 KB on average (~70 MB of `bytes`).
const KEYS: usize = 6000;

/// Log-uniform length in 20..=40960.
fn log_len(rng: &mut Rng) -> usize {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (20.0 * 2048f64.powf(u)) as usize
}

/// The value of `key` at `version`: `len` bytes derived from both, so a read can tell a
/// stale or foreign value from the expected one.
fn value(client: usize, key: usize, version: u32, len: usize) -> Vec<u8> {
    let seed = client * 31 + key * 7 + version as usize * 13;
    (0..len).map(|j| b'a' + ((seed + j) % 26) as u8).collect()
}

fn set(c: &mut Client, name: &str, v: &[u8]) {
    let mut req = format!("set {name} 0 0 {}\r\n", v.len()).into_bytes();
    req.extend_from_slice(v);
    req.extend_from_slice(b"\r\n");
    c.send(&req);
    let line = c.read_line();
    assert_eq!(
        String::from_utf8_lossy(&line),
        "STORED\r\n",
        "set {name} ({} bytes)",
        v.len()
    );
}

/// What one client saw.
#[derive(Debug, Default)]
struct Tally {
    /// Gets and deletes sent.
    reads: u64,
    /// Of those, misses of keys stored and never deleted.
    lost: u64,
}

/// One client's load then mixed phase over its own keys; a wrong or resurrected value
/// fails the test at once, a miss of a stored key is counted as lost.
fn client(addr: SocketAddr, id: usize, run: Duration, stop: &AtomicBool) -> Tally {
    let mut c = Client::connect(addr);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) * 0x1234_5678_9ABC_DEF1));
    // key -> (version, len) of what it holds, None when deleted.
    let mut held: HashMap<usize, Option<(u32, usize)>> = HashMap::new();
    for k in 0..KEYS {
        let len = log_len(&mut rng);
        set(&mut c, &format!("c{id}:k{k}"), &value(id, k, 0, len));
        held.insert(k, Some((0, len)));
    }
    let mut t = Tally::default();
    let start = Instant::now();
    let mut version = 1u32;
    while start.elapsed() < run && !stop.load(Ordering::Relaxed) {
        let k = (rng.next_u64() % KEYS as u64) as usize;
        let name = format!("c{id}:k{k}");
        match rng.next_u64() % 10 {
            0..=5 => {
                c.send(format!("get {name}\r\n").as_bytes());
                let line = c.read_line();
                let want = held[&k];
                t.reads += 1;
                if line == b"END\r\n" {
                    if want.is_some() {
                        t.lost += 1;
                    }
                    continue;
                }
                let head = String::from_utf8_lossy(&line).into_owned();
                let len: usize = head
                    .trim_end()
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("bad reply {head:?}"));
                let got = c.read_n(len + 2);
                assert_eq!(c.read_line(), b"END\r\n");
                let Some((v, l)) = want else {
                    panic!("{name} was deleted but read back ({len} bytes)");
                };
                assert!(
                    got[..len] == value(id, k, v, l)[..],
                    "{name}: wrong value (expected version {v} of {l} bytes, got {len} bytes)"
                );
            }
            6..=8 => {
                let len = log_len(&mut rng);
                set(&mut c, &name, &value(id, k, version, len));
                held.insert(k, Some((version, len)));
                version += 1;
            }
            _ => {
                t.reads += 1;
                c.send(format!("delete {name}\r\n").as_bytes());
                let line = c.read_line();
                match (&line[..], held[&k].is_some()) {
                    (b"DELETED\r\n", true) | (b"NOT_FOUND\r\n", false) => {}
                    // A stored key gone before its delete: lost like a missed read.
                    (b"NOT_FOUND\r\n", true) => t.lost += 1,
                    (b"DELETED\r\n", false) => panic!("{name} was deleted but deleted again"),
                    _ => panic!("delete {name}: {:?}", String::from_utf8_lossy(&line)),
                }
                held.insert(k, None);
            }
        }
    }
    t
}

#[test]
fn reassign_rescues_live_items_while_memory_allows() {
    let run = env_secs("RESCUE_SECS", 12);
    let s = ServerProc::start(&["-m", "1024", "-t", "2"]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|id| {
            let (addr, stop) = (s.addr, Arc::clone(&stop));
            std::thread::spawn(move || client(addr, id, run, &stop))
        })
        .collect();
    // The mover: `slabs reassign -1 <n>` every 0.4 s, n rotating over the classes in use.
    let mut m = s.connect();
    let mut oks = 0u64;
    let mut n = 1;
    let mut replies: HashMap<String, u64> = HashMap::new();
    while !clients.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(400));
        let classes = m
            .stats("slabs")
            .iter()
            .filter(|(k, _)| k.ends_with(":chunk_size"))
            .count()
            .max(2);
        n = n % classes + 1;
        m.send(format!("slabs reassign -1 {n}\r\n").as_bytes());
        let line = String::from_utf8_lossy(&m.read_line())
            .trim_end()
            .to_owned();
        assert!(
            ["OK", "BUSY", "NOSPARE", "BADCLASS", "SAME"]
                .iter()
                .any(|p| line.starts_with(p)),
            "slabs reassign: {line}"
        );
        oks += u64::from(line == "OK");
        *replies.entry(line).or_default() += 1;
    }
    let tallies: Vec<Tally> = clients
        .into_iter()
        .map(|h| h.join().expect("client"))
        .collect();
    let reads: u64 = tallies.iter().map(|t| t.reads).sum();
    let lost: u64 = tallies.iter().map(|t| t.lost).sum();
    let st = m.stats("");
    let nomem = stat_u64(&st, "slab_reassign_evictions_nomem");
    let rescues = stat_u64(&st, "slab_reassign_rescues");
    let moved = stat_u64(&st, "slabs_moved");
    let evictions = stat_u64(&st, "evictions");
    let limit = stat_u64(&st, "limit_maxbytes");
    let bytes = stat_u64(&st, "bytes");
    eprintln!(
        "reads {reads}, lost {lost}; reassign replies {replies:?}; slabs_moved {moved}, \
         rescues {rescues}, evictions_nomem {nomem}, evictions {evictions}; \
         {bytes} bytes live of {limit}"
    );
    assert!(
        oks >= 5,
        "too few moves happened to test anything: {replies:?}"
    );
    assert!(
        rescues > 0,
        "moves rescued no item, so none was tested: {rescues}"
    );
    assert!(reads > 1000, "too few reads: {reads}");
    assert!(bytes < limit / 4, "the limit was meant to be far: {bytes}");
    assert_eq!(nomem, 0, "live items evicted by moves with the limit far");
    assert_eq!(evictions, 0, "evictions with the limit far");
    assert_eq!(lost, 0, "reads of stored keys missed ({reads} reads)");
}
