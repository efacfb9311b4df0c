//! The `stats` replies, with memcached's field names and order.

use std::sync::atomic::Ordering::Relaxed;

use super::shared::Shared;
use crate::protocol::lex::push_u64;
use crate::protocol::text::{write_stat, StatsKind};
use crate::store::{ClassStats, StoreStats};

/// The `STAT <name> <value>\r\n` lines of `stats <kind>` without the closing line
/// (`stats reset` resets and writes nothing).
pub(crate) fn lines(shared: &Shared, kind: StatsKind, out: &mut Vec<u8>) {
    match kind {
        StatsKind::General => general(shared, out),
        StatsKind::Settings => settings(shared, out),
        StatsKind::Items => items(shared, out),
        StatsKind::Slabs => slabs(shared, out),
        StatsKind::Sizes => sizes(shared, out, 32),
        StatsKind::SizesFine => sizes(shared, out, 8),
        StatsKind::Conns => conns(shared, out),
        StatsKind::Reset => {
            shared.store.reset_stats();
            shared.stats.reset();
        }
    }
}

fn rusage() -> (f64, f64) {
    // SAFETY: `getrusage` writes one `rusage` struct into the zeroed value we pass and
    // reads nothing else.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

fn general(shared: &Shared, out: &mut Vec<u8>) {
    let s = shared.store.stats();
    let c = shared.stats.sum();
    let now = shared.store.now();
    let (user, system) = rusage();
    let cfg = &shared.cfg;
    write_stat(out, "pid", std::process::id());
    write_stat(out, "uptime", now.saturating_sub(60));
    write_stat(out, "time", shared.started + u64::from(now));
    write_stat(out, "version", "1.6.18-kvcache");
    write_stat(out, "libevent", "mio");
    write_stat(out, "pointer_size", usize::BITS);
    write_stat(out, "rusage_user", format_args!("{user:.6}"));
    write_stat(out, "rusage_system", format_args!("{system:.6}"));
    write_stat(out, "max_connections", cfg.max_conns);
    write_stat(out, "curr_connections", shared.curr_conns.load(Relaxed));
    write_stat(out, "total_connections", shared.total_conns.load(Relaxed));
    write_stat(
        out,
        "rejected_connections",
        shared.rejected_conns.load(Relaxed),
    );
    write_stat(
        out,
        "connection_structures",
        shared.curr_conns.load(Relaxed) + 1,
    );
    write_stat(out, "cmd_get", c.cmd_get);
    write_stat(out, "cmd_set", s.cmd_set);
    write_stat(out, "cmd_flush", s.cmd_flush);
    write_stat(out, "cmd_touch", s.cmd_touch);
    write_stat(out, "cmd_meta", c.cmd_meta);
    write_stat(out, "get_hits", s.get_hits);
    write_stat(out, "get_misses", s.get_misses);
    write_stat(out, "get_expired", s.get_expired);
    write_stat(out, "get_flushed", s.get_flushed);
    write_stat(out, "delete_misses", s.delete_misses);
    write_stat(out, "delete_hits", s.delete_hits);
    write_stat(out, "incr_misses", s.incr_misses);
    write_stat(out, "incr_hits", s.incr_hits);
    write_stat(out, "decr_misses", s.decr_misses);
    write_stat(out, "decr_hits", s.decr_hits);
    write_stat(out, "cas_misses", s.cas_misses);
    write_stat(out, "cas_hits", s.cas_hits);
    write_stat(out, "cas_badval", s.cas_badval);
    write_stat(out, "touch_hits", s.touch_hits);
    write_stat(out, "touch_misses", s.touch_misses);
    write_stat(out, "store_too_large", c.store_too_large);
    write_stat(out, "store_no_memory", c.store_no_memory);
    write_stat(out, "auth_cmds", c.auth_cmds);
    write_stat(out, "auth_errors", c.auth_errors);
    super::transport_report::general(shared, out);
    if cfg.idle_timeout > 0 {
        write_stat(out, "idle_kicks", c.idle_kicks);
    }
    if cfg.write_timeout > 0 {
        // Ours: connections closed for not reading their replies (`-o write_timeout`).
        write_stat(out, "write_timeouts", c.write_timeouts);
    }
    write_stat(out, "bytes_read", c.bytes_read);
    write_stat(out, "bytes_written", c.bytes_written);
    write_stat(out, "limit_maxbytes", s.limit_maxbytes);
    write_stat(
        out,
        "accepting_conns",
        u8::from(!shared.shutdown.load(Relaxed)),
    );
    write_stat(out, "listen_disabled_num", 0);
    write_stat(out, "threads", cfg.threads);
    write_stat(out, "conn_yields", c.conn_yields);
    write_stat(out, "slab_reassign_rescues", s.slab_reassign_rescues);
    write_stat(
        out,
        "slab_reassign_evictions_nomem",
        s.slab_reassign_evictions_nomem,
    );
    write_stat(
        out,
        "slab_reassign_inline_reclaim",
        s.slab_reassign_inline_reclaim,
    );
    write_stat(out, "slab_reassign_busy_items", s.slab_reassign_busy_items);
    write_stat(
        out,
        "slab_reassign_running",
        u8::from(s.slab_reassign_running),
    );
    write_stat(out, "slabs_moved", s.slabs_moved);
    write_stat(out, "slabs_automoved", s.slabs_automoved);
    write_stat(out, "bytes", s.bytes);
    write_stat(out, "curr_items", s.curr_items);
    write_stat(out, "total_items", s.total_items);
    write_stat(out, "expired_unfetched", s.expired_unfetched);
    write_stat(out, "evicted_unfetched", s.evicted_unfetched);
    write_stat(out, "evictions", s.evictions);
    write_stat(out, "reclaimed", s.reclaimed);
    write_stat(out, "crawler_reclaimed", s.crawler_reclaimed);
    write_stat(out, "total_malloced", s.total_malloced);
    write_stat(out, "mapped_bytes", s.mapped_bytes);
    write_stat(out, "slab_pooled_slabs", s.slab_pooled_slabs);
    write_stat(out, "slab_retention_target", s.slab_retention_target);
    write_stat(out, "slab_mmap_calls", s.slab_mmap_calls);
    write_stat(out, "slab_munmap_calls", s.slab_munmap_calls);
    write_stat(out, "slab_released_bytes", s.slab_released_bytes);
    write_stat(out, "slab_released_slabs", s.slab_released_slabs);
    write_stat(out, "memory_shrinks", s.memory_shrinks);
    write_stat(out, "heap_trims", s.heap_trims);
    write_stat(out, "slabs_compacted", s.slabs_compacted);
    write_stat(out, "items_moved", s.items_moved);
    write_stat(out, "slab_reclasses", s.slab_reclasses);
    write_stat(out, "items_migrated", s.items_migrated);
    let r = shared.store.restart_info();
    write_stat(out, "restart_state", r.state);
    write_stat(out, "restart_items_restored", r.restored);
    write_stat(out, "restart_items_dropped", r.dropped);
    let e = shared.store.engine().stats();
    write_stat(out, "slab_punch_calls", e.punch_calls);
    write_stat(out, "slab_punched_bytes", e.punched_bytes);
}

fn settings(shared: &Shared, out: &mut Vec<u8>) {
    let cfg = &shared.cfg;
    let store_cfg = shared.store.config();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    write_stat(out, "maxbytes", shared.store.memory_limit());
    write_stat(out, "maxconns", cfg.max_conns);
    write_stat(out, "tcpport", shared.local_addr.port());
    write_stat(out, "udpport", cfg.transport.udp_port);
    write_stat(out, "inter", &cfg.listen);
    write_stat(out, "verbosity", shared.verbosity.load(Relaxed));
    write_stat(out, "oldest", 0);
    write_stat(
        out,
        "evictions",
        if store_cfg.evictions { "on" } else { "off" },
    );
    write_stat(
        out,
        "domain_socket",
        cfg.transport.unix_socket.as_deref().unwrap_or("NULL"),
    );
    write_stat(out, "umask", format_args!("{:o}", cfg.transport.unix_mask));
    write_stat(out, "shutdown_command", yes_no(cfg.shutdown_enabled));
    write_stat(
        out,
        "growth_factor",
        format_args!("{:.2}", cfg.factor.unwrap_or(1.25)),
    );
    write_stat(out, "chunk_size", cfg.min_space.unwrap_or(48));
    write_stat(out, "num_threads", cfg.threads);
    write_stat(out, "num_threads_per_udp", cfg.threads);
    let ops = shared.ops.settings();
    let op = |name: &str| {
        ops.iter()
            .find(|(n, _)| *n == name)
            .map_or(String::new(), |(_, v)| v.clone())
    };
    write_stat(out, "stat_key_prefix", op("stat_key_prefix"));
    write_stat(out, "detail_enabled", op("detail_enabled"));
    write_stat(out, "reqs_per_event", cfg.reqs_per_event);
    write_stat(out, "cas_enabled", yes_no(store_cfg.cas_enabled));
    write_stat(out, "tcp_backlog", cfg.backlog);
    // With `-Y` memcached binds the text protocol only and shows the auth file's path.
    match &cfg.auth_file {
        None if cfg.transport.sasl => {
            write_stat(out, "binding_protocol", "binary");
            write_stat(out, "auth_enabled_sasl", "yes");
            write_stat(out, "auth_enabled_ascii", "no");
        }
        Some(path) => {
            write_stat(out, "binding_protocol", "ascii");
            write_stat(out, "auth_enabled_sasl", "no");
            write_stat(out, "auth_enabled_ascii", path);
        }
        None => {
            write_stat(out, "binding_protocol", "auto-negotiate");
            write_stat(out, "auth_enabled_sasl", "no");
            write_stat(out, "auth_enabled_ascii", "no");
        }
    }
    write_stat(out, "item_size_max", store_cfg.item_size_max);
    write_stat(out, "maxconns_fast", "yes");
    write_stat(out, "hashpower_init", 0);
    write_stat(
        out,
        "slab_reassign",
        yes_no(shared.store.slab_reassign_enabled()),
    );
    write_stat(out, "slab_automove", shared.store.automove_mode());
    write_stat(
        out,
        "slab_automove_ratio",
        format_args!("{:.2}", shared.store.automove_ratio()),
    );
    write_stat(out, "slab_chunk_max", store_cfg.classes.max_chunk());
    write_stat(out, "slab_page_size", store_cfg.classes.slab_size());
    write_stat(out, "slab_classes", store_cfg.classes.len());
    for name in ["lru_crawler", "lru_crawler_sleep", "lru_crawler_tocrawl"] {
        write_stat(out, name, op(name));
    }
    write_stat(out, "flush_enabled", yes_no(cfg.flush_enabled));
    write_stat(out, "reap_interval", cfg.reap_interval);
    write_stat(out, "dump_enabled", op("dump_enabled"));
    write_stat(out, "watch_enabled", op("watch_enabled"));
    write_stat(out, "hash_algorithm", "foldhash");
    write_stat(out, "lru_maintainer_thread", "no");
    for name in [
        "lru_segmented",
        "hot_lru_pct",
        "warm_lru_pct",
        "temporary_ttl",
    ] {
        write_stat(out, name, op(name));
    }
    write_stat(out, "eviction_policy", "clock");
    write_stat(out, "idle_timeout", cfg.idle_timeout);
    write_stat(out, "write_timeout", cfg.write_timeout);
    write_stat(out, "track_sizes", "yes");
    write_stat(out, "large_pages", yes_no(store_cfg.huge_pages));
    super::transport_report::settings(cfg, out);
    match &cfg.memory_file {
        Some(path) => write_stat(out, "memory_file", path),
        None => write_stat(out, "memory_file", "(null)"),
    }
}

/// A per-class field of `stats items` or `stats slabs`: its name and how to read it.
pub(crate) type ClassField = (&'static str, fn(&ClassStats) -> u64);

/// `stats items`' fields of each class, in memcached's order (`items:<id>:<name>`). The
/// segmented LRU's figures are 0 or the one CLOCK ring's (see `exec::ops`).
pub(crate) const ITEM_FIELDS: &[ClassField] = &[
    ("number", |c| c.number),
    ("number_hot", |_| 0),
    ("number_warm", |_| 0),
    ("number_cold", |c| c.number),
    ("age_hot", |_| 0),
    ("age_warm", |_| 0),
    ("age", |c| u64::from(c.age)),
    ("mem_requested", |c| c.mem_requested),
    ("evicted", |c| c.evicted),
    ("evicted_nonzero", |c| c.evicted_nonzero),
    ("evicted_time", |c| u64::from(c.evicted_time)),
    ("outofmemory", |c| c.outofmemory),
    ("tailrepairs", |_| 0),
    ("reclaimed", |c| c.reclaimed),
    ("expired_unfetched", |c| c.expired_unfetched),
    ("evicted_unfetched", |c| c.evicted_unfetched),
    ("evicted_active", |_| 0),
    ("crawler_reclaimed", |c| c.crawler_reclaimed),
    ("crawler_items_checked", |_| 0),
    ("lrutail_reflocked", |_| 0),
    ("moves_to_cold", |_| 0),
    ("moves_to_warm", |_| 0),
    ("moves_within_lru", |_| 0),
    ("direct_reclaims", |_| 0),
    ("hits_to_hot", |_| 0),
    ("hits_to_warm", |_| 0),
    ("hits_to_cold", |c| c.get_hits),
    ("hits_to_temp", |_| 0),
];

/// Whether `stats items` lists a class: it holds items.
pub(crate) fn item_class_listed(c: &ClassStats) -> bool {
    c.number > 0
}

/// `stats slabs`' fields of each class, in memcached's order (`<id>:<name>`).
pub(crate) const SLAB_FIELDS: &[ClassField] = &[
    ("chunk_size", |c| c.chunk_size as u64),
    ("chunks_per_page", |c| c.chunks_per_page as u64),
    ("total_pages", |c| c.total_pages as u64),
    ("total_chunks", |c| c.total_chunks as u64),
    ("used_chunks", |c| c.used_chunks as u64),
    ("free_chunks", |c| c.free_chunks as u64),
    ("free_chunks_end", |c| c.free_chunks_end as u64),
    ("get_hits", |c| c.get_hits),
    ("cmd_set", |c| c.cmd_set),
    ("delete_hits", |c| c.delete_hits),
    ("incr_hits", |c| c.incr_hits),
    ("decr_hits", |c| c.decr_hits),
    ("cas_hits", |c| c.cas_hits),
    ("cas_badval", |c| c.cas_badval),
    ("touch_hits", |c| c.touch_hits),
];

/// Whether `stats slabs` lists a class: it holds slabs.
pub(crate) fn slab_class_listed(c: &ClassStats) -> bool {
    c.total_pages > 0
}

/// `stats slabs`' totals after the classes: `(name, value)`.
pub(crate) fn slab_totals(s: &StoreStats) -> [(&'static str, u64); 2] {
    [
        ("active_slabs", s.active_slabs as u64),
        ("total_malloced", s.total_malloced),
    ]
}

/// `STAT <prefix><id>:<name> <value>` for each listed class and field.
fn class_lines(
    out: &mut Vec<u8>,
    s: &StoreStats,
    prefix: &[u8],
    listed: fn(&ClassStats) -> bool,
    fields: &[ClassField],
) {
    for c in s.classes.iter().filter(|c| listed(c)) {
        for (name, get) in fields {
            out.extend_from_slice(b"STAT ");
            out.extend_from_slice(prefix);
            push_u64(out, c.id as u64);
            out.push(b':');
            out.extend_from_slice(name.as_bytes());
            out.push(b' ');
            push_u64(out, get(c));
            out.extend_from_slice(b"\r\n");
        }
    }
}

fn items(shared: &Shared, out: &mut Vec<u8>) {
    let s = shared.store.stats();
    class_lines(out, &s, b"items:", item_class_listed, ITEM_FIELDS);
}

fn slabs(shared: &Shared, out: &mut Vec<u8>) {
    let s = shared.store.stats();
    class_lines(out, &s, b"", slab_class_listed, SLAB_FIELDS);
    for (name, v) in slab_totals(&s) {
        write_stat(out, name, v);
    }
}

/// `stats sizes` (`bucket` 32, memcached's) or `stats sizes_fine` (`bucket` 8): item
/// counts by stored size rounded up to a multiple of `bucket`, ascending.
fn sizes(shared: &Shared, out: &mut Vec<u8>, bucket: usize) {
    let hist = shared.store.size_histogram();
    let mut merged: Vec<(usize, u64)> = Vec::with_capacity(hist.len());
    for (size, count) in hist {
        let b = size.div_ceil(bucket) * bucket;
        match merged.last_mut() {
            Some((last, n)) if *last == b => *n += count,
            _ => merged.push((b, count)),
        }
    }
    merged.sort_unstable();
    for (size, count) in merged {
        write_stat(out, &size.to_string(), count);
    }
}

fn conns(shared: &Shared, out: &mut Vec<u8>) {
    let now = shared.store.now();
    let listen = &shared.listen_name;
    let mut list: Vec<_> = shared
        .conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect();
    list.sort_by_key(|c| c.fd);
    write_stat(out, &format!("{}:addr", shared.listen_fd), listen);
    write_stat(
        out,
        &format!("{}:state", shared.listen_fd),
        "conn_listening",
    );
    write_stat(
        out,
        &format!("{}:secs_since_last_cmd", shared.listen_fd),
        now.saturating_sub(62),
    );
    for c in list {
        let fd = c.fd;
        write_stat(out, &format!("{fd}:addr"), &c.peer);
        write_stat(out, &format!("{fd}:listen_addr"), listen);
        write_stat(out, &format!("{fd}:state"), c.state_name());
        write_stat(
            out,
            &format!("{fd}:secs_since_last_cmd"),
            now.saturating_sub(c.last_cmd.load(Relaxed)),
        );
    }
}
