//! Parses arbitrary bytes as meta requests (or binary packets when the first byte is
//! 0x80) and executes them against a small store, as a connection would: no panic, no
//! leak (ASan), every reply is complete (meta replies end in `\r\n`, binary responses
//! are header + exactly their body length), and swallow counts stay within the input
//! limits.
#![no_main]

use std::sync::OnceLock;

use kvcache_server::exec::{self, After};
use kvcache_server::protocol::text::ParseError;
use kvcache_server::protocol::{binary, meta};
use kvcache_server::store::{Store, StoreConfig};
use libfuzzer_sys::fuzz_target;

const MAX_DATA: usize = 4096;

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut cfg = StoreConfig::new(8 << 20);
        cfg.item_size_max = 64 << 10;
        Store::new(cfg).expect("store")
    })
}

fuzz_target!(|data: &[u8]| {
    let s = store();
    let mut buf = data;
    let is_binary = data.first() == Some(&binary::REQ_MAGIC);
    let mut out = Vec::new();
    while !buf.is_empty() {
        let before = out.len();
        let (after, used) = if is_binary {
            match binary::parse(buf, MAX_DATA) {
                Ok((pkt, n)) => {
                    let mut stats = |_: &[u8], o: &mut Vec<u8>| {
                        o.extend_from_slice(b"STAT pid 1\r\n");
                        true
                    };
                    (exec::binary::execute(s, &pkt, &mut out, &mut stats), n)
                }
                Err(ParseError::Incomplete { .. }) | Err(ParseError::Close) => break,
            }
        } else {
            match meta::parse(buf, MAX_DATA) {
                Ok((req, n)) => (exec::meta::execute(s, &req, &mut out), n),
                Err(_) => break,
            }
        };
        let reply = &out[before..];
        if is_binary {
            let mut rest = reply;
            while !rest.is_empty() {
                assert!(rest.len() >= binary::HEADER_LEN && rest[0] == binary::RES_MAGIC);
                let body = u32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
                assert!(rest.len() >= binary::HEADER_LEN + body);
                rest = &rest[binary::HEADER_LEN + body..];
            }
        } else {
            assert!(reply.is_empty() || reply.ends_with(b"\r\n"));
        }
        buf = &buf[used..];
        match after {
            After::Continue => {}
            After::Swallow(n) => {
                assert!(n <= u32::MAX as usize + 2);
                buf = &buf[n.min(buf.len())..];
            }
            After::Close => break,
        }
    }
});
