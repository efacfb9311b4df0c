//! Writers of the meta replies.

use super::key::base64_encode;
use super::{Key, MetaArgs};
use crate::protocol::lex::push_u64;

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

fn push_ttl(out: &mut Vec<u8>, ttl: Option<u32>) {
    match ttl {
        None => out.extend_from_slice(b"-1"),
        Some(t) => push_u64(out, u64::from(t)),
    }
}

/// Appends one echoed flag: ` O<opaque>` for an `O` token, the key for `k`.
#[inline]
fn push_echo(out: &mut Vec<u8>, args: &MetaArgs<'_>, tok: &[u8]) {
    if tok[0] == b'k' {
        push_key(out, &args.key);
    } else {
        out.push(b' ');
        out.extend_from_slice(tok);
    }
}

/// Appends the echoed `O` and `k` flags in request order (what every meta reply
/// carries, hit or miss).
pub fn push_opaque_and_key(out: &mut Vec<u8>, args: &MetaArgs<'_>) {
    for tok in args.flags.tokens() {
        match tok[0] {
            b'O' | b'k' => push_echo(out, args, tok),
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
    write_get_head(out, args, info, win);
    if args.flags.value {
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
}

/// The line of an `mg` hit, up to and including its `\r\n`, without the value that
/// follows it with `v` (see [`write_get_hit`]).
pub fn write_get_head(out: &mut Vec<u8>, args: &MetaArgs<'_>, info: &ItemInfo, win: WinFlags) {
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
            b'O' | b'k' => push_echo(out, args, tok),
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
            b'O' | b'k' => push_echo(out, args, tok),
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
            b'O' | b'k' => push_echo(out, args, tok),
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
