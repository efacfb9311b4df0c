//! The text-protocol request parser.

use super::{
    ops, reply, Keys, Request, ShutdownMode, StatsKind, StorageHead, StorageKind, MAX_GET_LINE,
};
use crate::protocol::lex::{
    key_fits, next_token, parse_f64, parse_i32, parse_u32, parse_u64, split_line, ParseError, Span,
    Tokens, MAX_LINE,
};

/// The most tokens any non-retrieval command has (`cas` with `noreply`: 7); one more is
/// kept so that "too many" is visible.
const MAX_TOKENS: usize = 8;

/// The tokens of a line: up to [`MAX_TOKENS`], and how many there were (capped at
/// `MAX_TOKENS`, meaning "more than 7").
type LineTokens<'a> = Tokens<'a, MAX_TOKENS>;

pub(super) fn reply(line: &'static [u8], noreply: bool) -> Request<'static> {
    Request::Reply { line, noreply }
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

/// Whether the request at the start of `buf` is a meta command line, for the meta parser
/// ([`crate::protocol::meta::parse`]): the front dispatch of a text connection, decided
/// on the first bytes exactly as [`parse`] decides (the first token of the line, which
/// ends at a NUL, is `mg`, `ms`, `md`, `ma`, `mn` or `me`). False while the bytes that
/// decide have not arrived: no line is complete then, and [`parse`] asks for more.
#[inline]
pub fn is_meta(buf: &[u8]) -> bool {
    let mut i = 0;
    while i < buf.len() && buf[i] == b' ' {
        i += 1;
    }
    let b = &buf[i..];
    b.len() >= 3
        && b[0] == b'm'
        && matches!(b[1], b'g' | b's' | b'd' | b'a' | b'n' | b'e')
        && match b[2] {
            b' ' | b'\n' | 0 => true,
            b'\r' => b.get(3) == Some(&b'\n'),
            _ => false,
        }
}

/// Parses one request from the start of `buf`.
///
/// `max_data` is the item size limit (`-I`): a storage command with a larger data block
/// yields [`Request::TooLarge`] without waiting for the block, and one whose block has not
/// all arrived yields its head ([`Request::Value`]) once the line has. On success,
/// returns the request and the number of bytes it took (the line's for a
/// [`Request::Value`], 0 for [`Request::Meta`]).
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
        if !key_fits(k) {
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

/// Checks a storage command line: its fields, or the request memcached answers instead.
fn storage_line<'a>(
    kind: StorageKind,
    line: &'a [u8],
    buf: &'a [u8],
    line_len: usize,
    max_data: usize,
) -> Result<StorageHead, Request<'a>> {
    let t = LineTokens::new(line);
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
    if !key_fits(key) {
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
            kind,
            key,
            noreply,
            swallow: vlen + 2,
        });
    }
    Ok(StorageHead {
        kind,
        key: Span::of(key, buf),
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
    let h = match storage_line(kind, line, buf, line_len, max_data) {
        Ok(h) => h,
        Err(req) => return Ok((req, line_len)),
    };
    let total = h.total_len();
    if buf.len() < total {
        return Ok((Request::Value(h), line_len));
    }
    if &buf[total - 2..total] != b"\r\n" {
        return Ok((reply(reply::BAD_CHUNK, h.noreply), total));
    }
    Ok((Request::Storage(h.request(buf)), total))
}

/// An operator's command as a request.
fn operator(parsed: ops::Parsed) -> Request<'static> {
    match parsed {
        Ok(r) => Request::Ops(r),
        Err((line, noreply)) => reply(line, noreply),
    }
}

fn parse_simple<'a>(cmd: &'a [u8], line: &'a [u8]) -> Request<'a> {
    let args = next_token(line).1;
    match cmd {
        b"lru_crawler" => return operator(ops::lru_crawler(args)),
        b"lru" => return operator(ops::lru(args)),
        b"cache_memlimit" => return operator(ops::cache_memlimit(args)),
        b"watch" => return operator(ops::watch(args)),
        _ => {}
    }
    let t = LineTokens::new(line);
    let noreply = t.noreply();
    match cmd {
        b"delete" => {
            if !(2..=4).contains(&t.n) {
                return reply(reply::ERROR, false);
            }
            if !key_fits(t.t[1]) {
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
            if !key_fits(t.t[1]) {
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
            if !key_fits(t.t[1]) {
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
        b"refresh_certs" => Request::RefreshCerts,
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
                b"detail" => return operator(ops::stats_detail(next_token(args).1)),
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
fn parse_slabs<'a>(t: &LineTokens<'a>) -> Request<'a> {
    let sub = if t.n > 1 { t.t[1] } else { b"" };
    if t.n == 4 && sub == b"reassign" {
        return Request::SlabsReassign {
            args: parse_i32(t.t[2]).zip(parse_i32(t.t[3])),
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
