//! memcached's meta protocol (`mg`, `ms`, `md`, `ma`, `mn`, `me`): a parser that works in
//! place on the read buffer, and the writers of its replies.
//!
//! [`parse`] takes the unconsumed bytes of a connection, which start with a meta command
//! line (the text parser recognised the command name), and returns one [`MetaRequest`]
//! and the number of bytes it used, or a [`ParseError`]: `Incomplete` (wait for more
//! bytes) or `Close` (a line over 2048 bytes without a newline). Protocol errors are not
//! parse errors: they are requests ([`MetaRequest::Error`]) whose reply memcached sends.
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

use base64::Engine as _;

use super::text::{
    parse_i32, parse_u32, parse_u64, push_u64, ParseError, KEY_MAX_LENGTH, MAX_LINE,
};

/// The most tokens a meta line may have, command and key included (memcached rejects
/// 20 tokens plus its terminating null token and more).
pub const MAX_TOKENS: usize = 19;

/// The longest opaque (`O`) token, the `O` included.
pub const MAX_OPAQUE: usize = 32;

/// The most flag tokens a request can carry (`mg key` plus 17 flags).
const MAX_FLAGS: usize = MAX_TOKENS - 2;

/// Error lines, `\r\n` included.
pub mod reply {
    /// `ERROR`
    pub const ERROR: &[u8] = b"ERROR\r\n";
    /// Generic syntax error.
    pub const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
    /// Too many tokens on an `mg` line.
    pub const MG_TOO_LONG: &[u8] = b"CLIENT_ERROR options flags are too long\r\n";
    /// Too many tokens on an `ms`/`md`/`ma` line.
    pub const TOO_LONG: &[u8] = b"CLIENT_ERROR options flags too long\r\n";
    /// A flag given twice.
    pub const DUPLICATE: &[u8] = b"CLIENT_ERROR duplicate flag\r\n";
    /// An unknown flag.
    pub const INVALID_FLAG: &[u8] = b"CLIENT_ERROR invalid flag\r\n";
    /// Any flag error of `md`/`ma`.
    pub const INVALID_OR_DUPLICATE: &[u8] = b"CLIENT_ERROR invalid or duplicate flag\r\n";
    /// A bad numeric token.
    pub const BAD_TOKEN: &[u8] = b"CLIENT_ERROR bad token in command line format\r\n";
    /// An `M` token not exactly one character long.
    pub const M_LENGTH: &[u8] = b"CLIENT_ERROR incorrect length for M token\r\n";
    /// A bad `J` token.
    pub const BAD_INITIAL: &[u8] = b"CLIENT_ERROR invalid numeric initial value\r\n";
    /// A bad `D` token.
    pub const BAD_DELTA: &[u8] = b"CLIENT_ERROR invalid numeric delta value\r\n";
    /// A key that is not valid base64 under `b`.
    pub const BAD_KEY_ENCODING: &[u8] = b"CLIENT_ERROR error decoding key\r\n";
    /// An `O` token over [`super::MAX_OPAQUE`] bytes.
    pub const OPAQUE_TOO_LONG: &[u8] = b"CLIENT_ERROR opaque token too long\r\n";
    /// A bad `ms` mode.
    pub const MS_MODE: &[u8] = b"CLIENT_ERROR invalid mode for ms M token\r\n";
    /// A bad `ma` mode.
    pub const MA_MODE: &[u8] = b"CLIENT_ERROR invalid mode for ma M token\r\n";
    /// A data block not ending in `\r\n`.
    pub const BAD_CHUNK: &[u8] = b"CLIENT_ERROR bad data chunk\r\n";
    /// A value over the item size limit.
    pub const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
    /// No memory for a value.
    pub const NO_MEMORY: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";
    /// `ma` on a value that is not a number.
    pub const NON_NUMERIC: &[u8] =
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
    /// `ma` could not allocate.
    pub const ARITH_NO_MEMORY: &[u8] = b"SERVER_ERROR out of memory\r\n";
    /// `mn`.
    pub const MN: &[u8] = b"MN\r\n";
    /// A miss.
    pub const EN: &[u8] = b"EN\r\n";
}

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

/// The key of a request: borrowed from the buffer, or decoded from base64 (`b`).
#[derive(Clone, Copy)]
pub struct Key<'a> {
    raw: &'a [u8],
    decoded: [u8; 192],
    decoded_len: u8,
    base64: bool,
}

impl std::fmt::Debug for Key<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("bytes", &String::from_utf8_lossy(self.bytes()))
            .field("base64", &self.base64)
            .finish()
    }
}

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes() && self.base64 == other.base64
    }
}

impl Eq for Key<'_> {}

impl<'a> Key<'a> {
    fn plain(raw: &'a [u8]) -> Self {
        Key {
            raw,
            decoded: [0; 192],
            decoded_len: 0,
            base64: false,
        }
    }

    /// The key as stored (decoded when the request had `b`).
    pub fn bytes(&self) -> &[u8] {
        if self.base64 {
            &self.decoded[..usize::from(self.decoded_len)]
        } else {
            self.raw
        }
    }

    /// The key as the client sent it (base64 text under `b`).
    pub fn wire(&self) -> &'a [u8] {
        self.raw
    }

    /// The request had `b`: keys are echoed in base64 followed by a ` b` flag.
    pub fn is_base64(&self) -> bool {
        self.base64
    }

    fn decode(&mut self) -> bool {
        // Base64 of a 250-byte key decodes to at most 187 bytes.
        match base64_decode(self.raw, &mut self.decoded) {
            Some(n) if n > 0 => {
                self.decoded_len = n as u8;
                self.base64 = true;
                true
            }
            _ => false,
        }
    }
}

/// memcached's base64 decoder (RFC 1341 style): bytes outside the alphabet are skipped,
/// the remaining characters must be a nonzero multiple of 4, and decoding stops after
/// the first block with padding. Returns the decoded length, `None` on failure.
fn base64_decode(src: &[u8], out: &mut [u8]) -> Option<usize> {
    fn value(c: u8) -> Option<u8> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => 0,
            _ => return None,
        })
    }
    let count = src.iter().filter(|&&c| value(c).is_some()).count();
    if count == 0 || count % 4 != 0 || count / 4 * 3 > out.len() {
        return None;
    }
    let mut pos = 0;
    let mut block = [0u8; 4];
    let mut n = 0;
    let mut pad = 0;
    for &c in src {
        let Some(v) = value(c) else { continue };
        if c == b'=' {
            pad += 1;
        }
        block[n] = v;
        n += 1;
        if n == 4 {
            out[pos] = (block[0] << 2) | (block[1] >> 4);
            out[pos + 1] = (block[1] << 4) | (block[2] >> 2);
            out[pos + 2] = (block[2] << 6) | block[3];
            pos += 3;
            n = 0;
            if pad > 0 {
                match pad {
                    1 => pos -= 1,
                    2 => pos -= 2,
                    _ => return None,
                }
                break;
            }
        }
    }
    Some(pos)
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
    /// An error: send `line` (always, `q` does not hide errors), then discard `swallow`
    /// bytes after the request (an `ms` data block; they may not have arrived yet).
    Error {
        /// The reply, `\r\n` included.
        line: &'static [u8],
        /// Bytes to discard after the consumed ones.
        swallow: usize,
    },
}

fn err(line: &'static [u8]) -> MetaRequest<'static> {
    MetaRequest::Error { line, swallow: 0 }
}

fn split_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let nl = buf.iter().position(|&b| b == b'\n')?;
    let mut end = nl;
    if end > 0 && buf[end - 1] == b'\r' {
        end -= 1;
    }
    Some((&buf[..end], nl + 1))
}

/// Space-separated tokens of a line, at most `MAX_TOKENS + 1` (one more marks "too many").
struct Tokens<'a> {
    t: [&'a [u8]; MAX_TOKENS + 1],
    n: usize,
}

impl<'a> Tokens<'a> {
    fn new(line: &'a [u8]) -> Self {
        let mut t: [&[u8]; MAX_TOKENS + 1] = [&[]; MAX_TOKENS + 1];
        let mut n = 0;
        for tok in line.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
            if n == t.len() {
                break;
            }
            t[n] = tok;
            n += 1;
        }
        Tokens { t, n }
    }
}

/// A flag error: the reply line, and whether it stops the scan at once (duplicate or
/// unknown flag) or lets later tokens be parsed (and possibly overwrite the message).
struct FlagError {
    line: &'static [u8],
}

/// memcached's `_meta_flag_preparse`: scans the flag tokens into `flags`, decoding the
/// key under `b`.
fn preparse<'a>(
    toks: &[&'a [u8]],
    key: &mut Key<'a>,
    flags: &mut MetaFlags<'a>,
) -> Result<(), FlagError> {
    let mut seen = [false; 128];
    let mut error: Option<&'static [u8]> = None;
    for (i, &tok) in toks.iter().enumerate() {
        flags.tokens[i] = tok;
        flags.n = (i + 1) as u8;
        let c = tok[0];
        if c >= 127 || seen[usize::from(c)] {
            return Err(FlagError {
                line: reply::DUPLICATE,
            });
        }
        seen[usize::from(c)] = true;
        let arg = &tok[1..];
        let ttl = |error: &mut Option<&'static [u8]>| match parse_i32(arg) {
            Some(v) => Some(i64::from(v)),
            None => {
                *error = Some(reply::BAD_TOKEN);
                None
            }
        };
        match c {
            b'b' => {
                if !key.decode() {
                    error = Some(reply::BAD_KEY_ENCODING);
                }
            }
            b'N' => flags.vivify = ttl(&mut error),
            b'T' => flags.ttl = ttl(&mut error),
            b'R' => flags.recache = ttl(&mut error),
            b'O' | b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' | b'l' | b'h' => {}
            b'v' => flags.value = true,
            b'u' => flags.no_update = true,
            b'q' => flags.noreply = true,
            b'F' => match parse_u32(arg) {
                Some(v) => flags.client_flags = v,
                // memcached flips its error bit without choosing a message.
                None => error = Some(error.unwrap_or(reply::BAD_FORMAT)),
            },
            b'C' => match parse_u64(arg) {
                Some(v) => flags.compare_cas = Some(v),
                None => error = Some(reply::BAD_TOKEN),
            },
            b'M' => {
                if tok.len() != 2 {
                    error = Some(reply::M_LENGTH);
                } else {
                    flags.mode = Some(tok[1]);
                }
            }
            b'J' => match parse_u64(arg) {
                Some(v) => flags.initial = v,
                None => error = Some(reply::BAD_INITIAL),
            },
            b'D' => match parse_u64(arg) {
                Some(v) => flags.delta = v,
                None => error = Some(reply::BAD_DELTA),
            },
            b'I' => flags.invalidate = true,
            _ => {
                return Err(FlagError {
                    line: reply::INVALID_FLAG,
                })
            }
        }
    }
    match error {
        Some(line) => Err(FlagError { line }),
        None => Ok(()),
    }
}

fn opaque_ok(flags: &MetaFlags<'_>) -> bool {
    flags
        .tokens()
        .iter()
        .all(|t| t[0] != b'O' || t.len() <= MAX_OPAQUE)
}

/// What memcached does with a partial line of `buf.len()` bytes.
fn partial_line(buf: &[u8]) -> ParseError {
    if buf.len() <= MAX_LINE {
        ParseError::Incomplete { need: 0 }
    } else {
        ParseError::Close
    }
}

/// Parses one meta request from the start of `buf`.
///
/// `max_data` is the item size limit (`-I`): an `ms` with a larger data block yields
/// [`MetaRequest::TooLarge`] as soon as its line has arrived. Returns the request and the
/// number of bytes it used (line and, for `ms`, data block).
pub fn parse(buf: &[u8], max_data: usize) -> Result<(MetaRequest<'_>, usize), ParseError> {
    let Some((line, line_len)) = split_line(buf) else {
        return Err(partial_line(buf));
    };
    let t = Tokens::new(line);
    let cmd = if t.n > 0 { t.t[0] } else { &[][..] };
    let command = match cmd {
        b"mn" => return Ok((MetaRequest::Noop, line_len)),
        b"me" => return Ok((parse_debug(&t), line_len)),
        b"mg" => MetaCommand::Get,
        b"ms" => MetaCommand::Set,
        b"md" => MetaCommand::Delete,
        b"ma" => MetaCommand::Arith,
        _ => return Ok((err(reply::ERROR), line_len)),
    };
    if t.n < 2 {
        return Ok((err(reply::ERROR), line_len));
    }
    let mut key = Key::plain(t.t[1]);
    if key.raw.len() > KEY_MAX_LENGTH {
        return Ok((err(reply::BAD_FORMAT), line_len));
    }
    if command == MetaCommand::Set {
        return parse_set(&t, key, buf, line_len, max_data);
    }
    if t.n > MAX_TOKENS {
        let line = if command == MetaCommand::Get {
            reply::MG_TOO_LONG
        } else {
            reply::TOO_LONG
        };
        return Ok((err(line), line_len));
    }
    let mut flags = MetaFlags::new();
    if let Err(e) = preparse(&t.t[2..t.n], &mut key, &mut flags) {
        let line = if command == MetaCommand::Get {
            e.line
        } else {
            reply::INVALID_OR_DUPLICATE
        };
        return Ok((err(line), line_len));
    }
    let args = MetaArgs { key, flags };
    let req = match command {
        MetaCommand::Get => MetaRequest::Get(args),
        MetaCommand::Delete => MetaRequest::Delete(args),
        MetaCommand::Arith => {
            let incr = match flags.mode {
                None | Some(b'I') | Some(b'+') => true,
                Some(b'D') | Some(b'-') => false,
                Some(_) => return Ok((err(reply::MA_MODE), line_len)),
            };
            MetaRequest::Arith { args, incr }
        }
        MetaCommand::Set => unreachable!("handled above"),
    };
    if !opaque_ok(&flags) {
        return Ok((err(reply::OPAQUE_TOO_LONG), line_len));
    }
    Ok((req, line_len))
}

/// An `ms` line, checked, with the data block still to come.
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

/// The `ms` at the start of `buf` when its line is complete and valid, its data block (at
/// most `max_data` bytes) not all there yet: what a receiver that stores the block as it
/// arrives needs. `None` for anything else ([`parse`] deals with it).
pub fn set_head(buf: &[u8], max_data: usize) -> Option<SetHead<'_>> {
    let (line, line_len) = split_line(buf)?;
    let t = Tokens::new(line);
    if t.n < 2 || t.t[0] != b"ms" || t.t[1].len() > KEY_MAX_LENGTH {
        return None;
    }
    match set_line(&t, Key::plain(t.t[1]), line_len, max_data) {
        SetLine::Head(head) => (buf.len() < line_len + head.vlen + 2).then_some(head),
        SetLine::Answer(_) => None,
    }
}

/// What an `ms` line says.
enum SetLine<'a> {
    /// A valid line.
    Head(SetHead<'a>),
    /// What memcached answers instead.
    Answer(MetaRequest<'a>),
}

/// Checks an `ms` line.
fn set_line<'a>(t: &Tokens<'a>, mut key: Key<'a>, line_len: usize, max_data: usize) -> SetLine<'a> {
    if t.n == 2 {
        return SetLine::Answer(err(reply::BAD_FORMAT));
    }
    if t.n > MAX_TOKENS {
        return SetLine::Answer(err(reply::TOO_LONG));
    }
    let vlen = match parse_i32(t.t[2]) {
        Some(v) if (0..=i32::MAX - 2).contains(&v) => v as usize,
        _ => return SetLine::Answer(err(reply::BAD_FORMAT)),
    };
    let swallow = vlen + 2;
    let fail = |line| SetLine::Answer(MetaRequest::Error { line, swallow });
    let mut flags = MetaFlags::new();
    if let Err(e) = preparse(&t.t[3..t.n], &mut key, &mut flags) {
        return fail(e.line);
    }
    if !opaque_ok(&flags) {
        return fail(reply::OPAQUE_TOO_LONG);
    }
    let mode = match flags.mode {
        None | Some(b'S') => SetMode::Set,
        Some(b'E') => SetMode::Add,
        Some(b'A') => SetMode::Append,
        Some(b'P') => SetMode::Prepend,
        Some(b'R') => SetMode::Replace,
        Some(_) => return fail(reply::MS_MODE),
    };
    let args = MetaArgs { key, flags };
    if vlen > max_data {
        return SetLine::Answer(MetaRequest::TooLarge { args, swallow });
    }
    SetLine::Head(SetHead {
        args,
        mode,
        vlen,
        line_len,
    })
}

fn parse_set<'a>(
    t: &Tokens<'a>,
    key: Key<'a>,
    buf: &'a [u8],
    line_len: usize,
    max_data: usize,
) -> Result<(MetaRequest<'a>, usize), ParseError> {
    let h = match set_line(t, key, line_len, max_data) {
        SetLine::Head(h) => h,
        SetLine::Answer(req) => return Ok((req, line_len)),
    };
    let total = line_len + h.vlen + 2;
    if buf.len() < total {
        return Err(ParseError::Incomplete { need: total });
    }
    if &buf[total - 2..total] != b"\r\n" {
        return Ok((err(reply::BAD_CHUNK), total));
    }
    Ok((
        MetaRequest::Set {
            args: h.args,
            mode: h.mode,
            data: &buf[line_len..line_len + h.vlen],
        },
        total,
    ))
}

fn parse_debug<'a>(t: &Tokens<'a>) -> MetaRequest<'a> {
    if t.n < 2 || t.t[1].len() > KEY_MAX_LENGTH {
        return err(reply::BAD_FORMAT);
    }
    let mut key = Key::plain(t.t[1]);
    if t.n > 2 && t.t[2] == b"b" && !key.decode() {
        return err(reply::BAD_KEY_ENCODING);
    }
    MetaRequest::Debug { key }
}

// ---------------------------------------------------------------------------------------
// Reply writers.

/// What a reply reports about an item (the state before the command changed it, where
/// memcached reports that: `h`, `l`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItemInfo {
    /// Value length in bytes.
    pub value_len: usize,
    /// Client flags.
    pub client_flags: u32,
    /// CAS unique.
    pub cas: u64,
    /// Seconds of TTL left, `None` for never.
    pub ttl: Option<u32>,
    /// TTL left before a `T` flag of this request changed it (memcached reports this for
    /// a `t` that comes before the `T`).
    pub old_ttl: Option<u32>,
    /// Seconds since last access.
    pub last_access: u32,
    /// Fetched before this request.
    pub fetched: bool,
}

/// Appends ` k<key>` (and ` b` for a base64 key).
pub fn push_key(out: &mut Vec<u8>, key: &Key<'_>) {
    out.extend_from_slice(b" k");
    if key.is_base64() {
        base64_encode(out, key.bytes());
        out.extend_from_slice(b" b");
    } else {
        out.extend_from_slice(key.bytes());
    }
}

fn base64_encode(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + n);
}

fn push_ttl(out: &mut Vec<u8>, ttl: Option<u32>) {
    match ttl {
        None => out.extend_from_slice(b"-1"),
        Some(t) => push_u64(out, u64::from(t)),
    }
}

/// Appends the echoed `O` and `k` flags in request order (what every meta reply
/// carries, hit or miss).
pub fn push_opaque_and_key(out: &mut Vec<u8>, args: &MetaArgs<'_>) {
    for tok in args.flags.tokens() {
        match tok[0] {
            b'O' => {
                out.push(b' ');
                out.extend_from_slice(tok);
            }
            b'k' => push_key(out, &args.key),
            _ => {}
        }
    }
}

/// Stale and win markers appended after the flags of an `mg` hit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WinFlags {
    /// `W`: this client won the right to recache.
    pub won: bool,
    /// `X`: the item is stale.
    pub stale: bool,
    /// `Z`: another client already holds the win.
    pub already_sent: bool,
}

/// Appends an `mg` hit: `VA <len> <flags>*\r\n<value>\r\n` (with `v`) or
/// `HD <flags>*\r\n`.
pub fn write_get_hit(
    out: &mut Vec<u8>,
    args: &MetaArgs<'_>,
    info: &ItemInfo,
    win: WinFlags,
    value: &[u8],
) {
    out.reserve(value.len() + 64);
    if args.flags.value {
        out.extend_from_slice(b"VA ");
        push_u64(out, info.value_len as u64);
    } else {
        out.extend_from_slice(b"HD");
    }
    let mut ttl = info.old_ttl;
    for tok in args.flags.tokens() {
        match tok[0] {
            b'T' => ttl = info.ttl,
            b's' => {
                out.extend_from_slice(b" s");
                push_u64(out, info.value_len as u64);
            }
            b't' => {
                out.extend_from_slice(b" t");
                push_ttl(out, ttl);
            }
            b'c' => {
                out.extend_from_slice(b" c");
                push_u64(out, info.cas);
            }
            b'f' => {
                out.extend_from_slice(b" f");
                push_u64(out, u64::from(info.client_flags));
            }
            b'l' => {
                out.extend_from_slice(b" l");
                push_u64(out, u64::from(info.last_access));
            }
            b'h' => out.extend_from_slice(if info.fetched { b" h1" } else { b" h0" }),
            b'O' => {
                out.push(b' ');
                out.extend_from_slice(tok);
            }
            b'k' => push_key(out, &args.key),
            _ => {}
        }
    }
    if win.already_sent {
        out.extend_from_slice(b" Z");
    }
    if win.stale {
        out.extend_from_slice(b" X");
    }
    if win.won {
        out.extend_from_slice(b" W");
    }
    out.extend_from_slice(b"\r\n");
    if args.flags.value {
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends an `mg` miss: `EN` with the echoed `O`/`k` flags, unless `q`.
pub fn write_get_miss(out: &mut Vec<u8>, args: &MetaArgs<'_>) {
    if args.flags.noreply {
        return;
    }
    out.extend_from_slice(b"EN");
    push_opaque_and_key(out, args);
    out.extend_from_slice(b"\r\n");
}

/// Outcome codes of `ms`, `md` and `ma`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `HD`: success.
    Stored,
    /// `NS`: not stored.
    NotStored,
    /// `EX`: CAS mismatch.
    Exists,
    /// `NF`: not found.
    NotFound,
}

impl Status {
    fn code(self) -> &'static [u8] {
        match self {
            Status::Stored => b"HD",
            Status::NotStored => b"NS",
            Status::Exists => b"EX",
            Status::NotFound => b"NF",
        }
    }
}

/// Appends the reply to an `ms`: the code, then `O`, `k` and `c` in request order
/// (`c` reports the new CAS, 0 unless stored). `HD` is hidden by `q`.
pub fn write_set_reply(out: &mut Vec<u8>, args: &MetaArgs<'_>, status: Status, cas: u64) {
    if args.flags.noreply && status == Status::Stored {
        return;
    }
    out.extend_from_slice(status.code());
    for tok in args.flags.tokens() {
        match tok[0] {
            b'O' => {
                out.push(b' ');
                out.extend_from_slice(tok);
            }
            b'k' => push_key(out, &args.key),
            b'c' => {
                out.extend_from_slice(b" c");
                push_u64(out, if status == Status::Stored { cas } else { 0 });
            }
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the reply to an `md`: the code and the echoed `O`/`k`. `HD` is hidden by `q`.
pub fn write_delete_reply(out: &mut Vec<u8>, args: &MetaArgs<'_>, status: Status) {
    if args.flags.noreply && status == Status::Stored {
        return;
    }
    out.extend_from_slice(status.code());
    push_opaque_and_key(out, args);
    out.extend_from_slice(b"\r\n");
}

/// The item after a successful `ma`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArithResult {
    /// The new value.
    pub value: u64,
    /// Its CAS.
    pub cas: u64,
    /// TTL left, `None` for never.
    pub ttl: Option<u32>,
}

/// Appends the reply to an `ma`: on success `HD <flags>*` or `VA <len> <flags>*` and the
/// number (both hidden by `q`); otherwise the code with the echoed `O`/`k`.
pub fn write_arith_reply(
    out: &mut Vec<u8>,
    args: &MetaArgs<'_>,
    status: Status,
    result: Option<&ArithResult>,
) {
    let Some(r) = result.filter(|_| status == Status::Stored) else {
        out.extend_from_slice(status.code());
        push_opaque_and_key(out, args);
        out.extend_from_slice(b"\r\n");
        return;
    };
    if args.flags.noreply {
        return;
    }
    let mut num = Vec::with_capacity(20);
    push_u64(&mut num, r.value);
    if args.flags.value {
        out.extend_from_slice(b"VA ");
        push_u64(out, num.len() as u64);
    } else {
        out.extend_from_slice(b"HD");
    }
    for tok in args.flags.tokens() {
        match tok[0] {
            b'c' => {
                out.extend_from_slice(b" c");
                push_u64(out, r.cas);
            }
            b't' => {
                out.extend_from_slice(b" t");
                push_ttl(out, r.ttl);
            }
            b'O' => {
                out.push(b' ');
                out.extend_from_slice(tok);
            }
            b'k' => push_key(out, &args.key),
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
    if args.flags.value {
        out.extend_from_slice(&num);
        out.extend_from_slice(b"\r\n");
    }
}

/// What `me` reports about an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebugInfo {
    /// Seconds of TTL left, `None` for never (`exp=-1`).
    pub ttl: Option<u32>,
    /// Seconds since last access.
    pub last_access: u32,
    /// CAS unique.
    pub cas: u64,
    /// Fetched before.
    pub fetched: bool,
    /// Size class id.
    pub class: u32,
    /// Bytes the item occupies.
    pub size: usize,
}

/// Appends `ME <key> exp=.. la=.. cas=.. fetch=yes|no cls=.. size=..`.
pub fn write_debug(out: &mut Vec<u8>, key: &Key<'_>, info: &DebugInfo) {
    out.extend_from_slice(b"ME ");
    if key.is_base64() {
        base64_encode(out, key.bytes());
    } else {
        out.extend_from_slice(key.bytes());
    }
    out.extend_from_slice(b" exp=");
    push_ttl(out, info.ttl);
    out.extend_from_slice(b" la=");
    push_u64(out, u64::from(info.last_access));
    out.extend_from_slice(b" cas=");
    push_u64(out, info.cas);
    out.extend_from_slice(if info.fetched {
        b" fetch=yes"
    } else {
        b" fetch=no"
    });
    out.extend_from_slice(b" cls=");
    push_u64(out, u64::from(info.class));
    out.extend_from_slice(b" size=");
    push_u64(out, info.size as u64);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn one(buf: &[u8]) -> (MetaRequest<'_>, usize) {
        parse(buf, MAX).expect("complete request")
    }

    fn error_of(buf: &[u8]) -> (&'static [u8], usize) {
        match one(buf).0 {
            MetaRequest::Error { line, swallow } => (line, swallow),
            other => panic!(
                "expected an error for {:?}, got {other:?}",
                String::from_utf8_lossy(buf)
            ),
        }
    }

    /// Request -> reply pairs answered by memcached 1.6.18 (errors the parser decides).
    const ERRORS: &[(&[u8], &[u8], usize)] = &[
        (b"mg\r\n", b"ERROR\r\n", 0),
        (b"md\r\n", b"ERROR\r\n", 0),
        (b"mz foo\r\n", b"ERROR\r\n", 0),
        (b"mg foo zz\r\n", b"CLIENT_ERROR invalid flag\r\n", 0),
        (b"mg foo k k\r\n", b"CLIENT_ERROR duplicate flag\r\n", 0),
        (b"mg foo Ox k Oy\r\n", b"CLIENT_ERROR duplicate flag\r\n", 0),
        (
            b"mg foo T\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
            0,
        ),
        (
            b"mg foo Tx Ny\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
            0,
        ),
        (
            b"mg foo a b c d e f g h i j k l m n o p q r\r\n",
            b"CLIENT_ERROR options flags are too long\r\n",
            0,
        ),
        (
            b"mg foo Oaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            b"CLIENT_ERROR opaque token too long\r\n",
            0,
        ),
        (
            b"ms foo\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
            0,
        ),
        (
            b"ms foo bar\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
            0,
        ),
        (b"ms foo 2 zz\r\n", b"CLIENT_ERROR invalid flag\r\n", 4),
        (
            b"ms foo 2 T\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
            4,
        ),
        (
            b"ms foo 2 F-1\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
            4,
        ),
        (
            b"ms foo 2 F-1 Tx\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
            4,
        ),
        (
            b"ms foo 2 MX\r\n",
            b"CLIENT_ERROR invalid mode for ms M token\r\n",
            4,
        ),
        (
            b"ms foo 2 c k O1 b\r\n",
            b"CLIENT_ERROR error decoding key\r\n",
            4,
        ),
        (
            b"md foo k k\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
            0,
        ),
        (
            b"ma foo zz\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
            0,
        ),
        (
            b"ma foo Dabc\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
            0,
        ),
        (
            b"ma foo MX\r\n",
            b"CLIENT_ERROR invalid mode for ma M token\r\n",
            0,
        ),
        (
            b"ma n4 N0 J18446744073709551616\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
            0,
        ),
        (b"me\r\n", b"CLIENT_ERROR bad command line format\r\n", 0),
    ];

    #[test]
    fn errors_match_memcached() {
        for &(req, line, swallow) in ERRORS {
            let (got, got_swallow) = error_of(req);
            assert_eq!(
                (String::from_utf8_lossy(got), got_swallow),
                (String::from_utf8_lossy(line), swallow),
                "request {:?}",
                String::from_utf8_lossy(req)
            );
        }
    }

    #[test]
    fn opaque_limit_is_32_bytes_with_the_o() {
        let mut ok = b"mg foo O".to_vec();
        ok.extend_from_slice(&[b'a'; 31]);
        ok.extend_from_slice(b"\r\n");
        assert!(matches!(one(&ok).0, MetaRequest::Get(_)));
        let mut bad = b"mg foo O".to_vec();
        bad.extend_from_slice(&[b'a'; 32]);
        bad.extend_from_slice(b"\r\n");
        assert_eq!(error_of(&bad).0, reply::OPAQUE_TOO_LONG);
    }

    #[test]
    fn key_limit() {
        let mut line = b"mg ".to_vec();
        line.extend_from_slice(&[b'k'; 251]);
        line.extend_from_slice(b" v\r\n");
        assert_eq!(error_of(&line).0, reply::BAD_FORMAT);
        line.remove(3);
        assert!(matches!(one(&line).0, MetaRequest::Get(_)));
    }

    #[test]
    fn get_flags_parse() {
        let (req, n) = one(b"mg foo v k Oab T30 N10 R5 q u\r\nrest");
        assert_eq!(n, 31);
        let MetaRequest::Get(a) = req else { panic!() };
        assert_eq!(a.key.bytes(), b"foo");
        assert!(a.flags.value && a.flags.noreply && a.flags.no_update);
        assert_eq!(a.flags.ttl, Some(30));
        assert_eq!(a.flags.vivify, Some(10));
        assert_eq!(a.flags.recache, Some(5));
        assert_eq!(a.flags.tokens().len(), 8);
        assert_eq!(
            one(b"mg foo\n").0,
            MetaRequest::Get(a_without_flags(b"foo"))
        );
    }

    fn a_without_flags(key: &[u8]) -> MetaArgs<'_> {
        MetaArgs {
            key: Key::plain(key),
            flags: MetaFlags::new(),
        }
    }

    #[test]
    fn set_head_while_the_data_block_is_incomplete() {
        let full = b"ms k 5 T9 F3 MR q\r\nhello\r\n";
        let line = 19;
        for cut in 0..full.len() {
            match set_head(&full[..cut], MAX) {
                None => assert!(cut < line, "cut {cut}"),
                Some(h) => {
                    assert!(cut >= line);
                    assert_eq!((h.vlen, h.line_len, h.mode), (5, line, SetMode::Replace));
                    assert_eq!(
                        (
                            h.args.key.bytes(),
                            h.args.flags.ttl,
                            h.args.flags.client_flags
                        ),
                        (&b"k"[..], Some(9), 3)
                    );
                    assert!(h.args.flags.noreply);
                }
            }
        }
        assert_eq!(set_head(full, MAX), None);
        for bad in [
            &b"ms k 5 MX\r\n"[..],
            b"ms k 5 zz\r\n",
            b"ms k 2000000\r\n",
            b"ms k\r\n",
            b"mg k 5\r\n",
            b"set k 0 0 5\r\n",
        ] {
            assert_eq!(set_head(bad, MAX), None, "{bad:?}");
        }
    }

    #[test]
    fn set_waits_for_data_and_checks_chunk() {
        let full = b"ms foo 5 T10 F7 MA C99 I\r\nhello\r\n";
        for cut in 0..full.len() {
            assert!(
                matches!(parse(&full[..cut], MAX), Err(ParseError::Incomplete { .. })),
                "cut {cut}"
            );
        }
        let (req, n) = one(full);
        assert_eq!(n, full.len());
        let MetaRequest::Set { args, mode, data } = req else {
            panic!()
        };
        assert_eq!((mode, data), (SetMode::Append, &b"hello"[..]));
        assert_eq!(args.flags.client_flags, 7);
        assert_eq!(args.flags.compare_cas, Some(99));
        assert!(args.flags.invalidate);
        assert_eq!(one(b"ms foo 2\r\nabc\r\n"), (err(reply::BAD_CHUNK), 14));
    }

    #[test]
    fn too_large_is_reported_before_the_data() {
        let (req, n) = parse(b"ms big 2000000 T0\r\n", MAX).unwrap();
        assert_eq!(n, 19);
        assert!(matches!(
            req,
            MetaRequest::TooLarge {
                swallow: 2000002,
                ..
            }
        ));
    }

    #[test]
    fn long_partial_line_closes() {
        assert_eq!(
            parse(&[b'm'; 100], MAX),
            Err(ParseError::Incomplete { need: 0 })
        );
        assert_eq!(parse(&[b'm'; 2049], MAX), Err(ParseError::Close));
    }

    #[test]
    fn arith_modes() {
        for (line, incr) in [
            (&b"ma k\r\n"[..], true),
            (b"ma k MI\r\n", true),
            (b"ma k M+\r\n", true),
            (b"ma k MD\r\n", false),
            (b"ma k M-\r\n", false),
        ] {
            let MetaRequest::Arith { incr: got, .. } = one(line).0 else {
                panic!()
            };
            assert_eq!(got, incr);
        }
        let MetaRequest::Arith { args, .. } = one(b"ma k N0 J7 D20\r\n").0 else {
            panic!()
        };
        assert_eq!((args.flags.initial, args.flags.delta), (7, 20));
    }

    #[test]
    fn base64_keys() {
        let MetaRequest::Get(a) = one(b"mg Zm9v b k v\r\n").0 else {
            panic!()
        };
        assert_eq!(a.key.bytes(), b"foo");
        let mut out = Vec::new();
        write_get_miss(&mut out, &a);
        assert_eq!(out, b"EN kZm9v b\r\n");
    }

    #[test]
    fn reply_writers_match_memcached() {
        let MetaRequest::Get(a) = one(b"mg foo v k f t c s\r\n").0 else {
            panic!()
        };
        let info = ItemInfo {
            value_len: 3,
            client_flags: 0,
            cas: 1,
            ttl: None,
            old_ttl: None,
            last_access: 2,
            fetched: true,
        };
        let mut out = Vec::new();
        write_get_hit(&mut out, &a, &info, WinFlags::default(), b"bar");
        assert_eq!(out, b"VA 3 kfoo f0 t-1 c1 s3\r\nbar\r\n");

        let MetaRequest::Get(a) = one(b"mg foo h l t v\r\n").0 else {
            panic!()
        };
        out.clear();
        write_get_hit(&mut out, &a, &info, WinFlags::default(), b"bar");
        assert_eq!(out, b"VA 3 h1 l2 t-1\r\nbar\r\n");

        let MetaRequest::Get(a) = one(b"mg k1 v c t\r\n").0 else {
            panic!()
        };
        out.clear();
        let info = ItemInfo {
            value_len: 2,
            cas: 10,
            ttl: Some(29),
            old_ttl: Some(29),
            ..info
        };
        let win = WinFlags {
            won: false,
            stale: true,
            already_sent: true,
        };
        write_get_hit(&mut out, &a, &info, win, b"xy");
        assert_eq!(out, b"VA 2 c10 t29 Z X\r\nxy\r\n");

        let MetaRequest::Get(a) = one(b"mg foo c f h k l O s t u v\r\n").0 else {
            panic!()
        };
        out.clear();
        write_get_miss(&mut out, &a);
        assert_eq!(out, b"EN kfoo O\r\n");

        let MetaRequest::Set { args, .. } = one(b"ms k1 2 c k O9 T0 F5\r\nab\r\n").0 else {
            panic!()
        };
        out.clear();
        write_set_reply(&mut out, &args, Status::Stored, 7);
        assert_eq!(out, b"HD c7 kk1 O9\r\n");
        out.clear();
        write_set_reply(&mut out, &args, Status::Exists, 7);
        assert_eq!(out, b"EX c0 kk1 O9\r\n");

        let MetaRequest::Arith { args, .. } = one(b"ma n MI D5 v t c\r\n").0 else {
            panic!()
        };
        out.clear();
        let r = ArithResult {
            value: 5,
            cas: 5,
            ttl: None,
        };
        write_arith_reply(&mut out, &args, Status::Stored, Some(&r));
        assert_eq!(out, b"VA 1 t-1 c5\r\n5\r\n");

        let MetaRequest::Delete(args) = one(b"md k1 I T30 k O5\r\n").0 else {
            panic!()
        };
        out.clear();
        write_delete_reply(&mut out, &args, Status::Stored);
        assert_eq!(out, b"HD kk1 O5\r\n");

        let MetaRequest::Debug { key } = one(b"me foo\r\n").0 else {
            panic!()
        };
        out.clear();
        let d = DebugInfo {
            ttl: None,
            last_access: 2,
            cas: 1,
            fetched: true,
            class: 1,
            size: 65,
        };
        write_debug(&mut out, &key, &d);
        assert_eq!(out, b"ME foo exp=-1 la=2 cas=1 fetch=yes cls=1 size=65\r\n");
    }

    #[test]
    fn quiet_mode_hides_nominal_replies_only() {
        let MetaRequest::Set { args, .. } = one(b"ms k 1 q\r\nx\r\n").0 else {
            panic!()
        };
        let mut out = Vec::new();
        write_set_reply(&mut out, &args, Status::Stored, 1);
        assert!(out.is_empty());
        write_set_reply(&mut out, &args, Status::NotStored, 1);
        assert_eq!(out, b"NS\r\n");
        let MetaRequest::Delete(args) = one(b"md k q\r\n").0 else {
            panic!()
        };
        out.clear();
        write_delete_reply(&mut out, &args, Status::NotFound);
        assert_eq!(out, b"NF\r\n");
        let MetaRequest::Get(args) = one(b"mg k q\r\n").0 else {
            panic!()
        };
        out.clear();
        write_get_miss(&mut out, &args);
        assert!(out.is_empty());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn key() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(0x21u8..0x7f, 1..=250)
        }

        proptest! {
            #[test]
            fn set_round_trips(
                key in key(),
                data in proptest::collection::vec(any::<u8>(), 0..300),
                flags in any::<u32>(),
                ttl in any::<i32>(),
                cas in proptest::option::of(any::<u64>()),
                quiet in any::<bool>(),
                split in any::<prop::sample::Index>(),
            ) {
                let mut req = format!("ms {} {} F{flags} T{ttl}", String::from_utf8_lossy(&key), data.len()).into_bytes();
                // Printable ASCII keys survive the lossy conversion unchanged.
                if let Some(c) = cas { req.extend_from_slice(format!(" C{c}").as_bytes()); }
                if quiet { req.extend_from_slice(b" q"); }
                req.extend_from_slice(b"\r\n");
                req.extend_from_slice(&data);
                req.extend_from_slice(b"\r\n");
                let cut = split.index(req.len());
                let partial = matches!(parse(&req[..cut], MAX), Err(ParseError::Incomplete { .. }));
                prop_assert!(partial);
                let (r, n) = parse(&req, MAX).unwrap();
                prop_assert_eq!(n, req.len());
                let MetaRequest::Set { args, mode, data: got } = r else { panic!("{r:?}") };
                prop_assert_eq!(mode, SetMode::Set);
                prop_assert_eq!(got, &data[..]);
                prop_assert_eq!(args.key.bytes(), &key[..]);
                prop_assert_eq!(args.flags.client_flags, flags);
                prop_assert_eq!(args.flags.ttl, Some(i64::from(ttl)));
                prop_assert_eq!(args.flags.compare_cas, cas);
                prop_assert_eq!(args.flags.noreply, quiet);
            }

            #[test]
            fn base64_keys_round_trip(bin in proptest::collection::vec(any::<u8>(), 1..=186)) {
                let enc = base64::engine::general_purpose::STANDARD.encode(&bin);
                let req = format!("mg {enc} b k v\r\n");
                let MetaRequest::Get(a) = parse(req.as_bytes(), MAX).unwrap().0 else { panic!() };
                prop_assert_eq!(a.key.bytes(), &bin[..]);
                let mut out = Vec::new();
                write_get_miss(&mut out, &a);
                prop_assert_eq!(out, format!("EN k{enc} b\r\n").into_bytes());
            }

            #[test]
            fn garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..400)) {
                let mut input = b"m".to_vec();
                input.extend_from_slice(&buf);
                match parse(&input, 1000) {
                    Ok((_, n)) => prop_assert!(n > 0 && n <= input.len()),
                    Err(ParseError::Incomplete { need }) => prop_assert!(need == 0 || need > input.len()),
                    Err(ParseError::Close) => prop_assert!(input.len() > MAX_LINE),
                }
            }
        }
    }
}
