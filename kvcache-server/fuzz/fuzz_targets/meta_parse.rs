//! Feeds arbitrary bytes to the meta parser, request after request, and checks what a
//! connection relies on: progress, lengths inside the buffer, `Incomplete` stays
//! `Incomplete` on every prefix, limits hold, replies are well-formed lines.
#![no_main]

use kvcache_server::protocol::lex::{ParseError, KEY_MAX_LENGTH, MAX_LINE};
use kvcache_server::protocol::meta::{self, MetaRequest};
use libfuzzer_sys::fuzz_target;

const MAX_DATA: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while !buf.is_empty() {
        match meta::parse(buf, MAX_DATA) {
            Ok((req, used)) => {
                assert!(
                    used > 0 && used <= buf.len(),
                    "used {used} of {}",
                    buf.len()
                );
                // The request line ends with the first newline of the buffer.
                let nl = buf
                    .iter()
                    .position(|&b| b == b'\n')
                    .expect("a complete line");
                assert!(used > nl);
                check(&req, &buf[..used]);
                // Parsing is deterministic.
                assert_eq!(
                    meta::parse(buf, MAX_DATA).map(|(r, n)| (r, n)),
                    Ok((req, used))
                );
                buf = &buf[used..];
            }
            Err(ParseError::Incomplete { need }) => {
                assert!(need == 0 || need > buf.len());
                if need == 0 {
                    assert!(!buf.contains(&b'\n') && buf.len() <= MAX_LINE);
                }
                break;
            }
            Err(ParseError::Close) => {
                assert!(!buf.contains(&b'\n') && buf.len() > MAX_LINE);
                break;
            }
        }
    }
});

fn check(req: &MetaRequest<'_>, consumed: &[u8]) {
    let args = match req {
        MetaRequest::Get(a) | MetaRequest::Delete(a) => Some(a),
        MetaRequest::Arith { args, .. } => Some(args),
        MetaRequest::Set { args, data, .. } => {
            assert!(data.len() <= MAX_DATA);
            assert!(consumed.ends_with(b"\r\n"));
            Some(args)
        }
        MetaRequest::Value(h) => {
            // Only while the data block is incomplete; the head is the same once detached
            // from the buffer and attached to a copy.
            assert_eq!(consumed.len(), h.line_len);
            assert!(h.vlen <= MAX_DATA);
            let copy = consumed.to_vec();
            assert_eq!(h.detach(consumed).attach(&copy), *h);
            Some(&h.args)
        }
        MetaRequest::TooLarge { args, swallow } => {
            assert!(*swallow > MAX_DATA + 2);
            Some(args)
        }
        MetaRequest::Error { line, .. } => {
            assert!(line.ends_with(b"\r\n"));
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            None
        }
        MetaRequest::Debug { key } => {
            assert!(key.wire().len() <= KEY_MAX_LENGTH);
            None
        }
        MetaRequest::Noop => None,
    };
    if let Some(a) = args {
        assert!(!a.key.bytes().is_empty());
        assert!(a.key.wire().len() <= KEY_MAX_LENGTH);
        assert!(a.flags.tokens().len() <= meta::MAX_TOKENS - 2);
        for t in a.flags.tokens() {
            assert!(!t.is_empty());
            if t[0] == b'O' {
                assert!(t.len() <= meta::MAX_OPAQUE);
            }
        }
        // Replies built from any parsed request are single well-formed lines.
        let mut out = Vec::new();
        meta::write_get_miss(&mut out, a);
        meta::write_delete_reply(&mut out, a, meta::Status::NotFound);
        assert!(out.ends_with(b"\r\n"));
        // `q` hides the miss, never the NF.
        let lines = if a.flags.noreply { 1 } else { 2 };
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), lines);
    }
}
