//! memcached's text-protocol authentication (`-Y <authfile>`).
//!
//! The auth file holds `user:password` lines. Until a connection authenticates, it may
//! send only the authentication request, a `set` whose key, flags and exptime are
//! ignored and whose data block is `<user> <password>`:
//!
//! ```text
//! set <any key> <flags> <exptime> <n>\r\n<user> <password>\r\n   ->  STORED
//! ```
//!
//! Everything else is answered `CLIENT_ERROR unauthenticated` and the connection stays
//! open. This follows memcached 1.6.18's `try_read_command_asciiauth` byte for byte:
//! - the command line is tokenized with the `\r` left in place; fewer than five tokens,
//!   a first token other than `set`, or a fifth token that is not a number gives
//!   `CLIENT_ERROR unauthenticated` (the line is consumed, the connection stays);
//! - otherwise `n + 2` bytes are read (`n` wraps at 2^32 as memcached's `uint32_t`); a
//!   block not ending in `\r\n` gives `CLIENT_ERROR bad command line termination`, one
//!   with fewer than two space-separated tokens (up to a NUL byte) gives
//!   `CLIENT_ERROR bad authentication token format`, unknown credentials give
//!   `CLIENT_ERROR authentication failure` (counted in `auth_cmds` and `auth_errors`);
//!   success answers `STORED` (counted in `auth_cmds`);
//! - more than 2048 bytes without a newline close the connection, as does a data block
//!   that cannot fit the 16 KiB read buffer (memcached's buffer does not grow here);
//! - memcached reuses one response object for every reply it writes before
//!   authentication, so of several such replies written in one batch only the last
//!   reaches the client. The worker reproduces this: an unauthenticated reply replaces
//!   the unsent ones before it.
//!
//! The binary protocol cannot authenticate this way, so with `-Y` memcached binds the
//! text protocol only (`binding_protocol ascii`): a binary request is read as text.

use std::fmt;

/// The longest line memcached waits for before closing an unauthenticated connection.
const MAX_AUTH_LINE: usize = 2048;

/// The largest data block an authentication request may have (memcached's fixed read
/// buffer).
const MAX_AUTH_BLOCK: usize = 16 * 1024;

/// memcached's `MAX_TOKENS`: the tokenizer keeps at most this many tokens minus one.
const MAX_TOKENS: usize = 24;

/// The credentials of an auth file.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthFile {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for AuthFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the passwords.
        f.debug_struct("AuthFile")
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// Why an auth file could not be loaded; `Display` gives memcached's message.
#[derive(Debug)]
pub enum AuthFileError {
    /// The file cannot be opened or read.
    Open(String, std::io::Error),
    /// A line has no `:`.
    Malformed(String),
}

impl fmt::Display for AuthFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // memcached prints the OS error twice (its `vperror` appends it again).
            AuthFileError::Open(path, e) => {
                let e = os_error_text(e);
                write!(
                    f,
                    "Could not open authfile [{path}] for reading, error {e}: {e}"
                )
            }
            AuthFileError::Malformed(path) => write!(
                f,
                "Authfile [{path}] has a malformed entry. Should be 'user:password'"
            ),
        }
    }
}

/// The OS's text of an I/O error without Rust's " (os error N)" suffix.
fn os_error_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

impl AuthFile {
    /// Reads `user:password` lines from `path`.
    pub fn load(path: &str) -> Result<AuthFile, AuthFileError> {
        let data = std::fs::read(path).map_err(|e| AuthFileError::Open(path.to_owned(), e))?;
        Self::parse(&data).ok_or_else(|| AuthFileError::Malformed(path.to_owned()))
    }

    /// Parses the file's contents: one `user:password` per line; the user ends at the
    /// first `:`, the password at the end of the line (a `\r` before the `\n` is not
    /// part of it). A line without `:` makes the whole file malformed, as in memcached.
    pub fn parse(data: &[u8]) -> Option<AuthFile> {
        let mut entries = Vec::new();
        let body = data.strip_suffix(b"\n").unwrap_or(data);
        if body.is_empty() {
            return Some(AuthFile { entries });
        }
        for line in body.split(|&b| b == b'\n') {
            let colon = line.iter().position(|&b| b == b':')?;
            let user = &line[..colon];
            let rest = &line[colon + 1..];
            let end = rest
                .iter()
                .position(|&b| b == b'\r' || b == 0)
                .unwrap_or(rest.len());
            entries.push((user.to_vec(), rest[..end].to_vec()));
        }
        Some(AuthFile { entries })
    }

    /// Whether `user`/`password` is one of the entries.
    pub fn check(&self, user: &[u8], password: &[u8]) -> bool {
        // Compare every entry in full so the time taken does not depend on where a
        // guess first differs.
        let mut ok = false;
        for (u, p) in &self.entries {
            ok |= ct_eq(u, user) & ct_eq(p, password);
        }
        ok
    }
}

/// Equality whose time depends only on the lengths.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What an unauthenticated connection's buffered bytes amount to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthStep {
    /// Wait for more bytes.
    Incomplete,
    /// Close the connection (a line or block too long).
    Close,
    /// Consumed `used` bytes; answer `reply`. `pending` is the data block length now
    /// expected (after an accepted command line), `None` when this step completed a
    /// request.
    Consumed {
        used: usize,
        reply: Option<&'static [u8]>,
        pending: Option<usize>,
    },
    /// A complete data block of `used` bytes with the given credentials.
    Credentials {
        used: usize,
        user: Vec<u8>,
        password: Vec<u8>,
    },
}

/// `CLIENT_ERROR unauthenticated`
pub(crate) const UNAUTHENTICATED: &[u8] = b"CLIENT_ERROR unauthenticated\r\n";
/// `CLIENT_ERROR bad command line termination`
pub(crate) const BAD_TERMINATION: &[u8] = b"CLIENT_ERROR bad command line termination\r\n";
/// `CLIENT_ERROR bad authentication token format`
pub(crate) const BAD_TOKEN_FORMAT: &[u8] = b"CLIENT_ERROR bad authentication token format\r\n";
/// `CLIENT_ERROR authentication failure`
pub(crate) const FAILURE: &[u8] = b"CLIENT_ERROR authentication failure\r\n";
/// `STORED`
pub(crate) const STORED: &[u8] = b"STORED\r\n";

/// memcached's `tokenize_command` on a NUL-free line: space-separated tokens, at most
/// `MAX_TOKENS - 1` of them.
fn tokens(line: &[u8]) -> Vec<&[u8]> {
    line.split(|&b| b == b' ')
        .filter(|t| !t.is_empty())
        .take(MAX_TOKENS - 1)
        .collect()
}

/// One step of the authentication exchange over `buf` (the unconsumed bytes).
/// `pending` is the data block length expected after an accepted command line.
pub(crate) fn step(buf: &[u8], pending: Option<usize>) -> AuthStep {
    let Some(block) = pending else {
        if buf.len() < 2 {
            return AuthStep::Incomplete;
        }
        let Some(nl) = memchr::memchr(b'\n', buf) else {
            return if buf.len() > MAX_AUTH_LINE {
                AuthStep::Close
            } else {
                AuthStep::Incomplete
            };
        };
        // The line as memcached's C string: up to the newline or the first NUL.
        let line = &buf[..nl];
        let line = &line[..memchr::memchr(0, line).unwrap_or(line.len())];
        let t = tokens(line);
        let size = (t.len() >= 5 && t[0] == b"set")
            .then(|| crate::protocol::lex::parse_u32(t[4]))
            .flatten();
        let (reply, pending) = match size {
            // memcached computes `size + 2` in 32 bits.
            Some(n) => (None, Some(n.wrapping_add(2) as usize)),
            None => (Some(UNAUTHENTICATED), None),
        };
        return AuthStep::Consumed {
            used: nl + 1,
            reply,
            pending,
        };
    };
    if buf.len() < block {
        return if block > MAX_AUTH_BLOCK && buf.len() >= MAX_AUTH_BLOCK {
            AuthStep::Close
        } else {
            AuthStep::Incomplete
        };
    }
    let data = &buf[..block];
    if block < 2 || &data[block - 2..] != b"\r\n" {
        return AuthStep::Consumed {
            used: block,
            reply: Some(BAD_TERMINATION),
            pending: None,
        };
    }
    let payload = &data[..block - 2];
    let payload = &payload[..memchr::memchr(0, payload).unwrap_or(payload.len())];
    let t = tokens(payload);
    if t.len() < 2 {
        return AuthStep::Consumed {
            used: block,
            reply: Some(BAD_TOKEN_FORMAT),
            pending: None,
        };
    }
    AuthStep::Credentials {
        used: block,
        user: t[0].to_vec(),
        password: t[1].to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_file_lines() {
        let f = AuthFile::parse(b"alice:secret\nbob:pw:with:colons\r\ncarol:\n").unwrap();
        assert!(f.check(b"alice", b"secret"));
        assert!(f.check(b"bob", b"pw:with:colons"));
        assert!(f.check(b"carol", b""));
        assert!(!f.check(b"alice", b"secre"));
        assert!(!f.check(b"alice", b"secret "));
        assert!(!f.check(b"mallory", b"secret"));
        assert!(AuthFile::parse(b"alice:secret\nnocolon\n").is_none());
        assert!(AuthFile::parse(b"alice:secret\n\nbob:x\n").is_none());
        let empty = AuthFile::parse(b"").unwrap();
        assert!(!empty.check(b"", b""));
    }

    fn consumed(
        buf: &[u8],
        pending: Option<usize>,
    ) -> (usize, Option<&'static [u8]>, Option<usize>) {
        match step(buf, pending) {
            AuthStep::Consumed {
                used,
                reply,
                pending,
            } => (used, reply, pending),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn command_lines() {
        assert_eq!(step(b"s", None), AuthStep::Incomplete);
        assert_eq!(step(b"set a 0 0 5", None), AuthStep::Incomplete);
        assert_eq!(step(&[b'x'; 2049], None), AuthStep::Close);
        assert_eq!(step(&[b'x'; 2048], None), AuthStep::Incomplete);
        assert_eq!(consumed(b"set a 0 0 12\r\n", None), (14, None, Some(14)));
        assert_eq!(
            consumed(b"set a 0 0 12 noreply\n", None),
            (21, None, Some(14))
        );
        for bad in [
            &b"get foo\r\n"[..],
            b"set a 0 0\r\n",
            b"set a 0 0 -1\r\n",
            b"set a 0 0 x\r\n",
            b"SET a 0 0 5\r\n",
            b"\r\n",
            b"GET / HTTP/1.1\r\n",
        ] {
            let used = bad.len();
            assert_eq!(consumed(bad, None), (used, Some(UNAUTHENTICATED), None));
        }
        // 2^32 - 1 + 2 wraps to 1 in memcached's 32-bit arithmetic, 2^32 - 2 + 2 to 0: an
        // empty block, answered as a bad termination (the next step reads a new line).
        assert_eq!(consumed(b"set a 0 0 4294967295\r\n", None).2, Some(1));
        assert_eq!(consumed(b"set a 0 0 4294967294\r\n", None).2, Some(0));
        assert_eq!(
            consumed(b"version\r\n", Some(0)),
            (0, Some(BAD_TERMINATION), None)
        );
    }

    #[test]
    fn data_blocks() {
        assert_eq!(step(b"alice sec", Some(14)), AuthStep::Incomplete);
        assert_eq!(
            step(b"alice secret\r\nversion\r\n", Some(14)),
            AuthStep::Credentials {
                used: 14,
                user: b"alice".to_vec(),
                password: b"secret".to_vec()
            }
        );
        assert_eq!(
            step(b"alice secret bob\r\n", Some(18)),
            AuthStep::Credentials {
                used: 18,
                user: b"alice".to_vec(),
                password: b"secret".to_vec()
            }
        );
        assert_eq!(
            consumed(b"alice secretXX", Some(14)),
            (14, Some(BAD_TERMINATION), None)
        );
        assert_eq!(
            consumed(b"alice\r\n", Some(7)),
            (7, Some(BAD_TOKEN_FORMAT), None)
        );
        assert_eq!(consumed(b"x", Some(1)), (1, Some(BAD_TERMINATION), None));
        assert_eq!(step(&[b'x'; 20_000], Some(100_002)), AuthStep::Close);
    }

    /// Arbitrary bytes (biased towards the tokens that matter) never panic, and every
    /// step either waits, closes, or consumes between 1 byte and what is buffered.
    #[test]
    fn arbitrary_input_makes_progress() {
        let pieces: [&[u8]; 9] = [
            b"set ",
            b"a ",
            b"0 ",
            b"12",
            b"\r\n",
            b"\n",
            b"alice secret",
            b"\0",
            b" ",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut buf = Vec::new();
            for _ in 0..(x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x % 5 == 0 {
                    buf.push((x >> 8) as u8);
                } else {
                    buf.extend_from_slice(pieces[(x >> 16) as usize % pieces.len()]);
                }
            }
            let mut rest = &buf[..];
            let mut pending = None;
            loop {
                let used = match step(rest, pending) {
                    AuthStep::Incomplete | AuthStep::Close => break,
                    AuthStep::Consumed {
                        used, pending: p, ..
                    } => {
                        pending = p;
                        used
                    }
                    AuthStep::Credentials { used, .. } => {
                        pending = None;
                        used
                    }
                };
                assert!(used >= 1 && used <= rest.len(), "{buf:?}");
                rest = &rest[used..];
            }
        }
    }
}
