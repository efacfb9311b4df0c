//! The operator settings every worker shares ([`OpsState`]): the crawler's and LRU's
//! settings, whether dumps and `watch` are allowed, and the `stats detail` counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::watch::EventLog;
use crate::protocol::text::ops::OpsRequest;
use crate::protocol::text::reply;

/// Most distinct prefixes `stats detail` tracks; later ones are not counted.
pub const MAX_PREFIXES: usize = 65_536;

/// Per-prefix counters of `stats detail`: gets, hits, sets, deletes.
type PrefixCounts = [u64; 4];

/// What a request did with its key, as `stats detail` counts it (memcached's
/// `stats_prefix_record_get`, `_set`, `_delete`).
///
/// memcached 1.6.18 counts the text `get`/`gets`/`gat`/`gats` (per key), `set`, `add`,
/// `replace`, `append`, `prepend`, `cas` (when the line is read: failed stores count)
/// and `delete`; the binary get, touch and gat forms, set, add, replace, append, prepend
/// and delete (quiet or not). It counts no meta command (`mg`, `ms`, `md`, `ma` call no
/// `stats_prefix_record_*`), nor `incr`/`decr`/`touch`, and neither do we.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// A retrieval that found nothing (a `get`).
    Miss,
    /// A retrieval that found the key (a `get` and a `hit`).
    Hit,
    /// A storage command (`set`).
    Set,
    /// A deletion (`del`).
    Delete,
}

impl Detail {
    /// A retrieval's: [`Hit`](Self::Hit) if it found the key.
    pub fn get(hit: bool) -> Self {
        if hit {
            Detail::Hit
        } else {
            Detail::Miss
        }
    }
}

/// Operator settings every worker sees, changed at run time.
#[derive(Debug)]
pub struct OpsState {
    /// `-X` not given: `lru_crawler metadump` is allowed.
    pub dump_enabled: bool,
    /// `-W` not given: `watch` is allowed.
    pub watch_enabled: bool,
    pub(super) crawler: AtomicBool,
    pub(super) crawler_sleep: AtomicU32,
    pub(super) crawler_tocrawl: AtomicU32,
    pub(super) lru_segmented: AtomicBool,
    pub(super) hot_pct: AtomicU32,
    pub(super) warm_pct: AtomicU32,
    pub(super) temp_ttl: AtomicI32,
    /// `-D`: the prefix delimiter.
    pub delimiter: u8,
    /// The event log of `watch` (shared with the store, which reports evictions to it).
    pub log: Arc<EventLog>,
    /// Bytes a watcher's buffer holds (`-o watcher_logbuf_size`, in KiB there).
    pub watcher_buf: usize,
    pub(super) detail: AtomicBool,
    /// Each prefix's counters and the order it was first seen in.
    prefixes: Mutex<HashMap<Vec<u8>, (usize, PrefixCounts)>>,
}

impl Default for OpsState {
    fn default() -> Self {
        OpsState::new(true, true, b':')
    }
}

impl OpsState {
    /// memcached's defaults, with dumps and `watch` allowed or not, and `-D`'s delimiter.
    pub fn new(dump_enabled: bool, watch_enabled: bool, delimiter: u8) -> Self {
        OpsState {
            dump_enabled,
            watch_enabled,
            crawler: AtomicBool::new(true),
            crawler_sleep: AtomicU32::new(100),
            crawler_tocrawl: AtomicU32::new(0),
            lru_segmented: AtomicBool::new(true),
            hot_pct: AtomicU32::new(20),
            warm_pct: AtomicU32::new(40),
            temp_ttl: AtomicI32::new(61),
            delimiter,
            log: Arc::new(EventLog::default()),
            watcher_buf: 256 << 10,
            detail: AtomicBool::new(false),
            prefixes: Mutex::new(HashMap::new()),
        }
    }

    /// An event log for `workers` workers with `worker_buf` bytes each, and watchers'
    /// buffers of `watcher_buf` bytes.
    pub fn with_log(mut self, workers: usize, worker_buf: usize, watcher_buf: usize) -> Self {
        self.log = Arc::new(EventLog::new(workers, worker_buf));
        self.watcher_buf = watcher_buf;
        self
    }

    /// The crawler on or off at start (`-o no_lru_crawler`).
    pub fn with_crawler(self, on: bool) -> Self {
        self.crawler.store(on, Relaxed);
        self
    }

    /// Applies a request that only changes a setting (`lru_crawler sleep|tocrawl`,
    /// `lru tune|mode|temp_ttl`, `stats detail on|off`: answered `OK`); false for others.
    pub(super) fn apply(&self, req: &OpsRequest) -> bool {
        match *req {
            OpsRequest::CrawlerSleep(us) => self.crawler_sleep.store(us, Relaxed),
            OpsRequest::CrawlerToCrawl(n) => self.crawler_tocrawl.store(n, Relaxed),
            OpsRequest::LruTune { hot, warm } => {
                self.hot_pct.store(hot, Relaxed);
                self.warm_pct.store(warm, Relaxed);
            }
            OpsRequest::LruMode(segmented) => self.lru_segmented.store(segmented, Relaxed),
            OpsRequest::LruTempTtl(s) => self.temp_ttl.store(s, Relaxed),
            OpsRequest::Detail(on) => self.detail.store(on, Relaxed),
            _ => return false,
        }
        true
    }

    /// `stats detail` on from the start (`-D`).
    pub fn with_detail(self, on: bool) -> Self {
        self.detail.store(on, Relaxed);
        self
    }

    /// The `stats settings` lines these settings own, as `(name, value)`.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let yn = |b: bool| if b { "yes" } else { "no" }.to_string();
        vec![
            ("stat_key_prefix", char::from(self.delimiter).to_string()),
            ("detail_enabled", yn(self.detail.load(Relaxed))),
            ("lru_crawler", yn(self.crawler.load(Relaxed))),
            (
                "lru_crawler_sleep",
                self.crawler_sleep.load(Relaxed).to_string(),
            ),
            (
                "lru_crawler_tocrawl",
                self.crawler_tocrawl.load(Relaxed).to_string(),
            ),
            ("dump_enabled", yn(self.dump_enabled)),
            ("watch_enabled", yn(self.watch_enabled)),
            ("lru_segmented", yn(self.lru_segmented.load(Relaxed))),
            ("hot_lru_pct", self.hot_pct.load(Relaxed).to_string()),
            ("warm_lru_pct", self.warm_pct.load(Relaxed).to_string()),
            ("temporary_ttl", self.temp_ttl.load(Relaxed).to_string()),
        ]
    }

    /// Counts a request on `key` for `stats detail`. Cheap when detail is off: one
    /// relaxed load.
    #[inline]
    pub fn record(&self, key: &[u8], what: Detail) {
        if self.detail.load(Relaxed) {
            self.record_slow(key, what);
        }
    }

    #[cold]
    fn record_slow(&self, key: &[u8], what: Detail) {
        // memcached counts only keys that hold the delimiter, by what precedes it.
        let Some(end) = key.iter().position(|&b| b == self.delimiter) else {
            return;
        };
        let prefix = &key[..end];
        let mut map = self.prefixes.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.len();
        let counts = match map.get_mut(prefix) {
            Some(e) => &mut e.1,
            None if n >= MAX_PREFIXES => return,
            None => &mut map.entry(prefix.to_vec()).or_insert((n, [0; 4])).1,
        };
        match what {
            Detail::Miss => counts[0] += 1,
            Detail::Hit => {
                counts[0] += 1;
                counts[1] += 1;
            }
            Detail::Set => counts[2] += 1,
            Detail::Delete => counts[3] += 1,
        }
    }

    /// `stats detail dump`: `PREFIX <p> get <n> hit <n> set <n> del <n>` lines, then
    /// `END`.
    pub(super) fn detail_dump(&self, out: &mut Vec<u8>) {
        let map = self.prefixes.lock().unwrap_or_else(|e| e.into_inner());
        let mut order: Vec<(&Vec<u8>, &(usize, PrefixCounts))> = map.iter().collect();
        order.sort_unstable_by_key(|e| e.1 .0);
        for (p, &(_, c)) in order {
            out.extend_from_slice(b"PREFIX ");
            out.extend_from_slice(p);
            let line = format!(" get {} hit {} set {} del {}\r\n", c[0], c[1], c[2], c[3]);
            out.extend_from_slice(line.as_bytes());
        }
        out.extend_from_slice(reply::END);
    }
}
