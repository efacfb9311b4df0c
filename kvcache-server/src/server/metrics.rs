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
use crate::protocol::text::StatsKind;

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

/// One metric family: its name (`_total` included for a counter), type and samples
/// (`(class label, value)`), borrowing from the stats text.
struct Family<'a> {
    name: String,
    counter: bool,
    samples: Vec<(&'a str, &'a str)>,
}

/// Families in the order first seen, found by (group, field).
#[derive(Default)]
struct Families<'a> {
    list: Vec<Family<'a>>,
    at: hashbrown::HashMap<(u8, &'a str), usize>,
}

impl<'a> Families<'a> {
    fn add(&mut self, group: u8, field: &'a str, label: &'a str, value: &'a str) {
        let list = &mut self.list;
        let i = *self.at.entry((group, field)).or_insert_with(|| {
            let (prefix, counter) = match group {
                0 => ("kvcache_", !GAUGES.contains(&field)),
                1 => ("kvcache_slab_class_", SLAB_COUNTERS.contains(&field)),
                2 => ("kvcache_slabs_", false),
                _ => ("kvcache_items_class_", !ITEM_GAUGES.contains(&field)),
            };
            let mut name = String::with_capacity(prefix.len() + field.len() + 6);
            name.push_str(prefix);
            name.extend(
                field
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
            );
            if counter {
                name.push_str("_total");
            }
            list.push(Family {
                name,
                counter,
                samples: Vec::new(),
            });
            list.len() - 1
        });
        self.list[i].samples.push((label, value));
    }

    fn write(&self, out: &mut Vec<u8>) {
        for f in &self.list {
            out.extend_from_slice(b"# TYPE ");
            out.extend_from_slice(f.name.as_bytes());
            out.extend_from_slice(if f.counter {
                b" counter\n"
            } else {
                b" gauge\n"
            });
            for &(label, v) in &f.samples {
                out.extend_from_slice(f.name.as_bytes());
                if !label.is_empty() {
                    out.extend_from_slice(b"{class=\"");
                    out.extend_from_slice(label.as_bytes());
                    out.extend_from_slice(b"\"}");
                }
                out.push(b' ');
                out.extend_from_slice(v.as_bytes());
                out.push(b'\n');
            }
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
    texts: [Vec<u8>; 3],
    out: Vec<u8>,
}

impl Renderer {
    /// The exposition text.
    pub(crate) fn render(&mut self, shared: &Shared) -> &[u8] {
        for (buf, kind) in
            self.texts
                .iter_mut()
                .zip([StatsKind::General, StatsKind::Slabs, StatsKind::Items])
        {
            buf.clear();
            report::lines(shared, kind, buf);
        }
        let [general, slabs, items] = self
            .texts
            .each_ref()
            .map(|t| std::str::from_utf8(t).unwrap_or(""));
        let mut fam = Families::default();
        for (k, v) in stat_pairs(general).filter(|(_, v)| numeric(v)) {
            fam.add(0, k, "", v);
        }
        for (k, v) in stat_pairs(slabs).filter(|(_, v)| numeric(v)) {
            match k.split_once(':') {
                Some((id, field)) => fam.add(1, field, id, v),
                None => fam.add(2, k, "", v),
            }
        }
        for (k, v) in stat_pairs(items).filter(|(_, v)| numeric(v)) {
            if let Some((id, field)) = k.strip_prefix("items:").and_then(|r| r.split_once(':')) {
                fam.add(3, field, id, v);
            }
        }
        self.out.clear();
        fam.write(&mut self.out);
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
