//! Feeds arbitrary bytes to the text-protocol parser (handing meta lines to the meta
//! parser as the server does) and checks progress and limits.
#![no_main]

use kvcache_server::protocol::meta;
use kvcache_server::protocol::text::{self, ParseError, Request, KEY_MAX_LENGTH};
use libfuzzer_sys::fuzz_target;

const MAX_DATA: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while !buf.is_empty() {
        let res = match text::parse(buf, MAX_DATA) {
            Ok((Request::Meta, 0)) => meta::parse(buf, MAX_DATA).map(|(_, n)| n),
            Ok((req, n)) => {
                if let Request::Storage(s) = req {
                    assert!(s.key.len() <= KEY_MAX_LENGTH && s.data.len() <= MAX_DATA);
                }
                if let Request::Get { keys, .. } = req {
                    assert!(keys
                        .into_iter()
                        .all(|k| !k.is_empty() && k.len() <= KEY_MAX_LENGTH));
                }
                if let Request::SlabsClasses { list, .. } = req {
                    // Sizes of at most 9 digits, one per `-`-separated token.
                    if let Ok(sizes) = text::parse_class_list(list) {
                        assert_eq!(sizes.len(), list.split(|&b| b == b'-').count());
                        assert!(sizes.iter().all(|&s| s < 1_000_000_000));
                    }
                }
                Ok(n)
            }
            Err(e) => Err(e),
        };
        match res {
            Ok(n) => {
                assert!(n > 0 && n <= buf.len());
                // Only a request still waiting for its data block may be received.
                assert!(text::storage_head(buf, MAX_DATA).is_none());
                assert!(meta::set_head(buf, MAX_DATA).is_none());
                buf = &buf[n..];
            }
            Err(ParseError::Incomplete { need }) => {
                assert!(need == 0 || need > buf.len());
                // A line the receiver would start on asks for exactly what it expects.
                if let Some(h) = text::storage_head(buf, MAX_DATA) {
                    assert_eq!(need, h.line_len + h.vlen + 2);
                    assert!(h.key.len() <= KEY_MAX_LENGTH && h.vlen <= MAX_DATA);
                }
                if let Some(h) = meta::set_head(buf, MAX_DATA) {
                    assert_eq!(need, h.line_len + h.vlen + 2);
                    assert!(h.vlen <= MAX_DATA);
                }
                break;
            }
            Err(ParseError::Close) => break,
        }
    }
});
