//! memcached's text protocol: a parser that works in place on the read buffer, and the
//! writers of its replies.
//!
//! [`parse`] looks at the unconsumed bytes of a connection and returns either one
//! complete [`Request`] (borrowing its key, keys and data block from the buffer) together
//! with the number of bytes it used, or a [`ParseError`]: [`ParseError::Incomplete`]
//! (wait for more bytes) or [`ParseError::Close`] (memcached would close the connection).
//! Nothing is allocated per request.
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

/// The longest key memcached accepts.
pub const KEY_MAX_LENGTH: usize = 250;

/// A partial line longer than this closes the connection (memcached's 2048-byte rule),
/// except for `get`/`gets` lines.
pub const MAX_LINE: usize = 2048;

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
/// rest of the line, every one already checked to be at most [`KEY_MAX_LENGTH`] bytes.
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
    /// `SERVER_ERROR object too large for cache` (unless `noreply`), delete the key, and
    /// discard the next `swallow` bytes (the data block and its `\r\n`), which may not
    /// have arrived yet.
    TooLarge {
        /// The key, whose old value memcached deletes.
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
    /// A meta command (`mg`, `ms`, `md`, `ma`, `mn`, `me`): nothing was consumed (the
    /// returned length is 0); the meta parser takes over from the start of the buffer.
    Meta,
    /// A `get`/`gets`/`gat`/`gats` with a key over 250 bytes. memcached 1.6.18 then drops
    /// every reply of the connection not yet sent (its `conn_release_items`) and answers
    /// `CLIENT_ERROR bad command line format`.
    RetrievalKeyTooLong,
    /// A request answered by a fixed line (an error, mostly): send `line` (which ends in
    /// `\r\n`) unless `noreply`.
    Reply {
        /// The reply, `\r\n` included.
        line: &'static [u8],
        /// `noreply` was given (and memcached then stays silent).
        noreply: bool,
    },
}

/// Why [`parse`] returned no request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// More bytes are needed; `need` is the total length the request will have, if
    /// known (a storage command waiting for its data block), else 0.
    Incomplete {
        /// Total bytes the buffer must hold, 0 if unknown.
        need: usize,
    },
    /// memcached closes the connection here (a line too long without a newline).
    Close,
}

/// Fixed replies.
pub mod reply {
    /// `ERROR`
    pub const ERROR: &[u8] = b"ERROR\r\n";
    /// `STORED`
    pub const STORED: &[u8] = b"STORED\r\n";
    /// `NOT_STORED`
    pub const NOT_STORED: &[u8] = b"NOT_STORED\r\n";
    /// `EXISTS`
    pub const EXISTS: &[u8] = b"EXISTS\r\n";
    /// `NOT_FOUND`
    pub const NOT_FOUND: &[u8] = b"NOT_FOUND\r\n";
    /// `DELETED`
    pub const DELETED: &[u8] = b"DELETED\r\n";
    /// `TOUCHED`
    pub const TOUCHED: &[u8] = b"TOUCHED\r\n";
    /// `OK`
    pub const OK: &[u8] = b"OK\r\n";
    /// `END`
    pub const END: &[u8] = b"END\r\n";
    /// `RESET`
    pub const RESET: &[u8] = b"RESET\r\n";
    /// The reply to `version`.
    pub const VERSION: &[u8] = b"VERSION 1.6.18-kvcache\r\n";
    /// A malformed command line.
    pub const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
    /// A malformed `delete` line.
    pub const BAD_DELETE: &[u8] =
        b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
    /// A data block not followed by `\r\n`.
    pub const BAD_CHUNK: &[u8] = b"CLIENT_ERROR bad data chunk\r\n";
    /// A bad exptime in `touch`, `gat`, `flush_all`.
    pub const BAD_EXPTIME: &[u8] = b"CLIENT_ERROR invalid exptime argument\r\n";
    /// A bad delta in `incr`/`decr`.
    pub const BAD_DELTA: &[u8] = b"CLIENT_ERROR invalid numeric delta argument\r\n";
    /// `incr`/`decr` of a value that is not a number.
    pub const NON_NUMERIC: &[u8] =
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
    /// A value over the item size limit.
    pub const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
    /// No memory for a value, nothing evictable.
    pub const NO_MEMORY: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";
    /// `incr`/`decr` without memory for the new value.
    pub const ARITH_NO_MEMORY: &[u8] = b"SERVER_ERROR out of memory\r\n";
    /// Sent (then the connection closed) over the `-c` limit.
    pub const TOO_MANY_CONNS: &[u8] = b"ERROR Too many open connections\r\n";
    /// `shutdown` without `-A`.
    pub const SHUTDOWN_DISABLED: &[u8] = b"ERROR: shutdown not enabled\r\n";
    /// `shutdown <anything but graceful>` with `-A`.
    pub const SHUTDOWN_INVALID: &[u8] = b"CLIENT_ERROR invalid shutdown mode\r\n";
    /// `stats detail` without an argument we support.
    pub const STATS_DETAIL: &[u8] = b"CLIENT_ERROR usage: stats detail on|off|dump\r\n";
}

/// Splits off the next space-separated token.
#[inline]
fn next_token(s: &[u8]) -> (Option<&[u8]>, &[u8]) {
    let mut i = 0;
    while i < s.len() && s[i] == b' ' {
        i += 1;
    }
    if i == s.len() {
        return (None, &s[i..]);
    }
    let rest = &s[i..];
    let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    (Some(&rest[..end]), &rest[end..])
}

/// The most tokens any non-retrieval command has (`cas` with `noreply`: 7); one more is
/// kept so that "too many" is visible.
const MAX_TOKENS: usize = 8;

/// The tokens of a line: up to [`MAX_TOKENS`], and how many there were (capped at
/// `MAX_TOKENS`, meaning "more than 7").
struct Tokens<'a> {
    t: [&'a [u8]; MAX_TOKENS],
    n: usize,
}

impl<'a> Tokens<'a> {
    fn new(mut line: &'a [u8]) -> Self {
        let mut t: [&[u8]; MAX_TOKENS] = [&[]; MAX_TOKENS];
        let mut n = 0;
        while n < MAX_TOKENS {
            let (tok, rest) = next_token(line);
            match tok {
                Some(tok) => {
                    t[n] = tok;
                    n += 1;
                    line = rest;
                }
                None => break,
            }
        }
        Tokens { t, n }
    }

    /// memcached's `set_noreply_maybe`: the last token is `noreply`.
    fn noreply(&self) -> bool {
        self.n > 0 && self.t[self.n - 1] == b"noreply"
    }
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// C's `strto*` number syntax over a whole token: optional whitespace, optional sign,
/// decimal digits (at least one), then nothing or whitespace. Returns (negative,
/// magnitude) or `None` on bad syntax or overflow of 64 bits.
fn c_number(tok: &[u8]) -> Option<(bool, u64)> {
    let mut i = 0;
    while i < tok.len() && is_c_space(tok[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < tok.len() && (tok[i] == b'+' || tok[i] == b'-') {
        neg = tok[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut v: u64 = 0;
    while i < tok.len() && tok[i].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add(u64::from(tok[i] - b'0'))?;
        i += 1;
    }
    if i == start || (i < tok.len() && !is_c_space(tok[i])) {
        return None;
    }
    Some((neg, v))
}

/// memcached's `safe_strtoull`: a `-` is rejected only when the result would look
/// negative as a signed number; otherwise C's wrap-around applies.
pub fn parse_u64(tok: &[u8]) -> Option<u64> {
    let (neg, v) = c_number(tok)?;
    let v = if neg { v.wrapping_neg() } else { v };
    if (v as i64) < 0 && tok.contains(&b'-') {
        return None;
    }
    Some(v)
}

/// memcached's `safe_strtoul` on a 64-bit machine, then stored in 32 bits (flags,
/// verbosity): values of 2^32 and more are truncated, as memcached truncates them.
pub fn parse_u32(tok: &[u8]) -> Option<u32> {
    parse_u64(tok).map(|v| v as u32)
}

/// memcached's `safe_strtol` into an `int32_t`: C's `strtol` reads a `long` (64 bits;
/// out of its range fails) and the assignment to 32 bits truncates, so `4294967297`
/// reads as 1 and `2147483648` as `i32::MIN`, as in memcached.
pub fn parse_i32(tok: &[u8]) -> Option<i32> {
    let (neg, v) = c_number(tok)?;
    let long = if neg {
        if v > (i64::MAX as u64) + 1 {
            return None;
        }
        (v as i64).wrapping_neg()
    } else {
        i64::try_from(v).ok()?
    };
    Some(long as i32)
}

fn reply(line: &'static [u8], noreply: bool) -> Request<'static> {
    Request::Reply { line, noreply }
}

/// Finds the end of the first line: `(line without "\r\n", bytes up to and including
/// "\n")`.
#[inline]
fn split_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let nl = memchr_nl(buf)?;
    let mut end = nl;
    if end > 0 && buf[end - 1] == b'\r' {
        end -= 1;
    }
    Some((&buf[..end], nl + 1))
}

#[inline]
fn memchr_nl(buf: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', buf)
}

/// What memcached does with a partial line of `buf.len()` bytes and no newline.
fn partial_line(buf: &[u8]) -> ParseError {
    if buf.len() <= MAX_LINE {
        return ParseError::Incomplete { need: 0 };
    }
    let skip = buf.iter().take_while(|&&b| b == b' ').count();
    let rest = &buf[skip..];
    if skip <= 100
        && (rest.starts_with(b"get ") || rest.starts_with(b"gets "))
        && buf.len() <= MAX_GET_LINE
    {
        ParseError::Incomplete { need: 0 }
    } else {
        ParseError::Close
    }
}

/// Parses one request from the start of `buf`.
///
/// `max_data` is the item size limit (`-I`): a storage command with a larger data block
/// yields [`Request::TooLarge`] without waiting for the block. On success, returns the
/// request and the number of bytes it took (0 for [`Request::Meta`]).
pub fn parse(buf: &[u8], max_data: usize) -> Result<(Request<'_>, usize), ParseError> {
    let Some((line, line_len)) = split_line(buf) else {
        return Err(partial_line(buf));
    };
    // memcached handles the line as a C string: it ends at the first NUL byte.
    let line = match memchr::memchr(0, line) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let (cmd, args) = next_token(line);
    let Some(cmd) = cmd else {
        return Ok((reply(reply::ERROR, false), line_len));
    };
    if cmd.len() < 2 {
        return Ok((reply(reply::ERROR, false), line_len));
    }
    if cmd[0] == b'm' && cmd.len() == 2 {
        return Ok(match cmd[1] {
            b'g' | b's' | b'd' | b'a' | b'n' | b'e' => (Request::Meta, 0),
            _ => (reply(reply::ERROR, false), line_len),
        });
    }
    match cmd {
        b"get" | b"gets" => Ok((parse_get(cmd == b"gets", args), line_len)),
        b"gat" | b"gats" => Ok((parse_gat(cmd == b"gats", args), line_len)),
        b"set" => parse_storage(StorageKind::Set, line, buf, line_len, max_data),
        b"add" => parse_storage(StorageKind::Add, line, buf, line_len, max_data),
        b"replace" => parse_storage(StorageKind::Replace, line, buf, line_len, max_data),
        b"append" => parse_storage(StorageKind::Append, line, buf, line_len, max_data),
        b"prepend" => parse_storage(StorageKind::Prepend, line, buf, line_len, max_data),
        b"cas" => parse_storage(StorageKind::Cas, line, buf, line_len, max_data),
        _ if is_http_request_line(cmd, args) => Err(ParseError::Close),
        _ => Ok((parse_simple(cmd, line), line_len)),
    }
}

/// memcached 1.6.18 closes the connection, without a reply, on a line that none of its
/// commands claims and whose last token starts with `HTTP/` (`GET / HTTP/1.1` and the
/// like). Lines starting with one of the letters it dispatches on (`g s a c i d t`, and
/// two-letter `m` commands) or naming one of its other commands get their usual answer
/// instead. Its tokenizer keeps at most 23 tokens: the check looks at the last one kept.
fn is_http_request_line(cmd: &[u8], args: &[u8]) -> bool {
    if matches!(cmd[0], b'g' | b's' | b'a' | b'c' | b'i' | b'd' | b't')
        || matches!(
            cmd,
            b"replace"
                | b"prepend"
                | b"bget"
                | b"flush_all"
                | b"version"
                | b"quit"
                | b"lru_crawler"
                | b"watch"
                | b"verbosity"
                | b"lru"
                | b"extstore"
                | b"refresh_certs"
        )
    {
        return false;
    }
    let mut last = cmd;
    let mut rest = args;
    for _ in 1..23 {
        match next_token(rest) {
            (Some(tok), r) => {
                last = tok;
                rest = r;
            }
            (None, _) => break,
        }
    }
    last.starts_with(b"HTTP/")
}

fn check_keys(args: &[u8]) -> Option<Keys<'_>> {
    let keys = Keys { rest: args };
    let mut any = false;
    for k in keys {
        if k.len() > KEY_MAX_LENGTH {
            return None;
        }
        any = true;
    }
    any.then_some(keys)
}

fn parse_get(cas: bool, args: &[u8]) -> Request<'_> {
    if next_token(args).0.is_none() {
        return reply(reply::ERROR, false);
    }
    match check_keys(args) {
        Some(keys) => Request::Get { cas, keys },
        None => Request::RetrievalKeyTooLong,
    }
}

fn parse_gat(cas: bool, args: &[u8]) -> Request<'_> {
    let (exp, rest) = next_token(args);
    let Some(exp) = exp else {
        return reply(reply::ERROR, false);
    };
    let Some(exptime) = parse_i32(exp) else {
        return reply(reply::BAD_EXPTIME, false);
    };
    if next_token(rest).0.is_none() {
        // memcached: `gat <exptime>` with no key answers END.
        return reply(reply::END, false);
    }
    match check_keys(rest) {
        Some(keys) => Request::Gat {
            cas,
            exptime: i64::from(exptime),
            keys,
        },
        None => Request::RetrievalKeyTooLong,
    }
}

/// A storage command line, checked, with the data block still to come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageHead<'a> {
    /// Which command.
    pub kind: StorageKind,
    /// The key (1 to 250 bytes).
    pub key: &'a [u8],
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

/// The storage command at the start of `buf` when its line is complete and valid, its
/// data block (at most `max_data` bytes) not all there yet: what a receiver that stores
/// the block as it arrives needs. `None` for anything else ([`parse`] deals with it).
pub fn storage_head(buf: &[u8], max_data: usize) -> Option<StorageHead<'_>> {
    let (line, line_len) = split_line(buf)?;
    let line = match memchr::memchr(0, line) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let kind = match next_token(line).0? {
        b"set" => StorageKind::Set,
        b"add" => StorageKind::Add,
        b"replace" => StorageKind::Replace,
        b"append" => StorageKind::Append,
        b"prepend" => StorageKind::Prepend,
        b"cas" => StorageKind::Cas,
        _ => return None,
    };
    let head = storage_line(kind, line, line_len, max_data).ok()?;
    (buf.len() < line_len + head.vlen + 2).then_some(head)
}

/// Checks a storage command line: its fields, or the request memcached answers instead.
fn storage_line(
    kind: StorageKind,
    line: &[u8],
    line_len: usize,
    max_data: usize,
) -> Result<StorageHead<'_>, Request<'_>> {
    let t = Tokens::new(line);
    let is_cas = kind == StorageKind::Cas;
    // memcached's token counts include a terminating null token: set wants 6 or 7, cas
    // 7 or 8; ours count only real tokens.
    let (lo, hi) = if is_cas { (6, 7) } else { (5, 6) };
    if t.n < lo || t.n > hi {
        return Err(reply(reply::ERROR, false));
    }
    let noreply = t.noreply();
    let bad = reply(reply::BAD_FORMAT, noreply);
    let key = t.t[1];
    if key.len() > KEY_MAX_LENGTH {
        return Err(bad);
    }
    let (Some(flags), Some(exptime), Some(vlen)) =
        (parse_u32(t.t[2]), parse_i32(t.t[3]), parse_i32(t.t[4]))
    else {
        return Err(bad);
    };
    let cas = if is_cas {
        match parse_u64(t.t[5]) {
            Some(c) => c,
            None => return Err(bad),
        }
    } else {
        0
    };
    if !(0..=i32::MAX - 2).contains(&vlen) {
        return Err(bad);
    }
    let vlen = vlen as usize;
    if vlen > max_data {
        return Err(Request::TooLarge {
            key,
            noreply,
            swallow: vlen + 2,
        });
    }
    Ok(StorageHead {
        kind,
        key,
        flags,
        exptime: i64::from(exptime),
        vlen,
        cas,
        noreply,
        line_len,
    })
}

fn parse_storage<'a>(
    kind: StorageKind,
    line: &'a [u8],
    buf: &'a [u8],
    line_len: usize,
    max_data: usize,
) -> Result<(Request<'a>, usize), ParseError> {
    let h = match storage_line(kind, line, line_len, max_data) {
        Ok(h) => h,
        Err(req) => return Ok((req, line_len)),
    };
    let total = line_len + h.vlen + 2;
    if buf.len() < total {
        return Err(ParseError::Incomplete { need: total });
    }
    if &buf[total - 2..total] != b"\r\n" {
        return Ok((reply(reply::BAD_CHUNK, h.noreply), total));
    }
    Ok((
        Request::Storage(StorageRequest {
            kind,
            key: h.key,
            flags: h.flags,
            exptime: h.exptime,
            data: &buf[line_len..total - 2],
            cas: h.cas,
            noreply: h.noreply,
        }),
        total,
    ))
}

fn parse_simple<'a>(cmd: &'a [u8], line: &'a [u8]) -> Request<'a> {
    let t = Tokens::new(line);
    let noreply = t.noreply();
    match cmd {
        b"delete" => {
            if !(2..=4).contains(&t.n) {
                return reply(reply::ERROR, false);
            }
            if t.t[1].len() > KEY_MAX_LENGTH {
                return reply(reply::BAD_FORMAT, noreply);
            }
            if t.n > 2 {
                let hold_is_zero = t.t[2] == b"0";
                let valid = (t.n == 3 && (hold_is_zero || noreply))
                    || (t.n == 4 && hold_is_zero && noreply);
                if !valid {
                    return reply(reply::BAD_DELETE, noreply);
                }
            }
            Request::Delete {
                key: t.t[1],
                noreply,
            }
        }
        b"incr" | b"decr" => {
            if !(3..=4).contains(&t.n) {
                return reply(reply::ERROR, false);
            }
            if t.t[1].len() > KEY_MAX_LENGTH {
                return reply(reply::BAD_FORMAT, noreply);
            }
            match parse_u64(t.t[2]) {
                Some(delta) => Request::Arith {
                    key: t.t[1],
                    delta,
                    incr: cmd == b"incr",
                    noreply,
                },
                None => reply(reply::BAD_DELTA, noreply),
            }
        }
        b"touch" => {
            if !(3..=4).contains(&t.n) {
                return reply(reply::ERROR, false);
            }
            if t.t[1].len() > KEY_MAX_LENGTH {
                return reply(reply::BAD_FORMAT, noreply);
            }
            match parse_i32(t.t[2]) {
                Some(e) => Request::Touch {
                    key: t.t[1],
                    exptime: i64::from(e),
                    noreply,
                },
                None => reply(reply::BAD_EXPTIME, noreply),
            }
        }
        b"flush_all" => {
            if !(1..=3).contains(&t.n) {
                return reply(reply::ERROR, false);
            }
            if t.n == if noreply { 2 } else { 1 } {
                return Request::FlushAll { delay: 0, noreply };
            }
            match parse_i32(t.t[1]) {
                Some(d) => Request::FlushAll {
                    delay: i64::from(d),
                    noreply,
                },
                None => reply(reply::BAD_EXPTIME, noreply),
            }
        }
        b"version" => Request::Version,
        b"shutdown" => Request::Shutdown(match t.n {
            1 => ShutdownMode::Now,
            2 if t.t[1] == b"graceful" => ShutdownMode::Graceful,
            _ => ShutdownMode::Invalid,
        }),
        b"quit" => Request::Quit,
        b"verbosity" => {
            if !(2..=3).contains(&t.n) {
                return reply(reply::ERROR, false);
            }
            match parse_u32(t.t[1]) {
                Some(level) => Request::Verbosity { level, noreply },
                None => reply(reply::BAD_FORMAT, noreply),
            }
        }
        b"slabs" => parse_slabs(&t),
        b"stats" => {
            if t.n == 1 {
                return Request::Stats(StatsKind::General);
            }
            let kind = match t.t[1] {
                b"settings" => StatsKind::Settings,
                b"items" => StatsKind::Items,
                b"slabs" => StatsKind::Slabs,
                b"sizes" => StatsKind::Sizes,
                b"sizes_fine" => StatsKind::SizesFine,
                b"conns" => StatsKind::Conns,
                b"reset" => StatsKind::Reset,
                b"detail" => return reply(reply::STATS_DETAIL, false),
                _ => return reply(reply::ERROR, false),
            };
            Request::Stats(kind)
        }
        _ => reply(reply::ERROR, false),
    }
}

/// `slabs reassign` and `slabs automove`, as memcached 1.6.18's `process_slabs_command`:
/// reassign takes exactly two numbers (C `strtol`, truncated to 32 bits) and ignores
/// `noreply`; automove takes a mode (`safe_strtoul`, truncated to 32 bits; 0 to 2) or
/// `ratio <r>`, ignores extra tokens, and `noreply` silences every reply.
fn parse_slabs<'a>(t: &Tokens<'a>) -> Request<'a> {
    let sub = if t.n > 1 { t.t[1] } else { b"" };
    if t.n == 4 && sub == b"reassign" {
        let num = |tok: &[u8]| {
            let (neg, v) = c_number(tok)?;
            // strtol's range is that of a 64-bit long; memcached keeps the low 32 bits.
            let v = if neg {
                if v > 1 << 63 {
                    return None;
                }
                (v as i64).wrapping_neg()
            } else {
                i64::try_from(v).ok()?
            };
            Some(v as i32)
        };
        return Request::SlabsReassign {
            args: num(t.t[2]).zip(num(t.t[3])),
        };
    }
    if (t.n == 3 || t.n == 4) && sub == b"classes" {
        return Request::SlabsClasses {
            list: t.t[2],
            noreply: t.noreply(),
        };
    }
    if t.n >= 3 && sub == b"automove" {
        let noreply = t.noreply();
        if t.t[2] == b"ratio" {
            let ratio = (t.n >= 4).then(|| parse_f64(t.t[3])).flatten();
            return match ratio {
                Some(ratio) => Request::SlabsAutomoveRatio { ratio, noreply },
                None => reply(reply::ERROR, noreply),
            };
        }
        return match parse_u32(t.t[2]) {
            None => reply(reply::BAD_FORMAT, noreply),
            Some(m @ 0..=2) => Request::SlabsAutomove {
                mode: m as u8,
                noreply,
            },
            Some(_) => reply(reply::ERROR, noreply),
        };
    }
    reply(reply::ERROR, false)
}

/// A class list, `<size>-<size>-...`: decimal sizes joined by `-`.
pub fn parse_class_list(list: &[u8]) -> Result<Vec<usize>, String> {
    list.split(|&b| b == b'-')
        .map(|tok| {
            let ok = !tok.is_empty() && tok.len() <= 9 && tok.iter().all(u8::is_ascii_digit);
            if !ok {
                return Err(format!(
                    "'{}' is not a size",
                    String::from_utf8_lossy(&tok[..tok.len().min(32)])
                ));
            }
            Ok(tok.iter().fold(0, |n, &d| n * 10 + usize::from(d - b'0')))
        })
        .collect()
}

/// memcached's `safe_strtod`: a number, then nothing or whitespace.
fn parse_f64(tok: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(tok).ok()?;
    let s = s.trim_start_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
    let end = s
        .find(|c: char| c.is_ascii() && is_c_space(c as u8))
        .unwrap_or(s.len());
    s[..end].parse().ok()
}

/// Appends `v` in decimal.
#[inline]
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Byte pushes rather than `extend_from_slice`: numbers are a few bytes long, and a
    // variable-length copy costs a `memcpy` call per number.
    out.reserve(buf.len() - i);
    for &b in &buf[i..] {
        out.push(b);
    }
}

/// Appends `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n`.
#[inline]
pub fn write_value(out: &mut Vec<u8>, key: &[u8], flags: u32, data: &[u8], cas: Option<u64>) {
    out.reserve(key.len() + data.len() + 48);
    write_value_head(out, key, flags, data.len(), cas);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the line that opens one `get`/`gets` hit, `VALUE <key> <flags> <bytes>
/// [<cas>]\r\n`; the value and its `\r\n` follow.
pub fn write_value_head(out: &mut Vec<u8>, key: &[u8], flags: u32, len: usize, cas: Option<u64>) {
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(key);
    out.push(b' ');
    push_u64(out, u64::from(flags));
    out.push(b' ');
    push_u64(out, len as u64);
    if let Some(cas) = cas {
        out.push(b' ');
        push_u64(out, cas);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the reply to a successful `incr`/`decr`: the number and `\r\n`.
pub fn write_number(out: &mut Vec<u8>, v: u64) {
    push_u64(out, v);
    out.extend_from_slice(b"\r\n");
}

/// Appends `STAT <name> <value>\r\n`.
pub fn write_stat(out: &mut Vec<u8>, name: &str, value: impl std::fmt::Display) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "STAT {name} {value}\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn one(buf: &[u8]) -> (Request<'_>, usize) {
        parse(buf, MAX).expect("complete request")
    }

    fn is_reply(buf: &[u8], line: &'static [u8], noreply: bool) {
        let (r, n) = one(buf);
        assert_eq!(
            r,
            Request::Reply { line, noreply },
            "{:?}",
            String::from_utf8_lossy(buf)
        );
        assert!(n > 0);
    }

    #[test]
    fn set_with_data() {
        let buf = b"set foo 5 100 3\r\nbar\r\nget foo\r\n";
        let (r, n) = one(buf);
        assert_eq!(n, 22);
        let Request::Storage(s) = r else {
            panic!("{r:?}")
        };
        assert_eq!(s.kind, StorageKind::Set);
        assert_eq!(s.key, b"foo");
        assert_eq!(
            (s.flags, s.exptime, s.data, s.noreply),
            (5, 100, &b"bar"[..], false)
        );
        let (r, m) = one(&buf[n..]);
        let Request::Get { cas: false, keys } = r else {
            panic!("{r:?}")
        };
        assert_eq!(keys.collect::<Vec<_>>(), vec![&b"foo"[..]]);
        assert_eq!(m, 9);
    }

    #[test]
    fn storage_head_while_the_data_block_is_incomplete() {
        let full = b"cas k 3 -1 5 77 noreply\r\nhello\r\n";
        let line = 25;
        for cut in 0..full.len() {
            let h = storage_head(&full[..cut], MAX);
            if cut < line {
                assert_eq!(h, None, "cut {cut}");
                continue;
            }
            let h = h.unwrap_or_else(|| panic!("cut {cut}"));
            assert_eq!(
                (h.kind, h.key, h.flags, h.exptime, h.vlen, h.cas, h.noreply, h.line_len),
                (StorageKind::Cas, &b"k"[..], 3, -1, 5, 77, true, line)
            );
        }
        assert_eq!(storage_head(full, MAX), None);
        // Lines the parser answers by themselves are not received.
        for bad in [
            &b"set k 0 0\r\n"[..],
            b"set k 0 0 x\r\n",
            b"set k 0 0 2000000\r\n",
            b"get k\r\n",
            b"ms k 5\r\n",
        ] {
            assert_eq!(storage_head(bad, MAX), None, "{bad:?}");
        }
    }

    #[test]
    fn incomplete_until_data_arrives() {
        let full = b"cas k 0 0 5 77 noreply\r\nhello\r\n";
        for cut in 0..full.len() {
            assert!(
                matches!(parse(&full[..cut], MAX), Err(ParseError::Incomplete { .. })),
                "cut {cut}"
            );
        }
        let (r, n) = one(full);
        assert_eq!(n, full.len());
        let Request::Storage(s) = r else { panic!() };
        assert_eq!(
            (s.kind, s.cas, s.noreply, s.data),
            (StorageKind::Cas, 77, true, &b"hello"[..])
        );
    }

    #[test]
    fn bad_data_chunk_consumes_block() {
        let buf = b"set a 0 0 1\r\nxy\r\n";
        let (r, n) = one(buf);
        assert_eq!(r, reply(reply::BAD_CHUNK, false));
        assert_eq!(n, 13 + 3);
        // The leftover "\n" is an empty line: ERROR.
        is_reply(&buf[n..], reply::ERROR, false);
    }

    #[test]
    fn storage_line_errors() {
        let long = [b"set ".as_ref(), &[b'k'; 251], b" 0 0 1\r\nx\r\n"].concat();
        is_reply(&long, reply::BAD_FORMAT, false);
        is_reply(b"set a 0 0 -1\r\nx\r\n", reply::BAD_FORMAT, false);
        is_reply(b"set a 0 0 abc\r\n", reply::BAD_FORMAT, false);
        is_reply(b"set a -1 0 1\r\n", reply::BAD_FORMAT, false);
        is_reply(b"set a 0 x 1 noreply\r\n", reply::BAD_FORMAT, true);
        is_reply(b"set a 0 0\r\n", reply::ERROR, false);
        is_reply(b"set a 0 0 1 noreply extra\r\n", reply::ERROR, false);
        is_reply(b"cas a 0 0 1\r\n", reply::ERROR, false);
        is_reply(b"cas a 0 0 1 abc\r\n", reply::BAD_FORMAT, false);
        // Flags of 2^32 are truncated as by memcached; a bad line is not swallowed.
        let (r, _) = one(b"set a 4294967296 0 1\r\nx\r\n");
        assert!(matches!(
            r,
            Request::Storage(StorageRequest { flags: 0, .. })
        ));
    }

    #[test]
    fn too_large_swallows() {
        let (r, n) = parse(b"set a 0 0 2000\r\n", 1000).unwrap();
        assert_eq!(
            r,
            Request::TooLarge {
                key: b"a",
                noreply: false,
                swallow: 2002
            }
        );
        assert_eq!(n, 16);
    }

    #[test]
    fn long_lines() {
        assert_eq!(
            parse(&[b'x'; 2048], MAX),
            Err(ParseError::Incomplete { need: 0 })
        );
        assert_eq!(parse(&[b'x'; 2049], MAX), Err(ParseError::Close));
        let get = [b"get ".as_ref(), &[b'x'; 3000]].concat();
        assert_eq!(parse(&get, MAX), Err(ParseError::Incomplete { need: 0 }));
        let get = [b"get ".as_ref(), &[b'x'; 3000], b"\r\n"].concat();
        assert_eq!(one(&get).0, Request::RetrievalKeyTooLong);
    }

    #[test]
    fn simple_commands() {
        is_reply(b"foo\r\n", reply::ERROR, false);
        is_reply(b"\r\n", reply::ERROR, false);
        is_reply(b"GET a\r\n", reply::ERROR, false);
        is_reply(b"get\r\n", reply::ERROR, false);
        is_reply(b"incr a -1\r\n", reply::BAD_DELTA, false);
        is_reply(b"incr a 1.5\r\n", reply::BAD_DELTA, false);
        is_reply(b"incr a\r\n", reply::ERROR, false);
        is_reply(b"delete a 1\r\n", reply::BAD_DELETE, false);
        is_reply(b"delete a 1 noreply\r\n", reply::BAD_DELETE, true);
        is_reply(b"touch a abc\r\n", reply::BAD_EXPTIME, false);
        is_reply(b"flush_all abc\r\n", reply::BAD_EXPTIME, false);
        is_reply(b"verbosity\r\n", reply::ERROR, false);
        // "verbosity noreply": the bad level is not answered, as in memcached.
        is_reply(b"verbosity noreply\r\n", reply::BAD_FORMAT, true);
        is_reply(b"verbosity abc\r\n", reply::BAD_FORMAT, false);
        is_reply(b"gat abc a\r\n", reply::BAD_EXPTIME, false);
        is_reply(b"gat 10\r\n", reply::END, false);
        is_reply(b"stats foo\r\n", reply::ERROR, false);
        is_reply(b"mz\r\n", reply::ERROR, false);
        assert_eq!(one(b"shutdown\r\n").0, Request::Shutdown(ShutdownMode::Now));
        assert_eq!(
            one(b"shutdown graceful\r\n").0,
            Request::Shutdown(ShutdownMode::Graceful)
        );
        assert_eq!(
            one(b"shutdown graceful now\r\n").0,
            Request::Shutdown(ShutdownMode::Invalid)
        );
        assert_eq!(
            one(b"shutdown x\r\n").0,
            Request::Shutdown(ShutdownMode::Invalid)
        );
        assert_eq!(one(b"mg foo v\r\n"), (Request::Meta, 0));
        assert_eq!(
            one(b"delete a 0 noreply\r\n").0,
            Request::Delete {
                key: b"a",
                noreply: true
            }
        );
        assert_eq!(
            one(b"incr n 18446744073709551615\r\n").0,
            Request::Arith {
                key: b"n",
                delta: u64::MAX,
                incr: true,
                noreply: false
            }
        );
        assert_eq!(
            one(b"flush_all 10 noreply\r\n").0,
            Request::FlushAll {
                delay: 10,
                noreply: true
            }
        );
        assert_eq!(
            one(b"flush_all noreply\r\n").0,
            Request::FlushAll {
                delay: 0,
                noreply: true
            }
        );
        assert_eq!(one(b"  get a  b \n").1, 12);
        assert_eq!(
            one(b"stats sizes_fine\r\n").0,
            Request::Stats(StatsKind::SizesFine)
        );
        assert_eq!(one(b"quit x\r\n").0, Request::Quit);
    }

    #[test]
    fn http_request_lines_close() {
        // Each checked against memcached 1.6.18: closed without a reply.
        for line in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST /x HTTP/1.0\r\n",
            b"HEAD / HTTP/1.1\n",
            b"HTTP/1.1\r\n",
            b"GET  /  HTTP/1.1 \r\n",
            b"FOO / HTTP/1.1\r\n",
        ] {
            assert_eq!(parse(line, MAX), Err(ParseError::Close), "{line:?}");
        }
        // ... and answered as usual.
        is_reply(b"GET / HTTP/1.1 x\r\n", reply::ERROR, false);
        is_reply(b"GET / http/1.1\r\n", reply::ERROR, false);
        is_reply(b"x HTTP/1.1\r\n", reply::ERROR, false);
        is_reply(b"set HTTP/1.1\r\n", reply::ERROR, false);
        is_reply(b"replace HTTP/1.1\r\n", reply::ERROR, false);
        assert_eq!(one(b"version HTTP/1.1\r\n").0, Request::Version);
        assert!(matches!(
            one(b"get foo HTTP/1.1\r\n").0,
            Request::Get { .. }
        ));
        // memcached's tokenizer stops at 23 tokens.
        let mut long = b"xx".to_vec();
        for _ in 0..21 {
            long.extend_from_slice(b" b");
        }
        let mut closes = long.clone();
        closes.extend_from_slice(b" HTTP/1.1\r\n");
        assert_eq!(parse(&closes, MAX), Err(ParseError::Close));
        long.extend_from_slice(b" b HTTP/1.1\r\n");
        is_reply(&long, reply::ERROR, false);
    }

    #[test]
    fn numbers_like_c() {
        assert_eq!(parse_u64(b"+5"), Some(5));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u32(b"4294967297"), Some(1));
        assert_eq!(parse_i32(b"-2147483648"), Some(i32::MIN));
        assert_eq!(parse_i32(b"2147483648"), Some(i32::MIN));
        assert_eq!(parse_i32(b"4294967297"), Some(1));
        assert_eq!(parse_i32(b"-4294967295"), Some(1));
        assert_eq!(parse_i32(b"9223372036854775808"), None);
        assert_eq!(parse_i32(b""), None);
        assert_eq!(parse_i32(b"1x"), None);
    }

    #[test]
    fn writers() {
        let mut out = Vec::new();
        write_value(&mut out, b"k", 7, b"abc", Some(12));
        write_number(&mut out, 0);
        push_u64(&mut out, u64::MAX);
        assert_eq!(out, b"VALUE k 7 3 12\r\nabc\r\n0\r\n18446744073709551615");
    }

    proptest::proptest! {
        #[test]
        fn storage_round_trip(key in "[a-z]{1,250}", flags: u32, exp in -100i32..100_000, data in proptest::collection::vec(proptest::num::u8::ANY, 0..300), noreply: bool) {
            let mut buf = format!("set {key} {flags} {exp} {}{}\r\n", data.len(), if noreply { " noreply" } else { "" }).into_bytes();
            buf.extend_from_slice(&data);
            buf.extend_from_slice(b"\r\n");
            let (r, n) = parse(&buf, MAX).unwrap();
            proptest::prop_assert_eq!(n, buf.len());
            let Request::Storage(s) = r else { panic!() };
            proptest::prop_assert_eq!(s.key, key.as_bytes());
            proptest::prop_assert_eq!((s.flags, s.exptime, s.noreply), (flags, i64::from(exp), noreply));
            proptest::prop_assert_eq!(s.data, &data[..]);
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            if let Ok((_, n)) = parse(&buf, 100) {
                proptest::prop_assert!(n <= buf.len());
            }
        }
    }
}
