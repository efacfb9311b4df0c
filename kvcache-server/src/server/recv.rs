//! Receiving a large value straight into its item, as memcached does.
//!
//! A storage request is normally executed once all of it is in the connection's read
//! buffer. For a value that has not all arrived and is at least [`STREAM_MIN`] bytes,
//! the worker instead allocates the item as soon as the command's line (binary: header,
//! extras and key) is complete, puts the value's bytes into it as they arrive, and
//! links it when the value is whole, checking the `\r\n` after a text or meta value.
//! Bytes already in the read buffer are copied; while a read buffer's worth or more of
//! the value is still to come, the socket is read straight into the item's chunks
//! ([`read_direct`]), as memcached reads into its item. The read buffer then stays at its normal size, and a value in flight takes memory only
//! inside `-m`, where it counts as memcached counts it: 200 clients that each declare
//! a 1 MB value and send half of it hold at most `-m`, not 200 half values beyond it.
//!
//! What streams: text `set`, `add`, `replace` and `cas`; meta `ms` in modes `S`, `E`,
//! `R` (also with `C`, but not with `I`); binary `set`, `add`, `replace` and their quiet
//! forms. `append`/`prepend` (any protocol) and invalidating `ms` need the old item and
//! stay on the buffered path.
//!
//! The replies and stats are the buffered path's, byte for byte (the same store and reply
//! code runs, split in two: `Store::begin_store` and `Store::finish_store`):
//!
//! - the allocation failing (over `-I` in memcached's accounting, or no memory) is
//!   answered `SERVER_ERROR object too large for cache` / `SERVER_ERROR out of memory
//!   storing object` (binary: `Too large.` / `Out of memory`), a `set` drops the key's old
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
//! value is complete gives the item's chunks back (`Worker::close`).

use std::io::{self, IoSliceMut, Read};
use std::sync::atomic::Ordering;

use super::conn::{Conn, Mode, ReadResult, READ_BUF, STATE_NREAD};
use super::exec::{self as text_exec, Ctx};
use crate::protocol::binary::{self, Header, StoreKind};
use crate::protocol::meta;
use crate::protocol::text::{self, reply, StorageKind};
use crate::store::{Pending, Store};

/// Values shorter than this are buffered whole (the read buffer holds 16 KiB anyway);
/// longer ones not yet complete are received into their item.
pub(crate) const STREAM_MIN: usize = 8 * 1024;

/// Regions of the item one direct read fills at most (see [`read_direct`]).
const DIRECT_REGIONS: usize = 8;

/// A storage request whose item is allocated and whose value is arriving.
#[derive(Debug)]
pub(crate) struct Receiving {
    pending: Pending,
    /// Value bytes copied so far, of `vlen`.
    got: usize,
    vlen: usize,
    /// The bytes after the value (`\r\n` for text and meta; none for binary), as far as
    /// they have arrived.
    trailer: [u8; 2],
    trailer_got: usize,
    trailer_len: usize,
    finish: Finish,
}

/// What completes the request once the value is in.
#[derive(Debug)]
enum Finish {
    /// The command line, `\n` included, parsed again to finish.
    Text { line: Vec<u8> },
    /// The `ms` line, `\n` included, parsed again to finish.
    Meta { line: Vec<u8> },
    Binary {
        header: Header,
        kind: StoreKind,
        key: Vec<u8>,
    },
}

/// Whether the next read should go straight into the item of the value being received:
/// the read buffer is empty and at least a read buffer's worth of the value is still to
/// come (the value's last bytes, its `\r\n` and what follows go through the read buffer).
pub(crate) fn wants_direct(conn: &Conn) -> bool {
    conn.rstart == conn.rend
        && conn
            .recv
            .as_ref()
            .is_some_and(|r| r.vlen - r.got >= READ_BUF)
}

/// One `read` (a `readv` over up to [`DIRECT_REGIONS`] chunks) from the socket straight
/// into the item of the value being received, as memcached reads a value into its item:
/// no copy through the read buffer, and up to a few hundred kilobytes per call. Call
/// only when [`wants_direct`]; `Data::drained` means the same as for
/// [`Conn::read_once`].
pub(crate) fn read_direct(store: &Store, conn: &mut Conn) -> io::Result<ReadResult> {
    let Some(r) = conn.recv.as_mut() else {
        return Ok(ReadResult::WouldBlock);
    };
    let room = r.vlen - r.got;
    let rooms = store.pending_rooms(&mut r.pending, r.got, DIRECT_REGIONS);
    let mut bufs: Vec<IoSliceMut<'_>> = rooms.into_iter().map(IoSliceMut::new).collect();
    let space: usize = bufs.iter().map(|b| b.len()).sum();
    debug_assert!(space > 0 && space <= room);
    let got = loop {
        match conn.stream.read_vectored(&mut bufs) {
            Ok(0) => return Ok(ReadResult::Eof),
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadResult::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    r.got += got;
    Ok(ReadResult::Data {
        n: got,
        drained: got < space,
    })
}

/// If the request at the front of the read buffer is a storage command whose value is
/// large and not all there, starts receiving it: consumes its line, and either allocates
/// the item (`conn.recv`) or answers the failure and discards the value (`conn.swallow`).
/// Returns whether it did.
pub(crate) fn start(ctx: &mut Ctx<'_>, conn: &mut Conn) -> bool {
    let max = ctx.shared.cfg.item_size_max;
    let store: &Store = &ctx.shared.store;
    let buf = &conn.rbuf[conn.rstart..conn.rend];
    let mark = conn.out.len();
    let (used, vlen, trailer_len, begun) = match conn.mode {
        Mode::Text => {
            if let Some(h) = text::storage_head(buf, max) {
                if h.vlen < STREAM_MIN
                    || matches!(h.kind, StorageKind::Append | StorageKind::Prepend)
                {
                    return false;
                }
                let begun = text_exec::storage_begin(ctx.counters, store, &h, &mut conn.out);
                let finish = Finish::Text {
                    line: buf[..h.line_len].to_vec(),
                };
                (h.line_len, h.vlen, 2, begun.map(|p| (p, finish)))
            } else if let Some(h) = meta::set_head(buf, max) {
                if h.vlen < STREAM_MIN || !crate::exec::meta::set_streams(&h.args, h.mode) {
                    return false;
                }
                ctx.counters.cmd_meta += 1;
                let begun =
                    crate::exec::meta::set_begin(store, &h.args, h.mode, h.vlen, &mut conn.out);
                let finish = Finish::Meta {
                    line: buf[..h.line_len].to_vec(),
                };
                (h.line_len, h.vlen, 2, begun.map(|p| (p, finish)))
            } else {
                return false;
            }
        }
        Mode::Binary => {
            let Some(h) = binary::store_head(buf, max) else {
                return false;
            };
            if h.vlen < STREAM_MIN {
                return false;
            }
            ctx.counters.cmd_binary += 1;
            let begun = crate::exec::binary::store_begin(store, &h, &mut conn.out);
            let finish = Finish::Binary {
                header: h.header,
                kind: h.kind,
                key: h.key.to_vec(),
            };
            (h.head_len, h.vlen, 0, begun.map(|p| (p, finish)))
        }
        Mode::Unknown => return false,
    };
    conn.rstart += used;
    conn.info.state.store(STATE_NREAD, Ordering::Relaxed);
    match begun {
        Some((pending, finish)) => {
            conn.recv = Some(Receiving {
                pending,
                got: 0,
                vlen,
                trailer: [0; 2],
                trailer_got: 0,
                trailer_len,
                finish,
            });
        }
        None => {
            conn.swallow = vlen + trailer_len;
            if conn.mode == Mode::Text {
                // memcached answers a text or meta failure after the value is discarded.
                conn.after_swallow.extend_from_slice(&conn.out[mark..]);
                conn.out.truncate(mark);
            }
        }
    }
    true
}

/// Copies what the read buffer holds of the value being received into its item; once
/// the value (and its `\r\n`) is complete, links the item or refuses it and answers.
/// Returns whether the request is done.
pub(crate) fn feed(ctx: &mut Ctx<'_>, conn: &mut Conn) -> bool {
    let store: &Store = &ctx.shared.store;
    let Some(r) = conn.recv.as_mut() else {
        return true;
    };
    let avail = &conn.rbuf[conn.rstart..conn.rend];
    let n = (r.vlen - r.got).min(avail.len());
    store.write_pending(&r.pending, r.got, &avail[..n]);
    r.got += n;
    let avail = &avail[n..];
    let t = (r.trailer_len - r.trailer_got).min(avail.len());
    r.trailer[r.trailer_got..r.trailer_got + t].copy_from_slice(&avail[..t]);
    r.trailer_got += t;
    conn.rstart += n + t;
    if r.got < r.vlen || r.trailer_got < r.trailer_len {
        return false;
    }
    let Some(r) = conn.recv.take() else {
        return true;
    };
    let good = r.trailer[..r.trailer_len] == b"\r\n"[..r.trailer_len];
    let max = ctx.shared.cfg.item_size_max;
    match r.finish {
        Finish::Text { line } => {
            // The line parsed when the value started; it parses the same again.
            match (good, text::storage_head(&line, max)) {
                (true, Some(h)) => {
                    text_exec::storage_finish(ctx.counters, store, &h, r.pending, &mut conn.out)
                }
                (good, h) => {
                    debug_assert!(
                        h.is_some(),
                        "a storage line that parsed once no longer does"
                    );
                    store.abandon_store(r.pending);
                    if !good && !h.is_some_and(|h| h.noreply) {
                        conn.out.extend_from_slice(reply::BAD_CHUNK);
                    }
                }
            }
        }
        Finish::Meta { line } => {
            // The line parsed when the value started; it parses the same again.
            match (good, meta::set_head(&line, max)) {
                (true, Some(h)) => {
                    crate::exec::meta::set_finish(store, &h.args, h.mode, r.pending, &mut conn.out)
                }
                (true, None) => {
                    debug_assert!(false, "an ms line that parsed once no longer does");
                    store.abandon_store(r.pending);
                }
                (false, _) => {
                    store.abandon_store(r.pending);
                    conn.out.extend_from_slice(meta::reply::BAD_CHUNK);
                }
            }
        }
        Finish::Binary { header, kind, key } => {
            crate::exec::binary::store_finish(store, &header, kind, &key, r.pending, &mut conn.out)
        }
    }
    true
}

/// Frees the item of a value still being received (the connection is closing).
pub(crate) fn abandon(store: &Store, conn: &mut Conn) {
    if let Some(r) = conn.recv.take() {
        store.abandon_store(r.pending);
    }
}
