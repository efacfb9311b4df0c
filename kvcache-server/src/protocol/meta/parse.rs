//! The meta request parser.

use super::{
    reply, Key, MetaArgs, MetaCommand, MetaFlags, MetaRequest, SetHead, SetMode, MAX_OPAQUE,
    MAX_TOKENS,
};
use crate::protocol::lex::{
    key_fits, parse_i32, parse_u32, parse_u64, split_line, ParseError, Tokens, MAX_LINE,
};

/// Space-separated tokens of a line, at most `MAX_TOKENS + 1` (one more marks "too many").
type LineTokens<'a> = Tokens<'a, { MAX_TOKENS + 1 }>;

pub(super) fn err(line: &'static [u8]) -> MetaRequest<'static> {
    MetaRequest::Error { line, swallow: 0 }
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
/// [`MetaRequest::TooLarge`] as soon as its line has arrived, and one whose block has not
/// all arrived yields its head ([`MetaRequest::Value`]). Returns the request and the
/// number of bytes it used (line and, for a complete `ms`, data block).
pub fn parse(buf: &[u8], max_data: usize) -> Result<(MetaRequest<'_>, usize), ParseError> {
    let Some((line, line_len)) = split_line(buf) else {
        return Err(partial_line(buf));
    };
    let t = LineTokens::new(line);
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
    if !key_fits(key.wire()) {
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

/// What an `ms` line says.
enum SetLine<'a> {
    /// A valid line.
    Head(SetHead<'a>),
    /// What memcached answers instead.
    Answer(MetaRequest<'a>),
}

/// Checks an `ms` line.
fn set_line<'a>(
    t: &LineTokens<'a>,
    mut key: Key<'a>,
    line_len: usize,
    max_data: usize,
) -> SetLine<'a> {
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
    t: &LineTokens<'a>,
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
        return Ok((MetaRequest::Value(h), line_len));
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

fn parse_debug<'a>(t: &LineTokens<'a>) -> MetaRequest<'a> {
    if t.n < 2 || !key_fits(t.t[1]) {
        return err(reply::BAD_FORMAT);
    }
    let mut key = Key::plain(t.t[1]);
    if t.n > 2 && t.t[2] == b"b" && !key.decode() {
        return err(reply::BAD_KEY_ENCODING);
    }
    MetaRequest::Debug { key }
}
