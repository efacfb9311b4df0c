//! The event log behind `watch`: bounded per-worker buffers of formatted event lines,
//! in memcached 1.6.18's format (`ts=<secs>.<usecs> gid=<n> type=item_get key=...`).
//!
//! A worker formats an event only when some watcher wants its kind (one relaxed load
//! otherwise) and appends it to its own buffer, a `Mutex` that only the logger thread
//! also takes, to swap the buffer out. A full buffer drops the event and counts it
//! (`log_worker_dropped`): a worker never waits for a watcher. The logger thread
//! (`server::watch`) hands the lines to each watcher's own bounded buffer; a watcher that
//! reads too slowly loses lines, announced by a `skipped=N` line as in memcached.
//!
//! The kinds and their lines, as memcached 1.6.18 writes them: `fetchers` (`item_get`),
//! `mutations` (`item_store`), `connevents` (`conn_new`, `conn_close`), from the workers;
//! `evictions` (`eviction`) and `sysevents` (`slab_move src=<id> dst=<id>`, a slab the
//! automove policy moved; 0: to the global pool), reported by the store through
//! [`StoreWatcher`] from whichever thread evicts or moves. An eviction line is written for
//! every item the `evicted` counters count: the CLOCK hand's, and those a slab move or a
//! `cache_memlimit` shrink evicts (memcached logs only its LRU tail's: its slab mover
//! counts its evictions apart, in `slab_reassign_evictions_nomem`). memcached's other
//! `sysevents` line, `type=lru_crawler` (its LRU maintainer scheduling background
//! crawls), has no counterpart: our expiry crawl runs on a fixed schedule, not per LRU.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::text::ops::{uri_encode, WatchMask};
use crate::store::{Evicted, StoreEvent, StoreWatcher};

/// Item gets (`watch fetchers`).
pub const FETCHERS: u8 = 1;
/// Item stores (`watch mutations`).
pub const MUTATIONS: u8 = 2;
/// Evictions (`watch evictions`).
pub const EVICTIONS: u8 = 4;
/// Connections opened and closed (`watch connevents`).
pub const CONNEVENTS: u8 = 8;
/// System events (`watch sysevents`): slabs the automove policy moves.
pub const SYSEVENTS: u8 = 16;

/// The kinds a watch mask asks for.
pub fn kinds(m: &WatchMask) -> u8 {
    (if m.fetchers { FETCHERS } else { 0 })
        | (if m.mutations { MUTATIONS } else { 0 })
        | (if m.evictions { EVICTIONS } else { 0 })
        | (if m.connevents { CONNEVENTS } else { 0 })
        | (if m.sysevents { SYSEVENTS } else { 0 })
}

/// memcached's default `-o worker_logbuf_size` (64 KiB).
pub const WORKER_LOGBUF: usize = 64 << 10;

/// One worker's buffer: records of `[kind][len: u16 LE][line]`.
#[derive(Debug, Default)]
struct WorkerBuf {
    data: Vec<u8>,
}

/// The shared event log.
#[derive(Debug)]
pub struct EventLog {
    /// Kinds at least one watcher wants (0: nothing is logged).
    active: AtomicU8,
    gid: AtomicU64,
    dropped: AtomicU64,
    /// Watchers that sent `watch` and are not yet with the logger thread, and the kinds
    /// they want: logging starts before their `OK` goes out, as in memcached.
    announced: Mutex<(usize, u8)>,
    cap: usize,
    bufs: Box<[Mutex<WorkerBuf>]>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new(1, WORKER_LOGBUF)
    }
}

impl EventLog {
    /// A log for `workers` workers whose buffers hold `cap` bytes each.
    pub fn new(workers: usize, cap: usize) -> Self {
        EventLog {
            active: AtomicU8::new(0),
            gid: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
            announced: Mutex::new((0, 0)),
            cap: cap.max(1024),
            bufs: (0..workers.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    /// A connection sent `watch` for `kinds`: they are logged from now on, until the
    /// logger thread has the watcher ([`arrived`](Self::arrived)).
    pub fn announce(&self, kinds: u8) {
        let mut a = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        a.0 += 1;
        a.1 |= kinds;
        self.active.fetch_or(kinds, Relaxed);
    }

    /// An announced watcher reached the logger thread.
    pub fn arrived(&self) {
        let mut a = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        a.0 = a.0.saturating_sub(1);
    }

    /// Sets the kinds the logger's watchers want (plus those announced); returns whether
    /// watchers are still on their way (their lines must wait for them).
    pub fn set_active(&self, kinds: u8) -> bool {
        let mut a = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        if a.0 == 0 {
            a.1 = 0;
        }
        self.active.store(kinds | a.1, Relaxed);
        a.0 > 0
    }

    /// Whether some watcher wants `kind`.
    #[inline]
    pub fn wants(&self, kind: u8) -> bool {
        self.active.load(Relaxed) & kind != 0
    }

    /// Events dropped because a worker's buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// [`emit`](Self::emit) from a thread that is not a worker, or does not know which
    /// (the store, evicting on any thread): into a buffer picked by thread.
    #[cold]
    pub fn emit_any(&self, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
        use std::sync::atomic::AtomicUsize;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local!(static SLOT: usize = NEXT.fetch_add(1, Relaxed));
        self.emit(SLOT.with(|s| *s), kind, body);
    }

    /// Appends an event of `kind` from `worker`: `body` writes the line after
    /// `ts=... gid=... ` (without its newline).
    #[cold]
    pub fn emit(&self, worker: usize, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
        let mut line = Vec::with_capacity(128);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let gid = self.gid.fetch_add(1, Relaxed);
        // memcached prints the microseconds with `%d`: not zero-padded.
        line.extend_from_slice(
            format!("ts={}.{} gid={gid} ", now.as_secs(), now.subsec_micros()).as_bytes(),
        );
        body(&mut line);
        line.push(b'\n');
        let len = line.len().min(u16::MAX as usize);
        let mut b = self.bufs[worker % self.bufs.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if b.data.len() + 3 + len > self.cap {
            self.dropped.fetch_add(1, Relaxed);
            return;
        }
        b.data.push(kind);
        b.data.extend_from_slice(&(len as u16).to_le_bytes());
        b.data.extend_from_slice(&line[..len]);
    }

    /// Moves every worker's records out (for the logger thread), calling `f` with each
    /// event's kind and line.
    pub fn drain(&self, spare: &mut Vec<u8>, mut f: impl FnMut(u8, &[u8])) {
        for buf in self.bufs.iter() {
            spare.clear();
            std::mem::swap(
                &mut buf.lock().unwrap_or_else(|e| e.into_inner()).data,
                spare,
            );
            let mut rest = &spare[..];
            while rest.len() >= 3 {
                let len = usize::from(u16::from_le_bytes([rest[1], rest[2]]));
                f(rest[0], &rest[3..3 + len]);
                rest = &rest[3 + len..];
            }
        }
    }
}

/// The store's evictions and slab moves go to the watchers of `evictions` and
/// `sysevents`.
impl StoreWatcher for EventLog {
    #[inline]
    fn wants(&self, kind: StoreEvent) -> bool {
        EventLog::wants(
            self,
            match kind {
                StoreEvent::Eviction => EVICTIONS,
                StoreEvent::SlabMove => SYSEVENTS,
            },
        )
    }

    fn evicted(&self, e: &Evicted<'_>) {
        self.emit_any(EVICTIONS, |o| eviction(o, e));
    }

    fn slab_moved(&self, src: usize, dst: usize) {
        self.emit_any(SYSEVENTS, |o| {
            o.extend_from_slice(format!("type=slab_move src={src} dst={dst}").as_bytes())
        });
    }
}

/// `type=eviction key=<k> fetch=<yes|no> ttl=<secs left, -1: never> la=<secs idle>
/// clsid=<n> size=<value bytes>` (memcached's `_logger_parse_ee`).
pub fn eviction(out: &mut Vec<u8>, e: &Evicted<'_>) {
    out.extend_from_slice(b"type=eviction key=");
    uri_encode(out, e.key);
    let fetch = if e.fetched { "yes" } else { "no" };
    out.extend_from_slice(
        format!(
            " fetch={fetch} ttl={} la={} clsid={} size={}",
            e.ttl, e.idle, e.clsid, e.size
        )
        .as_bytes(),
    );
}

/// `type=item_get key=<k> status=<found|not_found> clsid=<n> cfd=<fd> size=<n>`.
pub fn item_get(out: &mut Vec<u8>, key: &[u8], found: bool, clsid: usize, fd: i32, size: usize) {
    out.extend_from_slice(b"type=item_get key=");
    uri_encode(out, key);
    let status = if found { "found" } else { "not_found" };
    out.extend_from_slice(
        format!(" status={status} clsid={clsid} cfd={fd} size={size}").as_bytes(),
    );
}

/// `type=item_store key=<k> status=<s> cmd=<c> ttl=<n> clsid=<n> cfd=<fd> size=<n>`.
#[allow(clippy::too_many_arguments)]
pub fn item_store(
    out: &mut Vec<u8>,
    key: &[u8],
    status: &str,
    cmd: &str,
    ttl: u32,
    clsid: usize,
    fd: i32,
    size: usize,
) {
    out.extend_from_slice(b"type=item_store key=");
    uri_encode(out, key);
    out.extend_from_slice(
        format!(" status={status} cmd={cmd} ttl={ttl} clsid={clsid} cfd={fd} size={size}")
            .as_bytes(),
    );
}

/// `type=conn_new rip=<ip> rport=<port> transport=tcp cfd=<fd>` or `type=conn_close
/// ... reason=<r> cfd=<fd>` (`reason` given); a unix-socket peer (`None`) is
/// `rip=unix rport=0 transport=local`.
pub fn conn_event(
    out: &mut Vec<u8>,
    peer: Option<std::net::SocketAddr>,
    fd: i32,
    reason: Option<&str>,
) {
    let kind = if reason.is_some() {
        "conn_close"
    } else {
        "conn_new"
    };
    // memcached names a unix-socket peer `unix`, port 0, transport `local`.
    let line = match peer {
        Some(a) => format!(
            "type={kind} rip={} rport={} transport=tcp ",
            a.ip(),
            a.port()
        ),
        None => format!("type={kind} rip=unix rport=0 transport=local "),
    };
    out.extend_from_slice(line.as_bytes());
    if let Some(r) = reason {
        out.extend_from_slice(format!("reason={r} ").as_bytes());
    }
    out.extend_from_slice(format!("cfd={fd}").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_line_as_memcached_writes_it() {
        let mut o = Vec::new();
        let e = Evicted {
            key: b"a b",
            fetched: false,
            ttl: -1,
            idle: 7,
            clsid: 12,
            size: 100,
        };
        eviction(&mut o, &e);
        assert_eq!(
            o,
            b"type=eviction key=a%20b fetch=no ttl=-1 la=7 clsid=12 size=100".as_slice()
        );
        let log = EventLog::new(2, 4096);
        StoreWatcher::evicted(
            &log,
            &Evicted {
                fetched: true,
                ttl: 30,
                ..e
            },
        );
        StoreWatcher::slab_moved(&log, 3, 0);
        let mut lines = Vec::new();
        log.drain(&mut Vec::new(), |k, l| {
            lines.push((k, String::from_utf8(l.to_vec()).unwrap()))
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let ev = lines.iter().find(|l| l.0 == EVICTIONS).expect("eviction");
        assert!(ev
            .1
            .ends_with(" type=eviction key=a%20b fetch=yes ttl=30 la=7 clsid=12 size=100\n"));
        let mv = lines.iter().find(|l| l.0 == SYSEVENTS).expect("slab move");
        assert!(mv.1.ends_with(" type=slab_move src=3 dst=0\n"), "{}", mv.1);
    }

    #[test]
    fn bounded_and_drained_in_order() {
        let log = EventLog::new(2, 1024);
        for i in 0..100 {
            log.emit(i % 2, FETCHERS, |o| item_get(o, b"k:1", true, 3, 9, 10));
        }
        assert!(log.dropped() > 0, "buffers are bounded");
        let mut lines = Vec::new();
        log.drain(&mut Vec::new(), |k, l| {
            assert_eq!(k, FETCHERS);
            lines.push(String::from_utf8(l.to_vec()).unwrap());
        });
        assert_eq!(lines.len() as u64 + log.dropped(), 100);
        assert!(lines[0].ends_with("type=item_get key=k%3A1 status=found clsid=3 cfd=9 size=10\n"));
        let mut n = 0;
        log.drain(&mut Vec::new(), |_, _| n += 1);
        assert_eq!(n, 0);
    }
}
