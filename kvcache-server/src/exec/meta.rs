//! Runs meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`) with memcached 1.6.18's
//! semantics and reply bytes.

use super::context::{put_value, ttl_left, After, Ctx, Direct};
use crate::protocol::lex::format_u64;
use crate::protocol::meta::{
    self, reply, ArithResult, DebugInfo, ItemInfo, MetaArgs, MetaRequest, SetMode, Status, WinFlags,
};
use crate::store::{
    IncrOutcome, MetaDeleteOutcome, MetaGetOptions, Pending, Store, StoreMode, StoreOutcome,
};

/// Executes one parsed meta request, appending its reply to `out`.
pub fn execute(ctx: &mut Ctx<'_>, req: &MetaRequest<'_>, out: &mut Vec<u8>) -> After {
    ctx.counters.cmd_meta += 1;
    let store = ctx.store;
    match req {
        MetaRequest::Get(args) => get(store, args, ctx.direct.as_deref_mut(), out),
        MetaRequest::Set { args, mode, data } => set(store, args, *mode, data, out),
        MetaRequest::TooLarge { args, swallow } => {
            // memcached drops the old value so that a failed set leaves no stale data.
            store.remove_stale(args.key.bytes());
            out.extend_from_slice(reply::TOO_LARGE);
            return After::SwallowThenReply(*swallow);
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
                return After::SwallowThenReply(*swallow);
            }
        }
        // Routed before execution (see `super::step`); answered as unknown if not.
        MetaRequest::Value(_) => out.extend_from_slice(reply::ERROR),
    }
    After::Continue
}

fn get(
    store: &Store,
    args: &MetaArgs<'_>,
    direct: Option<&mut (dyn Direct + '_)>,
    out: &mut Vec<u8>,
) {
    let f = &args.flags;
    let opts = MetaGetOptions {
        ttl: f.ttl,
        vivify: f.vivify,
        recache: f.recache,
        no_update: f.no_update,
    };
    let now = store.now();
    let hit = store.meta_get(args.key.bytes(), opts, |it, st, parts| {
        let value_len = parts.iter().map(|p| p.len()).sum();
        let info = ItemInfo {
            value_len,
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
        meta::write_get_head(out, args, &info, win);
        if args.flags.value {
            put_value(direct, out, parts, b"\r\n");
        }
    });
    if !hit {
        meta::write_get_miss(out, args);
    }
}

/// The store mode of an `ms`.
fn set_mode(args: &MetaArgs<'_>, mode: SetMode) -> StoreMode {
    match (mode, args.flags.compare_cas) {
        (SetMode::Set | SetMode::Replace, Some(c)) => StoreMode::Cas(c),
        (SetMode::Set, None) => StoreMode::Set,
        (SetMode::Replace, None) => StoreMode::Replace,
        (SetMode::Add, _) => StoreMode::Add,
        (SetMode::Append, _) => StoreMode::Append,
        (SetMode::Prepend, _) => StoreMode::Prepend,
    }
}

/// Executes an `ms` with its data.
pub(crate) fn set(
    store: &Store,
    args: &MetaArgs<'_>,
    mode: SetMode,
    data: &[u8],
    out: &mut Vec<u8>,
) {
    let f = &args.flags;
    let key = args.key.bytes();
    let exptime = f.ttl.unwrap_or(0);
    let smode = set_mode(args, mode);
    // Append and prepend compare a CAS in the store, under the key's lock; on a missing
    // key they are not stored (`NS`, as memcached: only a CAS set misses with `NF`).
    let concat_cas = match (mode, f.compare_cas) {
        (SetMode::Append | SetMode::Prepend, c) => c,
        _ => None,
    };
    let (outcome, new_cas) = match (smode, f.invalidate) {
        (StoreMode::Cas(c), true) => (
            store.meta_set_invalidate(key, f.client_flags, exptime, data, c),
            None,
        ),
        _ => {
            let (o, cas) =
                store.store_checked(smode, key, f.client_flags, exptime, data, concat_cas);
            (o, Some(cas))
        }
    };
    set_reply(store, args, outcome, new_cas, out);
}

/// Whether an `ms` can have its value received into its item (see
/// [`super::value`]): plain sets, adds, replaces and CAS sets; not appends, prepends or
/// invalidating CAS sets, which need the old value or the old item's state.
pub(crate) fn set_streams(args: &MetaArgs<'_>, mode: SetMode) -> bool {
    match set_mode(args, mode) {
        StoreMode::Append | StoreMode::Prepend => false,
        StoreMode::Cas(_) => !args.flags.invalidate,
        _ => true,
    }
}

/// Starts an `ms` whose value is received into its item: allocates the item, or
/// answers the failure as [`execute`] would and returns `None`.
pub(crate) fn set_begin(
    store: &Store,
    args: &MetaArgs<'_>,
    mode: SetMode,
    vlen: usize,
    out: &mut Vec<u8>,
) -> Option<Pending> {
    let f = &args.flags;
    let exptime = f.ttl.unwrap_or(0);
    match store.begin_store(
        set_mode(args, mode),
        args.key.bytes(),
        f.client_flags,
        exptime,
        vlen,
    ) {
        Ok(p) => Some(p),
        Err(outcome) => {
            set_reply(store, args, outcome, Some(0), out);
            None
        }
    }
}

/// Links (or refuses) an `ms` item once its value has arrived, and answers.
pub(crate) fn set_finish(
    store: &Store,
    args: &MetaArgs<'_>,
    mode: SetMode,
    pending: Pending,
    out: &mut Vec<u8>,
) {
    let (outcome, cas) = store.finish_store(set_mode(args, mode), args.key.bytes(), pending);
    set_reply(store, args, outcome, Some(cas), out);
}

/// Answers an `ms` by its outcome; `new_cas` is the CAS the store assigned, if known.
fn set_reply(
    store: &Store,
    args: &MetaArgs<'_>,
    outcome: StoreOutcome,
    new_cas: Option<u64>,
    out: &mut Vec<u8>,
) {
    let f = &args.flags;
    let key = args.key.bytes();
    let status = match outcome {
        StoreOutcome::Stored => Status::Stored,
        StoreOutcome::NotStored => Status::NotStored,
        StoreOutcome::Exists => Status::Exists,
        StoreOutcome::NotFound => Status::NotFound,
        // memcached allocates an `ms` item before it reads the value, and when that fails
        // deletes the key's old value whatever the mode (set, add, replace, append,
        // prepend, with or without a CAS or invalidation) so that no stale data stays.
        StoreOutcome::TooLarge => {
            store.remove_stale(key);
            return out.extend_from_slice(reply::TOO_LARGE);
        }
        StoreOutcome::OutOfMemory => {
            store.remove_stale(key);
            return out.extend_from_slice(reply::NO_MEMORY);
        }
    };
    let cas = if status == Status::Stored && f.has(b'c') {
        // An invalidating set links its item elsewhere; its CAS is read back.
        new_cas.unwrap_or_else(|| store.peek_cas(key).unwrap_or(0))
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
                let mut buf = [0; 20];
                let digits = format_u64(f.initial, &mut buf);
                match store.store(StoreMode::Add, key, 0, ttl, digits) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::context::testing::with_ctx;
    use crate::store::StoreConfig;

    fn store() -> Store {
        Store::new(StoreConfig::new(64 << 20)).expect("store")
    }

    /// Runs every request in `input` and returns all replies.
    fn run(store: &Store, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = input;
        while !buf.is_empty() {
            let (req, n) = meta::parse(buf, 1 << 20).expect("complete request");
            let after = with_ctx(store, 1 << 20, |ctx| execute(ctx, &req, &mut out));
            assert_eq!(after, After::Continue);
            buf = &buf[n..];
        }
        out
    }

    /// The item's CAS, read without touching it.
    fn cas(store: &Store, key: &str) -> u64 {
        store.peek_cas(key.as_bytes()).expect("item present")
    }

    #[test]
    fn ttl_counts_down_with_the_clock() {
        let s = store();
        assert_eq!(
            run(&s, b"ms k 1 T100\r\nx\r\nmg k t\r\n"),
            b"HD\r\nHD t100\r\n"
        );
        s.clock().advance(30);
        // The first `mg` above fetched it.
        assert_eq!(run(&s, b"mg k t l h\r\n"), b"HD t70 l30 h1\r\n");
        assert_eq!(run(&s, b"mg k t l h\r\n"), b"HD t70 l0 h1\r\n");
        // `u` leaves the access time and the fetched bit alone.
        s.clock().advance(5);
        assert_eq!(run(&s, b"mg k u l\r\nmg k l\r\n"), b"HD l5\r\nHD l5\r\n");
        s.clock().advance(100);
        assert_eq!(run(&s, b"mg k v\r\n"), b"EN\r\n");
    }

    #[test]
    fn recache_win_when_ttl_falls_below_r() {
        let s = store();
        run(&s, b"ms k 1 T100\r\nx\r\n");
        assert_eq!(run(&s, b"mg k R30 v\r\n"), b"VA 1\r\nx\r\n");
        s.clock().advance(80);
        assert_eq!(run(&s, b"mg k R30 v\r\n"), b"VA 1 W\r\nx\r\n");
        assert_eq!(run(&s, b"mg k R30 v\r\n"), b"VA 1 Z\r\nx\r\n");
        // A new value clears the token.
        run(&s, b"ms k 1 T100\r\ny\r\n");
        assert_eq!(run(&s, b"mg k R30 v\r\n"), b"VA 1\r\ny\r\n");
    }

    #[test]
    fn invalidation_and_stale_sets() {
        let s = store();
        run(&s, b"ms k 2\r\nab\r\n");
        let before = cas(&s, "k");
        assert_eq!(run(&s, b"md k I T30\r\n"), b"HD\r\n");
        let after = cas(&s, "k");
        assert!(after > before, "invalidation bumps the CAS");
        assert_eq!(run(&s, b"mg k v t\r\n"), b"VA 2 t30 X W\r\nab\r\n");
        // A set with the older CAS and I is accepted as a stale value.
        let old = format!("ms k 2 C{before} I\r\nxy\r\nmg k v t\r\n");
        assert_eq!(run(&s, old.as_bytes()), b"HD\r\nVA 2 t30 Z X\r\nxy\r\n");
        // Without I the older CAS is refused.
        let old = format!("ms k 2 C{before}\r\nzz\r\n");
        assert_eq!(run(&s, old.as_bytes()), b"EX\r\n");
        // With the current CAS the item is replaced by a fresh one.
        let cur = cas(&s, "k");
        let ok = format!("ms k 2 C{cur}\r\nok\r\nmg k v\r\n");
        assert_eq!(run(&s, ok.as_bytes()), b"HD\r\nVA 2\r\nok\r\n");
    }

    #[test]
    fn compare_cas_on_delete_and_arith() {
        let s = store();
        run(&s, b"ms n 1\r\n5\r\n");
        let c = cas(&s, "n");
        let wrong = c + 1;
        assert_eq!(run(&s, format!("ma n C{wrong}\r\n").as_bytes()), b"EX\r\n");
        assert_eq!(
            run(&s, format!("ma n C{c} v\r\n").as_bytes()),
            b"VA 1\r\n6\r\n"
        );
        let c2 = cas(&s, "n");
        assert!(c2 > c);
        assert_eq!(run(&s, format!("md n C{c}\r\n").as_bytes()), b"EX\r\n");
        assert_eq!(
            run(&s, format!("md n C{c2} q\r\nmn\r\n").as_bytes()),
            b"MN\r\n"
        );
        assert_eq!(run(&s, b"mg n\r\n"), b"EN\r\n");
        // Auto-create with an initial value and TTL.
        assert_eq!(run(&s, b"ma a N50 J41 t v\r\n"), b"VA 2 t50\r\n41\r\n");
        assert_eq!(run(&s, b"ma a t v\r\n"), b"VA 2 t50\r\n42\r\n");
    }

    #[test]
    fn too_large_set_deletes_and_swallows() {
        let s = store();
        run(&s, b"ms k 1\r\nx\r\n");
        let (req, n) = meta::parse(b"ms k 2000000\r\n", 1 << 20).unwrap();
        let mut out = Vec::new();
        let after = with_ctx(&s, 1 << 20, |ctx| execute(ctx, &req, &mut out));
        assert_eq!(after, After::SwallowThenReply(2_000_002));
        assert_eq!(n, 14);
        assert_eq!(out, reply::TOO_LARGE);
        assert_eq!(run(&s, b"mg k\r\n"), b"EN\r\n");
    }

    #[test]
    fn debug_reports_the_item() {
        let s = store();
        run(&s, b"ms k 3 T60\r\nabc\r\n");
        let out = String::from_utf8(run(&s, b"me k\r\n")).unwrap();
        let c = cas(&s, "k");
        assert!(
            out.starts_with(&format!("ME k exp=60 la=0 cas={c} fetch=no cls=")),
            "{out}"
        );
        assert_eq!(run(&s, b"me nope\r\n"), b"EN\r\n");
    }

    #[test]
    fn exactly_one_client_wins_a_vivified_key() {
        let s = std::sync::Arc::new(store());
        for round in 0..20 {
            let key = format!("hot{round}");
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let s = s.clone();
                    let req = format!("mg {key} N30 v\r\n");
                    std::thread::spawn(move || run(&s, req.as_bytes()))
                })
                .collect();
            let replies: Vec<Vec<u8>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            let wins = replies
                .iter()
                .filter(|r| r.starts_with(b"VA 0 W\r\n"))
                .count();
            let others = replies
                .iter()
                .filter(|r| r.starts_with(b"VA 0 Z\r\n"))
                .count();
            assert_eq!((wins, others), (1, 3), "{replies:?}");
        }
    }
}
