//! Feeds arbitrary bytes to the binary-protocol parser, packet after packet, and checks
//! progress, lengths, limits and that every response written for a parsed packet has a
//! header whose body length matches what follows it.
#![no_main]

use kvcache_server::protocol::binary::{self, Command, Packet, HEADER_LEN};
use kvcache_server::protocol::lex::{ParseError, KEY_MAX_LENGTH};
use libfuzzer_sys::fuzz_target;

const MAX_DATA: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while !buf.is_empty() {
        match binary::parse(buf, MAX_DATA) {
            Ok((Packet::Value(h), used)) => {
                // Only while the value is incomplete.
                assert_eq!(used, h.head_len);
                assert!(buf.len() < h.head_len + h.vlen && h.vlen <= MAX_DATA);
                assert_eq!(
                    h.head_len,
                    HEADER_LEN + usize::from(h.header.extlen) + usize::from(h.header.keylen)
                );
                let key = h.key.get(buf);
                assert!(!key.is_empty() && key.len() <= KEY_MAX_LENGTH);
                break;
            }
            Ok((pkt, used)) => {
                assert!(used >= HEADER_LEN && used <= buf.len());
                check(&pkt, used);
                buf = &buf[used..];
            }
            Err(ParseError::Incomplete { need }) => {
                assert!(need > buf.len());
                break;
            }
            Err(ParseError::Close) => {
                assert_ne!(buf[0], binary::REQ_MAGIC);
                break;
            }
        }
    }
});

fn check(pkt: &Packet<'_>, used: usize) {
    let mut out = Vec::new();
    match pkt {
        Packet::Request { header, command } => {
            let (ext, key) = (usize::from(header.extlen), usize::from(header.keylen));
            assert!(key <= KEY_MAX_LENGTH);
            assert!(used <= HEADER_LEN + header.bodylen as usize);
            match command {
                Command::Store { key, value, .. } => {
                    assert!(!key.is_empty() && value.len() <= MAX_DATA);
                    assert_eq!(used, HEADER_LEN + header.bodylen as usize);
                    binary::write_ok(&mut out, header, 1);
                }
                Command::Get { key: k, .. } | Command::Touch { key: k, .. } => {
                    assert_eq!(k.len(), key);
                    binary::write_hit(&mut out, header, 0, 1, Some(k), Some(b"v"));
                    binary::write_miss_with_key(&mut out, header, k);
                }
                _ => {
                    assert_eq!(used, HEADER_LEN + ext + key);
                    binary::write_error(&mut out, header, binary::Status::KeyNotFound);
                }
            }
        }
        Packet::TooLarge { swallow, key, .. } => {
            assert!(*swallow > MAX_DATA && key.len() <= KEY_MAX_LENGTH);
        }
        Packet::Error { header, status, .. } => binary::write_error(&mut out, header, *status),
        Packet::Value(_) => unreachable!("checked by the caller"),
    }
    // Every response is header + exactly bodylen bytes.
    let mut rest = &out[..];
    while !rest.is_empty() {
        assert!(rest.len() >= HEADER_LEN && rest[0] == binary::RES_MAGIC);
        let body = u32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
        assert!(rest.len() >= HEADER_LEN + body);
        rest = &rest[HEADER_LEN + body..];
    }
}
