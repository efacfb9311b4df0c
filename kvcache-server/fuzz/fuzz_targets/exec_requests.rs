//! Parses arbitrary bytes as meta requests (or binary packets when the first byte is
//! 0x80) and executes them against a small store, as a connection would, values in
//! flight included: no panic, no leak (ASan), every reply is complete (meta replies end
//! in `\r\n`, binary responses are header + exactly their body length), and swallow
//! counts stay within the input limits.
#![no_main]

use std::sync::OnceLock;

use kvcache_server::exec::context::testing::with_ctx;
use kvcache_server::exec::{self, After, Protocol, Receiving, Step};
use kvcache_server::protocol::{binary, text};
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
    let mut input = data.to_vec();
    let proto = Protocol::of_first_byte(data.first().copied().unwrap_or(0));
    let is_binary = proto == Protocol::Binary;
    let mut out = Vec::new();
    let mut recv = None;
    let mut at = 0;
    with_ctx(s, MAX_DATA, |ctx| {
        while at < input.len() {
            let buf = &mut input[at..];
            // Text mode runs the meta commands only: the text protocol's `slabs`,
            // `flush_all` and `verbosity` would change the store the runs share.
            if !is_binary && recv.is_none() && !text::is_meta(buf) {
                break;
            }
            let before = out.len();
            let step = if recv.is_some() {
                Receiving::feed(ctx, &mut recv, buf, &mut out)
            } else {
                exec::run(ctx, proto, buf, &mut out, 0, &mut recv)
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
            match step {
                Step::Done { used, after } => {
                    at += used;
                    match after {
                        After::Continue | After::Sent => {}
                        After::Swallow(n) | After::SwallowThenReply(n) => {
                            assert!(n <= u32::MAX as usize + 2);
                            at += n.min(input.len() - at);
                        }
                        // A dump streams before the next request; a watcher reads no more.
                        After::Dump { .. } => {}
                        After::Close | After::Abort | After::Watch(_) => break,
                    }
                }
                Step::Incomplete { used, need } => {
                    at += used;
                    assert!(need == 0 || need > input.len() - at);
                    if used == 0 {
                        break;
                    }
                }
                Step::Close => break,
            }
        }
    });
    // A value still arriving gives its item back, as a closing connection does.
    if let Some(r) = recv {
        r.abandon(s);
    }
});
