//! Feeds arbitrary bytes to the text-protocol parser (handing meta lines to the meta
//! parser as a text connection does) and checks progress and limits.
#![no_main]

use kvcache_server::protocol::lex::{ParseError, KEY_MAX_LENGTH};
use kvcache_server::protocol::meta::{self, MetaRequest};
use kvcache_server::protocol::text::{self, Request};
use libfuzzer_sys::fuzz_target;

const MAX_DATA: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while !buf.is_empty() {
        let res = if text::is_meta(buf) {
            match meta::parse(buf, MAX_DATA) {
                Ok((MetaRequest::Value(h), n)) => {
                    // A head is returned only while its data block is incomplete.
                    assert_eq!(n, h.line_len);
                    assert!(buf.len() < h.line_len + h.vlen + 2 && h.vlen <= MAX_DATA);
                    break;
                }
                Ok((_, n)) => Ok(n),
                Err(e) => Err(e),
            }
        } else {
            match text::parse(buf, MAX_DATA) {
                // The front dispatch sends every meta line to the meta parser.
                Ok((Request::Meta, _)) => panic!("a meta line reached the text parser"),
                Ok((Request::Value(h), n)) => {
                    assert_eq!(n, h.line_len);
                    assert!(buf.len() < h.total_len() && h.vlen <= MAX_DATA);
                    let key = h.key.get(buf);
                    assert!(!key.is_empty() && key.len() <= KEY_MAX_LENGTH);
                    break;
                }
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
            }
        };
        match res {
            Ok(n) => {
                assert!(n > 0 && n <= buf.len());
                buf = &buf[n..];
            }
            Err(ParseError::Incomplete { need }) => {
                // Lines are incomplete only until their newline.
                assert_eq!(need, 0);
                assert!(!buf.contains(&b'\n'));
                break;
            }
            Err(ParseError::Close) => break,
        }
    }
});
