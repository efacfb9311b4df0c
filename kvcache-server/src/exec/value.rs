//! A storage request whose value is still arriving, kept with its parsed head.
//!
//! A storage request is normally executed once all of it is in the connection's read
//! buffer. When the parser finds its line (binary: header, extras and key) complete and
//! its value not, it returns the request's head, and [`Receiving::start`] keeps it; the
//! line is never parsed again. The head borrows nothing: its key (and a meta request's
//! flag tokens) are spans of the request's bytes, found again wherever those are by then.
//!
//! For a value of at least [`STREAM_MIN`] bytes the item is allocated at once and the
//! value's bytes go into it as they arrive (the line is consumed and copied out); the
//! item is linked when the value is whole, after checking the `\r\n` that follows a text
//! or meta value. The read buffer then stays at its normal size, and a value in flight
//! takes memory only inside `-m`, where it counts as memcached counts it: 200 clients
//! that each declare a 1 MB value and send half of it hold at most `-m`, not 200 half
//! values beyond it. (The connection may also read the socket straight into the item's
//! chunks: [`Receiving::rooms`].) A shorter value, or one whose command needs the old
//! item, waits in the read buffer behind its line, and the request runs as a buffered
//! one once it is there.
//!
//! What goes into its item: text `set`, `add`, `replace` and `cas`; meta `ms` in modes
//! `S`, `E`, `R` (also with `C`, but not with `I`); binary `set`, `add`, `replace` and
//! their quiet forms. `append`/`prepend` (any protocol) and invalidating `ms` need the
//! old item and wait in the buffer.
//!
//! The replies and stats are the buffered path's, byte for byte (the same store and reply
//! code runs, split in two: `Store::begin_store` and `Store::finish_store`):
//!
//! - the allocation failing (over `-I` in memcached's accounting, or no memory) is
//!   answered `SERVER_ERROR object too large for cache` / `SERVER_ERROR out of memory
//!   storing object` (binary: `Too large.` / `Out of memory allocating item`), a `set` drops the key's old
//!   value, and the value is discarded as it arrives; a text or meta answer is sent once
//!   the value has been discarded, as memcached sends it;
//! - a value not followed by `\r\n` is answered `CLIENT_ERROR bad data chunk` (silenced
//!   by `noreply`, not by meta `q`) and its item freed; parsing goes on after the two
//!   bytes that should have been `\r\n`, as in memcached;
//! - the expiration time is fixed when the line arrives, as in memcached (it computes it
//!   when it allocates the item); `add`, `replace` and `cas` are checked when the item is
//!   linked.
//!
//! Until it is linked, the item is in no index: no reader can see it, and eviction and
//! slab moves pass over it (they only take linked items). A connection closed before the
//! value is complete gives the item's chunks back ([`Receiving::abandon`]).

use super::context::{After, Ctx, Step};
use super::ops::Detail;
use super::{binary, meta, text};
use crate::protocol::binary::{StoreHead, StoreKind};
use crate::protocol::meta::{reply as meta_reply, DetachedSetHead};
use crate::protocol::text::{reply as text_reply, StorageHead, StorageKind};
use crate::store::{Pending, Store};

/// Values shorter than this wait whole in the read buffer (it holds 16 KiB anyway);
/// longer ones not yet complete are received into their item.
pub const STREAM_MIN: usize = 8 * 1024;

/// The parsed head of a request whose value is arriving.
// The meta head is the large one; boxing it would allocate for every meta value in
// flight, and a connection keeps at most one head, inline.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug)]
pub enum Head {
    /// A text storage command.
    Text(StorageHead),
    /// A meta `ms`.
    Meta(DetachedSetHead),
    /// A binary storage packet.
    Binary(StoreHead),
}

impl Head {
    /// The bytes before the value (line, or header, extras and key).
    fn line_len(&self) -> usize {
        match self {
            Head::Text(h) => h.line_len,
            Head::Meta(h) => h.line_len(),
            Head::Binary(h) => h.head_len,
        }
    }

    fn vlen(&self) -> usize {
        match self {
            Head::Text(h) => h.vlen,
            Head::Meta(h) => h.vlen(),
            Head::Binary(h) => h.vlen,
        }
    }

    /// The bytes after the value: `\r\n` for text and meta.
    fn trailer_len(&self) -> usize {
        match self {
            Head::Binary(_) => 0,
            _ => 2,
        }
    }

    fn total_len(&self) -> usize {
        self.line_len() + self.vlen() + self.trailer_len()
    }
}

/// A storage request whose value is arriving: its head, and where the value goes.
#[derive(Debug)]
pub struct Receiving {
    head: Head,
    into: Option<IntoItem>,
}

/// A value received into its allocated item.
#[derive(Debug)]
struct IntoItem {
    pending: Pending,
    /// The request's line (or binary header, extras and key), copied out of the read
    /// buffer: the head's spans are found in it.
    line: Vec<u8>,
    /// Value bytes written so far.
    got: usize,
    /// The bytes after the value, as far as they have arrived.
    trailer: [u8; 2],
    trailer_got: usize,
}

impl Receiving {
    /// Starts on the head a parser returned for the request at the front of `buf`: the
    /// value goes into its item (the line is consumed, or on a failure answered and the
    /// value discarded), or waits in the buffer (nothing consumed; the buffer must grow
    /// to hold the request). `slot` receives the request in flight.
    pub fn start(
        ctx: &mut Ctx<'_>,
        head: Head,
        buf: &[u8],
        out: &mut Vec<u8>,
        slot: &mut Option<Receiving>,
    ) -> Step {
        let (used, vlen) = (head.line_len(), head.vlen());
        let store = ctx.store;
        let streams = vlen >= STREAM_MIN;
        let line = &buf[..used];
        let begun = match &head {
            Head::Text(h) => {
                // memcached counts a storage command for `stats detail` when its line
                // is read, whatever becomes of its value (this path never reaches the
                // buffered request's count in `text::execute`).
                ctx.control.ops().record(h.key.get(line), Detail::Set);
                if !streams || matches!(h.kind, StorageKind::Append | StorageKind::Prepend) {
                    None
                } else {
                    let key = h.key.get(line);
                    Some(text::storage_begin(ctx.counters, store, h, key, out))
                }
            }
            Head::Meta(h) => {
                ctx.counters.cmd_meta += 1;
                let h = h.attach(line);
                if !streams || !meta::set_streams(&h.args, h.mode) {
                    None
                } else {
                    Some(meta::set_begin(store, &h.args, h.mode, vlen, out))
                }
            }
            Head::Binary(h) => {
                ctx.counters.cmd_binary += 1;
                if !streams || matches!(h.kind, StoreKind::Append | StoreKind::Prepend) {
                    // Counted when the whole packet runs (`binary::run`).
                    None
                } else {
                    let key = h.key.get(line);
                    ctx.control.ops().record(key, Detail::Set);
                    Some(binary::store_begin(store, h, key, out))
                }
            }
        };
        match begun {
            None => {
                *slot = Some(Receiving { head, into: None });
                Step::Incomplete {
                    used: 0,
                    need: head.total_len(),
                }
            }
            Some(Some(pending)) => {
                let into = IntoItem {
                    pending,
                    line: line.to_vec(),
                    got: 0,
                    trailer: [0; 2],
                    trailer_got: 0,
                };
                *slot = Some(Receiving {
                    head,
                    into: Some(into),
                });
                Step::Done {
                    used,
                    after: After::Continue,
                }
            }
            Some(None) => {
                let swallow = vlen + head.trailer_len();
                let after = match head {
                    // memcached answers a text or meta failure after the value is
                    // discarded.
                    Head::Text(_) | Head::Meta(_) => After::SwallowThenReply(swallow),
                    Head::Binary(_) => After::Swallow(swallow),
                };
                Step::Done { used, after }
            }
        }
    }

    /// Whether the value goes into its item and some of it is still to come.
    pub fn wants_direct(&self) -> bool {
        self.into.as_ref().is_some_and(|i| i.got < self.head.vlen())
    }

    /// Up to `max` regions of the item still to fill, in order, for a read straight from
    /// the socket into the item; then [`Receiving::advance`] by what the read took.
    /// Empty unless the value goes into its item.
    pub fn rooms<'a>(&'a mut self, store: &'a Store, max: usize) -> Vec<&'a mut [u8]> {
        match self.into.as_mut() {
            Some(i) => store.pending_rooms(&mut i.pending, i.got, max),
            None => Vec::new(),
        }
    }

    /// Counts `n` value bytes written into the regions of [`Receiving::rooms`].
    pub fn advance(&mut self, n: usize) {
        if let Some(i) = self.into.as_mut() {
            i.got += n;
            debug_assert!(i.got <= self.head.vlen());
        }
    }

    /// Goes on with the request in `slot` given the unconsumed bytes `buf`: copies what
    /// there is of the value into its item, or, for a value waiting in the buffer, runs
    /// the request once all of it is there. Once the request is done, `slot` is empty.
    pub fn feed(
        ctx: &mut Ctx<'_>,
        slot: &mut Option<Receiving>,
        buf: &[u8],
        out: &mut Vec<u8>,
    ) -> Step {
        let Some(r) = slot.as_mut() else {
            return Step::Incomplete { used: 0, need: 0 };
        };
        let head = r.head;
        let vlen = head.vlen();
        let Some(i) = r.into.as_mut() else {
            let total = head.total_len();
            if buf.len() < total {
                return Step::Incomplete {
                    used: 0,
                    need: total,
                };
            }
            *slot = None;
            let after = finish_buffered(ctx, &head, &buf[..total], out);
            return Step::Done { used: total, after };
        };
        let n = (vlen - i.got).min(buf.len());
        ctx.store.write_pending(&i.pending, i.got, &buf[..n]);
        i.got += n;
        let rest = &buf[n..];
        let t = (head.trailer_len() - i.trailer_got).min(rest.len());
        i.trailer[i.trailer_got..i.trailer_got + t].copy_from_slice(&rest[..t]);
        i.trailer_got += t;
        let used = n + t;
        if i.got < vlen || i.trailer_got < head.trailer_len() {
            return Step::Incomplete { used, need: 0 };
        }
        let Some(Receiving { into: Some(i), .. }) = slot.take() else {
            return Step::Incomplete { used, need: 0 };
        };
        finish_item(ctx, &head, i, out);
        Step::Done {
            used,
            after: After::Continue,
        }
    }

    /// Frees the item of a value still arriving (the connection is closing).
    pub fn abandon(self, store: &Store) {
        if let Some(i) = self.into {
            store.abandon_store(i.pending);
        }
    }
}

/// Links (or refuses) the item once its value is in, and answers.
fn finish_item(ctx: &mut Ctx<'_>, head: &Head, i: IntoItem, out: &mut Vec<u8>) {
    let store = ctx.store;
    let good = i.trailer[..head.trailer_len()] == b"\r\n"[..head.trailer_len()];
    let line = &i.line[..];
    match head {
        Head::Text(h) if good => {
            let key = h.key.get(line);
            let outcome = text::storage_finish(ctx.counters, store, h, key, i.pending, out);
            text::log_store(ctx.control, store, h.kind, key, h.exptime, h.vlen, outcome);
        }
        Head::Text(h) => {
            store.abandon_store(i.pending);
            if !h.noreply {
                out.extend_from_slice(text_reply::BAD_CHUNK);
            }
        }
        Head::Meta(h) if good => {
            let h = h.attach(line);
            meta::set_finish(store, &h.args, h.mode, i.pending, out)
        }
        Head::Meta(_) => {
            store.abandon_store(i.pending);
            out.extend_from_slice(meta_reply::BAD_CHUNK);
        }
        Head::Binary(h) => {
            binary::store_finish(store, &h.header, h.kind, h.key.get(line), i.pending, out)
        }
    }
}

/// Runs a request whose value waited in the read buffer: `request` is all of it.
fn finish_buffered(ctx: &mut Ctx<'_>, head: &Head, request: &[u8], out: &mut Vec<u8>) -> After {
    let good = request.ends_with(b"\r\n");
    match head {
        Head::Text(h) if good => {
            let s = h.request(request);
            let outcome = text::storage(ctx.counters, ctx.store, s, out);
            let (key, len) = (s.key, s.data.len());
            text::log_store(ctx.control, ctx.store, h.kind, key, h.exptime, len, outcome);
        }
        Head::Text(h) => {
            if !h.noreply {
                out.extend_from_slice(text_reply::BAD_CHUNK);
            }
        }
        Head::Meta(h) if good => {
            let h = h.attach(request);
            let data = &request[h.line_len..h.line_len + h.vlen];
            meta::set(ctx.store, &h.args, h.mode, data, out);
        }
        Head::Meta(_) => out.extend_from_slice(meta_reply::BAD_CHUNK),
        Head::Binary(h) => return binary::run(ctx, &h.header, &h.command(request), out),
    }
    After::Continue
}
