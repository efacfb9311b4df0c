//! The operator's commands: `lru_crawler` (dumps, crawl and its settings), `lru`,
//! `cache_memlimit`, `stats detail`, with memcached 1.6.18's replies; the state they
//! share across workers ([`OpsState`], in `operator.rs`); and the dump cursor a connection keeps while a
//! `lru_crawler metadump` streams ([`Dump`]).
//!
//! # What `lru` maps to
//!
//! memcached splits each class's LRU into hot, warm and cold segments (`lru tune`, `lru
//! mode segmented`) and parks items with a TTL under `temp_ttl` in a temporary LRU. Our
//! classes keep one CLOCK ring each: an access sets the item's reference bit, and the hand
//! clears it once before it may evict the item, which gives the protection from one scan
//! that memcached's warm segment gives. There is nothing for the percentages to resize and
//! no temporary ring, so `lru tune`, `lru mode` and `lru temp_ttl` are checked as
//! memcached checks them, remembered (`stats settings` shows them) and change no eviction
//! decision.

use std::sync::atomic::Ordering::Relaxed;

use super::context::{After, Ctx};
pub use super::operator::{Detail, OpsState};
use crate::protocol::lex::push_u64;
use crate::protocol::text::ops::{uri_encode, ClassFilter, DumpFormat, OpsRequest};
use crate::protocol::text::reply;
use crate::store::{DumpItem, Store, DUMP_BATCH};

/// Executes an operator's command.
pub fn execute(ctx: &mut Ctx<'_>, req: &OpsRequest, out: &mut Vec<u8>) -> After {
    let ops = ctx.control.ops();
    let store = ctx.store;
    if ops.apply(req) {
        out.extend_from_slice(reply::OK);
        return After::Continue;
    }
    match *req {
        OpsRequest::Dump { format, classes } => {
            if format == DumpFormat::Meta && !ops.dump_enabled {
                out.extend_from_slice(b"ERROR metadump not allowed\r\n");
            } else if !ops.crawler.load(Relaxed) {
                out.extend_from_slice(b"CLIENT_ERROR lru crawler disabled\r\n");
            } else {
                return After::Dump { format, classes };
            }
        }
        OpsRequest::Crawl(classes) => {
            if ops.crawler.load(Relaxed) {
                // Expired items are invisible to every client already; the crawl frees
                // the memory of those of the named classes now. memcached answers `OK`
                // once its crawler has started; ours has finished by then.
                store.reclaim_expired_in(|id| classes.covers(id));
                out.extend_from_slice(reply::OK);
            } else {
                out.extend_from_slice(b"CLIENT_ERROR lru crawler disabled\r\n");
            }
        }
        OpsRequest::CrawlerEnable(on) => {
            if on && ops.crawler.swap(true, Relaxed) {
                out.extend_from_slice(b"ERROR failed to start lru crawler thread\r\n");
            } else {
                ops.crawler.store(on, Relaxed);
                out.extend_from_slice(reply::OK);
            }
        }
        OpsRequest::MemLimit { mb, noreply } => {
            let line: &[u8] = if store.set_memory_limit(mb as usize * (1 << 20)) {
                reply::OK
            } else {
                b"MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"
            };
            if !noreply {
                out.extend_from_slice(line);
            }
        }
        OpsRequest::DetailDump => ops.detail_dump(out),
        // Settings, answered above.
        OpsRequest::CrawlerSleep(_)
        | OpsRequest::CrawlerToCrawl(_)
        | OpsRequest::LruTune { .. }
        | OpsRequest::LruMode(_)
        | OpsRequest::LruTempTtl(_)
        | OpsRequest::Detail(_) => {}
        OpsRequest::Watch(mask) => {
            if ops.watch_enabled {
                let kinds = super::watch::kinds(&mask);
                ops.log.announce(kinds);
                out.extend_from_slice(reply::OK);
                return After::Watch(kinds);
            } else {
                out.extend_from_slice(b"CLIENT_ERROR watch commands not allowed\r\n");
            }
        }
    }
    After::Continue
}

/// A `lru_crawler metadump`/`mgdump` in progress on a connection: the next shard to copy
/// and the entries of the current one not yet visited.
#[derive(Debug)]
pub struct Dump {
    format: DumpFormat,
    classes: ClassFilter,
    next_shard: usize,
    entries: Vec<u32>,
    pos: usize,
}

impl Dump {
    /// A dump from the first shard.
    pub fn new(format: DumpFormat, classes: ClassFilter) -> Self {
        Dump {
            format,
            classes,
            next_shard: 0,
            entries: Vec::new(),
            pos: 0,
        }
    }

    /// Appends dump lines to `out` until it has grown by `budget` bytes or the walk is
    /// over (then the closing line is written and true returned).
    pub fn fill(&mut self, store: &Store, out: &mut Vec<u8>, budget: usize) -> bool {
        let start = out.len();
        let started = store.clock().process_started();
        while out.len() - start < budget {
            if self.pos == self.entries.len() {
                if self.next_shard == store.dump_shards() {
                    out.extend_from_slice(match self.format {
                        DumpFormat::Meta => reply::END,
                        DumpFormat::Mg => b"EN\r\n",
                    });
                    self.entries = Vec::new();
                    return true;
                }
                store.dump_snapshot(self.next_shard, &mut self.entries);
                self.next_shard += 1;
                self.pos = 0;
                continue;
            }
            let end = (self.pos + DUMP_BATCH).min(self.entries.len());
            let (format, classes) = (self.format, self.classes);
            store.dump_visit(
                self.next_shard - 1,
                &self.entries[self.pos..end],
                |it: &DumpItem<'_>| {
                    if classes.covers(it.class.display_id()) {
                        write_line(out, format, it, started);
                    }
                },
            );
            self.pos = end;
        }
        false
    }
}

/// One dump line.
fn write_line(out: &mut Vec<u8>, format: DumpFormat, it: &DumpItem<'_>, started: i64) {
    if format == DumpFormat::Mg {
        // As memcached 1.6.19+: the key as is, or base64 with the `b` flag when it holds
        // bytes a text key cannot (a binary-protocol key).
        out.extend_from_slice(b"mg ");
        if it.key.iter().all(|&b| b > b' ' && b != 0x7f) {
            out.extend_from_slice(it.key);
            out.extend_from_slice(b"\r\n");
        } else {
            use base64::Engine as _;
            let enc = base64::engine::general_purpose::STANDARD.encode(it.key);
            out.extend_from_slice(enc.as_bytes());
            out.extend_from_slice(b" b\r\n");
        }
        return;
    }
    out.extend_from_slice(b"key=");
    uri_encode(out, it.key);
    out.extend_from_slice(b" exp=");
    if it.exptime == 0 {
        out.extend_from_slice(b"-1");
    } else {
        push_u64(out, (started + i64::from(it.exptime)).max(0) as u64);
    }
    out.extend_from_slice(b" la=");
    push_u64(out, (started + i64::from(it.last_access)).max(0) as u64);
    out.extend_from_slice(b" cas=");
    push_u64(out, it.cas);
    out.extend_from_slice(if it.fetched {
        b" fetch=yes cls=".as_slice()
    } else {
        b" fetch=no cls="
    });
    push_u64(out, it.class.display_id() as u64);
    out.extend_from_slice(b" size=");
    push_u64(out, it.size as u64);
    out.push(b'\n');
}
