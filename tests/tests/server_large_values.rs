//! Values of every size boundary read back byte-identical while other connections
//! replace and delete them, over the text, meta and binary protocols.
//!
//! The boundaries are the server's own: for every slab class (read from `-vv`'s class
//! list) the value lengths whose item fills the chunk exactly and one byte either side;
//! the start of chaining (the largest chunk) and every segment boundary of a chained
//! value; and the largest value the item size limit (`-I`) takes and one byte less (one
//! byte more is refused with memcached's error).
//!
//! Every value is one piece of [`kv_model::piece`]: its bytes are derived from an id
//! that names the key and the write, so a torn, mixed or foreign value does not decode,
//! and a decoded one is byte-identical to what one write sent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use integration_tests::kv_client::{Bytes, KvClient, Proto};
use integration_tests::kv_model::{piece, Cmd, Reply, Val, Write};
use integration_tests::rng::Rng;
use integration_tests::ServerProc;

/// Item bytes besides the value with CAS on and zero client flags: the 14-byte header,
/// the 8-byte CAS and the key.
const OVERHEAD: usize = 14 + 8;
/// Keys are `lv` and five digits.
const KEY_LEN: usize = 7;
/// What a segment of a chained value spends on its own header.
const SEGMENT_HEADER: usize = 16;
const PROTOS: [Proto; 3] = [Proto::Text, Proto::Meta, Proto::Binary];

fn key(i: usize) -> String {
    format!("lv{i:05}")
}

/// The piece of total length `n` for `id`. Where no filler length gives `n` exactly
/// (from 99 filler bytes to 100 the length field grows a digit), the field gets a
/// leading zero, which [`kv_model::decode`] reads the same.
fn value(id: u32, n: usize) -> Bytes {
    let fixed = 4 + format!("{id:x}").len();
    for pad in 0..2 {
        for digits in 1..=8 {
            if n >= fixed + digits + pad {
                let len = n - fixed - digits - pad;
                if len.to_string().len() == digits {
                    let mut v = piece(id, len);
                    let comma = v.iter().position(|&b| b == b',').unwrap();
                    if pad == 1 {
                        v.insert(comma + 1, b'0');
                    }
                    assert_eq!(v.len(), n);
                    return Bytes(v);
                }
            }
        }
    }
    panic!("no piece of {n} bytes");
}

fn write(id: u32) -> Write {
    Write {
        val: Val::Pieces(vec![id]),
        flags: 0,
        ttl: 0,
    }
}

/// The chunk sizes `-vv` lists.
fn chunk_sizes() -> Vec<usize> {
    let probe = ServerProc::start(&["-vv"]);
    let sizes: Vec<usize> = probe
        .startup_lines()
        .iter()
        .filter_map(|l| {
            let rest = l.split("chunk size").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect();
    assert!(
        sizes.len() > 10,
        "no class list in {:?}",
        probe.startup_lines()
    );
    sizes
}

/// The largest value length the server stores under a key of [`KEY_LEN`] bytes, found
/// by bisection with `set`; one more byte must be refused as memcached refuses it.
fn largest_value(addr: SocketAddr) -> usize {
    let mut c = integration_tests::Client::connect(addr);
    let k = key(99_999);
    let mut try_set = |n: usize| -> bool {
        let mut req = format!("set {k} 0 0 {n}\r\n").into_bytes();
        req.resize(req.len() + n, b'x');
        req.extend_from_slice(b"\r\n");
        c.send(&req);
        match &c.read_line()[..] {
            b"STORED\r\n" => true,
            b"SERVER_ERROR object too large for cache\r\n" => false,
            other => panic!("set of {n} bytes: {:?}", String::from_utf8_lossy(other)),
        }
    };
    let (mut lo, mut hi) = (1usize, 4 << 20);
    assert!(try_set(lo) && !try_set(hi));
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if try_set(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    assert!(try_set(lo));
    assert!(!try_set(lo + 1));
    // The refused set removed the old value, as memcached's does.
    c.roundtrip(format!("get {k}\r\n").as_bytes(), b"END\r\n");
    lo
}

/// Every boundary length, sorted and without repeats.
fn boundary_sizes(chunks: &[usize], largest: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut around = |v: usize| {
        for n in [v.saturating_sub(1), v, v + 1] {
            if (16..=largest).contains(&n) {
                sizes.push(n);
            }
        }
    };
    for &c in chunks {
        around(c.saturating_sub(OVERHEAD + KEY_LEN));
    }
    let max_chunk = *chunks.iter().max().unwrap();
    let payload = max_chunk - SEGMENT_HEADER;
    for k in 1..=largest / payload + 1 {
        around(k * payload);
    }
    sizes.push(largest - 1);
    sizes.push(largest);
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// The id of write `round` by `writer` to key `i`: the key is in the high bits.
fn id_of(i: usize, writer: usize, round: usize) -> u32 {
    ((i as u32) << 8) | ((writer as u32) << 5) | (round as u32 & 31)
}

/// Checks a read of key `i` (size `n`): a miss, or exactly one write's bytes.
fn check_read(r: &Reply, i: usize, n: usize, proto: Proto) {
    match r {
        Reply::Miss => {}
        Reply::Value {
            val: Some(Val::Pieces(ids)),
            flags: 0,
            ..
        } if ids.len() == 1 && ids[0] >> 8 == i as u32 => {
            // Decoded whole as one piece of a write to this key: every byte checked, and
            // every write to the key had its one length.
        }
        other => panic!("{proto:?} read of {} ({n} bytes): {other:?}", key(i)),
    }
}

/// Deletes key `i` (`delete`) or sets it to write `id`'s value of `n` bytes, checking the
/// reply.
fn set_or_delete(c: &mut KvClient, proto: Proto, i: usize, delete: bool, id: u32, n: usize) {
    if delete {
        let r = c.run(&key(i), &Cmd::Delete, &Bytes(Vec::new()));
        assert!(
            matches!(r, Reply::Deleted | Reply::NotFound),
            "{proto:?} delete: {r:?}"
        );
    } else {
        let r = c.run(&key(i), &Cmd::Set(write(id)), &value(id, n));
        assert!(
            matches!(r, Reply::Stored(_)),
            "{proto:?} set of {n} bytes: {r:?}"
        );
    }
}

#[test]
fn boundary_sizes_read_back_whole_under_replacement_and_delete() {
    let chunks = chunk_sizes();
    let server = ServerProc::start(&["-m", "256", "-t", "2"]);
    let addr = server.addr;
    let largest = largest_value(addr);
    let sizes = Arc::new(boundary_sizes(&chunks, largest));
    assert!(sizes.len() > 100, "boundaries: {sizes:?}");
    let done = Arc::new(AtomicBool::new(false));

    // Readers on every protocol while writers replace and delete on every protocol.
    let mut readers = Vec::new();
    for (p, proto) in PROTOS.into_iter().enumerate() {
        let (sizes, done) = (Arc::clone(&sizes), Arc::clone(&done));
        readers.push(thread::spawn(move || {
            let mut c = KvClient::connect(addr, proto);
            let mut rng = Rng(0x5eed + p as u64);
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) || reads < 200 {
                let i = rng.below(sizes.len() as u64) as usize;
                let r = c.run(&key(i), &Cmd::Get, &Bytes(Vec::new()));
                check_read(&r, i, sizes[i], proto);
                reads += 1;
            }
            reads
        }));
    }
    let mut writers = Vec::new();
    for (w, proto) in PROTOS.into_iter().enumerate() {
        let sizes = Arc::clone(&sizes);
        writers.push(thread::spawn(move || {
            let mut c = KvClient::connect(addr, proto);
            let mut rng = Rng(0xface + w as u64);
            for round in 0..2 {
                for _ in 0..sizes.len() {
                    let i = rng.below(sizes.len() as u64) as usize;
                    let delete = rng.below(5) == 0;
                    set_or_delete(&mut c, proto, i, delete, id_of(i, w, round), sizes[i]);
                }
            }
        }));
    }
    for w in writers {
        w.join().expect("writer");
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("reader") >= 200);
    }

    // Quiet: every size written once more by each protocol in turn, read back exactly by
    // all three.
    let mut clients: Vec<KvClient> = PROTOS.iter().map(|&p| KvClient::connect(addr, p)).collect();
    for (i, &n) in sizes.iter().enumerate() {
        let w = i % 3;
        let id = id_of(i, w, 31);
        let r = clients[w].run(&key(i), &Cmd::Set(write(id)), &value(id, n));
        assert!(matches!(r, Reply::Stored(_)), "set of {n} bytes: {r:?}");
        for (p, c) in clients.iter_mut().enumerate() {
            match c.run(&key(i), &Cmd::Get, &Bytes(Vec::new())) {
                Reply::Value {
                    val: Some(Val::Pieces(ids)),
                    flags: 0,
                    ..
                } if ids == [id] => {}
                other => panic!("{:?} read of {n} bytes: {other:?}", PROTOS[p]),
            }
        }
    }
    // The boundaries include the start of chaining and the limit itself.
    let max_chunk = *chunks.iter().max().unwrap();
    assert!(sizes.iter().any(|&n| n + OVERHEAD + KEY_LEN == max_chunk));
    assert!(sizes
        .iter()
        .any(|&n| n + OVERHEAD + KEY_LEN == max_chunk + 1));
    assert_eq!(sizes.last(), Some(&largest));
}

#[test]
fn joined_value_over_the_limit_is_not_stored_and_keeps_the_old_one() {
    let server = ServerProc::start(&["-m", "64"]);
    for (p, proto) in PROTOS.into_iter().enumerate() {
        let mut c = KvClient::connect(server.addr, proto);
        let k = key(p);
        let (old, more) = (id_of(p, 0, 0), id_of(p, 0, 1));
        let r = c.run(&k, &Cmd::Set(write(old)), &value(old, 600_000));
        assert!(matches!(r, Reply::Stored(_)), "{proto:?}: {r:?}");
        // Each part fits the limit, both together do not: memcached answers NOT_STORED
        // (the joined item cannot be allocated), not out of memory.
        for cmd in [Cmd::Append(more), Cmd::Prepend(more)] {
            let r = c.run(&k, &cmd, &value(more, 600_000));
            assert_eq!(r, Reply::NotStored, "{proto:?} {cmd:?}");
        }
        match c.run(&k, &Cmd::Get, &Bytes(Vec::new())) {
            Reply::Value {
                val: Some(Val::Pieces(ids)),
                ..
            } if ids == [old] => {}
            other => panic!("{proto:?}: {other:?}"),
        }
    }
    // A too-large `add` leaves the old value; a too-large `set` and a too-large `ms` in
    // any mode remove it.
    let mut c = integration_tests::Client::connect(server.addr);
    let big = vec![b'y'; 2 << 20];
    let too_large = |verb: &str| {
        let mut req = format!("{verb}\r\n").into_bytes();
        req.extend_from_slice(&big);
        req.extend_from_slice(b"\r\n");
        req
    };
    for (req, reply, kept) in [
        (
            too_large("add t 0 0 2097152"),
            &b"SERVER_ERROR object too large for cache\r\n"[..],
            true,
        ),
        (
            too_large("set t 0 0 2097152"),
            b"SERVER_ERROR object too large for cache\r\n",
            false,
        ),
        (
            too_large("ms t 2097152 ME"),
            b"SERVER_ERROR object too large for cache\r\n",
            false,
        ),
        (
            too_large("ms t 2097152 MR"),
            b"SERVER_ERROR object too large for cache\r\n",
            false,
        ),
        (
            too_large("ms t 2097152 MA"),
            b"SERVER_ERROR object too large for cache\r\n",
            false,
        ),
    ] {
        c.roundtrip(b"set t 0 0 5\r\nhello\r\n", b"STORED\r\n");
        c.roundtrip(&req, reply);
        let want: &[u8] = if kept {
            b"VALUE t 0 5\r\nhello\r\nEND\r\n"
        } else {
            b"END\r\n"
        };
        c.roundtrip(b"get t\r\n", want);
    }
}

#[test]
fn large_values_pipelined_to_a_client_that_reads_late_arrive_whole() {
    // Far more reply bytes than the socket buffers hold: most values are written partly
    // from their items and the rest from the output buffer, later.
    let server = ServerProc::start(&["-m", "128"]);
    let mut c = integration_tests::Client::connect(server.addr);
    let n = 900_000;
    let ids: Vec<u32> = (0..4).map(|i| id_of(i, 0, 0)).collect();
    for (i, &id) in ids.iter().enumerate() {
        let v = value(id, n);
        let mut req = format!("set {} 0 0 {n}\r\n", key(i)).into_bytes();
        req.extend_from_slice(&v.0);
        req.extend_from_slice(b"\r\n");
        c.roundtrip(&req, b"STORED\r\n");
    }
    let mut req = Vec::new();
    for round in 0..10 {
        let i = round % 4;
        req.extend_from_slice(
            format!("get {} {}\r\nmg {} v\r\n", key(i), key(3 - i), key(i)).as_bytes(),
        );
    }
    c.send(&req);
    std::thread::sleep(std::time::Duration::from_millis(300));
    for round in 0..10 {
        let i = round % 4;
        for (k, head) in [
            (i, format!("VALUE {} 0 {n}\r\n", key(i))),
            (3 - i, format!("VALUE {} 0 {n}\r\n", key(3 - i))),
        ] {
            c.expect(head.as_bytes());
            let v = c.read_n(n + 2);
            assert!(
                v == [&value(ids[k], n).0[..], b"\r\n"].concat(),
                "get {}",
                key(k)
            );
        }
        c.expect(b"END\r\n");
        c.expect(format!("VA {n}\r\n").as_bytes());
        let v = c.read_n(n + 2);
        assert!(
            v == [&value(ids[i], n).0[..], b"\r\n"].concat(),
            "mg {}",
            key(i)
        );
    }
    c.roundtrip(b"mn\r\n", b"MN\r\n");
}

#[test]
fn large_sets_split_at_every_point_around_their_trailer_are_stored_whole() {
    // A value received into its item (longer than the read buffer's 16 KiB) sent in two
    // writes, split at every byte from 16 before the value's end to the middle of the
    // next request: the value's end, its `\r\n` and the next request may arrive in one
    // read or in several.
    let server = ServerProc::start(&["-m", "64"]);
    let n = 100_000;
    for proto in ["text", "meta"] {
        let mut c = integration_tests::Client::connect(server.addr);
        for (round, good) in [(0usize, true), (1, false)] {
            let id = id_of(round, 1, 0);
            let v = value(id, n).0;
            let k = key(round);
            let (line, stored, get, head) = match proto {
                "text" => (
                    format!("set {k} 0 0 {n}\r\n"),
                    &b"STORED\r\n"[..],
                    format!("get {k}\r\n"),
                    format!("VALUE {k} 0 {n}\r\n"),
                ),
                _ => (
                    format!("ms {k} {n} T0\r\n"),
                    &b"HD\r\n"[..],
                    format!("mg {k} v\r\n"),
                    format!("VA {n}\r\n"),
                ),
            };
            let mut req = line.clone().into_bytes();
            req.extend_from_slice(&v);
            req.extend_from_slice(if good { b"\r\n" } else { b"xy" });
            req.extend_from_slice(get.as_bytes());
            let end = line.len() + n;
            for split in end - 16..=end + 2 + get.len() / 2 {
                c.send(&req[..split]);
                // Pacing only: lets the server read the first part on its own.
                thread::sleep(std::time::Duration::from_millis(2));
                c.send(&req[split..]);
                if good {
                    c.expect(stored);
                    c.expect(head.as_bytes());
                    let got = c.read_n(n + 2);
                    assert!(
                        got == [&v[..], b"\r\n"].concat(),
                        "{proto} split at {split}"
                    );
                    if proto == "text" {
                        c.expect(b"END\r\n");
                    }
                } else {
                    // memcached's answer to a value not followed by `\r\n`; the item is
                    // not stored and the next request is parsed after the two bytes.
                    c.expect(b"CLIENT_ERROR bad data chunk\r\n");
                    c.expect(if proto == "text" {
                        &b"END\r\n"[..]
                    } else {
                        b"EN\r\n"
                    });
                }
            }
        }
    }
}

#[test]
fn readers_of_the_same_large_keys_at_once_see_whole_values_while_replaced() {
    // Several connections read the same few chained values at once (the shard's readers
    // run together) while one connection replaces and deletes them under the readers.
    let server = ServerProc::start(&["-m", "256", "-t", "2"]);
    let addr = server.addr;
    let sizes = Arc::new(vec![64 * 1024 + 1, 300_000, largest_value(addr)]);
    let mut setup = KvClient::connect(addr, Proto::Text);
    for (i, &n) in sizes.iter().enumerate() {
        let id = id_of(i, 7, 0);
        let r = setup.run(&key(i), &Cmd::Set(write(id)), &value(id, n));
        assert!(matches!(r, Reply::Stored(_)), "preload of {n} bytes: {r:?}");
    }
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..6 {
        let (sizes, done) = (Arc::clone(&sizes), Arc::clone(&done));
        let proto = PROTOS[r % 3];
        readers.push(thread::spawn(move || {
            let mut c = KvClient::connect(addr, proto);
            let (mut reads, mut hits) = (0u64, 0u64);
            while !done.load(Ordering::Relaxed) || reads < 100 {
                let i = (reads as usize + r) % sizes.len();
                let reply = c.run(&key(i), &Cmd::Get, &Bytes(Vec::new()));
                check_read(&reply, i, sizes[i], proto);
                hits += u64::from(matches!(reply, Reply::Value { .. }));
                reads += 1;
            }
            hits
        }));
    }
    let mut rng = Rng(0x1a26e);
    for round in 0..300 {
        let i = round % sizes.len();
        let delete = rng.below(6) == 0;
        set_or_delete(
            &mut setup,
            Proto::Text,
            i,
            delete,
            id_of(i, round % 7, round),
            sizes[i],
        );
    }
    done.store(true, Ordering::Relaxed);
    let hits: u64 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    // Most reads find a value: a delete is followed by a set of the key within 3 rounds.
    assert!(hits > 300, "only {hits} hits");
}
