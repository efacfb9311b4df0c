//! memcached's meta protocol (`mg`, `ms`, `md`, `ma`, `mn`, `me`): a parser that works in
//! place on the read buffer, and the writers of its replies.
//!
//! [`parse`] takes the unconsumed bytes of a connection, which start with a meta command
//! line (a text connection dispatches on the first bytes, see
//! [`crate::protocol::text::is_meta`]), and returns one [`MetaRequest`] and the number
//! of bytes it used, or a [`ParseError`](crate::protocol::lex::ParseError): `Incomplete`
//! (wait for more bytes) or `Close` (a line over 2048 bytes without a newline). An `ms`
//! whose data block has not all arrived yields its head ([`MetaRequest::Value`]), which
//! [`SetHead::detach`] turns into one that outlives the buffer. Protocol errors are not
//! parse errors: they are requests ([`MetaRequest::Error`]) whose reply memcached sends.
//!
//! The files: `parse.rs` (the parser), `key.rs` (keys and base64), `detach.rs` (heads
//! kept across reads), `write.rs` (reply writers), [`reply`] (error lines).
//!
//! The checks run in memcached 1.6.18's order, with its strings:
//!
//! | input | reply |
//! |---|---|
//! | `mg` with no key | `ERROR` |
//! | key over 250 bytes | `CLIENT_ERROR bad command line format` |
//! | more than 19 tokens | `CLIENT_ERROR options flags are too long` (`mg`), `... flags too long` |
//! | a flag given twice | `CLIENT_ERROR duplicate flag` (`mg`, `ms`) |
//! | an unknown flag | `CLIENT_ERROR invalid flag` (`mg`, `ms`) |
//! | a bad `N`/`T`/`R`/`C` token | `CLIENT_ERROR bad token in command line format` |
//! | any flag error in `md`/`ma` | `CLIENT_ERROR invalid or duplicate flag` |
//! | an `O` token over 32 bytes | `CLIENT_ERROR opaque token too long` |
//! | a bad `M` | `CLIENT_ERROR invalid mode for ms M token` (`ma`: `... ma M token`) |
//! | an undecodable `b` key | `CLIENT_ERROR error decoding key` |
//!
//! A bad `ms` line whose data length parsed swallows the data block, as memcached does;
//! a value larger than the item limit is answered before its data arrives
//! ([`MetaRequest::TooLarge`]) and the data is discarded as it comes.

mod detach;
mod key;
mod parse;
pub mod reply;
#[cfg(test)]
mod tests;
mod write;

pub use detach::DetachedSetHead;
pub use key::Key;
pub use parse::parse;
pub use write::{
    push_key, push_opaque_and_key, write_arith_reply, write_debug, write_delete_reply,
    write_get_head, write_get_hit, write_get_miss, write_set_reply, ArithResult, DebugInfo,
    ItemInfo, Status, WinFlags,
};

/// The most tokens a meta line may have, command and key included (memcached rejects
/// 20 tokens plus its terminating null token and more).
pub const MAX_TOKENS: usize = 19;

/// The longest opaque (`O`) token, the `O` included.
pub const MAX_OPAQUE: usize = 32;

/// The most flag tokens a request can carry (`mg key` plus 17 flags).
const MAX_FLAGS: usize = MAX_TOKENS - 2;

/// Which meta command a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaCommand {
    /// `mg`
    Get,
    /// `ms`
    Set,
    /// `md`
    Delete,
    /// `ma`
    Arith,
}

/// `ms` modes (`M` flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetMode {
    /// `S` (default): set.
    Set,
    /// `E`: add.
    Add,
    /// `A`: append.
    Append,
    /// `P`: prepend.
    Prepend,
    /// `R`: replace.
    Replace,
}

/// The flags of one request, parsed; the raw flag tokens are kept too, in order, since
/// replies echo flags in request order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaFlags<'a> {
    tokens: [&'a [u8]; MAX_FLAGS],
    n: u8,
    /// `q`: hide nominal replies.
    pub noreply: bool,
    /// `v`: return the value.
    pub value: bool,
    /// `u`: don't bump the item.
    pub no_update: bool,
    /// `I`: invalidate (mark stale) instead of failing or deleting.
    pub invalidate: bool,
    /// `N<ttl>`: create on miss with this TTL.
    pub vivify: Option<i64>,
    /// `T<ttl>`: new TTL.
    pub ttl: Option<i64>,
    /// `R<ttl>`: win the recache token when the TTL left is below this.
    pub recache: Option<i64>,
    /// `F<flags>`: client flags to store (0 if absent).
    pub client_flags: u32,
    /// `C<cas>`: compare CAS.
    pub compare_cas: Option<u64>,
    /// `M<mode>`: the raw mode character.
    pub mode: Option<u8>,
    /// `J<n>`: initial value for `ma` auto-create (default 0).
    pub initial: u64,
    /// `D<n>`: delta for `ma` (default 1).
    pub delta: u64,
}

impl<'a> MetaFlags<'a> {
    fn new() -> Self {
        MetaFlags {
            tokens: [&[]; MAX_FLAGS],
            n: 0,
            noreply: false,
            value: false,
            no_update: false,
            invalidate: false,
            vivify: None,
            ttl: None,
            recache: None,
            client_flags: 0,
            compare_cas: None,
            mode: None,
            initial: 0,
            delta: 1,
        }
    }

    /// These flags with their tokens elsewhere.
    fn with_tokens<'b>(&self, tokens: [&'b [u8]; MAX_FLAGS]) -> MetaFlags<'b> {
        MetaFlags {
            tokens,
            n: self.n,
            noreply: self.noreply,
            value: self.value,
            no_update: self.no_update,
            invalidate: self.invalidate,
            vivify: self.vivify,
            ttl: self.ttl,
            recache: self.recache,
            client_flags: self.client_flags,
            compare_cas: self.compare_cas,
            mode: self.mode,
            initial: self.initial,
            delta: self.delta,
        }
    }

    /// The flag tokens, in request order (each starts with its flag character).
    pub fn tokens(&self) -> &[&'a [u8]] {
        &self.tokens[..usize::from(self.n)]
    }

    /// Whether flag `c` was given.
    pub fn has(&self, c: u8) -> bool {
        self.tokens().iter().any(|t| t[0] == c)
    }
}

/// One parsed meta request (key and flags; `ms` data lives in [`MetaRequest::Set`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaArgs<'a> {
    /// The key.
    pub key: Key<'a>,
    /// The flags.
    pub flags: MetaFlags<'a>,
}

/// One parsed meta request, or the error memcached answers to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaRequest<'a> {
    /// `mg <key> <flags>*`
    Get(MetaArgs<'a>),
    /// `ms <key> <datalen> <flags>*` with its data block.
    Set {
        /// Key and flags.
        args: MetaArgs<'a>,
        /// The mode (`M`, default set).
        mode: SetMode,
        /// The data block, without its `\r\n`.
        data: &'a [u8],
    },
    /// `ms` with a data block over the item size limit: answer
    /// `SERVER_ERROR object too large for cache`, delete the key, and discard `swallow`
    /// bytes after the line (they may not have arrived yet).
    TooLarge {
        /// Key and flags.
        args: MetaArgs<'a>,
        /// Bytes to discard after the line (data block and `\r\n`).
        swallow: usize,
    },
    /// `md <key> <flags>*`
    Delete(MetaArgs<'a>),
    /// `ma <key> <flags>*`
    Arith {
        /// Key and flags.
        args: MetaArgs<'a>,
        /// Increment (true, default) or decrement.
        incr: bool,
    },
    /// `mn`
    Noop,
    /// `me <key> [b]`
    Debug {
        /// The key.
        key: Key<'a>,
    },
    /// `ms` whose line is complete and valid and whose data block has not all arrived:
    /// the returned length is the line's. The data block ([`SetHead::vlen`] bytes and
    /// `\r\n`) follows; keep the head ([`SetHead::detach`]) until it is there.
    Value(SetHead<'a>),
    /// An error: send `line` (always, `q` does not hide errors), then discard `swallow`
    /// bytes after the request (an `ms` data block; they may not have arrived yet).
    Error {
        /// The reply, `\r\n` included.
        line: &'static [u8],
        /// Bytes to discard after the consumed ones.
        swallow: usize,
    },
}

/// An `ms` line, checked, with the data block still to come ([`MetaRequest::Value`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetHead<'a> {
    /// Key and flags.
    pub args: MetaArgs<'a>,
    /// The mode (`M`, default set).
    pub mode: SetMode,
    /// The data block's length, without its `\r\n`.
    pub vlen: usize,
    /// The line's length, `\n` included.
    pub line_len: usize,
}
