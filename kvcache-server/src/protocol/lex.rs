//! What the three parsers share: the parse outcome that is not a request
//! ([`ParseError`]), memcached's key rules, lines and tokens, memcached's number parsing
//! (its `safe_strto*` helpers over C's `strto*`) and decimal formatting.
//!
//! Key rules, as memcached 1.6.18 applies them:
//! - a key is 1 to [`KEY_MAX_LENGTH`] bytes ([`key_fits`]); a longer one is refused
//!   before anything after it is buffered;
//! - control characters are part of a key: on a text or meta line only a space separates
//!   tokens (a tab, a `\r` inside the line or any other control byte belongs to the
//!   token), and a binary key is any bytes. The text parser ends a line at its first NUL,
//!   as memcached's C string handling does.
//!
//! Nothing here allocates.

/// The longest key memcached accepts.
pub const KEY_MAX_LENGTH: usize = 250;

/// A partial text or meta line longer than this closes the connection (memcached's
/// 2048-byte rule; the text protocol excepts `get`/`gets` lines).
pub const MAX_LINE: usize = 2048;

/// Why a parser returned no request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// More bytes are needed; `need` is the total length the buffer must hold, if known
    /// (a binary header or key still arriving), else 0.
    Incomplete {
        /// Total bytes the buffer must hold, 0 if unknown.
        need: usize,
    },
    /// memcached closes the connection here (a line too long without a newline, a bad
    /// binary magic byte).
    Close,
}

/// Whether `key` is short enough for memcached (at most [`KEY_MAX_LENGTH`] bytes).
#[inline]
pub fn key_fits(key: &[u8]) -> bool {
    key.len() <= KEY_MAX_LENGTH
}

/// A key copied out of the read buffer, for a request whose value is still arriving
/// after the buffer has moved on. Inline: copying it allocates nothing.
#[derive(Clone, Copy)]
pub struct OwnedKey {
    bytes: [u8; KEY_MAX_LENGTH],
    len: u8,
}

impl OwnedKey {
    /// Copies `key`, which must fit ([`key_fits`]).
    pub fn new(key: &[u8]) -> Self {
        debug_assert!(key_fits(key));
        let len = key.len().min(KEY_MAX_LENGTH);
        let mut bytes = [0; KEY_MAX_LENGTH];
        bytes[..len].copy_from_slice(&key[..len]);
        OwnedKey {
            bytes,
            len: len as u8,
        }
    }

    /// The key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for OwnedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Where a part of a request lies in the request's bytes, counted from its first byte:
/// what a request head keeps instead of a borrowed slice, so that it outlives a read
/// buffer that moves (the bytes move with the request).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// The span of `part`, which lies inside `request`.
    pub fn of(part: &[u8], request: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(request.as_ptr() as usize);
        debug_assert!(part.is_empty() || start + part.len() <= request.len());
        if part.is_empty() {
            return Span::default();
        }
        Span {
            start: start as u32,
            len: part.len() as u32,
        }
    }

    /// The bytes of this span in `request` (empty if `request` is too short).
    #[inline]
    pub fn get<'a>(&self, request: &'a [u8]) -> &'a [u8] {
        let start = self.start as usize;
        request
            .get(start..start + self.len as usize)
            .unwrap_or_default()
    }
}

/// Finds the end of the first line: `(line without "\r\n", bytes up to and including
/// "\n")`. Only a `\r` just before the `\n` is dropped.
#[inline]
pub fn split_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let nl = memchr::memchr(b'\n', buf)?;
    let mut end = nl;
    if end > 0 && buf[end - 1] == b'\r' {
        end -= 1;
    }
    Some((&buf[..end], nl + 1))
}

/// Splits off the next space-separated token (runs of spaces separate tokens; only
/// spaces do).
#[inline]
pub fn next_token(s: &[u8]) -> (Option<&[u8]>, &[u8]) {
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

/// The first `N` tokens of a line and how many there were, capped at `N` (a parser
/// keeps one more than it accepts, so that "too many" is visible).
pub(crate) struct Tokens<'a, const N: usize> {
    pub t: [&'a [u8]; N],
    pub n: usize,
}

impl<'a, const N: usize> Tokens<'a, N> {
    #[inline]
    pub fn new(mut line: &'a [u8]) -> Self {
        let mut t: [&[u8]; N] = [&[]; N];
        let mut n = 0;
        while n < N {
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
    pub fn noreply(&self) -> bool {
        self.n > 0 && self.t[self.n - 1] == b"noreply"
    }
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// C's `strto*` number syntax over a whole token: optional whitespace, optional sign,
/// decimal digits (at least one), then nothing or whitespace (what follows the
/// whitespace is not looked at, as C stops there). Returns (negative, magnitude) or
/// `None` on bad syntax or overflow of 64 bits.
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

/// memcached's `safe_strtoull`: C's wrap-around for a `-`, but a result that looks
/// negative as a signed number is rejected when the converted text had a `-`. Also what
/// `incr`/`decr` read a stored value with.
pub fn parse_u64(tok: &[u8]) -> Option<u64> {
    let (neg, v) = c_number(tok)?;
    let v = if neg { v.wrapping_neg() } else { v };
    if (v as i64) < 0 && neg {
        return None;
    }
    Some(v)
}

/// memcached's `safe_strtoul` on a 64-bit machine, then stored in 32 bits (flags,
/// verbosity): values of 2^32 and more are truncated, as memcached truncates them.
pub fn parse_u32(tok: &[u8]) -> Option<u32> {
    parse_u64(tok).map(|v| v as u32)
}

/// memcached's `safe_strtol` into an `int32_t` (and C's `strtol` into an `int`, as
/// `slabs reassign` reads its ids): `strtol` reads a `long` (64 bits; out of its range
/// fails) and the assignment to 32 bits truncates, so `4294967297` reads as 1 and
/// `2147483648` as `i32::MIN`, as in memcached.
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

/// memcached's `safe_strtod`: a number, then nothing or whitespace.
pub fn parse_f64(tok: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(tok).ok()?;
    let s = s.trim_start_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
    let end = s
        .find(|c: char| c.is_ascii() && is_c_space(c as u8))
        .unwrap_or(s.len());
    s[..end].parse().ok()
}

/// Writes `v` in decimal at the end of `buf` and returns the digits.
#[inline]
pub fn format_u64(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Appends `v` in decimal.
#[inline]
pub fn push_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let digits = format_u64(v, &mut buf);
    // Byte pushes rather than `extend_from_slice`: numbers are a few bytes long, and a
    // variable-length copy costs a `memcpy` call per number.
    out.reserve(digits.len());
    for &b in digits {
        out.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_like_c() {
        assert_eq!(parse_u64(b"+5"), Some(5));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"-0"), Some(0));
        assert_eq!(parse_u64(b" 7 "), Some(7));
        assert_eq!(parse_u64(b"3 x"), Some(3));
        assert_eq!(parse_u64(b"3x"), None);
        assert_eq!(parse_u64(b" "), None);
        assert_eq!(parse_u64(b"-"), None);
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u32(b"4294967297"), Some(1));
        assert_eq!(parse_i32(b"-2147483648"), Some(i32::MIN));
        assert_eq!(parse_i32(b"2147483648"), Some(i32::MIN));
        assert_eq!(parse_i32(b"4294967297"), Some(1));
        assert_eq!(parse_i32(b"-4294967295"), Some(1));
        assert_eq!(parse_i32(b"9223372036854775808"), None);
        assert_eq!(parse_i32(b"-9223372036854775808"), Some(0));
        assert_eq!(parse_i32(b"-9223372036854775809"), None);
        assert_eq!(parse_i32(b""), None);
        assert_eq!(parse_i32(b"1x"), None);
        assert_eq!(parse_f64(b" 1.5"), Some(1.5));
        assert_eq!(parse_f64(b"1.5x"), None);
    }

    #[test]
    fn formatting() {
        let mut out = Vec::new();
        push_u64(&mut out, 0);
        out.push(b' ');
        push_u64(&mut out, u64::MAX);
        assert_eq!(out, b"0 18446744073709551615");
        let mut buf = [0; 20];
        assert_eq!(format_u64(42, &mut buf), b"42");
    }

    #[test]
    fn lines_tokens_and_keys() {
        assert_eq!(split_line(b"ab\r\ncd"), Some((&b"ab"[..], 4)));
        assert_eq!(split_line(b"a\rb\n"), Some((&b"a\rb"[..], 4)));
        assert_eq!(split_line(b"ab"), None);
        let t = Tokens::<3>::new(b"  a\tb  c d noreply");
        assert_eq!((t.n, t.t[0], t.t[1]), (3, &b"a\tb"[..], &b"c"[..]));
        assert!(!t.noreply());
        assert!(Tokens::<8>::new(b"x noreply").noreply());
        let long = [b'k'; KEY_MAX_LENGTH + 1];
        assert!(key_fits(&long[1..]) && !key_fits(&long));
        assert_eq!(OwnedKey::new(b"key\x01").as_bytes(), b"key\x01");
        let req = b"set key 0 0 1\r\n";
        let span = Span::of(&req[4..7], req);
        assert_eq!(span.get(req), b"key");
        assert_eq!(span.get(&req[..5]), b"");
    }
}
