//! `GET /metrics`: the `stats`, `stats slabs` and `stats items` counters in the
//! Prometheus text exposition format (0.0.4), served on `-o metrics_port=<port>` (off by
//! default; loopback unless `-o metrics_listen=<addr>`), by one thread that answers one
//! connection at a time and closes it.
//!
//! # Names
//!
//! | memcached | Prometheus |
//! | --- | --- |
//! | `stats`: `STAT <name> <n>` | `kvcache_<name>` (a gauge for levels such as `curr_items`, `bytes`, `limit_maxbytes`; else a counter, `kvcache_<name>_total`) |
//! | `stats slabs`: `STAT <id>:<field> <n>` | `kvcache_slab_class_<field>{class="<id>"}` (counters for the per-class command counts) |
//! | `stats slabs`: `STAT <name> <n>` | `kvcache_slabs_<name>` |
//! | `stats items`: `STAT items:<id>:<field> <n>` | `kvcache_items_class_<field>{class="<id>"}` (counters for evictions, reclaims and the like) |
//!
//! Values that are not numbers (`version`) are left out; `stats` fields with a
//! decimal point (`rusage_user`) stay as they are.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::report;
use super::shared::Shared;
use crate::protocol::lex::push_u64;
use crate::protocol::text::StatsKind;
use crate::store::{ClassStats, StoreStats};

/// `stats` fields that are levels, not running totals.
const GAUGES: &[&str] = &[
    "pid",
    "uptime",
    "time",
    "pointer_size",
    "max_connections",
    "curr_connections",
    "connection_structures",
    "reserved_fds",
    "threads",
    "curr_items",
    "bytes",
    "limit_maxbytes",
    "hash_power_level",
    "hash_bytes",
    "hash_is_expanding",
    "accepting_conns",
    "mapped_bytes",
    "slab_pooled_slabs",
    "slab_retention_target",
    "slab_reassign_running",
    "slab_global_page_pool",
    "malloc_fails",
    "rusage_user",
    "rusage_system",
];

/// Per-class fields of `stats slabs` that are running totals.
const SLAB_COUNTERS: &[&str] = &[
    "get_hits",
    "cmd_set",
    "delete_hits",
    "incr_hits",
    "decr_hits",
    "cas_hits",
    "cas_badval",
    "touch_hits",
];

/// Per-class fields of `stats items` that are levels.
const ITEM_GAUGES: &[&str] = &[
    "number",
    "number_hot",
    "number_warm",
    "number_cold",
    "age_hot",
    "age_warm",
    "age",
    "mem_requested",
];

/// Writes `# TYPE <prefix><field>[_total] <type>` and returns the family's name.
fn family_head<'n>(
    out: &mut Vec<u8>,
    name: &'n mut Vec<u8>,
    prefix: &str,
    field: &str,
    counter: bool,
) -> &'n [u8] {
    name.clear();
    name.extend_from_slice(prefix.as_bytes());
    name.extend(
        field
            .bytes()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { b'_' }),
    );
    if counter {
        name.extend_from_slice(b"_total");
    }
    out.extend_from_slice(b"# TYPE ");
    out.extend_from_slice(name);
    out.extend_from_slice(if counter { b" counter\n" } else { b" gauge\n" });
    name
}

/// One family per field, one sample per listed class (`{class="<id>"}`).
fn class_families(
    out: &mut Vec<u8>,
    name: &mut Vec<u8>,
    s: &StoreStats,
    prefix: &str,
    listed: fn(&ClassStats) -> bool,
    fields: &[report::ClassField],
    counter: impl Fn(&str) -> bool,
) {
    if !s.classes.iter().any(listed) {
        return;
    }
    for &(field, get) in fields {
        let name = family_head(out, name, prefix, field, counter(field));
        for c in s.classes.iter().filter(|c| listed(c)) {
            out.extend_from_slice(name);
            out.extend_from_slice(b"{class=\"");
            push_u64(out, c.id as u64);
            out.extend_from_slice(b"\"} ");
            push_u64(out, get(c));
            out.push(b'\n');
        }
    }
}

/// The `(name, value)` pairs of `STAT <name> <value>` lines.
fn stat_pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split("\r\n")
        .filter_map(|l| l.strip_prefix("STAT "))
        .filter_map(|l| l.split_once(' '))
}

fn numeric(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && v.parse::<f64>().is_ok()
}

/// The scraping thread's buffers, kept between scrapes: a large buffer allocated and
/// freed on every scrape costs more in page faults than the formatting.
#[derive(Default)]
pub(crate) struct Renderer {
    general: Vec<u8>,
    name: Vec<u8>,
    out: Vec<u8>,
}

impl Renderer {
    /// The exposition text. The `stats` fields are read from the `stats` text (about a
    /// hundred lines, some conditional, one not a number); the per-class figures, which
    /// are most of it (thousands of samples with 200 classes in use), are written straight
    /// from one snapshot of the store's figures, with the field tables `stats items` and
    /// `stats slabs` are written from.
    pub(crate) fn render(&mut self, shared: &Shared) -> &[u8] {
        self.general.clear();
        report::lines(shared, StatsKind::General, &mut self.general);
        let out = &mut self.out;
        out.clear();
        let general = std::str::from_utf8(&self.general).unwrap_or("");
        for (k, v) in stat_pairs(general).filter(|(_, v)| numeric(v)) {
            let name = family_head(out, &mut self.name, "kvcache_", k, !GAUGES.contains(&k));
            out.extend_from_slice(name);
            out.push(b' ');
            out.extend_from_slice(v.as_bytes());
            out.push(b'\n');
        }
        let s = shared.store.stats();
        class_families(
            out,
            &mut self.name,
            &s,
            "kvcache_slab_class_",
            report::slab_class_listed,
            report::SLAB_FIELDS,
            |f| SLAB_COUNTERS.contains(&f),
        );
        for (k, v) in report::slab_totals(&s) {
            let name = family_head(out, &mut self.name, "kvcache_slabs_", k, false);
            out.extend_from_slice(name);
            out.push(b' ');
            push_u64(out, v);
            out.push(b'\n');
        }
        class_families(
            out,
            &mut self.name,
            &s,
            "kvcache_items_class_",
            report::item_class_listed,
            report::ITEM_FIELDS,
            |f| !ITEM_GAUGES.contains(&f),
        );
        &self.out
    }
}

/// Answers one HTTP connection.
fn answer(shared: &Shared, r: &mut Renderer, mut s: TcpStream) -> io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut req = Vec::new();
    let mut b = [0u8; 2048];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && !req.windows(2).any(|w| w == b"\n\n") {
        let n = s.read(&mut b)?;
        if n == 0 || req.len() > 16 << 10 {
            return Ok(());
        }
        req.extend_from_slice(&b[..n]);
    }
    let line = req.split(|&c| c == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&c| c == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = path.split(|&c| c == b'?').next().unwrap_or_default();
    let (status, body): (&str, &[u8]) = match (method, path) {
        (b"GET", b"/metrics") => ("200 OK", r.render(shared)),
        (b"GET", _) => ("404 Not Found", b"not found: try /metrics\n"),
        _ => ("405 Method Not Allowed", b"only GET\n"),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)
}

/// Binds `addr` and serves `/metrics` from a thread of its own; returns the address.
pub(crate) fn serve(shared: Arc<Shared>, addr: &str) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("kvcache-metrics".into())
        .spawn(move || {
            let mut r = Renderer::default();
            for s in listener.incoming().flatten() {
                let _ = answer(&shared, &mut r, s);
            }
        })?;
    Ok(local)
}
