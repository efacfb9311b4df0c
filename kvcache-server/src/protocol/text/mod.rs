//! memcached's text protocol: a parser that works in place on the read buffer, and the
//! writers of its replies.
//!
//! [`parse`] looks at the unconsumed bytes of a connection and returns either one
//! complete [`Request`] (borrowing its key, keys and data block from the buffer) together
//! with the number of bytes it used, or a [`ParseError`]: `Incomplete` (wait for more
//! bytes) or `Close` (memcached would close the connection).
//! A storage command whose data block has not all arrived yields its head
//! ([`Request::Value`]), which borrows nothing, so that the line is parsed once however
//! the block arrives. Nothing is allocated per request. Meta lines belong to the meta
//! parser: a text connection sends them there on their first bytes ([`is_meta`]).
//!
//! The files: `parse.rs` (the parser), `write.rs` (reply writers), [`reply`] (fixed
//! replies); lexing comes from [`crate::protocol::lex`].
//!
//! The parser reproduces memcached 1.6.18's `proto_text.c` wherever a client can see the
//! difference:
//! - lines end at `\n`, a `\r` just before it is dropped; tokens are separated by one or
//!   more spaces (only spaces: a tab or a control byte is part of a key, as in memcached);
//! - a partial line longer than [`MAX_LINE`] bytes closes the connection unless it starts
//!   with `get ` or `gets ` (memcached's exception for long multi-gets);
//! - numbers follow C's `strtoul`/`strtol`/`strtoull` as memcached's `safe_*` helpers use
//!   them (leading `+`, flags above 2^32 truncated, a `-` rejected where memcached rejects
//!   it);
//! - a bad storage command line is answered and its data block is *not* swallowed (the
//!   client's data line then reads as an unknown command, as with memcached); a value over
//!   the size limit is answered with `SERVER_ERROR object too large for cache` and its data
//!   block is swallowed; `noreply` silences errors exactly where memcached's `out_string`
//!   silences them.
//!
//! [`ParseError`]: super::lex::ParseError
//! [`MAX_LINE`]: super::lex::MAX_LINE

pub mod ops;
mod parse;
pub mod reply;
#[cfg(test)]
mod tests;
mod write;

pub use parse::{is_meta, parse, parse_class_list};
pub use write::{write_number, write_stat, write_value, write_value_head};

use super::lex::{next_token, Span};

/// The longest `get`/`gets` line we buffer before giving up on the connection.
pub const MAX_GET_LINE: usize = 4 << 20;

/// The storage commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// `set`
    Set,
    /// `add`
    Add,
    /// `replace`
    Replace,
    /// `append`
    Append,
    /// `prepend`
    Prepend,
    /// `cas`
    Cas,
}

/// A complete storage request: the command line and its data block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageRequest<'a> {
    /// Which command.
    pub kind: StorageKind,
    /// The key (1 to 250 bytes).
    pub key: &'a [u8],
    /// The client flags.
    pub flags: u32,
    /// The raw exptime argument.
    pub exptime: i64,
    /// The data block, without its `\r\n`.
    pub data: &'a [u8],
    /// The CAS unique of a `cas` command (0 otherwise).
    pub cas: u64,
    /// `noreply` was given.
    pub noreply: bool,
}

/// The keys of a retrieval command: an iterator over the space-separated tokens of the
/// rest of the line, every one already checked to be at most [`KEY_MAX_LENGTH`](super::lex::KEY_MAX_LENGTH) bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys<'a> {
    rest: &'a [u8],
}

impl<'a> Keys<'a> {
    /// The raw rest of the line the keys come from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Keys<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (tok, rest) = next_token(self.rest);
        self.rest = rest;
        tok
    }
}

/// The `stats` subcommands we answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsKind {
    /// `stats`
    General,
    /// `stats settings`
    Settings,
    /// `stats items`
    Items,
    /// `stats slabs`
    Slabs,
    /// `stats sizes` (memcached's 32-byte buckets)
    Sizes,
    /// `stats sizes_fine` (8-byte buckets of our stored size)
    SizesFine,
    /// `stats conns`
    Conns,
    /// `stats reset`
    Reset,
}

/// What a `shutdown` line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    /// `shutdown`: stop now.
    Now,
    /// `shutdown graceful`: stop after the connections finish.
    Graceful,
    /// Anything else after `shutdown` (memcached: `CLIENT_ERROR invalid shutdown mode`
    /// when shutdown is enabled).
    Invalid,
}

/// One parsed request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Request<'a> {
    /// `set`, `add`, `replace`, `append`, `prepend`, `cas` with their data.
    Storage(StorageRequest<'a>),
    /// A storage command whose value is larger than the limit given to [`parse`]: answer
    /// `SERVER_ERROR object too large for cache` (unless `noreply`), delete the key if the
    /// command is a `set`, and discard the next `swallow` bytes (the data block and its
    /// `\r\n`), which may not have arrived yet.
    TooLarge {
        /// The command.
        kind: StorageKind,
        /// The key, whose old value memcached deletes after a failed `set` (and only
        /// then: a failed `add`, `replace`, `append`, `prepend` or `cas` leaves it).
        key: &'a [u8],
        /// `noreply` was given.
        noreply: bool,
        /// Bytes of data block still to discard, counted from the end of the line.
        swallow: usize,
    },
    /// `get`/`gets` (`cas` true for `gets`).
    Get {
        /// `gets`: report CAS values.
        cas: bool,
        /// The keys, in order.
        keys: Keys<'a>,
    },
    /// `gat`/`gats`.
    Gat {
        /// `gats`: report CAS values.
        cas: bool,
        /// The raw exptime argument.
        exptime: i64,
        /// The keys, in order.
        keys: Keys<'a>,
    },
    /// `delete <key> [0] [noreply]`.
    Delete {
        /// The key.
        key: &'a [u8],
        /// `noreply` was given.
        noreply: bool,
    },
    /// `incr`/`decr`.
    Arith {
        /// The key.
        key: &'a [u8],
        /// The delta.
        delta: u64,
        /// `incr` (true) or `decr`.
        incr: bool,
        /// `noreply` was given.
        noreply: bool,
    },
    /// `touch <key> <exptime> [noreply]`.
    Touch {
        /// The key.
        key: &'a [u8],
        /// The raw exptime argument.
        exptime: i64,
        /// `noreply` was given.
        noreply: bool,
    },
    /// `flush_all [delay] [noreply]`.
    FlushAll {
        /// The delay in seconds (0: now).
        delay: i64,
        /// `noreply` was given.
        noreply: bool,
    },
    /// `version`.
    Version,
    /// `verbosity <level> [noreply]`.
    Verbosity {
        /// The requested level.
        level: u32,
        /// `noreply` was given.
        noreply: bool,
    },
    /// `quit`: close the connection.
    Quit,
    /// `shutdown [graceful]`: stop the server if `-A` allows it.
    Shutdown(ShutdownMode),
    /// `stats [...]`.
    Stats(StatsKind),
    /// `refresh_certs`: reload the TLS certificate and key (arguments are ignored).
    RefreshCerts,
    /// `slabs reassign <src> <dst>` (memcached's ids; `src` -1: any class).
    SlabsReassign {
        /// `(src, dst)`, or `None` if they are not numbers (memcached checks that
        /// reassignment is enabled first, then answers `CLIENT_ERROR bad command line
        /// format`).
        args: Option<(i32, i32)>,
    },
    /// `slabs automove <0|1|2> [noreply]` (other values: `ERROR`).
    SlabsAutomove {
        /// The mode.
        mode: u8,
        /// `noreply` was given.
        noreply: bool,
    },
    /// `slabs classes <size>-<size>-... [noreply]`: new items go to these classes (our own
    /// command; memcached cannot re-class a running server).
    SlabsClasses {
        /// The list as sent (read it with [`parse_class_list`]).
        list: &'a [u8],
        /// `noreply` was given.
        noreply: bool,
    },
    /// `slabs automove ratio <r> [noreply]`.
    SlabsAutomoveRatio {
        /// The ratio.
        ratio: f64,
        /// `noreply` was given.
        noreply: bool,
    },
    /// A storage command whose line is complete and valid and whose data block has not
    /// all arrived: the returned length is the line's. The data block
    /// ([`StorageHead::vlen`] bytes and `\r\n`) follows; [`StorageHead::request`] makes
    /// the request once it is there, without parsing the line again.
    Value(StorageHead),
    /// A meta command line (`mg`, `ms`, `md`, `ma`, `mn`, `me`), which [`parse`] leaves
    /// to [`crate::protocol::meta::parse`]: nothing was consumed (the returned length is
    /// 0). A text connection dispatches with [`is_meta`] before parsing, so that a meta
    /// line is parsed once, by the meta parser.
    Meta,
    /// A `get`/`gets`/`gat`/`gats` with a key over 250 bytes. memcached 1.6.18 then drops
    /// every reply of the connection not yet sent (its `conn_release_items`) and answers
    /// `CLIENT_ERROR bad command line format`.
    RetrievalKeyTooLong,
    /// An operator's command (`lru_crawler`, `lru`, `cache_memlimit`, `stats detail`,
    /// `watch`).
    Ops(ops::OpsRequest),
    /// A request answered by a fixed line (an error, mostly): send `line` (which ends in
    /// `\r\n`) unless `noreply`.
    Reply {
        /// The reply, `\r\n` included.
        line: &'static [u8],
        /// `noreply` was given (and memcached then stays silent).
        noreply: bool,
    },
}

/// A storage command line, checked, with the data block still to come
/// ([`Request::Value`]). It borrows nothing: the key is found again in the request's
/// bytes, wherever they are by then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageHead {
    /// Which command.
    pub kind: StorageKind,
    /// The key (1 to 250 bytes) in the request's bytes.
    pub key: Span,
    /// The client flags.
    pub flags: u32,
    /// The raw exptime argument.
    pub exptime: i64,
    /// The data block's length, without its `\r\n`.
    pub vlen: usize,
    /// The CAS unique of a `cas` command (0 otherwise).
    pub cas: u64,
    /// `noreply` was given.
    pub noreply: bool,
    /// The line's length, `\n` included.
    pub line_len: usize,
}

impl StorageHead {
    /// The request's length: line, data block and its `\r\n`.
    pub fn total_len(&self) -> usize {
        self.line_len + self.vlen + 2
    }

    /// The complete request, from its bytes (line and data block, at least
    /// [`StorageHead::total_len`] of them; the data block's `\r\n` is not checked).
    pub fn request<'a>(&self, request: &'a [u8]) -> StorageRequest<'a> {
        StorageRequest {
            kind: self.kind,
            key: self.key.get(request),
            flags: self.flags,
            exptime: self.exptime,
            data: &request[self.line_len..self.line_len + self.vlen],
            cas: self.cas,
            noreply: self.noreply,
        }
    }
}
