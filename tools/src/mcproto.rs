//! Sizes from a reassembled memcached text-protocol byte stream.
//!
//! Client to server: storage commands (`set`, `add`, `replace`, `append`, `prepend`,
//! `cas`, meta `ms`) give key, flags and value length; `delete` and meta `md` remove a key.
//! Server to client: `VALUE <key> <flags> <bytes> [<cas>]` gives the stored item. Value
//! blocks are skipped by length without being buffered.

use crate::issues::Issues;

/// Longest line buffered before it counts as garbage (memcached closes at 2048 bytes for
/// most commands; long `get` lines are longer, so allow more).
pub const MAX_LINE: usize = 64 << 10;

/// What a stream said about an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A write (or a `VALUE` reply): the item's key, value length and flags.
    Item {
        /// Key bytes.
        key: Vec<u8>,
        /// Value length.
        value_len: u32,
        /// Client flags nonzero.
        flags_nonzero: bool,
        /// `append`/`prepend`: the value length is added to the current one.
        concat: bool,
    },
    /// The key was deleted.
    Delete {
        /// Key bytes.
        key: Vec<u8>,
    },
}

/// Which side of the connection a stream comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Client to server (requests).
    Client,
    /// Server to client (replies).
    Server,
}

/// Incremental parser for one direction of one connection.
#[derive(Debug)]
pub struct StreamParser {
    side: Side,
    buf: Vec<u8>,
    skip: usize,
}

fn num<T: std::str::FromStr>(t: &[u8]) -> Option<T> {
    std::str::from_utf8(t).ok()?.parse().ok()
}

impl StreamParser {
    /// A parser for one direction.
    pub fn new(side: Side) -> Self {
        StreamParser {
            side,
            buf: Vec::new(),
            skip: 0,
        }
    }

    /// Forgets any partial line or value (after a gap in the stream). The parser then
    /// resynchronises at the next line that parses.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.skip = 0;
    }

    /// Feeds bytes; events go to `out`, problems to `issues` at packet `pos`.
    pub fn feed(&mut self, mut data: &[u8], pos: u64, issues: &mut Issues, out: &mut Vec<Event>) {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                if self.skip > 0 {
                    return;
                }
            }
            if data.is_empty() {
                return;
            }
            match memchr::memchr(b'\n', data) {
                Some(nl) => {
                    let line: &[u8] = if self.buf.is_empty() {
                        &data[..nl]
                    } else {
                        self.buf.extend_from_slice(&data[..nl]);
                        &self.buf
                    };
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let line = line.to_vec();
                    self.buf.clear();
                    data = &data[nl + 1..];
                    self.line(&line, pos, issues, out);
                }
                None => {
                    self.buf.extend_from_slice(data);
                    if self.buf.len() > MAX_LINE {
                        issues.add("packet", pos, "line too long without newline");
                        self.buf.clear();
                    }
                    return;
                }
            }
        }
    }

    /// An item of `len` value bytes: its data block follows the line and is skipped.
    fn item(&mut self, out: &mut Vec<Event>, key: Vec<u8>, len: u32, flags: u32, concat: bool) {
        self.skip = len as usize + 2;
        out.push(Event::Item {
            key,
            value_len: len,
            flags_nonzero: flags != 0,
            concat,
        });
    }

    fn line(&mut self, line: &[u8], pos: u64, issues: &mut Issues, out: &mut Vec<Event>) {
        let t: Vec<&[u8]> = line
            .split(|&b| b == b' ')
            .filter(|t| !t.is_empty())
            .collect();
        let Some(&cmd) = t.first() else { return };
        let bad = |issues: &mut Issues| {
            let shown = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
            issues.add("packet", pos, format_args!("malformed command {shown:?}"));
        };
        match (self.side, cmd) {
            (Side::Client, b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas") => {
                let need = if cmd == b"cas" { 6 } else { 5 };
                if t.len() < need || t.len() > need + 1 {
                    return bad(issues);
                }
                let (Some(flags), Some(_), Some(len)) =
                    (num::<u32>(t[2]), num::<i64>(t[3]), num::<u32>(t[4]))
                else {
                    return bad(issues);
                };
                self.item(
                    out,
                    t[1].to_vec(),
                    len,
                    flags,
                    cmd == b"append" || cmd == b"prepend",
                );
            }
            (Side::Client, b"ms") => {
                let (Some(&key), Some(len)) = (t.get(1), t.get(2).and_then(|l| num::<u32>(l)))
                else {
                    return bad(issues);
                };
                let mut flags = 0u32;
                let mut concat = false;
                for f in &t[3..] {
                    match f.first() {
                        Some(b'F') => flags = num(&f[1..]).unwrap_or(0),
                        Some(b'M') => concat = matches!(f.get(1), Some(b'A' | b'a' | b'P' | b'p')),
                        _ => {}
                    }
                }
                let key = if t[3..].iter().any(|f| f == b"b") {
                    // Base64 key: its stored length is the decoded length.
                    let dec =
                        key.len() / 4 * 3 - key.iter().rev().take_while(|&&c| c == b'=').count();
                    vec![0; dec]
                } else {
                    key.to_vec()
                };
                self.item(out, key, len, flags, concat);
            }
            (Side::Client, b"delete" | b"md") => match t.get(1) {
                Some(k) => out.push(Event::Delete { key: k.to_vec() }),
                None => bad(issues),
            },
            (Side::Server, b"VALUE") => {
                if t.len() < 4 || t.len() > 5 {
                    return bad(issues);
                }
                let (Some(flags), Some(len)) = (num::<u32>(t[2]), num::<u32>(t[3])) else {
                    return bad(issues);
                };
                self.item(out, t[1].to_vec(), len, flags, false);
            }
            (Side::Server, b"VA") => {
                // Meta value reply: skip its data (no key unless asked for with `k`).
                match t.get(1).and_then(|l| num::<usize>(l)) {
                    Some(len) => self.skip = len + 2,
                    None => bad(issues),
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(side: Side, chunks: &[&[u8]]) -> (Vec<Event>, Issues) {
        let mut p = StreamParser::new(side);
        let (mut out, mut is) = (Vec::new(), Issues::default());
        for (i, c) in chunks.iter().enumerate() {
            p.feed(c, i as u64 + 1, &mut is, &mut out);
        }
        (out, is)
    }

    #[test]
    fn client_commands_split_anywhere() {
        let s: &[u8] = b"set foo 0 0 5\r\nhello\r\nget foo\r\nappend foo 3 0 2 noreply\r\nab\r\n\
cas k 0 0 1 99\r\nx\r\ndelete foo\r\nms mk 4 F5 T0\r\nabcd\r\nset bad x 0 1\r\n";
        let whole = run(Side::Client, &[s]);
        for cut in 1..s.len() {
            let split = run(Side::Client, &[&s[..cut], &s[cut..]]);
            assert_eq!(split.0, whole.0, "cut at {cut}");
        }
        let (ev, is) = whole;
        let item = |k: &[u8], v, f, c| Event::Item {
            key: k.to_vec(),
            value_len: v,
            flags_nonzero: f,
            concat: c,
        };
        assert_eq!(
            ev,
            vec![
                item(b"foo", 5, false, false),
                item(b"foo", 2, true, true),
                item(b"k", 1, false, false),
                Event::Delete {
                    key: b"foo".to_vec()
                },
                item(b"mk", 4, true, false),
            ]
        );
        assert_eq!(is.count, 1);
    }

    #[test]
    fn value_replies() {
        let (ev, is) = run(
            Side::Server,
            &[
                b"VALUE a 0 3\r\nEND\r\n\r\nVALUE bb 7 2 123\r\nxy\r\nEND\r\n",
                b"STORED\r\n",
            ],
        );
        assert_eq!(ev.len(), 2);
        assert_eq!(
            ev[1],
            Event::Item {
                key: b"bb".to_vec(),
                value_len: 2,
                flags_nonzero: true,
                concat: false
            }
        );
        assert!(is.is_empty());
    }
}
