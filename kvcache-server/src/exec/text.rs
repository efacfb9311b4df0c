//! Runs text-protocol requests (`get`, `set`, `incr`, `stats`...) with memcached
//! 1.6.18's semantics and reply bytes.

use super::context::{put_value, After, Control, Ctx, DIRECT_MIN};
use super::ops::Detail;
use super::stats::Counters;
use super::watch;
use crate::protocol::text::{
    reply, write_number, write_value_head, Request, ShutdownMode, StatsKind, StorageHead,
    StorageKind, StorageRequest,
};
use crate::store::{IncrOutcome, Pending, Store, StoreMode, StoreOutcome};

/// A multi-key `get` stops adding values once this many reply bytes wait to be sent
/// (after answering at least one key), so one request cannot buffer gigabytes; the
/// connection stops executing at the same mark.
pub const OUT_BUDGET: usize = 64 * 1024;

/// Where a multi-key `get`/`gat` stopped because its replies went over [`OUT_BUDGET`]:
/// the addresses (inside the request's line) of the first key answered by this call and
/// of the first key not yet answered. The caller blanks the answered keys and runs the
/// line again once the output has drained.
pub type Resume = Option<(usize, usize)>;

#[inline]
fn put(out: &mut Vec<u8>, line: &[u8], noreply: bool) {
    if !noreply {
        out.extend_from_slice(line);
    }
}

/// Executes one request, appending its reply to `out`.
///
/// `written` is how many bytes at the front of `out` the socket already took: a
/// multi-key retrieval stops early when more than [`OUT_BUDGET`] bytes wait, and says
/// where ([`Resume`]).
pub fn execute(
    ctx: &mut Ctx<'_>,
    req: &Request<'_>,
    out: &mut Vec<u8>,
    written: usize,
) -> (After, Resume) {
    let store = ctx.store;
    let ops = ctx.control.ops();
    let c = &mut *ctx.counters;
    match *req {
        Request::Get { cas, keys } => return retrieve(ctx, keys, cas, None, out, written),
        Request::Gat { cas, exptime, keys } => {
            return retrieve(ctx, keys, cas, Some(exptime), out, written)
        }
        Request::Storage(s) => {
            ops.record(s.key, Detail::Set);
            let outcome = storage(c, store, s, out);
            log_store(
                ctx.control,
                store,
                s.kind,
                s.key,
                s.exptime,
                s.data.len(),
                outcome,
            );
        }
        Request::TooLarge {
            kind,
            key,
            noreply,
            swallow,
        } => {
            // memcached drops the old value so that a failed `set` leaves no stale data
            // (a failed add, replace, append, prepend or cas keeps it). It counts the
            // `set` for `stats detail` before it finds the value too large.
            ops.record(key, Detail::Set);
            c.cmd_set += 1;
            c.store_too_large += 1;
            if kind == StorageKind::Set {
                store.remove_stale(key);
            }
            put(out, reply::TOO_LARGE, noreply);
            return (After::SwallowThenReply(swallow), None);
        }
        Request::Delete { key, noreply } => {
            ops.record(key, Detail::Delete);
            if store.delete(key) {
                c.delete_hits += 1;
                put(out, reply::DELETED, noreply);
            } else {
                c.delete_misses += 1;
                put(out, reply::NOT_FOUND, noreply);
            }
        }
        Request::Arith {
            key,
            delta,
            incr,
            noreply,
        } => match store.incr_decr(key, delta, incr) {
            IncrOutcome::Value(v) => {
                if incr {
                    c.incr_hits += 1;
                } else {
                    c.decr_hits += 1;
                }
                if !noreply {
                    write_number(out, v);
                }
            }
            IncrOutcome::NotFound => {
                if incr {
                    c.incr_misses += 1;
                } else {
                    c.decr_misses += 1;
                }
                put(out, reply::NOT_FOUND, noreply);
            }
            IncrOutcome::NonNumeric => put(out, reply::NON_NUMERIC, noreply),
            IncrOutcome::OutOfMemory => put(out, reply::ARITH_NO_MEMORY, noreply),
        },
        Request::Touch {
            key,
            exptime,
            noreply,
        } => {
            c.cmd_touch += 1;
            if store.touch(key, exptime) {
                c.touch_hits += 1;
                put(out, reply::TOUCHED, noreply);
            } else {
                c.touch_misses += 1;
                put(out, reply::NOT_FOUND, noreply);
            }
        }
        Request::FlushAll { delay, noreply } => {
            if !ctx.settings.flush_enabled {
                put(out, b"CLIENT_ERROR flush_all not allowed\r\n", noreply);
            } else {
                c.cmd_flush += 1;
                store.flush_all(delay);
                put(out, reply::OK, noreply);
            }
        }
        Request::Version => out.extend_from_slice(reply::VERSION),
        Request::Verbosity { level, noreply } => {
            ctx.control.set_verbosity(level.min(2));
            put(out, reply::OK, noreply);
        }
        Request::Quit => return (After::Close, None),
        Request::RefreshCerts => match ctx.control.refresh_certs() {
            Ok(()) => out.extend_from_slice(reply::OK),
            Err(msg) => {
                out.extend_from_slice(msg.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        },
        Request::Shutdown(mode) => match (ctx.settings.shutdown_enabled, mode) {
            (false, _) => out.extend_from_slice(reply::SHUTDOWN_DISABLED),
            (true, ShutdownMode::Invalid) => out.extend_from_slice(reply::SHUTDOWN_INVALID),
            (true, mode) => {
                // memcached closes this connection at once, without a reply, and stops.
                ctx.control.stop(mode == ShutdownMode::Graceful);
                return (After::Abort, None);
            }
        },
        Request::Stats(kind) => {
            // Make this worker's latest counts visible to the sum.
            ctx.control.publish(ctx.counters);
            ctx.control.stats(kind, out);
            out.extend_from_slice(if kind == StatsKind::Reset {
                reply::RESET
            } else {
                reply::END
            });
        }
        Request::SlabsReassign { args } => match args {
            Some((src, dst)) => out.extend_from_slice(store.slabs_reassign(src, dst).reply()),
            None if store.slab_reassign_enabled() => out.extend_from_slice(reply::BAD_FORMAT),
            None => out.extend_from_slice(crate::store::ReassignOutcome::Disabled.reply()),
        },
        Request::SlabsAutomove { mode, noreply } => {
            store.set_automove_mode(mode);
            put(out, reply::OK, noreply);
        }
        Request::SlabsClasses { list, noreply } => {
            match crate::protocol::text::parse_class_list(list).and_then(|s| store.set_classes(&s))
            {
                Ok(()) => put(out, reply::OK, noreply),
                Err(why) => {
                    if !noreply {
                        out.extend_from_slice(b"CLIENT_ERROR bad class list: ");
                        out.extend_from_slice(why.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                }
            }
        }
        Request::SlabsAutomoveRatio { ratio, noreply } => {
            store.set_automove_ratio(ratio);
            put(out, reply::OK, noreply);
        }
        Request::Ops(r) => return (super::ops::execute(ctx, &r, out), None),
        Request::Reply { line, noreply } => put(out, line, noreply),
        Request::RetrievalKeyTooLong => {
            // As memcached: the replies not yet sent are dropped.
            out.truncate(written);
            out.extend_from_slice(reply::BAD_FORMAT);
        }
        // Both are routed before execution (see `super::step`); answered as unknown if
        // not.
        Request::Value(_) | Request::Meta => out.extend_from_slice(reply::ERROR),
    }
    (After::Continue, None)
}

/// The store mode of a storage command.
fn storage_mode(kind: StorageKind, cas: u64) -> StoreMode {
    match kind {
        StorageKind::Set => StoreMode::Set,
        StorageKind::Add => StoreMode::Add,
        StorageKind::Replace => StoreMode::Replace,
        StorageKind::Append => StoreMode::Append,
        StorageKind::Prepend => StoreMode::Prepend,
        StorageKind::Cas => StoreMode::Cas(cas),
    }
}

/// `get`/`gets`, and `gat`/`gats` (with `touch`): every key's value (with its CAS when
/// `cas`), then `END`, stopping past [`OUT_BUDGET`] as [`execute`] documents.
fn retrieve<'k>(
    ctx: &mut Ctx<'_>,
    keys: impl Iterator<Item = &'k [u8]>,
    cas: bool,
    touch: Option<i64>,
    out: &mut Vec<u8>,
    written: usize,
) -> (After, Resume) {
    let store = ctx.store;
    let ops = ctx.control.ops();
    let c = &mut *ctx.counters;
    let mut first = None;
    let mut keys = keys.peekable();
    while let Some(key) = keys.next() {
        first.get_or_insert(key.as_ptr() as usize);
        c.cmd_get += 1;
        c.cmd_touch += u64::from(touch.is_some());
        let mut vlen = 0;
        let mut sent_whole = false;
        // The last key's large value goes out with `END` in the same `writev`.
        let last = keys.peek().is_none();
        let mut ended = false;
        let direct = ctx.direct.as_deref_mut();
        let min = if direct.is_some() {
            DIRECT_MIN
        } else {
            usize::MAX
        };
        let head = |it: &crate::store::ValueHead, out: &mut Vec<u8>| {
            vlen = it.len;
            write_value_head(out, key, it.flags, it.len, cas.then_some(it.cas));
        };
        // Called only for a value of at least `min` bytes, so only with a socket.
        let hit = store.get_append_or(key, touch, out, head, min, |out, parts| {
            if last {
                put_value(direct, out, parts, b"\r\nEND\r\n");
                ended = true;
            } else {
                put_value(direct, out, parts, b"\r\n");
            }
            sent_whole = true;
        });
        if hit && !sent_whole {
            out.extend_from_slice(b"\r\n");
        }
        ops.record(key, Detail::get(hit));
        log_get(ctx.control, store, key, hit, vlen);
        match (hit, touch.is_some()) {
            (true, false) => c.get_hits += 1,
            (true, true) => {
                c.get_hits += 1;
                c.touch_hits += 1;
            }
            (false, false) => c.get_misses += 1,
            (false, true) => {
                c.get_misses += 1;
                c.touch_misses += 1;
            }
        }
        if ended {
            return (After::Sent, None);
        }
        if let (Some(next), Some(first)) = (keys.peek(), first) {
            let written = ctx.direct.as_ref().map_or(written, |d| d.written());
            if out.len().saturating_sub(written) > OUT_BUDGET {
                return (After::Sent, Some((first, next.as_ptr() as usize)));
            }
        }
    }
    out.extend_from_slice(reply::END);
    (After::Sent, None)
}

/// For `watch fetchers`: an `item_get` line.
fn log_get(control: &dyn Control, store: &Store, key: &[u8], hit: bool, size: usize) {
    let log = &control.ops().log;
    if !log.wants(watch::FETCHERS) {
        return;
    }
    let clsid = if hit {
        store.class_for_item(key.len(), size)
    } else {
        0
    };
    log.emit(control.worker(), watch::FETCHERS, |o| {
        watch::item_get(o, key, hit, clsid, control.conn_fd(), size)
    });
}

/// For `watch mutations`: an `item_store` line.
pub(crate) fn log_store(
    control: &dyn Control,
    store: &Store,
    kind: StorageKind,
    key: &[u8],
    exptime: i64,
    vlen: usize,
    outcome: StoreOutcome,
) {
    let log = &control.ops().log;
    if !log.wants(watch::MUTATIONS) {
        return;
    }
    let status = match outcome {
        StoreOutcome::Stored => "stored",
        StoreOutcome::NotStored => "not_stored",
        StoreOutcome::Exists => "exists",
        StoreOutcome::NotFound => "not_found",
        StoreOutcome::TooLarge => "too_large",
        StoreOutcome::OutOfMemory => "no_memory",
    };
    let cmd = match kind {
        StorageKind::Set => "set",
        StorageKind::Add => "add",
        StorageKind::Replace => "replace",
        StorageKind::Append => "append",
        StorageKind::Prepend => "prepend",
        StorageKind::Cas => "cas",
    };
    // memcached logs the item's expiration time on its own clock (0: never).
    let ttl = store.clock().realtime(exptime);
    let clsid = store.class_for_item(key.len(), vlen);
    log.emit(control.worker(), watch::MUTATIONS, |o| {
        watch::item_store(o, key, status, cmd, ttl, clsid, control.conn_fd(), vlen)
    });
}

/// Executes a storage request with its data.
pub(crate) fn storage(
    c: &mut Counters,
    store: &Store,
    s: StorageRequest<'_>,
    out: &mut Vec<u8>,
) -> StoreOutcome {
    let outcome = store.store(
        storage_mode(s.kind, s.cas),
        s.key,
        s.flags,
        s.exptime,
        s.data,
    );
    storage_reply(c, s.kind, s.noreply, outcome, out);
    outcome
}

/// Starts a storage command whose value is received into its item (see
/// [`super::value`]): allocates the item, or answers as the buffered path would answer
/// the same failure (too large, out of memory; counted alike) and returns `None`.
pub(crate) fn storage_begin(
    c: &mut Counters,
    store: &Store,
    h: &StorageHead,
    key: &[u8],
    out: &mut Vec<u8>,
) -> Option<Pending> {
    debug_assert!(!matches!(
        h.kind,
        StorageKind::Append | StorageKind::Prepend
    ));
    match store.begin_store(storage_mode(h.kind, h.cas), key, h.flags, h.exptime, h.vlen) {
        Ok(p) => Some(p),
        Err(outcome) => {
            storage_reply(c, h.kind, h.noreply, outcome, out);
            None
        }
    }
}

/// Links (or refuses) a storage command's item once its value has arrived, and
/// answers.
pub(crate) fn storage_finish(
    c: &mut Counters,
    store: &Store,
    h: &StorageHead,
    key: &[u8],
    pending: Pending,
    out: &mut Vec<u8>,
) -> StoreOutcome {
    let (outcome, _) = store.finish_store(storage_mode(h.kind, h.cas), key, pending);
    storage_reply(c, h.kind, h.noreply, outcome, out);
    outcome
}

/// Counts a storage command's outcome and writes its reply.
fn storage_reply(
    c: &mut Counters,
    kind: StorageKind,
    noreply: bool,
    outcome: StoreOutcome,
    out: &mut Vec<u8>,
) {
    c.cmd_set += 1;
    let is_cas = kind == StorageKind::Cas;
    let line = match outcome {
        StoreOutcome::Stored => {
            if is_cas {
                c.cas_hits += 1;
            }
            reply::STORED
        }
        StoreOutcome::NotStored => reply::NOT_STORED,
        StoreOutcome::Exists => {
            if is_cas {
                c.cas_badval += 1;
            }
            reply::EXISTS
        }
        StoreOutcome::NotFound => {
            if is_cas {
                c.cas_misses += 1;
            }
            reply::NOT_FOUND
        }
        StoreOutcome::TooLarge => {
            c.store_too_large += 1;
            reply::TOO_LARGE
        }
        StoreOutcome::OutOfMemory => {
            c.store_no_memory += 1;
            reply::NO_MEMORY
        }
    };
    put(out, line, noreply);
}
