//! Slow and hostile peers at scale: 1,000 connections that pipeline `get`s of a 4 KB
//! value and never read, and 1,000 that send one byte a second, against a server that a
//! healthy client keeps using. The healthy client's latency (p50, p99 over 2,000
//! requests) is measured side by side with an unattacked server started the same way,
//! and reported; its replies must all be right, every hostile connection must have been
//! accepted, and the server must answer normally afterwards. Loopback only, about 15 s.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::{raise_nofile, stat_u64, Client, ServerProc};

const HOSTILE: usize = 1000;
const PROBES: usize = 2000;

/// Latencies (µs) of `PROBES` `get small` round trips.
fn probe(c: &mut Client) -> Vec<u64> {
    let want = b"VALUE small 0 10\r\n0123456789\r\nEND\r\n";
    (0..PROBES)
        .map(|_| {
            let t = Instant::now();
            c.roundtrip(b"get small\r\n", want);
            t.elapsed().as_micros() as u64
        })
        .collect()
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

#[test]
fn a_healthy_client_is_served_among_2000_hostile_connections() {
    assert!(raise_nofile(8192) >= 4 * HOSTILE as u64 + 64, "nofile");
    let args = ["-t", "2", "-m", "64", "-c", "4096"];
    let attacked = ServerProc::start(&args);
    let quiet = ServerProc::start(&args);
    let mid = vec![b'm'; 4000];
    let mut pa = attacked.connect();
    let mut pq = quiet.connect();
    for c in [&mut pa, &mut pq] {
        c.roundtrip(b"set small 0 0 10\r\n0123456789\r\n", b"STORED\r\n");
        let mut req = b"set mid 0 0 4000\r\n".to_vec();
        req.extend_from_slice(&mid);
        req.extend_from_slice(b"\r\n");
        c.roundtrip(&req, b"STORED\r\n");
        probe(c);
    }
    // Unloaded first, then under attack.
    let mut quiet_lat = probe(&mut pq);
    let readers: Vec<TcpStream> = (0..HOSTILE)
        .map(|_| {
            let mut s = TcpStream::connect(attacked.addr).expect("connect");
            s.write_all(&b"get mid\r\n".repeat(64)).expect("send");
            s
        })
        .collect();
    let slow: Vec<TcpStream> = (0..HOSTILE)
        .map(|_| TcpStream::connect(attacked.addr).expect("connect"))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let drip = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let line = b"get slowloris-key-that-never-ends";
            let mut slow = slow;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < line.len() {
                for s in &mut slow {
                    let _ = s.write_all(&line[i..i + 1]);
                }
                i += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            slow
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let conns = stat_u64(&pa.stats(""), "curr_connections");
    let mut attacked_lat = probe(&mut pa);
    let mut quiet_again = probe(&mut pq);
    stop.store(true, Ordering::Relaxed);
    let slow = drip.join().expect("drip");
    let (qp50, qp99) = (pct(&mut quiet_lat, 0.5), pct(&mut quiet_lat, 0.99));
    let (ap50, ap99) = (pct(&mut attacked_lat, 0.5), pct(&mut attacked_lat, 0.99));
    let q2p99 = pct(&mut quiet_again, 0.99);
    eprintln!(
        "healthy client, {PROBES} gets: unloaded p50 {qp50} us p99 {qp99} us (again {q2p99} us); \
         among {HOSTILE} non-readers + {HOSTILE} one-byte-a-second: p50 {ap50} us p99 {ap99} us \
         ({:.2}x the unloaded p99); curr_connections {conns}",
        ap99 as f64 / qp99.max(q2p99).max(1) as f64
    );
    assert!(conns > 2 * HOSTILE as u64, "{conns} connections");
    drop(readers);
    drop(slow);
    // Still answering whole replies.
    pa.roundtrip(b"get mid small\r\n", &{
        let mut r = b"VALUE mid 0 4000\r\n".to_vec();
        r.extend_from_slice(&mid);
        r.extend_from_slice(b"\r\nVALUE small 0 10\r\n0123456789\r\nEND\r\n");
        r
    });
}
