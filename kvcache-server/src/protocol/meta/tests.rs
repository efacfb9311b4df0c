use super::parse::err;
use super::*;
use crate::protocol::lex::{ParseError, MAX_LINE};
use base64::Engine as _;

const MAX: usize = 1 << 20;

fn one(buf: &[u8]) -> (MetaRequest<'_>, usize) {
    parse(buf, MAX).expect("complete request")
}

fn error_of(buf: &[u8]) -> (&'static [u8], usize) {
    match one(buf).0 {
        MetaRequest::Error { line, swallow } => (line, swallow),
        other => panic!(
            "expected an error for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

/// Request -> reply pairs answered by memcached 1.6.18 (errors the parser decides).
const ERRORS: &[(&[u8], &[u8], usize)] = &[
    (b"mg\r\n", b"ERROR\r\n", 0),
    (b"md\r\n", b"ERROR\r\n", 0),
    (b"mz foo\r\n", b"ERROR\r\n", 0),
    (b"mg foo zz\r\n", b"CLIENT_ERROR invalid flag\r\n", 0),
    (b"mg foo k k\r\n", b"CLIENT_ERROR duplicate flag\r\n", 0),
    (b"mg foo Ox k Oy\r\n", b"CLIENT_ERROR duplicate flag\r\n", 0),
    (
        b"mg foo T\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
        0,
    ),
    (
        b"mg foo Tx Ny\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
        0,
    ),
    (
        b"mg foo a b c d e f g h i j k l m n o p q r\r\n",
        b"CLIENT_ERROR options flags are too long\r\n",
        0,
    ),
    (
        b"mg foo Oaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        b"CLIENT_ERROR opaque token too long\r\n",
        0,
    ),
    (
        b"ms foo\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
        0,
    ),
    (
        b"ms foo bar\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
        0,
    ),
    (b"ms foo 2 zz\r\n", b"CLIENT_ERROR invalid flag\r\n", 4),
    (
        b"ms foo 2 T\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
        4,
    ),
    (
        b"ms foo 2 F-1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
        4,
    ),
    (
        b"ms foo 2 F-1 Tx\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
        4,
    ),
    (
        b"ms foo 2 MX\r\n",
        b"CLIENT_ERROR invalid mode for ms M token\r\n",
        4,
    ),
    (
        b"ms foo 2 c k O1 b\r\n",
        b"CLIENT_ERROR error decoding key\r\n",
        4,
    ),
    (
        b"md foo k k\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
        0,
    ),
    (
        b"ma foo zz\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
        0,
    ),
    (
        b"ma foo Dabc\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
        0,
    ),
    (
        b"ma foo MX\r\n",
        b"CLIENT_ERROR invalid mode for ma M token\r\n",
        0,
    ),
    (
        b"ma n4 N0 J18446744073709551616\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
        0,
    ),
    (b"me\r\n", b"CLIENT_ERROR bad command line format\r\n", 0),
];

#[test]
fn errors_match_memcached() {
    for &(req, line, swallow) in ERRORS {
        let (got, got_swallow) = error_of(req);
        assert_eq!(
            (String::from_utf8_lossy(got), got_swallow),
            (String::from_utf8_lossy(line), swallow),
            "request {:?}",
            String::from_utf8_lossy(req)
        );
    }
}

#[test]
fn opaque_limit_is_32_bytes_with_the_o() {
    let mut ok = b"mg foo O".to_vec();
    ok.extend_from_slice(&[b'a'; 31]);
    ok.extend_from_slice(b"\r\n");
    assert!(matches!(one(&ok).0, MetaRequest::Get(_)));
    let mut bad = b"mg foo O".to_vec();
    bad.extend_from_slice(&[b'a'; 32]);
    bad.extend_from_slice(b"\r\n");
    assert_eq!(error_of(&bad).0, reply::OPAQUE_TOO_LONG);
}

#[test]
fn key_limit() {
    let mut line = b"mg ".to_vec();
    line.extend_from_slice(&[b'k'; 251]);
    line.extend_from_slice(b" v\r\n");
    assert_eq!(error_of(&line).0, reply::BAD_FORMAT);
    line.remove(3);
    assert!(matches!(one(&line).0, MetaRequest::Get(_)));
}

#[test]
fn get_flags_parse() {
    let (req, n) = one(b"mg foo v k Oab T30 N10 R5 q u\r\nrest");
    assert_eq!(n, 31);
    let MetaRequest::Get(a) = req else { panic!() };
    assert_eq!(a.key.bytes(), b"foo");
    assert!(a.flags.value && a.flags.noreply && a.flags.no_update);
    assert_eq!(a.flags.ttl, Some(30));
    assert_eq!(a.flags.vivify, Some(10));
    assert_eq!(a.flags.recache, Some(5));
    assert_eq!(a.flags.tokens().len(), 8);
    assert_eq!(
        one(b"mg foo\n").0,
        MetaRequest::Get(a_without_flags(b"foo"))
    );
}

fn a_without_flags(key: &[u8]) -> MetaArgs<'_> {
    MetaArgs {
        key: Key::plain(key),
        flags: MetaFlags::new(),
    }
}

/// The head [`parse`] returns for an `ms` whose data block is incomplete.
fn set_head(buf: &[u8], max: usize) -> Option<SetHead<'_>> {
    match parse(buf, max) {
        Ok((MetaRequest::Value(h), n)) => {
            assert_eq!(n, h.line_len);
            Some(h)
        }
        _ => None,
    }
}

#[test]
fn set_head_while_the_data_block_is_incomplete() {
    let full = b"ms k 5 T9 F3 MR q\r\nhello\r\n";
    let line = 19;
    for cut in 0..full.len() {
        match set_head(&full[..cut], MAX) {
            None => assert!(cut < line, "cut {cut}"),
            Some(h) => {
                assert!(cut >= line);
                assert_eq!((h.vlen, h.line_len, h.mode), (5, line, SetMode::Replace));
                assert_eq!(
                    (
                        h.args.key.bytes(),
                        h.args.flags.ttl,
                        h.args.flags.client_flags
                    ),
                    (&b"k"[..], Some(9), 3)
                );
                assert!(h.args.flags.noreply);
                // Detached from the buffer and attached again elsewhere, it is the same.
                let moved = full.to_vec();
                assert_eq!(h.detach(&full[..cut]).attach(&moved), h);
            }
        }
    }
    assert_eq!(set_head(full, MAX), None);
    for bad in [
        &b"ms k 5 MX\r\n"[..],
        b"ms k 5 zz\r\n",
        b"ms k 2000000\r\n",
        b"ms k\r\n",
        b"mg k 5\r\n",
        b"set k 0 0 5\r\n",
    ] {
        assert_eq!(set_head(bad, MAX), None, "{bad:?}");
    }
}

#[test]
fn set_waits_for_data_and_checks_chunk() {
    let full = b"ms foo 5 T10 F7 MA C99 I\r\nhello\r\n";
    for cut in 0..full.len() {
        assert!(
            matches!(
                parse(&full[..cut], MAX),
                Err(ParseError::Incomplete { need: 0 }) | Ok((MetaRequest::Value(_), 26))
            ),
            "cut {cut}"
        );
    }
    let (req, n) = one(full);
    assert_eq!(n, full.len());
    let MetaRequest::Set { args, mode, data } = req else {
        panic!()
    };
    assert_eq!((mode, data), (SetMode::Append, &b"hello"[..]));
    assert_eq!(args.flags.client_flags, 7);
    assert_eq!(args.flags.compare_cas, Some(99));
    assert!(args.flags.invalidate);
    assert_eq!(one(b"ms foo 2\r\nabc\r\n"), (err(reply::BAD_CHUNK), 14));
}

#[test]
fn too_large_is_reported_before_the_data() {
    let (req, n) = parse(b"ms big 2000000 T0\r\n", MAX).unwrap();
    assert_eq!(n, 19);
    assert!(matches!(
        req,
        MetaRequest::TooLarge {
            swallow: 2000002,
            ..
        }
    ));
}

#[test]
fn long_partial_line_closes() {
    assert_eq!(
        parse(&[b'm'; 100], MAX),
        Err(ParseError::Incomplete { need: 0 })
    );
    assert_eq!(parse(&[b'm'; 2049], MAX), Err(ParseError::Close));
}

#[test]
fn arith_modes() {
    for (line, incr) in [
        (&b"ma k\r\n"[..], true),
        (b"ma k MI\r\n", true),
        (b"ma k M+\r\n", true),
        (b"ma k MD\r\n", false),
        (b"ma k M-\r\n", false),
    ] {
        let MetaRequest::Arith { incr: got, .. } = one(line).0 else {
            panic!()
        };
        assert_eq!(got, incr);
    }
    let MetaRequest::Arith { args, .. } = one(b"ma k N0 J7 D20\r\n").0 else {
        panic!()
    };
    assert_eq!((args.flags.initial, args.flags.delta), (7, 20));
}

#[test]
fn base64_keys() {
    let MetaRequest::Get(a) = one(b"mg Zm9v b k v\r\n").0 else {
        panic!()
    };
    assert_eq!(a.key.bytes(), b"foo");
    let mut out = Vec::new();
    write_get_miss(&mut out, &a);
    assert_eq!(out, b"EN kZm9v b\r\n");
}

#[test]
fn reply_writers_match_memcached() {
    let MetaRequest::Get(a) = one(b"mg foo v k f t c s\r\n").0 else {
        panic!()
    };
    let info = ItemInfo {
        value_len: 3,
        client_flags: 0,
        cas: 1,
        ttl: None,
        old_ttl: None,
        last_access: 2,
        fetched: true,
    };
    let mut out = Vec::new();
    write_get_hit(&mut out, &a, &info, WinFlags::default(), b"bar");
    assert_eq!(out, b"VA 3 kfoo f0 t-1 c1 s3\r\nbar\r\n");

    let MetaRequest::Get(a) = one(b"mg foo h l t v\r\n").0 else {
        panic!()
    };
    out.clear();
    write_get_hit(&mut out, &a, &info, WinFlags::default(), b"bar");
    assert_eq!(out, b"VA 3 h1 l2 t-1\r\nbar\r\n");

    let MetaRequest::Get(a) = one(b"mg k1 v c t\r\n").0 else {
        panic!()
    };
    out.clear();
    let info = ItemInfo {
        value_len: 2,
        cas: 10,
        ttl: Some(29),
        old_ttl: Some(29),
        ..info
    };
    let win = WinFlags {
        won: false,
        stale: true,
        already_sent: true,
    };
    write_get_hit(&mut out, &a, &info, win, b"xy");
    assert_eq!(out, b"VA 2 c10 t29 Z X\r\nxy\r\n");

    let MetaRequest::Get(a) = one(b"mg foo c f h k l O s t u v\r\n").0 else {
        panic!()
    };
    out.clear();
    write_get_miss(&mut out, &a);
    assert_eq!(out, b"EN kfoo O\r\n");

    let MetaRequest::Set { args, .. } = one(b"ms k1 2 c k O9 T0 F5\r\nab\r\n").0 else {
        panic!()
    };
    out.clear();
    write_set_reply(&mut out, &args, Status::Stored, 7);
    assert_eq!(out, b"HD c7 kk1 O9\r\n");
    out.clear();
    write_set_reply(&mut out, &args, Status::Exists, 7);
    assert_eq!(out, b"EX c0 kk1 O9\r\n");

    let MetaRequest::Arith { args, .. } = one(b"ma n MI D5 v t c\r\n").0 else {
        panic!()
    };
    out.clear();
    let r = ArithResult {
        value: 5,
        cas: 5,
        ttl: None,
    };
    write_arith_reply(&mut out, &args, Status::Stored, Some(&r));
    assert_eq!(out, b"VA 1 t-1 c5\r\n5\r\n");

    let MetaRequest::Delete(args) = one(b"md k1 I T30 k O5\r\n").0 else {
        panic!()
    };
    out.clear();
    write_delete_reply(&mut out, &args, Status::Stored);
    assert_eq!(out, b"HD kk1 O5\r\n");

    let MetaRequest::Debug { key } = one(b"me foo\r\n").0 else {
        panic!()
    };
    out.clear();
    let d = DebugInfo {
        ttl: None,
        last_access: 2,
        cas: 1,
        fetched: true,
        class: 1,
        size: 65,
    };
    write_debug(&mut out, &key, &d);
    assert_eq!(out, b"ME foo exp=-1 la=2 cas=1 fetch=yes cls=1 size=65\r\n");
}

#[test]
fn quiet_mode_hides_nominal_replies_only() {
    let MetaRequest::Set { args, .. } = one(b"ms k 1 q\r\nx\r\n").0 else {
        panic!()
    };
    let mut out = Vec::new();
    write_set_reply(&mut out, &args, Status::Stored, 1);
    assert!(out.is_empty());
    write_set_reply(&mut out, &args, Status::NotStored, 1);
    assert_eq!(out, b"NS\r\n");
    let MetaRequest::Delete(args) = one(b"md k q\r\n").0 else {
        panic!()
    };
    out.clear();
    write_delete_reply(&mut out, &args, Status::NotFound);
    assert_eq!(out, b"NF\r\n");
    let MetaRequest::Get(args) = one(b"mg k q\r\n").0 else {
        panic!()
    };
    out.clear();
    write_get_miss(&mut out, &args);
    assert!(out.is_empty());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(0x21u8..0x7f, 1..=250)
    }

    proptest! {
        #[test]
        fn set_round_trips(
            key in key(),
            data in proptest::collection::vec(any::<u8>(), 0..300),
            flags in any::<u32>(),
            ttl in any::<i32>(),
            cas in proptest::option::of(any::<u64>()),
            quiet in any::<bool>(),
            split in any::<prop::sample::Index>(),
        ) {
            let mut req = format!("ms {} {} F{flags} T{ttl}", String::from_utf8_lossy(&key), data.len()).into_bytes();
            // Printable ASCII keys survive the lossy conversion unchanged.
            if let Some(c) = cas { req.extend_from_slice(format!(" C{c}").as_bytes()); }
            if quiet { req.extend_from_slice(b" q"); }
            req.extend_from_slice(b"\r\n");
            req.extend_from_slice(&data);
            req.extend_from_slice(b"\r\n");
            let cut = split.index(req.len());
            let partial = matches!(parse(&req[..cut], MAX), Err(ParseError::Incomplete { .. }) | Ok((MetaRequest::Value(_), _)));
            prop_assert!(partial);
            let (r, n) = parse(&req, MAX).unwrap();
            prop_assert_eq!(n, req.len());
            let MetaRequest::Set { args, mode, data: got } = r else { panic!("{r:?}") };
            prop_assert_eq!(mode, SetMode::Set);
            prop_assert_eq!(got, &data[..]);
            prop_assert_eq!(args.key.bytes(), &key[..]);
            prop_assert_eq!(args.flags.client_flags, flags);
            prop_assert_eq!(args.flags.ttl, Some(i64::from(ttl)));
            prop_assert_eq!(args.flags.compare_cas, cas);
            prop_assert_eq!(args.flags.noreply, quiet);
        }

        #[test]
        fn base64_keys_round_trip(bin in proptest::collection::vec(any::<u8>(), 1..=186)) {
            let enc = base64::engine::general_purpose::STANDARD.encode(&bin);
            let req = format!("mg {enc} b k v\r\n");
            let MetaRequest::Get(a) = parse(req.as_bytes(), MAX).unwrap().0 else { panic!() };
            prop_assert_eq!(a.key.bytes(), &bin[..]);
            let mut out = Vec::new();
            write_get_miss(&mut out, &a);
            prop_assert_eq!(out, format!("EN k{enc} b\r\n").into_bytes());
        }

        #[test]
        fn garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut input = b"m".to_vec();
            input.extend_from_slice(&buf);
            match parse(&input, 1000) {
                Ok((_, n)) => prop_assert!(n > 0 && n <= input.len()),
                Err(ParseError::Incomplete { need }) => prop_assert!(need == 0 || need > input.len()),
                Err(ParseError::Close) => prop_assert!(input.len() > MAX_LINE),
            }
        }
    }
}
