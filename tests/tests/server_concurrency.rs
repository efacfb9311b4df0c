//! Many clients at once on several workers: every reply still matches its request, and
//! `incr` from all clients adds up.

use integration_tests::ServerProc;

#[test]
fn concurrent_clients_on_four_workers() {
    let s = ServerProc::start(&["-t", "4", "-m", "64"]);
    let mut c = s.connect();
    c.roundtrip(b"set counter 0 0 1\r\n0\r\n", b"STORED\r\n");
    let threads = 8;
    let rounds = 300;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let mut c = s.connect();
            std::thread::spawn(move || {
                for i in 0..rounds {
                    let key = format!("t{t}:k{}", i % 50);
                    let value = format!("{t}-{i}-{}", "x".repeat(i % 200));
                    // Pipelined: a set, a get of it, an incr of the shared counter.
                    let req = format!(
                        "set {key} {t} 0 {}\r\n{value}\r\nget {key}\r\nincr counter 1\r\n",
                        value.len()
                    );
                    c.send(req.as_bytes());
                    c.expect(b"STORED\r\n");
                    c.expect(
                        format!("VALUE {key} {t} {}\r\n{value}\r\nEND\r\n", value.len()).as_bytes(),
                    );
                    let n: u64 = String::from_utf8(c.read_line())
                        .unwrap()
                        .trim_end()
                        .parse()
                        .unwrap();
                    assert!(n >= 1 && n <= (threads * rounds) as u64);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    c.roundtrip(
        b"get counter\r\n",
        format!("VALUE counter 0 4\r\n{}\r\nEND\r\n", threads * rounds).as_bytes(),
    );
}
