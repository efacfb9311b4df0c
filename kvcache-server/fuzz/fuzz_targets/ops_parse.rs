//! Feeds the operator's command lines (`lru_crawler`, `lru`, `cache_memlimit`,
//! `stats detail`, `watch`, with arbitrary arguments) to the text parser and checks what
//! it accepts against memcached's limits, and that dump keys URL-encode reversibly.
#![no_main]

use kvcache_server::protocol::text::ops::{uri_encode, ClassFilter, OpsRequest};
use kvcache_server::protocol::text::{self, Request};
use libfuzzer_sys::fuzz_target;

const HEADS: &[&[u8]] = &[
    b"lru_crawler ",
    b"lru ",
    b"cache_memlimit ",
    b"stats detail ",
    b"watch ",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut line = HEADS[usize::from(pick) % HEADS.len()].to_vec();
    line.extend_from_slice(rest);
    line.extend_from_slice(b"\r\n");
    if let Ok((req, n)) = text::parse(&line, 4096) {
        assert!(n > 0 && n <= line.len());
        if let Request::Ops(op) = req {
            match op {
                OpsRequest::Dump { classes, .. } | OpsRequest::Crawl(classes) => {
                    if let ClassFilter::Ids(_) = classes {
                        // memcached's ids: 1 to 63.
                        assert!(!classes.covers(0) && !(64..256).any(|id| classes.covers(id)));
                    }
                }
                OpsRequest::MemLimit { mb, .. } => assert!((8..=1_000_000_000).contains(&mb)),
                OpsRequest::CrawlerSleep(us) => assert!(us <= 1_000_000),
                OpsRequest::LruTune { hot, warm } => assert!(hot + warm <= 80),
                _ => {}
            }
        }
    }
    // Dump keys: only unreserved characters and %XX, decoding to the key.
    let mut enc = Vec::new();
    uri_encode(&mut enc, rest);
    let mut dec = Vec::new();
    let mut i = 0;
    while i < enc.len() {
        let b = enc[i];
        if b == b'%' {
            let hex = std::str::from_utf8(&enc[i + 1..i + 3]).unwrap();
            dec.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            assert!(b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            dec.push(b);
            i += 1;
        }
    }
    assert_eq!(dec, rest);
});
