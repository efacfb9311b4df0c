use super::parse::reply;
use super::*;
use crate::protocol::lex::{push_u64, ParseError};

const MAX: usize = 1 << 20;

fn one(buf: &[u8]) -> (Request<'_>, usize) {
    parse(buf, MAX).expect("complete request")
}

fn is_reply(buf: &[u8], line: &'static [u8], noreply: bool) {
    let (r, n) = one(buf);
    assert_eq!(
        r,
        Request::Reply { line, noreply },
        "{:?}",
        String::from_utf8_lossy(buf)
    );
    assert!(n > 0);
}

#[test]
fn set_with_data() {
    let buf = b"set foo 5 100 3\r\nbar\r\nget foo\r\n";
    let (r, n) = one(buf);
    assert_eq!(n, 22);
    let Request::Storage(s) = r else {
        panic!("{r:?}")
    };
    assert_eq!(s.kind, StorageKind::Set);
    assert_eq!(s.key, b"foo");
    assert_eq!(
        (s.flags, s.exptime, s.data, s.noreply),
        (5, 100, &b"bar"[..], false)
    );
    let (r, m) = one(&buf[n..]);
    let Request::Get { cas: false, keys } = r else {
        panic!("{r:?}")
    };
    assert_eq!(keys.collect::<Vec<_>>(), vec![&b"foo"[..]]);
    assert_eq!(m, 9);
}

/// The head [`parse`] returns for a storage line whose data block is incomplete.
fn storage_head(buf: &[u8], max: usize) -> Option<StorageHead> {
    match parse(buf, max) {
        Ok((Request::Value(h), n)) => {
            assert_eq!(n, h.line_len);
            Some(h)
        }
        _ => None,
    }
}

#[test]
fn storage_head_while_the_data_block_is_incomplete() {
    let full = b"cas k 3 -1 5 77 noreply\r\nhello\r\n";
    let line = 25;
    for cut in 0..full.len() {
        let h = storage_head(&full[..cut], MAX);
        if cut < line {
            assert_eq!(h, None, "cut {cut}");
            continue;
        }
        let h = h.unwrap_or_else(|| panic!("cut {cut}"));
        assert_eq!(
            (
                h.kind,
                h.key.get(full),
                h.flags,
                h.exptime,
                h.vlen,
                h.cas,
                h.noreply,
                h.line_len
            ),
            (StorageKind::Cas, &b"k"[..], 3, -1, 5, 77, true, line)
        );
        assert_eq!(h.total_len(), full.len());
        // The head makes the request once the data block is there.
        let s = h.request(full);
        assert_eq!((s.key, s.data, s.cas), (&b"k"[..], &b"hello"[..], 77));
    }
    assert_eq!(storage_head(full, MAX), None);
    // Lines the parser answers by themselves are not received.
    for bad in [
        &b"set k 0 0\r\n"[..],
        b"set k 0 0 x\r\n",
        b"set k 0 0 2000000\r\n",
        b"get k\r\n",
        b"ms k 5\r\n",
    ] {
        assert_eq!(storage_head(bad, MAX), None, "{bad:?}");
    }
}

#[test]
fn incomplete_until_data_arrives() {
    let full = b"cas k 0 0 5 77 noreply\r\nhello\r\n";
    for cut in 0..full.len() {
        assert!(
            matches!(
                parse(&full[..cut], MAX),
                Err(ParseError::Incomplete { need: 0 }) | Ok((Request::Value(_), 24))
            ),
            "cut {cut}"
        );
    }
    let (r, n) = one(full);
    assert_eq!(n, full.len());
    let Request::Storage(s) = r else { panic!() };
    assert_eq!(
        (s.kind, s.cas, s.noreply, s.data),
        (StorageKind::Cas, 77, true, &b"hello"[..])
    );
}

#[test]
fn bad_data_chunk_consumes_block() {
    let buf = b"set a 0 0 1\r\nxy\r\n";
    let (r, n) = one(buf);
    assert_eq!(r, reply(reply::BAD_CHUNK, false));
    assert_eq!(n, 13 + 3);
    // The leftover "\n" is an empty line: ERROR.
    is_reply(&buf[n..], reply::ERROR, false);
}

#[test]
fn storage_line_errors() {
    let long = [b"set ".as_ref(), &[b'k'; 251], b" 0 0 1\r\nx\r\n"].concat();
    is_reply(&long, reply::BAD_FORMAT, false);
    is_reply(b"set a 0 0 -1\r\nx\r\n", reply::BAD_FORMAT, false);
    is_reply(b"set a 0 0 abc\r\n", reply::BAD_FORMAT, false);
    is_reply(b"set a -1 0 1\r\n", reply::BAD_FORMAT, false);
    is_reply(b"set a 0 x 1 noreply\r\n", reply::BAD_FORMAT, true);
    is_reply(b"set a 0 0\r\n", reply::ERROR, false);
    is_reply(b"set a 0 0 1 noreply extra\r\n", reply::ERROR, false);
    is_reply(b"cas a 0 0 1\r\n", reply::ERROR, false);
    is_reply(b"cas a 0 0 1 abc\r\n", reply::BAD_FORMAT, false);
    // Flags of 2^32 are truncated as by memcached; a bad line is not swallowed.
    let (r, _) = one(b"set a 4294967296 0 1\r\nx\r\n");
    assert!(matches!(
        r,
        Request::Storage(StorageRequest { flags: 0, .. })
    ));
}

#[test]
fn too_large_swallows() {
    let (r, n) = parse(b"set a 0 0 2000\r\n", 1000).unwrap();
    assert_eq!(
        r,
        Request::TooLarge {
            kind: StorageKind::Set,
            key: b"a",
            noreply: false,
            swallow: 2002
        }
    );
    assert_eq!(n, 16);
    let (r, _) = parse(b"add a 0 0 2000 noreply\r\n", 1000).unwrap();
    assert!(matches!(
        r,
        Request::TooLarge {
            kind: StorageKind::Add,
            noreply: true,
            ..
        }
    ));
}

#[test]
fn long_lines() {
    assert_eq!(
        parse(&[b'x'; 2048], MAX),
        Err(ParseError::Incomplete { need: 0 })
    );
    assert_eq!(parse(&[b'x'; 2049], MAX), Err(ParseError::Close));
    let get = [b"get ".as_ref(), &[b'x'; 3000]].concat();
    assert_eq!(parse(&get, MAX), Err(ParseError::Incomplete { need: 0 }));
    let get = [b"get ".as_ref(), &[b'x'; 3000], b"\r\n"].concat();
    assert_eq!(one(&get).0, Request::RetrievalKeyTooLong);
}

#[test]
fn simple_commands() {
    is_reply(b"foo\r\n", reply::ERROR, false);
    is_reply(b"\r\n", reply::ERROR, false);
    is_reply(b"GET a\r\n", reply::ERROR, false);
    is_reply(b"get\r\n", reply::ERROR, false);
    is_reply(b"incr a -1\r\n", reply::BAD_DELTA, false);
    is_reply(b"incr a 1.5\r\n", reply::BAD_DELTA, false);
    is_reply(b"incr a\r\n", reply::ERROR, false);
    is_reply(b"delete a 1\r\n", reply::BAD_DELETE, false);
    is_reply(b"delete a 1 noreply\r\n", reply::BAD_DELETE, true);
    is_reply(b"touch a abc\r\n", reply::BAD_EXPTIME, false);
    is_reply(b"flush_all abc\r\n", reply::BAD_EXPTIME, false);
    is_reply(b"verbosity\r\n", reply::ERROR, false);
    // "verbosity noreply": the bad level is not answered, as in memcached.
    is_reply(b"verbosity noreply\r\n", reply::BAD_FORMAT, true);
    is_reply(b"verbosity abc\r\n", reply::BAD_FORMAT, false);
    is_reply(b"gat abc a\r\n", reply::BAD_EXPTIME, false);
    is_reply(b"gat 10\r\n", reply::END, false);
    is_reply(b"stats foo\r\n", reply::ERROR, false);
    is_reply(b"mz\r\n", reply::ERROR, false);
    assert_eq!(one(b"shutdown\r\n").0, Request::Shutdown(ShutdownMode::Now));
    assert_eq!(
        one(b"shutdown graceful\r\n").0,
        Request::Shutdown(ShutdownMode::Graceful)
    );
    assert_eq!(
        one(b"shutdown graceful now\r\n").0,
        Request::Shutdown(ShutdownMode::Invalid)
    );
    assert_eq!(
        one(b"shutdown x\r\n").0,
        Request::Shutdown(ShutdownMode::Invalid)
    );
    assert_eq!(one(b"mg foo v\r\n"), (Request::Meta, 0));
    assert_eq!(
        one(b"delete a 0 noreply\r\n").0,
        Request::Delete {
            key: b"a",
            noreply: true
        }
    );
    assert_eq!(
        one(b"incr n 18446744073709551615\r\n").0,
        Request::Arith {
            key: b"n",
            delta: u64::MAX,
            incr: true,
            noreply: false
        }
    );
    assert_eq!(
        one(b"flush_all 10 noreply\r\n").0,
        Request::FlushAll {
            delay: 10,
            noreply: true
        }
    );
    assert_eq!(
        one(b"flush_all noreply\r\n").0,
        Request::FlushAll {
            delay: 0,
            noreply: true
        }
    );
    assert_eq!(one(b"  get a  b \n").1, 12);
    assert_eq!(
        one(b"stats sizes_fine\r\n").0,
        Request::Stats(StatsKind::SizesFine)
    );
    assert_eq!(one(b"quit x\r\n").0, Request::Quit);
}

#[test]
fn http_request_lines_close() {
    // Each checked against memcached 1.6.18: closed without a reply.
    for line in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"POST /x HTTP/1.0\r\n",
        b"HEAD / HTTP/1.1\n",
        b"HTTP/1.1\r\n",
        b"GET  /  HTTP/1.1 \r\n",
        b"FOO / HTTP/1.1\r\n",
    ] {
        assert_eq!(parse(line, MAX), Err(ParseError::Close), "{line:?}");
    }
    // ... and answered as usual.
    is_reply(b"GET / HTTP/1.1 x\r\n", reply::ERROR, false);
    is_reply(b"GET / http/1.1\r\n", reply::ERROR, false);
    is_reply(b"x HTTP/1.1\r\n", reply::ERROR, false);
    is_reply(b"set HTTP/1.1\r\n", reply::ERROR, false);
    is_reply(b"replace HTTP/1.1\r\n", reply::ERROR, false);
    assert_eq!(one(b"version HTTP/1.1\r\n").0, Request::Version);
    assert!(matches!(
        one(b"get foo HTTP/1.1\r\n").0,
        Request::Get { .. }
    ));
    // memcached's tokenizer stops at 23 tokens.
    let mut long = b"xx".to_vec();
    for _ in 0..21 {
        long.extend_from_slice(b" b");
    }
    let mut closes = long.clone();
    closes.extend_from_slice(b" HTTP/1.1\r\n");
    assert_eq!(parse(&closes, MAX), Err(ParseError::Close));
    long.extend_from_slice(b" b HTTP/1.1\r\n");
    is_reply(&long, reply::ERROR, false);
}

#[test]
fn writers() {
    let mut out = Vec::new();
    write_value(&mut out, b"k", 7, b"abc", Some(12));
    write_number(&mut out, 0);
    push_u64(&mut out, u64::MAX);
    assert_eq!(out, b"VALUE k 7 3 12\r\nabc\r\n0\r\n18446744073709551615");
}

proptest::proptest! {
    #[test]
    fn storage_round_trip(key in "[a-z]{1,250}", flags: u32, exp in -100i32..100_000, data in proptest::collection::vec(proptest::num::u8::ANY, 0..300), noreply: bool) {
        let mut buf = format!("set {key} {flags} {exp} {}{}\r\n", data.len(), if noreply { " noreply" } else { "" }).into_bytes();
        buf.extend_from_slice(&data);
        buf.extend_from_slice(b"\r\n");
        let (r, n) = parse(&buf, MAX).unwrap();
        proptest::prop_assert_eq!(n, buf.len());
        let Request::Storage(s) = r else { panic!() };
        proptest::prop_assert_eq!(s.key, key.as_bytes());
        proptest::prop_assert_eq!((s.flags, s.exptime, s.noreply), (flags, i64::from(exp), noreply));
        proptest::prop_assert_eq!(s.data, &data[..]);
    }

    #[test]
    fn never_panics(buf in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        if let Ok((_, n)) = parse(&buf, 100) {
            proptest::prop_assert!(n <= buf.len());
        }
    }
}
