//! memcached's binary protocol: a parser of request packets that works in place on the
//! read buffer, and the writers of response packets.
//!
//! A packet is a 24-byte header (magic `0x80`, opcode, key length, extras length, data
//! type, vbucket, total body length, opaque, CAS; big-endian) followed by extras, key and
//! value. [`parse`] returns one [`Packet`] and the bytes it used, or a [`ParseError`]:
//! `Incomplete` (with the total length when known) or `Close` (bad magic, as memcached
//! closes the connection then). A storage packet whose value has not all arrived yields
//! its head ([`Packet::Value`]) once header, extras and key have.
//!
//! The checks follow memcached 1.6.18's `proto_bin.c`:
//! - key and extras longer than the body: `Unknown command`, then close;
//! - a key over 250 bytes, or extras/key/body lengths a command does not take:
//!   `Invalid arguments`, then close;
//! - an unknown opcode: `Unknown command`, and `bodylen` further bytes are discarded
//!   (memcached counts them from after the key, and so do we);
//! - a value over the item size limit: `Too large.` before the value arrives; the value
//!   is discarded as it comes (and a `set` deletes the key's old value).
//!
//! Lengths are checked before anything is buffered: apart from storage values (bounded
//! by the item size limit), a packet's body is at most 255 + 250 bytes.

use super::lex::{ParseError, Span, KEY_MAX_LENGTH};

/// Request magic byte.
pub const REQ_MAGIC: u8 = 0x80;
/// Response magic byte.
pub const RES_MAGIC: u8 = 0x81;
/// Header length.
pub const HEADER_LEN: usize = 24;

/// Opcodes memcached 1.6 serves.
#[allow(missing_docs)]
pub mod opcode {
    pub const GET: u8 = 0x00;
    pub const SET: u8 = 0x01;
    pub const ADD: u8 = 0x02;
    pub const REPLACE: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const INCREMENT: u8 = 0x05;
    pub const DECREMENT: u8 = 0x06;
    pub const QUIT: u8 = 0x07;
    pub const FLUSH: u8 = 0x08;
    pub const GETQ: u8 = 0x09;
    pub const NOOP: u8 = 0x0a;
    pub const VERSION: u8 = 0x0b;
    pub const GETK: u8 = 0x0c;
    pub const GETKQ: u8 = 0x0d;
    pub const APPEND: u8 = 0x0e;
    pub const PREPEND: u8 = 0x0f;
    pub const STAT: u8 = 0x10;
    pub const SETQ: u8 = 0x11;
    pub const ADDQ: u8 = 0x12;
    pub const REPLACEQ: u8 = 0x13;
    pub const DELETEQ: u8 = 0x14;
    pub const INCREMENTQ: u8 = 0x15;
    pub const DECREMENTQ: u8 = 0x16;
    pub const QUITQ: u8 = 0x17;
    pub const FLUSHQ: u8 = 0x18;
    pub const APPENDQ: u8 = 0x19;
    pub const PREPENDQ: u8 = 0x1a;
    pub const VERBOSITY: u8 = 0x1b;
    pub const TOUCH: u8 = 0x1c;
    pub const GAT: u8 = 0x1d;
    pub const GATQ: u8 = 0x1e;
    pub const SASL_LIST_MECHS: u8 = 0x20;
    pub const SASL_AUTH: u8 = 0x21;
    pub const SASL_STEP: u8 = 0x22;
    pub const GATK: u8 = 0x23;
    pub const GATKQ: u8 = 0x24;
}

/// Response status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Status {
    /// Success.
    NoError = 0x0000,
    /// Key not found.
    KeyNotFound = 0x0001,
    /// Key exists (CAS mismatch, or `add` of an existing key).
    KeyExists = 0x0002,
    /// Value too large.
    TooLarge = 0x0003,
    /// Invalid arguments.
    InvalidArguments = 0x0004,
    /// Item not stored.
    NotStored = 0x0005,
    /// Incr/decr on a non-numeric value.
    NonNumeric = 0x0006,
    /// Authentication error (also: `flush` disabled).
    AuthError = 0x0020,
    /// SASL: the mechanism needs another step.
    AuthContinue = 0x0021,
    /// Unknown command.
    UnknownCommand = 0x0081,
    /// Out of memory.
    OutOfMemory = 0x0082,
}

impl Status {
    /// The text memcached puts in the body of an error response.
    pub fn message(self) -> &'static [u8] {
        match self {
            Status::NoError => b"",
            Status::KeyNotFound => b"Not found",
            Status::KeyExists => b"Data exists for key.",
            Status::TooLarge => b"Too large.",
            Status::InvalidArguments => b"Invalid arguments",
            Status::NotStored => b"Not stored.",
            Status::NonNumeric => b"Non-numeric server-side value for incr or decr",
            Status::AuthError => b"Auth failure.",
            Status::AuthContinue => b"",
            Status::UnknownCommand => b"Unknown command",
            Status::OutOfMemory => b"Out of memory",
        }
    }
}

/// A decoded request header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Opcode as sent (quiet forms included).
    pub opcode: u8,
    /// Key length.
    pub keylen: u16,
    /// Extras length.
    pub extlen: u8,
    /// Total body length (extras + key + value).
    pub bodylen: u32,
    /// Opaque, echoed in the response.
    pub opaque: u32,
    /// CAS.
    pub cas: u64,
}

impl Header {
    /// Decodes the first 24 bytes of `buf` (which must hold them); `None` if the magic
    /// is not `0x80`.
    pub fn decode(buf: &[u8]) -> Option<Header> {
        if buf[0] != REQ_MAGIC {
            return None;
        }
        Some(Header {
            opcode: buf[1],
            keylen: u16::from_be_bytes([buf[2], buf[3]]),
            extlen: buf[4],
            bodylen: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            opaque: u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]),
            cas: u64::from_be_bytes(buf[16..24].try_into().expect("8 bytes")),
        })
    }

    /// Encodes this header as a request (for clients and tests).
    pub fn encode_request(&self, out: &mut Vec<u8>) {
        out.push(REQ_MAGIC);
        out.push(self.opcode);
        out.extend_from_slice(&self.keylen.to_be_bytes());
        out.push(self.extlen);
        out.push(0);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.bodylen.to_be_bytes());
        out.extend_from_slice(&self.opaque.to_be_bytes());
        out.extend_from_slice(&self.cas.to_be_bytes());
    }

    /// The quiet form of the command (`getq`, `setq`, ...): success is not answered.
    pub fn quiet(&self) -> bool {
        use opcode::*;
        matches!(
            self.opcode,
            GETQ | GETKQ
                | SETQ
                | ADDQ
                | REPLACEQ
                | DELETEQ
                | INCREMENTQ
                | DECREMENTQ
                | QUITQ
                | FLUSHQ
                | APPENDQ
                | PREPENDQ
                | GATQ
                | GATKQ
        )
    }
}

/// Storage modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
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
}

/// One request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `get`/`getq`/`getk`/`getkq`.
    Get {
        /// The key.
        key: &'a [u8],
        /// Return the key (`getk`, `getkq`).
        with_key: bool,
    },
    /// `touch` (no value returned), `gat`/`gatq`/`gatk`/`gatkq`.
    Touch {
        /// The key.
        key: &'a [u8],
        /// Raw expiration.
        exptime: u32,
        /// Return the value (all but `touch`).
        with_value: bool,
        /// Return the key (`gatk`, `gatkq`).
        with_key: bool,
    },
    /// `set`/`add`/`replace`/`append`/`prepend` (and quiet forms).
    Store {
        /// Which storage command.
        kind: StoreKind,
        /// The key.
        key: &'a [u8],
        /// Client flags (0 for append/prepend).
        flags: u32,
        /// Raw expiration (0 for append/prepend).
        exptime: u32,
        /// The value.
        value: &'a [u8],
    },
    /// `delete`/`deleteq`.
    Delete {
        /// The key.
        key: &'a [u8],
    },
    /// `increment`/`decrement` (and quiet forms).
    Arith {
        /// The key.
        key: &'a [u8],
        /// Increment (true) or decrement.
        incr: bool,
        /// Delta.
        delta: u64,
        /// Initial value when the key is missing.
        initial: u64,
        /// Expiration of a created item; `0xffffffff`: don't create.
        exptime: u32,
    },
    /// `quit`/`quitq`: answer (unless quiet) and close.
    Quit,
    /// `flush`/`flushq` with an optional delay.
    Flush {
        /// Raw expiration (0: now).
        exptime: u32,
    },
    /// `noop`.
    Noop,
    /// `version`.
    Version,
    /// `stat` with an optional group name.
    Stat {
        /// The group (`""`, `settings`, `items`, `slabs`, `sizes`, `reset`...).
        group: &'a [u8],
    },
}

/// A parsed packet: a request, or the error memcached answers to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// A valid request.
    Request {
        /// Its header.
        header: Header,
        /// The command.
        command: Command<'a>,
    },
    /// A value over the item size limit: answer `Too large.`, delete the key's old
    /// value if `delete_key` (a `set`), and discard `swallow` bytes after the consumed
    /// ones.
    TooLarge {
        /// Its header.
        header: Header,
        /// The key.
        key: &'a [u8],
        /// A `set`: memcached deletes the old value.
        delete_key: bool,
        /// Bytes of value still to discard.
        swallow: usize,
    },
    /// A storage packet whose value has not all arrived: the returned length is that of
    /// header, extras and key; the value ([`StoreHead::vlen`] bytes) follows.
    Value(StoreHead),
    /// An error response, then discard `swallow` bytes, and close the connection after
    /// writing if `close`.
    Error {
        /// Its header.
        header: Header,
        /// The status to answer.
        status: Status,
        /// Bytes to discard after the consumed ones.
        swallow: usize,
        /// Close after writing.
        close: bool,
    },
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

/// Parses one packet from the start of `buf`. `max_data` is the item size limit.
pub fn parse(buf: &[u8], max_data: usize) -> Result<(Packet<'_>, usize), ParseError> {
    use opcode::*;
    if buf.len() < HEADER_LEN {
        return Err(ParseError::Incomplete { need: HEADER_LEN });
    }
    let Some(header) = Header::decode(buf) else {
        return Err(ParseError::Close);
    };
    let extlen = usize::from(header.extlen);
    let keylen = usize::from(header.keylen);
    let bodylen = header.bodylen as usize;
    let error = |status, swallow, close, used| {
        Ok((
            Packet::Error {
                header,
                status,
                swallow,
                close,
            },
            used,
        ))
    };
    let head = HEADER_LEN + extlen + keylen;
    // Header-only checks come before waiting for extras and key, so a bad header
    // buffers nothing more (memcached gives the same answer once the key has arrived,
    // and closes the connection either way).
    if keylen + extlen > bodylen {
        return error(Status::UnknownCommand, 0, true, HEADER_LEN);
    }
    if keylen > KEY_MAX_LENGTH {
        return error(Status::InvalidArguments, 0, true, HEADER_LEN);
    }
    if buf.len() < head {
        return Err(ParseError::Incomplete { need: head });
    }
    let ext = &buf[HEADER_LEN..HEADER_LEN + extlen];
    let key = &buf[HEADER_LEN + extlen..head];
    let invalid = error(Status::InvalidArguments, 0, true, head);
    let ok = |command, used| Ok((Packet::Request { header, command }, used));
    match header.opcode {
        VERSION => {
            if extlen == 0 && keylen == 0 && bodylen == 0 {
                ok(Command::Version, head)
            } else {
                invalid
            }
        }
        FLUSH | FLUSHQ => {
            if keylen == 0 && bodylen == extlen && (extlen == 0 || extlen == 4) {
                let exptime = if extlen == 4 { be32(ext) } else { 0 };
                ok(Command::Flush { exptime }, head)
            } else {
                invalid
            }
        }
        NOOP => {
            if extlen == 0 && keylen == 0 && bodylen == 0 {
                ok(Command::Noop, head)
            } else {
                invalid
            }
        }
        QUIT | QUITQ => {
            if extlen == 0 && keylen == 0 && bodylen == 0 {
                ok(Command::Quit, head)
            } else {
                invalid
            }
        }
        GET | GETQ | GETK | GETKQ => {
            if extlen == 0 && bodylen == keylen && keylen > 0 {
                let with_key = matches!(header.opcode, GETK | GETKQ);
                ok(Command::Get { key, with_key }, head)
            } else {
                invalid
            }
        }
        TOUCH | GAT | GATQ | GATK | GATKQ => {
            if extlen == 4 && keylen != 0 {
                ok(
                    Command::Touch {
                        key,
                        exptime: be32(ext),
                        with_value: header.opcode != TOUCH,
                        with_key: matches!(header.opcode, GATK | GATKQ),
                    },
                    head,
                )
            } else {
                invalid
            }
        }
        DELETE | DELETEQ => {
            if keylen > 0 && extlen == 0 && bodylen == keylen {
                ok(Command::Delete { key }, head)
            } else {
                invalid
            }
        }
        INCREMENT | INCREMENTQ | DECREMENT | DECREMENTQ => {
            if keylen > 0 && extlen == 20 && bodylen == keylen + extlen {
                ok(
                    Command::Arith {
                        key,
                        incr: matches!(header.opcode, INCREMENT | INCREMENTQ),
                        delta: be64(ext),
                        initial: be64(&ext[8..]),
                        exptime: be32(&ext[16..]),
                    },
                    head,
                )
            } else {
                invalid
            }
        }
        STAT => {
            if extlen == 0 {
                ok(Command::Stat { group: key }, head)
            } else {
                invalid
            }
        }
        // SASL is not configured: memcached answers `Unknown command` and discards the
        // rest of the body (its length checks first).
        SASL_LIST_MECHS => {
            if extlen == 0 && keylen == 0 && bodylen == 0 {
                error(Status::UnknownCommand, 0, false, head)
            } else {
                invalid
            }
        }
        SASL_AUTH | SASL_STEP => {
            if extlen == 0 && keylen != 0 {
                error(Status::UnknownCommand, bodylen - keylen, false, head)
            } else {
                invalid
            }
        }
        VERBOSITY => {
            // memcached 1.6 has no binary verbosity handler: unknown command.
            error(Status::UnknownCommand, bodylen, false, head)
        }
        SET | SETQ | ADD | ADDQ | REPLACE | REPLACEQ => {
            if !(extlen == 8 && keylen != 0 && bodylen >= keylen + 8) {
                return invalid;
            }
            let kind = match header.opcode {
                SET | SETQ => StoreKind::Set,
                ADD | ADDQ => StoreKind::Add,
                _ => StoreKind::Replace,
            };
            store(
                buf,
                header,
                kind,
                key,
                be32(ext),
                be32(&ext[4..]),
                head,
                max_data,
            )
        }
        APPEND | APPENDQ | PREPEND | PREPENDQ => {
            if !(keylen > 0 && extlen == 0) {
                return invalid;
            }
            let kind = if matches!(header.opcode, APPEND | APPENDQ) {
                StoreKind::Append
            } else {
                StoreKind::Prepend
            };
            store(buf, header, kind, key, 0, 0, head, max_data)
        }
        _ => error(Status::UnknownCommand, bodylen, false, head),
    }
}

/// A storage packet whose header, extras and key have arrived and passed [`parse`]'s
/// checks, its value not all there yet ([`Packet::Value`]). It borrows nothing: the key
/// is found again in the packet's bytes, wherever they are by then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreHead {
    /// Its header.
    pub header: Header,
    /// Which storage command.
    pub kind: StoreKind,
    /// The key, in the packet's bytes.
    pub key: Span,
    /// Client flags (0 for append/prepend).
    pub flags: u32,
    /// Raw expiration (0 for append/prepend).
    pub exptime: u32,
    /// The value's length.
    pub vlen: usize,
    /// Header, extras and key: the bytes before the value.
    pub head_len: usize,
}

impl StoreHead {
    /// The complete request, from the packet's bytes (at least `head_len + vlen` of them).
    pub fn command<'a>(&self, packet: &'a [u8]) -> Command<'a> {
        Command::Store {
            kind: self.kind,
            key: self.key.get(packet),
            flags: self.flags,
            exptime: self.exptime,
            value: &packet[self.head_len..self.head_len + self.vlen],
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn store<'a>(
    buf: &'a [u8],
    header: Header,
    kind: StoreKind,
    key: &'a [u8],
    flags: u32,
    exptime: u32,
    head: usize,
    max_data: usize,
) -> Result<(Packet<'a>, usize), ParseError> {
    let vlen = header.bodylen as usize - usize::from(header.keylen) - usize::from(header.extlen);
    if vlen > max_data {
        return Ok((
            Packet::TooLarge {
                header,
                key,
                delete_key: kind == StoreKind::Set,
                swallow: vlen,
            },
            head,
        ));
    }
    let total = head + vlen;
    if buf.len() < total {
        let head = StoreHead {
            header,
            kind,
            key: Span::of(key, buf),
            flags,
            exptime,
            vlen,
            head_len: head,
        };
        return Ok((Packet::Value(head), head.head_len));
    }
    Ok((
        Packet::Request {
            header,
            command: Command::Store {
                kind,
                key,
                flags,
                exptime,
                value: &buf[head..total],
            },
        },
        total,
    ))
}

/// Appends a response header.
pub fn write_header(
    out: &mut Vec<u8>,
    req: &Header,
    status: Status,
    extlen: u8,
    keylen: u16,
    bodylen: u32,
    cas: u64,
) {
    out.push(RES_MAGIC);
    out.push(req.opcode);
    out.extend_from_slice(&keylen.to_be_bytes());
    out.push(extlen);
    out.push(0);
    out.extend_from_slice(&(status as u16).to_be_bytes());
    out.extend_from_slice(&bodylen.to_be_bytes());
    out.extend_from_slice(&req.opaque.to_be_bytes());
    out.extend_from_slice(&cas.to_be_bytes());
}

/// Appends an error response: the status and its message as the body, CAS 0.
pub fn write_error(out: &mut Vec<u8>, req: &Header, status: Status) {
    write_error_text(out, req, status, status.message());
}

/// [`write_error`] with `msg` as the body instead of the status's usual text (memcached
/// says where an allocation failed: `Out of memory allocating item`, ...).
pub fn write_error_text(out: &mut Vec<u8>, req: &Header, status: Status, msg: &[u8]) {
    write_header(out, req, status, 0, 0, msg.len() as u32, 0);
    out.extend_from_slice(msg);
}

/// Appends a success response with no body (set, delete, flush, noop, quit...).
pub fn write_ok(out: &mut Vec<u8>, req: &Header, cas: u64) {
    write_header(out, req, Status::NoError, 0, 0, 0, cas);
}

/// Appends a get/gat/touch hit: 4 bytes of flags as extras, the key if asked, the value
/// if asked.
pub fn write_hit(
    out: &mut Vec<u8>,
    req: &Header,
    flags: u32,
    cas: u64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let vlen = value.map_or(0, <[u8]>::len);
    out.reserve(HEADER_LEN + 4 + key.map_or(0, <[u8]>::len) + vlen);
    write_hit_head(out, req, flags, cas, key, vlen);
    if let Some(v) = value {
        out.extend_from_slice(v);
    }
}

/// The part of a get hit before its value of `vlen` bytes (see [`write_hit`]): the
/// header, the flags and the key with `key`.
pub fn write_hit_head(
    out: &mut Vec<u8>,
    req: &Header,
    flags: u32,
    cas: u64,
    key: Option<&[u8]>,
    vlen: usize,
) {
    let klen = key.map_or(0, <[u8]>::len);
    write_header(
        out,
        req,
        Status::NoError,
        4,
        klen as u16,
        (4 + klen + vlen) as u32,
        cas,
    );
    out.extend_from_slice(&flags.to_be_bytes());
    if let Some(k) = key {
        out.extend_from_slice(k);
    }
}

/// Appends a `getk` miss: status `KeyNotFound` with the key and no message.
pub fn write_miss_with_key(out: &mut Vec<u8>, req: &Header, key: &[u8]) {
    write_header(
        out,
        req,
        Status::KeyNotFound,
        0,
        key.len() as u16,
        key.len() as u32,
        0,
    );
    out.extend_from_slice(key);
}

/// Appends an incr/decr success: the new value as 8 bytes.
pub fn write_number(out: &mut Vec<u8>, req: &Header, value: u64, cas: u64) {
    write_header(out, req, Status::NoError, 0, 0, 8, cas);
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a response with a body (version string).
pub fn write_body(out: &mut Vec<u8>, req: &Header, body: &[u8]) {
    write_header(out, req, Status::NoError, 0, 0, body.len() as u32, 0);
    out.extend_from_slice(body);
}

/// Appends one `stat` response (key = name, value = value); the list ends with an empty
/// one (`name` and `value` empty).
pub fn write_stat(out: &mut Vec<u8>, req: &Header, name: &[u8], value: &[u8]) {
    write_header(
        out,
        req,
        Status::NoError,
        0,
        name.len() as u16,
        (name.len() + value.len()) as u32,
        0,
    );
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

/// Builds a request packet (for clients, tests and fuzzing).
pub fn request(
    opcode: u8,
    key: &[u8],
    extras: &[u8],
    value: &[u8],
    opaque: u32,
    cas: u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + extras.len() + key.len() + value.len());
    Header {
        opcode,
        keylen: key.len() as u16,
        extlen: extras.len() as u8,
        bodylen: (extras.len() + key.len() + value.len()) as u32,
        opaque,
        cas,
    }
    .encode_request(&mut out);
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::opcode::*;
    use super::*;

    const MAX: usize = 1 << 20;

    fn set_extras(flags: u32, exptime: u32) -> Vec<u8> {
        let mut e = flags.to_be_bytes().to_vec();
        e.extend_from_slice(&exptime.to_be_bytes());
        e
    }

    /// The head [`parse`] returns for a storage packet whose value is incomplete.
    fn store_head(buf: &[u8], max: usize) -> Option<StoreHead> {
        match parse(buf, max) {
            Ok((Packet::Value(h), n)) => {
                assert_eq!(n, h.head_len);
                Some(h)
            }
            _ => None,
        }
    }

    #[test]
    fn store_head_while_the_value_is_incomplete() {
        let pkt = request(REPLACEQ, b"key", &set_extras(5, 10), b"hello", 7, 9);
        let head = HEADER_LEN + 8 + 3;
        for cut in 0..pkt.len() {
            match store_head(&pkt[..cut], MAX) {
                None => assert!(cut < head, "cut {cut}"),
                Some(h) => {
                    assert!(cut >= head);
                    assert_eq!(
                        (
                            h.kind,
                            h.key.get(&pkt),
                            h.flags,
                            h.exptime,
                            h.vlen,
                            h.head_len
                        ),
                        (StoreKind::Replace, &b"key"[..], 5, 10, 5, head)
                    );
                    assert_eq!((h.header.opaque, h.header.cas), (7, 9));
                }
            }
        }
        assert_eq!(store_head(&pkt, MAX), None);
        // Append too; a bad extras length is answered by `parse`.
        let app = request(APPEND, b"key", &[], b"hello", 0, 0);
        let h = store_head(&app[..HEADER_LEN + 3], MAX).expect("append head");
        assert_eq!(
            h.command(&app),
            parse(&app, MAX)
                .map(|(p, _)| match p {
                    Packet::Request { command, .. } => command,
                    _ => panic!(),
                })
                .unwrap()
        );
        let bad = request(SET, b"key", &[0; 4], b"hello", 0, 0);
        assert_eq!(store_head(&bad[..HEADER_LEN + 7], MAX), None);
    }

    #[test]
    fn set_parses_and_waits_for_its_value() {
        let pkt = request(SET, b"k", &set_extras(5, 10), b"hello", 7, 0);
        for cut in 0..pkt.len() {
            assert!(matches!(
                parse(&pkt[..cut], MAX),
                Err(ParseError::Incomplete { .. }) | Ok((Packet::Value(_), 33))
            ));
        }
        let (p, n) = parse(&pkt, MAX).unwrap();
        assert_eq!(n, pkt.len());
        let Packet::Request { header, command } = p else {
            panic!("{p:?}")
        };
        assert_eq!(header.opaque, 7);
        assert_eq!(
            command,
            Command::Store {
                kind: StoreKind::Set,
                key: b"k",
                flags: 5,
                exptime: 10,
                value: b"hello"
            }
        );
    }

    #[test]
    fn bad_magic_closes() {
        let mut pkt = request(NOOP, b"", b"", b"", 0, 0);
        pkt[0] = 0x81;
        assert_eq!(parse(&pkt, MAX), Err(ParseError::Close));
    }

    #[test]
    fn protocol_errors_close() {
        // get with extras: invalid arguments, close.
        let pkt = request(GET, b"k", b"x", b"", 0, 0);
        let (p, _) = parse(&pkt, MAX).unwrap();
        assert!(matches!(
            p,
            Packet::Error {
                status: Status::InvalidArguments,
                close: true,
                ..
            }
        ));
        // key longer than 250: refused from the header alone.
        let pkt = request(GET, &[b'k'; 251], b"", b"", 0, 0);
        let (p, _) = parse(&pkt[..HEADER_LEN], MAX).unwrap();
        assert!(matches!(
            p,
            Packet::Error {
                status: Status::InvalidArguments,
                close: true,
                ..
            }
        ));
        // key + extras beyond the body.
        let mut pkt = request(GET, b"key", b"", b"", 0, 0);
        pkt[8..12].copy_from_slice(&1u32.to_be_bytes());
        let (p, _) = parse(&pkt, MAX).unwrap();
        assert!(matches!(
            p,
            Packet::Error {
                status: Status::UnknownCommand,
                close: true,
                ..
            }
        ));
    }

    #[test]
    fn unknown_opcode_swallows_bodylen() {
        let pkt = request(0x50, b"ab", b"", b"", 0, 0);
        let (p, n) = parse(&pkt, MAX).unwrap();
        assert_eq!(n, 26);
        assert!(matches!(
            p,
            Packet::Error {
                status: Status::UnknownCommand,
                swallow: 2,
                close: false,
                ..
            }
        ));
    }

    #[test]
    fn too_large_before_value() {
        let mut pkt = request(SET, b"k", &set_extras(0, 0), b"", 0, 0);
        pkt[8..12].copy_from_slice(&(9 + 2_000_000u32).to_be_bytes());
        let (p, n) = parse(&pkt, MAX).unwrap();
        assert_eq!(n, 33);
        assert!(matches!(
            p,
            Packet::TooLarge {
                swallow: 2_000_000,
                delete_key: true,
                ..
            }
        ));
    }

    #[test]
    fn arith_extras() {
        let mut ext = 3u64.to_be_bytes().to_vec();
        ext.extend_from_slice(&9u64.to_be_bytes());
        ext.extend_from_slice(&u32::MAX.to_be_bytes());
        let pkt = request(DECREMENTQ, b"n", &ext, b"", 1, 0);
        let (p, _) = parse(&pkt, MAX).unwrap();
        let Packet::Request { header, command } = p else {
            panic!()
        };
        assert!(header.quiet());
        assert_eq!(
            command,
            Command::Arith {
                key: b"n",
                incr: false,
                delta: 3,
                initial: 9,
                exptime: u32::MAX
            }
        );
    }

    #[test]
    fn responses_match_memcached_bytes() {
        // memcached 1.6.18: get miss -> status 1, body "Not found".
        let h = Header {
            opcode: GET,
            opaque: 9,
            ..Header::default()
        };
        let mut out = Vec::new();
        write_error(&mut out, &h, Status::KeyNotFound);
        let mut want = vec![0x81, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 9];
        want.extend_from_slice(&[0; 8]);
        want.extend_from_slice(b"Not found");
        assert_eq!(out, want);
        // getk hit: extras = flags, key, value; CAS in the header.
        out.clear();
        let h = Header {
            opcode: GETK,
            ..Header::default()
        };
        write_hit(&mut out, &h, 5, 23, Some(b"k"), Some(b"hello"));
        assert_eq!(out.len(), 24 + 4 + 1 + 5);
        assert_eq!(&out[2..4], &[0, 1]);
        assert_eq!(out[4], 4);
        assert_eq!(&out[8..12], &10u32.to_be_bytes());
        assert_eq!(&out[16..24], &23u64.to_be_bytes());
        assert_eq!(&out[24..], b"\x00\x00\x00\x05khello");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn store_round_trips(
                op in prop::sample::select(vec![SET, SETQ, ADD, ADDQ, REPLACE, REPLACEQ]),
                key in proptest::collection::vec(any::<u8>(), 1..=250),
                value in proptest::collection::vec(any::<u8>(), 0..500),
                flags in any::<u32>(), exptime in any::<u32>(), opaque in any::<u32>(), cas in any::<u64>(),
            ) {
                let pkt = request(op, &key, &set_extras(flags, exptime), &value, opaque, cas);
                let (p, n) = parse(&pkt, MAX).unwrap();
                prop_assert_eq!(n, pkt.len());
                let Packet::Request { header, command: Command::Store { key: k, flags: f, exptime: e, value: v, .. } } = p else {
                    panic!("{p:?}")
                };
                prop_assert_eq!((header.opaque, header.cas, f, e), (opaque, cas, flags, exptime));
                prop_assert_eq!(k, &key[..]);
                prop_assert_eq!(v, &value[..]);
            }

            #[test]
            fn garbage_never_panics(mut buf in proptest::collection::vec(any::<u8>(), 0..600)) {
                if !buf.is_empty() { buf[0] = REQ_MAGIC; }
                match parse(&buf, 1000) {
                    Ok((_, n)) => prop_assert!(n >= HEADER_LEN && n <= buf.len()),
                    Err(ParseError::Incomplete { need }) => prop_assert!(need > buf.len()),
                    Err(ParseError::Close) => prop_assert!(false, "magic was right"),
                }
            }
        }
    }
}
