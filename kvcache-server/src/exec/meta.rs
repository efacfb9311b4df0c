//! Runs meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`) with memcached 1.6.18's
//! semantics and reply bytes.

use super::{ttl_left, After};
use crate::protocol::meta::{
    self, reply, ArithResult, DebugInfo, ItemInfo, MetaArgs, MetaRequest, SetMode, Status, WinFlags,
};
use crate::protocol::text::push_u64;
use crate::store::{
    IncrOutcome, MetaDeleteOutcome, MetaGetOptions, Store, StoreMode, StoreOutcome,
};

/// Executes one parsed meta request, appending its reply to `out`.
pub fn execute(store: &Store, req: &MetaRequest<'_>, out: &mut Vec<u8>) -> After {
    match req {
        MetaRequest::Get(args) => get(store, args, out),
        MetaRequest::Set { args, mode, data } => set(store, args, *mode, data, out),
        MetaRequest::TooLarge { args, swallow } => {
            // memcached drops the old value so that a failed set leaves no stale data.
            store.delete(args.key.bytes());
            out.extend_from_slice(reply::TOO_LARGE);
            return After::Swallow(*swallow);
        }
        MetaRequest::Delete(args) => delete(store, args, out),
        MetaRequest::Arith { args, incr } => arith(store, args, *incr, out),
        MetaRequest::Noop => out.extend_from_slice(reply::MN),
        MetaRequest::Debug { key } => match store.debug_item(key.bytes()) {
            Some(d) => {
                let now = store.now();
                let info = DebugInfo {
                    ttl: ttl_left(d.exptime, now),
                    last_access: now.saturating_sub(d.last_access),
                    cas: d.cas,
                    fetched: d.fetched,
                    class: d.class,
                    size: d.size,
                };
                meta::write_debug(out, key, &info);
            }
            None => out.extend_from_slice(reply::EN),
        },
        MetaRequest::Error { line, swallow } => {
            out.extend_from_slice(line);
            if *swallow > 0 {
                return After::Swallow(*swallow);
            }
        }
    }
    After::Continue
}

fn get(store: &Store, args: &MetaArgs<'_>, out: &mut Vec<u8>) {
    let f = &args.flags;
    let opts = MetaGetOptions {
        ttl: f.ttl,
        vivify: f.vivify,
        recache: f.recache,
        no_update: f.no_update,
    };
    let now = store.now();
    let hit = store.meta_get(args.key.bytes(), opts, |it, st| {
        let info = ItemInfo {
            value_len: it.value.len(),
            client_flags: it.flags,
            cas: it.cas,
            ttl: ttl_left(it.exptime, now),
            old_ttl: ttl_left(st.old_exptime, now),
            last_access: now.saturating_sub(it.last_access),
            fetched: it.fetched,
        };
        let win = WinFlags {
            won: st.won,
            stale: st.stale,
            already_sent: st.already_sent,
        };
        meta::write_get_hit(out, args, &info, win, it.value);
    });
    if !hit {
        meta::write_get_miss(out, args);
    }
}

fn set(store: &Store, args: &MetaArgs<'_>, mode: SetMode, data: &[u8], out: &mut Vec<u8>) {
    let f = &args.flags;
    let key = args.key.bytes();
    let exptime = f.ttl.unwrap_or(0);
    let smode = match (mode, f.compare_cas) {
        (SetMode::Set | SetMode::Replace, Some(c)) => StoreMode::Cas(c),
        (SetMode::Set, None) => StoreMode::Set,
        (SetMode::Replace, None) => StoreMode::Replace,
        (SetMode::Add, _) => StoreMode::Add,
        (SetMode::Append, _) => StoreMode::Append,
        (SetMode::Prepend, _) => StoreMode::Prepend,
    };
    // Append and prepend honour a supplied CAS by checking it first.
    if let (SetMode::Append | SetMode::Prepend, Some(c)) = (mode, f.compare_cas) {
        match store.peek_cas(key) {
            None => return meta::write_set_reply(out, args, Status::NotFound, 0),
            Some(cur) if cur != c => return meta::write_set_reply(out, args, Status::Exists, 0),
            Some(_) => {}
        }
    }
    let outcome = match (smode, f.invalidate) {
        (StoreMode::Cas(c), true) => {
            store.meta_set_invalidate(key, f.client_flags, exptime, data, c)
        }
        _ => store.store(smode, key, f.client_flags, exptime, data),
    };
    let status = match outcome {
        StoreOutcome::Stored => Status::Stored,
        StoreOutcome::NotStored => Status::NotStored,
        StoreOutcome::Exists => Status::Exists,
        StoreOutcome::NotFound => Status::NotFound,
        StoreOutcome::TooLarge => return out.extend_from_slice(reply::TOO_LARGE),
        StoreOutcome::OutOfMemory => return out.extend_from_slice(reply::NO_MEMORY),
    };
    let cas = if status == Status::Stored && f.has(b'c') {
        store.peek_cas(key).unwrap_or(0)
    } else {
        0
    };
    meta::write_set_reply(out, args, status, cas);
}

fn delete(store: &Store, args: &MetaArgs<'_>, out: &mut Vec<u8>) {
    let f = &args.flags;
    let ttl = if f.invalidate { f.ttl } else { None };
    let status = match store.meta_delete(args.key.bytes(), f.compare_cas, f.invalidate, ttl) {
        MetaDeleteOutcome::Deleted => Status::Stored,
        MetaDeleteOutcome::NotFound => Status::NotFound,
        MetaDeleteOutcome::Exists => Status::Exists,
    };
    meta::write_delete_reply(out, args, status);
}

fn arith(store: &Store, args: &MetaArgs<'_>, incr: bool, out: &mut Vec<u8>) {
    let f = &args.flags;
    let key = args.key.bytes();
    if let Some(c) = f.compare_cas {
        match store.peek_cas(key) {
            Some(cur) if cur != c => {
                return meta::write_arith_reply(out, args, Status::Exists, None);
            }
            None if f.vivify.is_none() => {
                return meta::write_arith_reply(out, args, Status::NotFound, None);
            }
            _ => {}
        }
    }
    let value = match store.incr_decr(key, f.delta, incr) {
        IncrOutcome::Value(v) => v,
        IncrOutcome::NotFound => match f.vivify {
            Some(ttl) => {
                let mut digits = Vec::with_capacity(20);
                push_u64(&mut digits, f.initial);
                match store.store(StoreMode::Add, key, 0, ttl, &digits) {
                    StoreOutcome::Stored => f.initial,
                    StoreOutcome::TooLarge | StoreOutcome::OutOfMemory => {
                        return out.extend_from_slice(
                            b"SERVER_ERROR Out of memory allocating new item\r\n",
                        );
                    }
                    _ => return meta::write_arith_reply(out, args, Status::NotStored, None),
                }
            }
            None => return meta::write_arith_reply(out, args, Status::NotFound, None),
        },
        IncrOutcome::NonNumeric => return out.extend_from_slice(reply::NON_NUMERIC),
        IncrOutcome::OutOfMemory => return out.extend_from_slice(reply::ARITH_NO_MEMORY),
    };
    if let Some(t) = f.ttl {
        store.set_exptime_quiet(key, t);
    }
    let now = store.now();
    let (cas, ttl) = store
        .debug_item(key)
        .map_or((0, None), |d| (d.cas, ttl_left(d.exptime, now)));
    let r = ArithResult { value, cas, ttl };
    meta::write_arith_reply(out, args, Status::Stored, Some(&r));
}
