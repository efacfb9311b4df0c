//! memcached's semantics for one key, as a sequential [`Model`] for the linearizability
//! checker, and the value encoding that lets a reply be told apart from every other one.
//!
//! # Values
//!
//! A blob value is a sequence of *pieces*: `[<id hex>,<len>|<filler>]` where the filler is
//! `len` bytes derived from the id. Every store writes a fresh piece id, `append` and
//! `prepend` add one at an end, so a value read back decodes to the list of ids that built
//! it, and a torn or foreign value does not decode at all ([`decode`]). Counter keys hold
//! decimal numbers (`incr`/`decr`; trailing spaces, which memcached leaves after a
//! shrinking `decr`, are ignored).
//!
//! # What the model allows
//!
//! The state is the key's item or nothing. An item carries its value, client flags, CAS
//! unique when the model has seen it (a store's reply may not tell it: then it is unknown,
//! and a `cas` with any token the client holds must fail with `EXISTS`, since every store
//! draws a fresh unique), and the earliest time it may have expired. An item may *vanish*
//! (read as missing from then on) once it may have expired, or at any time when the server
//! may evict ([`KvModel::may_evict`]); a value that comes back after it vanished, or that no
//! operation wrote, is a violation.

use std::hash::Hash;

use crate::linearizability::Model;

/// A value as the model knows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Val {
    /// A decimal number (counter keys).
    Num(u64),
    /// Piece ids in value order (blob keys).
    Pieces(Vec<u32>),
}

/// The filler byte `j` of piece `id`.
fn filler(id: u32, j: usize) -> u8 {
    b'a' + ((id as usize).wrapping_mul(7).wrapping_add(j) % 26) as u8
}

/// The bytes of one piece of `len` filler bytes.
pub fn piece(id: u32, len: usize) -> Vec<u8> {
    let mut v = format!("[{id:x},{len}|").into_bytes();
    v.extend((0..len).map(|j| filler(id, j)));
    v.push(b']');
    v
}

/// Decodes a value read back: a number, or pieces each of whose filler checks out.
/// `None` for anything else (a torn, mixed or foreign value).
pub fn decode(bytes: &[u8]) -> Option<Val> {
    if !bytes.is_empty() && bytes[0].is_ascii_digit() {
        let s = std::str::from_utf8(bytes).ok()?.trim_end_matches(' ');
        return s.parse().ok().map(Val::Num);
    }
    let mut ids = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        rest = rest.strip_prefix(b"[")?;
        let bar = rest.iter().position(|&b| b == b'|')?;
        let head = std::str::from_utf8(&rest[..bar]).ok()?;
        let (id, len) = head.split_once(',')?;
        let id = u32::from_str_radix(id, 16).ok()?;
        let len: usize = len.parse().ok()?;
        rest = &rest[bar + 1..];
        if rest.len() < len + 1 || rest[len] != b']' {
            return None;
        }
        if (0..len).any(|j| rest[j] != filler(id, j)) {
            return None;
        }
        ids.push(id);
        rest = &rest[len + 1..];
    }
    (!ids.is_empty()).then_some(Val::Pieces(ids))
}

/// The key's item.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Item {
    /// Its value.
    pub val: Val,
    /// Client flags.
    pub flags: u32,
    /// The CAS unique, once a reply told it.
    pub cas: Option<u64>,
    /// Earliest time (the history's clock, µs) it may have expired; `None`: never.
    pub expires: Option<u64>,
}

/// What a store writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The value.
    pub val: Val,
    /// Client flags.
    pub flags: u32,
    /// Exptime in seconds (0: never).
    pub ttl: u32,
}

/// A request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// `set`.
    Set(Write),
    /// `add`.
    Add(Write),
    /// `replace`.
    Replace(Write),
    /// `cas` with a token.
    Cas(u64, Write),
    /// `append` of one piece.
    Append(u32),
    /// `prepend` of one piece.
    Prepend(u32),
    /// `incr`.
    Incr(u64),
    /// `decr`.
    Decr(u64),
    /// `delete`.
    Delete,
    /// `get`, `gets`, `mg`, binary get.
    Get,
    /// `touch`.
    Touch(u32),
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Stored; with the new CAS unique when the protocol returns it.
    Stored(Option<u64>),
    /// `NOT_STORED`.
    NotStored,
    /// `EXISTS`.
    Exists,
    /// `NOT_FOUND` (also a miss of `delete`, `touch`, `incr`).
    NotFound,
    /// `DELETED`.
    Deleted,
    /// `TOUCHED`.
    Touched,
    /// A hit: value, flags, CAS unique if asked.
    Value {
        /// Decoded value (`None`: it did not decode: torn or foreign).
        val: Option<Val>,
        /// Client flags.
        flags: u32,
        /// CAS unique if the command returns it.
        cas: Option<u64>,
    },
    /// A miss of a read.
    Miss,
    /// `incr`/`decr`'s new value (and CAS unique when the protocol returns it).
    Number(u64, Option<u64>),
    /// `incr`/`decr` of a value that is not a number.
    NonNumeric,
    /// A store failed for memory (`SERVER_ERROR out of memory storing object`).
    OutOfMemory,
}

/// One operation: request and response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvOp {
    /// What was asked.
    pub cmd: Cmd,
    /// What was answered.
    pub reply: Reply,
}

/// memcached's semantics for one key.
#[derive(Clone, Copy, Debug)]
pub struct KvModel {
    /// The server may evict (small `-m`): an item may vanish at any time.
    pub may_evict: bool,
}

type State = Option<Item>;

impl KvModel {
    /// Whether `s` may read as absent by time `ret`: it is absent, or may be gone.
    fn absent_ok(&self, s: &State, ret: u64) -> bool {
        match s {
            None => true,
            Some(it) => self.may_evict || it.expires.is_some_and(|e| ret >= e),
        }
    }

    fn new_item(w: &Write, cas: Option<u64>, call: u64) -> State {
        Some(Item {
            val: w.val.clone(),
            flags: w.flags,
            cas,
            expires: expiry(w.ttl, call),
        })
    }
}

/// The earliest time an item stored with `ttl` at `call` may expire: the server clock has
/// a one-second grain and may run up to a second behind real time.
fn expiry(ttl: u32, call: u64) -> Option<u64> {
    (ttl > 0).then(|| (call + u64::from(ttl) * 1_000_000).saturating_sub(1_000_000))
}

impl Model for KvModel {
    type State = State;
    type Op = KvOp;

    fn init(&self) -> State {
        None
    }

    fn step(&self, s: &State, op: &KvOp, call: u64, ret: u64) -> Option<State> {
        let absent = self.absent_ok(s, ret);
        let present = s.as_ref();
        match (&op.cmd, &op.reply) {
            // A store that failed for memory deletes the old value (memcached's set).
            (
                Cmd::Set(_)
                | Cmd::Add(_)
                | Cmd::Replace(_)
                | Cmd::Cas(..)
                | Cmd::Append(_)
                | Cmd::Prepend(_),
                Reply::OutOfMemory,
            ) => self.may_evict.then_some(None),
            (Cmd::Set(w), Reply::Stored(cas)) => Some(Self::new_item(w, *cas, call)),
            (Cmd::Add(w), Reply::Stored(cas)) => absent.then(|| Self::new_item(w, *cas, call)),
            (Cmd::Add(_), Reply::NotStored) => present.is_some().then(|| s.clone()),
            (Cmd::Replace(w), Reply::Stored(cas)) => {
                present.is_some().then(|| Self::new_item(w, *cas, call))
            }
            (Cmd::Replace(_), Reply::NotStored)
            | (Cmd::Append(_) | Cmd::Prepend(_), Reply::NotStored)
            | (
                Cmd::Cas(..) | Cmd::Incr(_) | Cmd::Decr(_) | Cmd::Delete | Cmd::Touch(_),
                Reply::NotFound,
            )
            | (Cmd::Get, Reply::Miss) => absent.then_some(None),
            (Cmd::Cas(token, w), Reply::Stored(cas)) => {
                let it = present?;
                (it.cas == Some(*token)).then(|| Self::new_item(w, *cas, call))
            }
            (Cmd::Cas(token, _), Reply::Exists) => {
                let it = present?;
                (it.cas != Some(*token)).then(|| s.clone())
            }
            (Cmd::Append(id) | Cmd::Prepend(id), Reply::Stored(cas)) => {
                let it = present?;
                let Val::Pieces(p) = &it.val else {
                    return None;
                };
                let mut p = p.clone();
                if matches!(op.cmd, Cmd::Append(_)) {
                    p.push(*id);
                } else {
                    p.insert(0, *id);
                }
                Some(Some(Item {
                    val: Val::Pieces(p),
                    cas: *cas,
                    ..it.clone()
                }))
            }
            (Cmd::Incr(d) | Cmd::Decr(d), Reply::Number(n, cas)) => {
                let it = present?;
                let Val::Num(old) = it.val else {
                    return None;
                };
                let want = if matches!(op.cmd, Cmd::Incr(_)) {
                    old.wrapping_add(*d)
                } else {
                    old.saturating_sub(*d)
                };
                (want == *n).then(|| {
                    Some(Item {
                        val: Val::Num(want),
                        cas: *cas,
                        ..it.clone()
                    })
                })
            }
            (Cmd::Incr(_) | Cmd::Decr(_), Reply::NonNumeric) => {
                let it = present?;
                matches!(it.val, Val::Pieces(_)).then(|| s.clone())
            }
            (Cmd::Delete, Reply::Deleted) => present.map(|_| None),
            (Cmd::Touch(ttl), Reply::Touched) => {
                let it = present?;
                Some(Some(Item {
                    expires: expiry(*ttl, call),
                    ..it.clone()
                }))
            }
            (Cmd::Get, Reply::Value { val, flags, cas }) => {
                let it = present?;
                if val.as_ref() != Some(&it.val) || *flags != it.flags {
                    return None;
                }
                match (it.cas, cas) {
                    (Some(a), Some(b)) if a != *b => None,
                    (None, Some(b)) => Some(Some(Item {
                        cas: Some(*b),
                        ..it.clone()
                    })),
                    _ => Some(s.clone()),
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::{check, Event, Verdict};

    fn pieces(ids: &[u32]) -> Val {
        Val::Pieces(ids.to_vec())
    }

    fn e(call: u64, ret: u64, cmd: Cmd, reply: Reply) -> Event<KvOp> {
        Event {
            call,
            ret,
            op: KvOp { cmd, reply },
        }
    }

    fn w(val: Val, ttl: u32) -> Write {
        Write { val, flags: 0, ttl }
    }

    fn set(id: u32) -> Cmd {
        Cmd::Set(w(pieces(&[id]), 0))
    }

    fn hit(ids: &[u32], cas: Option<u64>) -> Reply {
        Reply::Value {
            val: Some(pieces(ids)),
            flags: 0,
            cas,
        }
    }

    fn verdict(may_evict: bool, h: &[Event<KvOp>]) -> bool {
        match check(&KvModel { may_evict }, h, 1 << 20) {
            Verdict::Linearizable => true,
            Verdict::Violation { .. } => false,
            Verdict::Unknown => panic!("budget"),
        }
    }

    #[test]
    fn pieces_round_trip_and_torn_values_do_not_decode() {
        let mut v = piece(7, 100);
        v.extend(piece(0x1234, 3));
        assert_eq!(decode(&v), Some(pieces(&[7, 0x1234])));
        assert_eq!(decode(b"42"), Some(Val::Num(42)));
        assert_eq!(decode(b"42   "), Some(Val::Num(42)));
        let mut torn = v.clone();
        torn[20] = b'#';
        assert_eq!(decode(&torn), None);
        assert_eq!(decode(&v[..v.len() - 1]), None);
        // Another piece's filler under this id.
        let mut other = piece(8, 100);
        other[1] = b'7';
        assert_eq!(decode(&other), None);
        assert_eq!(decode(b""), None);
    }

    #[test]
    fn stale_and_resurrected_values_are_violations() {
        let h = [
            e(0, 1, set(1), Reply::Stored(None)),
            e(2, 3, set(2), Reply::Stored(None)),
            e(4, 5, Cmd::Get, hit(&[1], None)),
        ];
        assert!(!verdict(false, &h));
        assert!(
            !verdict(true, &h),
            "eviction does not explain a stale value"
        );
        // Deleted, then read back.
        let h = [
            e(0, 1, set(1), Reply::Stored(None)),
            e(2, 3, Cmd::Delete, Reply::Deleted),
            e(4, 5, Cmd::Get, hit(&[1], None)),
        ];
        assert!(!verdict(true, &h));
        // Evicted (a miss), then read back: resurrected.
        let h = [
            e(0, 1, set(1), Reply::Stored(None)),
            e(2, 3, Cmd::Get, Reply::Miss),
            e(4, 5, Cmd::Get, hit(&[1], None)),
        ];
        assert!(verdict(true, &h[..2]));
        assert!(
            !verdict(false, &h[..2]),
            "a miss without eviction or expiry"
        );
        assert!(!verdict(true, &h));
        // A torn value never linearizes.
        let torn = Reply::Value {
            val: None,
            flags: 0,
            cas: None,
        };
        assert!(!verdict(
            true,
            &[
                e(0, 1, set(1), Reply::Stored(None)),
                e(2, 3, Cmd::Get, torn)
            ]
        ));
    }

    #[test]
    fn cas_needs_the_current_unique() {
        let cas = |token| Cmd::Cas(token, w(pieces(&[9]), 0));
        // gets learns 100; cas 100 succeeds.
        let base = [
            e(0, 1, set(1), Reply::Stored(None)),
            e(2, 3, Cmd::Get, hit(&[1], Some(100))),
        ];
        let mut h = base.to_vec();
        h.push(e(4, 5, cas(100), Reply::Stored(None)));
        h.push(e(6, 7, Cmd::Get, hit(&[9], None)));
        assert!(verdict(false, &h));
        // cas with a token from before a later set must fail.
        let mut h = base.to_vec();
        h.push(e(4, 5, set(2), Reply::Stored(None)));
        h.push(e(6, 7, cas(100), Reply::Stored(None)));
        assert!(!verdict(false, &h));
        h[3].op.reply = Reply::Exists;
        assert!(verdict(false, &h));
        // EXISTS with the current token is wrong.
        let mut h = base.to_vec();
        h.push(e(4, 5, cas(100), Reply::Exists));
        assert!(!verdict(false, &h));
        // The unique changes without a store: wrong.
        let mut h = base.to_vec();
        h.push(e(4, 5, Cmd::Get, hit(&[1], Some(101))));
        assert!(!verdict(false, &h));
    }

    #[test]
    fn counters_concat_add_touch_and_expiry() {
        let num = |n| Cmd::Set(w(Val::Num(n), 0));
        let h = [
            e(0, 1, num(5), Reply::Stored(None)),
            e(2, 3, Cmd::Incr(3), Reply::Number(8, None)),
            e(4, 5, Cmd::Decr(10), Reply::Number(0, None)),
        ];
        assert!(verdict(false, &h));
        let mut bad = h.to_vec();
        bad[1].op.reply = Reply::Number(9, None);
        assert!(!verdict(false, &bad));
        // Two concurrent incrs: either order gives 7 then 9 (never both 7).
        let h = [
            e(0, 1, num(5), Reply::Stored(None)),
            e(2, 9, Cmd::Incr(2), Reply::Number(7, None)),
            e(2, 9, Cmd::Incr(2), Reply::Number(7, None)),
        ];
        assert!(!verdict(true, &h));
        // Append and prepend build the value in order.
        let h = [
            e(0, 1, set(1), Reply::Stored(None)),
            e(2, 3, Cmd::Append(2), Reply::Stored(None)),
            e(4, 5, Cmd::Prepend(3), Reply::Stored(None)),
            e(6, 7, Cmd::Get, hit(&[3, 1, 2], None)),
        ];
        assert!(verdict(false, &h));
        let mut bad = h.to_vec();
        bad[3].op.reply = hit(&[1, 2, 3], None);
        assert!(!verdict(false, &bad));
        // add succeeds only on an absent key.
        let add = Cmd::Add(w(pieces(&[4]), 0));
        let h = [
            e(0, 1, set(1), Reply::Stored(None)),
            e(2, 3, add.clone(), Reply::Stored(None)),
        ];
        assert!(!verdict(false, &h));
        assert!(verdict(true, &h), "evicted first");
        // An item with a 2 s TTL may vanish after 1 s of history time (µs), not before.
        let ttl = Cmd::Set(w(pieces(&[1]), 2));
        let early = [
            e(0, 1, ttl.clone(), Reply::Stored(None)),
            e(500_000, 600_000, Cmd::Get, Reply::Miss),
        ];
        assert!(!verdict(false, &early));
        let late = [
            e(0, 1, ttl, Reply::Stored(None)),
            e(1_500_000, 1_600_000, Cmd::Get, Reply::Miss),
        ];
        assert!(verdict(false, &late));
        // touch 0 makes it permanent again.
        let h = [
            late[0].clone(),
            e(2, 3, Cmd::Touch(0), Reply::Touched),
            e(1_500_000, 1_600_000, Cmd::Get, Reply::Miss),
        ];
        assert!(!verdict(false, &h));
    }
}
