//! Garbage on the meta and binary paths: deterministic pseudo-random bytes (and
//! mutations of valid requests) sent on many connections must never take the server
//! down; afterwards it still answers both protocols and holds no stray items.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use integration_tests::ServerProc;
use kvcache_server::protocol::binary::{opcode, request};

/// xorshift64*: a fixed, reproducible byte stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn meta_sample(rng: &mut Rng) -> Vec<u8> {
    const PARTS: &[&[u8]] = &[
        b"mg ",
        b"ms ",
        b"md ",
        b"ma ",
        b"mn",
        b"me ",
        b"key",
        b" v",
        b" k",
        b" q",
        b" O1",
        b" T-1",
        b" N30",
        b" R5",
        b" C1",
        b" I",
        b" MA",
        b" MX",
        b" b",
        b" 5",
        b" 99999999",
        b"\r\n",
        b"\n",
        b" ",
        b"hello",
        b"Zm9v",
        b" D18446744073709551616",
        b" J1",
    ];
    let mut out = Vec::new();
    for _ in 0..2000 {
        match rng.next() % 8 {
            0 => {
                let n = (rng.next() % 16) as usize;
                out.extend(rng.bytes(n));
            }
            _ => out.extend_from_slice(PARTS[(rng.next() % PARTS.len() as u64) as usize]),
        }
    }
    out
}

fn binary_sample(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..300 {
        let op = (rng.next() % 0x26) as u8;
        let n = (rng.next() % 8) as usize;
        let key = rng.bytes(n);
        let n = [0, 4, 8, 20][(rng.next() % 4) as usize];
        let ext = rng.bytes(n);
        let n = (rng.next() % 32) as usize;
        let val = rng.bytes(n);
        let mut pkt = request(op, &key, &ext, &val, rng.next() as u32, rng.next() % 3);
        if rng.next() % 4 == 0 {
            // Corrupt a length field.
            let i = [2usize, 3, 4, 8, 9, 10, 11][(rng.next() % 7) as usize];
            pkt[i] = rng.next() as u8;
        }
        out.extend(pkt);
    }
    out
}

#[test]
fn garbage_never_takes_the_server_down() {
    let s = ServerProc::start(&["-t", "2", "-m", "64"]);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..40 {
        let mut data = if round % 2 == 0 {
            meta_sample(&mut rng)
        } else {
            binary_sample(&mut rng)
        };
        if round % 5 == 4 {
            data = rng.bytes(20_000);
            data[0] = if round % 2 == 0 { b'm' } else { 0x80 };
        }
        let mut conn = TcpStream::connect(s.addr).unwrap();
        conn.set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // The server may close on us mid-way (bad magic, protocol error): that is fine.
        let _ = conn.write_all(&data);
        // Half-close and drain, so the server has processed everything before the next
        // round (it closes once it sees the end of the stream).
        let _ = conn.shutdown(std::net::Shutdown::Write);
        conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut sink = Vec::new();
        let _ = conn.read_to_end(&mut sink);
    }
    // Still serving both protocols.
    let mut c = s.connect();
    c.roundtrip(b"mn\r\n", b"MN\r\n");
    c.roundtrip(
        b"ms alive 2\r\nok\r\nmg alive v\r\n",
        b"HD\r\nVA 2\r\nok\r\n",
    );
    let mut b = s.connect();
    b.send(&request(opcode::NOOP, b"", b"", b"", 42, 0));
    let h = b.read_n(24);
    assert_eq!(
        (h[0], h[1], &h[12..16]),
        (0x81, opcode::NOOP, &42u32.to_be_bytes()[..])
    );
}
