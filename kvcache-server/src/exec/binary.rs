//! Runs binary-protocol packets with memcached 1.6.18's semantics: status codes, quiet
//! forms (success unanswered, errors always answered, quiet get misses unanswered),
//! opaque echo and CAS in the response header.

use super::context::{put_value, After, Ctx};
use super::ops::Detail;
use crate::protocol::binary::{self, Command, Header, Packet, Status, StoreHead, StoreKind};
use crate::protocol::lex::format_u64;
use crate::protocol::text::StatsKind;
use crate::store::{IncrOutcome, MetaDeleteOutcome, Pending, Store, StoreMode, StoreOutcome};

/// The version string `version` answers.
pub const VERSION: &[u8] = b"1.6.18";

/// Executes one parsed packet, appending the response(s) to `out`.
pub fn execute(ctx: &mut Ctx<'_>, pkt: &Packet<'_>, out: &mut Vec<u8>) -> After {
    ctx.counters.cmd_binary += 1;
    let store = ctx.store;
    match pkt {
        Packet::Request { header, command } => run(ctx, header, command, out),
        // Routed before execution (see `super::step`); answered as unknown if not.
        Packet::Value(head) => {
            binary::write_error(out, &head.header, Status::UnknownCommand);
            After::Continue
        }
        Packet::TooLarge {
            header,
            key,
            delete_key,
            swallow,
        } => {
            if *delete_key {
                store.delete(key);
            }
            // memcached counts the store for `stats detail` before it finds it too large.
            ctx.control.ops().record(key, Detail::Set);
            binary::write_error(out, header, Status::TooLarge);
            After::Swallow(*swallow)
        }
        Packet::Error {
            header,
            status,
            swallow,
            close,
        } => {
            binary::write_error(out, header, *status);
            if *close {
                After::Close
            } else if *swallow > 0 {
                After::Swallow(*swallow)
            } else {
                After::Continue
            }
        }
    }
}

/// Executes one request (a complete packet's command).
pub(crate) fn run(ctx: &mut Ctx<'_>, h: &Header, cmd: &Command<'_>, out: &mut Vec<u8>) -> After {
    let store = ctx.store;
    let ops = ctx.control.ops();
    let quiet = h.quiet();
    let ok = |out: &mut Vec<u8>, cas: u64| {
        if !quiet {
            binary::write_ok(out, h, cas);
        }
    };
    match *cmd {
        Command::Get { key, with_key } => {
            let direct = ctx.direct.as_deref_mut();
            let hit = store.get_parts(key, None, |it, parts| {
                binary::write_hit_head(out, h, it.flags, it.cas, with_key.then_some(key), it.len);
                put_value(direct, out, parts, b"");
            });
            ops.record(key, Detail::get(hit));
            if !hit {
                miss(out, h, key, with_key);
            }
        }
        Command::Touch {
            key,
            exptime,
            with_value,
            with_key,
        } => {
            let hit = store.get_and_touch(key, i64::from(exptime), |it| {
                let value = with_value.then_some(it.value);
                binary::write_hit(out, h, it.flags, it.cas, with_key.then_some(key), value);
            });
            ops.record(key, Detail::get(hit));
            if !hit {
                miss(out, h, key, with_key);
            }
        }
        Command::Store {
            kind,
            key,
            flags,
            exptime,
            value,
        } => {
            ops.record(key, Detail::Set);
            let exptime = i64::from(exptime);
            let mode = store_mode(h, kind);
            // Append and prepend may carry a CAS: the store compares it under the key's
            // lock. The CAS returned is the one the store assigned, under the same lock.
            let concat_cas = (h.cas != 0 && matches!(kind, StoreKind::Append | StoreKind::Prepend))
                .then_some(h.cas);
            let (outcome, cas) = store.store_checked(mode, key, flags, exptime, value, concat_cas);
            store_reply(h, kind, outcome, cas, out);
        }
        Command::Delete { key } => {
            ops.record(key, Detail::Delete);
            let cas = (h.cas != 0).then_some(h.cas);
            match store.meta_delete(key, cas, false, None) {
                MetaDeleteOutcome::Deleted => ok(out, 0),
                MetaDeleteOutcome::Exists => binary::write_error(out, h, Status::KeyExists),
                MetaDeleteOutcome::NotFound => binary::write_error(out, h, Status::KeyNotFound),
            }
        }
        Command::Arith {
            key,
            incr,
            delta,
            initial,
            exptime,
        } => {
            if h.cas != 0 {
                if let Some(c) = store.peek_cas(key) {
                    if c != h.cas {
                        binary::write_error(out, h, Status::KeyExists);
                        return After::Continue;
                    }
                }
            }
            match store.incr_decr(key, delta, incr) {
                IncrOutcome::Value(v) => {
                    if !quiet {
                        binary::write_number(out, h, v, store.peek_cas(key).unwrap_or(0));
                    }
                }
                IncrOutcome::NotFound if exptime != u32::MAX => {
                    let mut buf = [0; 20];
                    let digits = format_u64(initial, &mut buf);
                    match store.store(StoreMode::Add, key, 0, i64::from(exptime), digits) {
                        StoreOutcome::Stored => {
                            if !quiet {
                                let cas = store.peek_cas(key).unwrap_or(0);
                                binary::write_number(out, h, initial, cas);
                            }
                        }
                        StoreOutcome::TooLarge | StoreOutcome::OutOfMemory => {
                            binary::write_error_text(
                                out,
                                h,
                                Status::OutOfMemory,
                                b"Out of memory allocating new item",
                            )
                        }
                        _ => binary::write_error(out, h, Status::NotStored),
                    }
                }
                IncrOutcome::NotFound => binary::write_error(out, h, Status::KeyNotFound),
                IncrOutcome::NonNumeric => binary::write_error(out, h, Status::NonNumeric),
                IncrOutcome::OutOfMemory => binary::write_error_text(
                    out,
                    h,
                    Status::OutOfMemory,
                    b"Out of memory incrementing value",
                ),
            }
        }
        Command::Quit => {
            ok(out, 0);
            return After::Close;
        }
        Command::Flush { exptime } => {
            store.flush_all(i64::from(exptime));
            ok(out, 0);
        }
        Command::Noop => binary::write_ok(out, h, 0),
        Command::Version => binary::write_body(out, h, VERSION),
        Command::Stat { group } => {
            let Some(kind) = stats_group(group) else {
                binary::write_error(out, h, Status::KeyNotFound);
                return After::Continue;
            };
            let mut text = Vec::new();
            ctx.control.stats(kind, &mut text);
            for line in text.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let Some(rest) = line.strip_prefix(b"STAT ") else {
                    continue;
                };
                let sp = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
                let value = rest.get(sp + 1..).unwrap_or(&[]);
                binary::write_stat(out, h, &rest[..sp], value);
            }
            binary::write_stat(out, h, b"", b"");
        }
    }
    After::Continue
}

/// The `stats` group a binary `stat` key names (memcached's prefixes), if any.
fn stats_group(group: &[u8]) -> Option<StatsKind> {
    use StatsKind as K;
    Some(match group {
        b"" => K::General,
        b"settings" => K::Settings,
        b"items" => K::Items,
        b"slabs" => K::Slabs,
        b"sizes" => K::Sizes,
        b"sizes_fine" => K::SizesFine,
        b"conns" => K::Conns,
        b"reset" => K::Reset,
        _ => return None,
    })
}

fn miss(out: &mut Vec<u8>, h: &Header, key: &[u8], with_key: bool) {
    if h.quiet() {
        return;
    }
    if with_key {
        binary::write_miss_with_key(out, h, key);
    } else {
        binary::write_error(out, h, Status::KeyNotFound);
    }
}

/// The store mode of a storage packet (a CAS in the header makes `set`, `add` and
/// `replace` a CAS store).
fn store_mode(h: &Header, kind: StoreKind) -> StoreMode {
    match kind {
        _ if h.cas != 0 && matches!(kind, StoreKind::Set | StoreKind::Add | StoreKind::Replace) => {
            StoreMode::Cas(h.cas)
        }
        StoreKind::Set => StoreMode::Set,
        StoreKind::Add => StoreMode::Add,
        StoreKind::Replace => StoreMode::Replace,
        StoreKind::Append => StoreMode::Append,
        StoreKind::Prepend => StoreMode::Prepend,
    }
}

/// Answers a storage packet by its outcome.
fn store_reply(h: &Header, kind: StoreKind, outcome: StoreOutcome, cas: u64, out: &mut Vec<u8>) {
    match outcome {
        StoreOutcome::Stored => {
            if !h.quiet() {
                binary::write_ok(out, h, cas);
            }
        }
        StoreOutcome::Exists => binary::write_error(out, h, Status::KeyExists),
        StoreOutcome::NotFound => binary::write_error(out, h, Status::KeyNotFound),
        StoreOutcome::TooLarge => binary::write_error(out, h, Status::TooLarge),
        StoreOutcome::OutOfMemory => binary::write_error_text(
            out,
            h,
            Status::OutOfMemory,
            b"Out of memory allocating item",
        ),
        StoreOutcome::NotStored => {
            let status = match kind {
                StoreKind::Add => Status::KeyExists,
                StoreKind::Replace => Status::KeyNotFound,
                _ => Status::NotStored,
            };
            binary::write_error(out, h, status);
        }
    }
}

/// Starts a `set`/`add`/`replace` whose value is received into its item (see
/// [`super::value`]): allocates the item, or answers the failure as [`execute`] would
/// and returns `None`.
pub(crate) fn store_begin(
    store: &Store,
    head: &StoreHead,
    key: &[u8],
    out: &mut Vec<u8>,
) -> Option<Pending> {
    let h = &head.header;
    match store.begin_store(
        store_mode(h, head.kind),
        key,
        head.flags,
        i64::from(head.exptime),
        head.vlen,
    ) {
        Ok(p) => Some(p),
        Err(outcome) => {
            store_reply(h, head.kind, outcome, 0, out);
            None
        }
    }
}

/// Links (or refuses) a storage packet's item once its value has arrived, and answers.
pub(crate) fn store_finish(
    store: &Store,
    h: &Header,
    kind: StoreKind,
    key: &[u8],
    pending: Pending,
    out: &mut Vec<u8>,
) {
    let (outcome, cas) = store.finish_store(store_mode(h, kind), key, pending);
    store_reply(h, kind, outcome, cas, out);
}
