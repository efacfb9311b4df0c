//! The front of execution: the request at the front of a connection's bytes is parsed,
//! once, by the parser of its protocol (a text connection's meta lines go straight to
//! the meta parser) and executed, or its value starts arriving.

use super::context::{After, Ctx, Step};
use super::value::{Head, Receiving};
use super::{binary, meta, text};
use crate::protocol::binary::{Packet, REQ_MAGIC};
use crate::protocol::lex::ParseError;
use crate::protocol::meta::MetaRequest;
use crate::protocol::text::Request;
use crate::protocol::{binary as binary_proto, meta as meta_proto, text as text_proto};

/// How a connection speaks, decided by its first byte (memcached's auto-negotiation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The text protocol and the meta commands.
    Text,
    /// The binary protocol.
    Binary,
}

impl Protocol {
    /// The protocol of a connection whose first byte is `b`.
    pub fn of_first_byte(b: u8) -> Protocol {
        if b == REQ_MAGIC {
            Protocol::Binary
        } else {
            Protocol::Text
        }
    }
}

/// Parses the request at the front of `buf` and executes it, appending its reply to
/// `out`; a storage request whose value has not all arrived goes into `recv` instead
/// (see [`Receiving`]), where [`Receiving::feed`] takes it on.
///
/// `written` is how many bytes at the front of `out` the socket already took. A
/// multi-key `get` that stops early (see [`text::OUT_BUDGET`]) blanks the keys it
/// answered in `buf` and consumes nothing: run it again once the output has drained.
#[inline]
pub fn run(
    ctx: &mut Ctx<'_>,
    proto: Protocol,
    buf: &mut [u8],
    out: &mut Vec<u8>,
    written: usize,
    recv: &mut Option<Receiving>,
) -> Step {
    let max = ctx.settings.item_size_max;
    let parsed = match proto {
        Protocol::Binary => match binary_proto::parse(buf, max) {
            Ok((Packet::Value(head), _)) => {
                return Receiving::start(ctx, Head::Binary(head), buf, out, recv)
            }
            Ok((pkt, used)) => Ok((binary::execute(ctx, &pkt, out), used)),
            Err(e) => Err(e),
        },
        Protocol::Text if text_proto::is_meta(buf) => {
            // `mn` makes memcached write its replies out.
            let sent = buf.starts_with(b"mn") && matches!(buf.get(2), Some(b' ' | b'\r' | b'\n'));
            match meta_proto::parse(buf, max) {
                Ok((MetaRequest::Value(head), _)) => {
                    let head = Head::Meta(head.detach(buf));
                    return Receiving::start(ctx, head, buf, out, recv);
                }
                Ok((req, used)) => match meta::execute(ctx, &req, out) {
                    After::Continue if sent => Ok((After::Sent, used)),
                    after => Ok((after, used)),
                },
                Err(e) => Err(e),
            }
        }
        Protocol::Text => match text_proto::parse(buf, max) {
            Ok((Request::Value(head), _)) => {
                return Receiving::start(ctx, Head::Text(head), buf, out, recv)
            }
            Ok((req, used)) => match text::execute(ctx, &req, out, written) {
                (after, None) => Ok((after, used)),
                (after, Some((from, to))) => {
                    // The tokenizer skips runs of spaces: the rest of the line runs as if
                    // the answered keys had never been there.
                    let base = buf.as_ptr() as usize;
                    buf[from - base..to - base].fill(b' ');
                    Ok((after, 0))
                }
            },
            Err(e) => Err(e),
        },
    };
    match parsed {
        Ok((after, used)) => Step::Done { used, after },
        Err(ParseError::Incomplete { need }) => Step::Incomplete { used: 0, need },
        Err(ParseError::Close) => Step::Close,
    }
}
