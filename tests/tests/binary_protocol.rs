//! The binary protocol against the real `kvcache-server` binary: status codes, bodies,
//! quiet forms and opaque echo as memcached 1.6.18 answers them.

use integration_tests::ServerProc;
use kvcache_server::protocol::binary::{opcode::*, request};

/// Reads one response: (opcode, status, extras, key, value, opaque, cas).
fn response(c: &mut integration_tests::Client) -> (u8, u16, Vec<u8>, Vec<u8>, Vec<u8>, u32, u64) {
    let h = c.read_n(24);
    assert_eq!(h[0], 0x81);
    let keylen = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let extlen = usize::from(h[4]);
    let status = u16::from_be_bytes([h[6], h[7]]);
    let bodylen = u32::from_be_bytes(h[8..12].try_into().unwrap()) as usize;
    let opaque = u32::from_be_bytes(h[12..16].try_into().unwrap());
    let cas = u64::from_be_bytes(h[16..24].try_into().unwrap());
    let body = c.read_n(bodylen);
    (
        h[1],
        status,
        body[..extlen].to_vec(),
        body[extlen..extlen + keylen].to_vec(),
        body[extlen + keylen..].to_vec(),
        opaque,
        cas,
    )
}

fn set_extras(flags: u32, exp: u32) -> Vec<u8> {
    let mut e = flags.to_be_bytes().to_vec();
    e.extend_from_slice(&exp.to_be_bytes());
    e
}

fn arith_extras(delta: u64, initial: u64, exp: u32) -> Vec<u8> {
    let mut e = delta.to_be_bytes().to_vec();
    e.extend_from_slice(&initial.to_be_bytes());
    e.extend_from_slice(&exp.to_be_bytes());
    e
}

#[test]
fn commands_statuses_and_quiet_forms() {
    let s = ServerProc::start(&["-t", "2", "-m", "64"]);
    let mut c = s.connect();
    c.send(&request(SET, b"k", &set_extras(5, 0), b"hello", 7, 0));
    let (op, st, _, _, _, opq, set_cas) = response(&mut c);
    assert_eq!((op, st, opq), (SET, 0, 7));
    assert_ne!(set_cas, 0);
    c.send(&request(GETK, b"k", b"", b"", 9, 0));
    let r = response(&mut c);
    assert_eq!(
        r,
        (
            GETK,
            0,
            5u32.to_be_bytes().to_vec(),
            b"k".to_vec(),
            b"hello".to_vec(),
            9,
            set_cas
        )
    );
    c.send(&request(GET, b"nope", b"", b"", 0, 0));
    assert_eq!(response(&mut c).4, b"Not found");
    c.send(&request(GETK, b"nope", b"", b"", 0, 0));
    let r = response(&mut c);
    assert_eq!((r.1, r.3, r.4), (1, b"nope".to_vec(), vec![]));
    // Quiet misses and successes are silent; noop flushes.
    c.send(&request(GETQ, b"nope", b"", b"", 0, 0));
    c.send(&request(SETQ, b"q", &set_extras(0, 0), b"v", 0, 0));
    c.send(&request(NOOP, b"", b"", b"", 3, 0));
    assert_eq!(response(&mut c).0, NOOP);
    // add of an existing key, CAS mismatch, replace of a missing key, append miss.
    c.send(&request(ADD, b"k", &set_extras(0, 0), b"x", 0, 0));
    assert_eq!(response(&mut c).4, b"Data exists for key.");
    c.send(&request(
        SET,
        b"k",
        &set_extras(0, 0),
        b"x",
        0,
        set_cas + 1000,
    ));
    assert_eq!(response(&mut c).1, 2);
    c.send(&request(REPLACE, b"zz", &set_extras(0, 0), b"x", 0, 0));
    assert_eq!(response(&mut c).4, b"Not found");
    c.send(&request(APPEND, b"zz", b"", b"x", 0, 0));
    assert_eq!(response(&mut c).4, b"Not stored.");
    // incr/decr with initial value, non-numeric, no-create.
    c.send(&request(INCREMENT, b"n", &arith_extras(1, 5, 0), b"", 0, 0));
    assert_eq!(response(&mut c).4, 5u64.to_be_bytes());
    c.send(&request(INCREMENT, b"n", &arith_extras(1, 5, 0), b"", 0, 0));
    assert_eq!(response(&mut c).4, 6u64.to_be_bytes());
    c.send(&request(INCREMENT, b"k", &arith_extras(1, 5, 0), b"", 0, 0));
    assert_eq!(
        response(&mut c).4,
        b"Non-numeric server-side value for incr or decr"
    );
    c.send(&request(
        DECREMENT,
        b"zz",
        &arith_extras(1, 5, u32::MAX),
        b"",
        0,
        0,
    ));
    assert_eq!(response(&mut c).1, 1);
    // touch / gat, version, unknown command.
    c.send(&request(GAT, b"k", &100u32.to_be_bytes(), b"", 0, 0));
    let r = response(&mut c);
    assert_eq!(
        (r.1, r.2, r.4),
        (0, 5u32.to_be_bytes().to_vec(), b"hello".to_vec())
    );
    c.send(&request(VERSION, b"", b"", b"", 0, 0));
    assert_eq!(response(&mut c).4, b"1.6.18");
    c.send(&request(0x50, b"", b"", b"", 0, 0));
    assert_eq!(response(&mut c).4, b"Unknown command");
    c.send(&request(DELETE, b"k", b"", b"", 0, 0));
    assert_eq!(response(&mut c).1, 0);
    c.send(&request(DELETE, b"k", b"", b"", 0, 0));
    assert_eq!(response(&mut c).4, b"Not found");
    // A protocol error answers "Invalid arguments" and closes.
    c.send(&request(GET, b"k", b"x", b"", 0, 0));
    assert_eq!(response(&mut c).4, b"Invalid arguments");
    c.expect_closed();
}

#[test]
fn too_large_value_is_refused_and_discarded() {
    let s = ServerProc::start(&["-t", "1", "-m", "64", "-I", "1m"]);
    let mut c = s.connect();
    c.send(&request(SET, b"big", &set_extras(0, 0), b"old", 0, 0));
    assert_eq!(response(&mut c).1, 0);
    // 2 MB over a 1 MB limit: "Too large.", the old value is gone, and the value bytes
    // are discarded so the next packet is read correctly.
    let value = vec![b'x'; 2 << 20];
    let mut pkt = request(SET, b"big", &set_extras(0, 0), &value, 5, 0);
    pkt.extend(request(GET, b"big", b"", b"", 6, 0));
    c.send(&pkt);
    let r = response(&mut c);
    assert_eq!((r.1, r.4.as_slice(), r.5), (3, &b"Too large."[..], 5));
    let r = response(&mut c);
    assert_eq!((r.1, r.4.as_slice(), r.5), (1, &b"Not found"[..], 6));
}
