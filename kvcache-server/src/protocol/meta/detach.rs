//! An `ms` head that outlives the read buffer it was parsed from.

use super::{MetaArgs, SetHead, MAX_FLAGS};
use crate::protocol::lex::Span;

/// An `ms` head ([`SetHead`]) that borrows nothing: its key and flag tokens are kept as
/// spans of the request's bytes and found again by [`DetachedSetHead::attach`], wherever
/// those bytes are by then (still at the front of a read buffer that has moved, or copied
/// out). Attaching parses nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetachedSetHead {
    head: SetHead<'static>,
    key: Span,
    tokens: [Span; MAX_FLAGS],
}

impl SetHead<'_> {
    /// Detaches this head from `request`, the bytes it was parsed from (its line first).
    pub fn detach(&self, request: &[u8]) -> DetachedSetHead {
        let (key, flags) = (&self.args.key, &self.args.flags);
        let mut tokens = [Span::default(); MAX_FLAGS];
        for (span, tok) in tokens.iter_mut().zip(flags.tokens()) {
            *span = Span::of(tok, request);
        }
        DetachedSetHead {
            head: SetHead {
                args: MetaArgs {
                    key: key.with_raw(&[]),
                    flags: flags.with_tokens([&[]; MAX_FLAGS]),
                },
                ..*self
            },
            key: Span::of(key.wire(), request),
            tokens,
        }
    }
}

impl DetachedSetHead {
    /// The head again, borrowing from `request`: the same bytes it was detached from,
    /// wherever they are now.
    pub fn attach<'a>(&self, request: &'a [u8]) -> SetHead<'a> {
        let (key, flags) = (&self.head.args.key, &self.head.args.flags);
        let mut tokens: [&[u8]; MAX_FLAGS] = [&[]; MAX_FLAGS];
        for (tok, span) in tokens.iter_mut().zip(&self.tokens) {
            *tok = span.get(request);
        }
        SetHead {
            args: MetaArgs {
                key: key.with_raw(self.key.get(request)),
                flags: flags.with_tokens(tokens),
            },
            ..self.head
        }
    }

    /// The head's line length, `\n` included.
    pub fn line_len(&self) -> usize {
        self.head.line_len
    }

    /// The data block's length, without its `\r\n`.
    pub fn vlen(&self) -> usize {
        self.head.vlen
    }
}
