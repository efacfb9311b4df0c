//! Reaping by working set, and the background reaper.
//!
//! A reap closes a working-set interval for every class's depot: the full magazines the
//! interval showed were not needed (kmem's rule: at least the fewest the depot held at any time
//! during the interval, i.e. unused over all of it; and at least those beyond what threads took
//! out during it) give their chunks back to the engine with one `free_batch` each; empty
//! magazines likewise are freed. Then the engine's own reap runs, so slabs that became empty go
//! to its batched release (sorted, coalesced, one `munmap` per contiguous run).
//!
//! [`SlabAllocator::reap`](crate::magazine::SlabAllocator::reap) does this on demand (and
//! first flushes the calling thread's own magazines);
//! [`SlabAllocator::start_reaper`](crate::magazine::SlabAllocator::start_reaper) (or
//! `MagazineConfig::reap_interval`) runs it on an interval in a thread of its own.

use std::fmt;

use super::shared::Shared;
use crate::engine::release::ReleaseReport;
use crate::engine::size_class::ClassId;

/// What one reap did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Full magazines taken out of depots.
    pub full_magazines: usize,
    /// Empty magazines freed.
    pub empty_magazines: usize,
    /// Chunks given back to the engine from those magazines.
    pub chunks: usize,
    /// Bytes of those chunks.
    pub bytes: usize,
    /// What the engine's reap then released to the OS.
    pub release: ReleaseReport,
}

impl fmt::Display for ReapReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reaped {} full and {} empty magazines ({} chunks, {} bytes); {}",
            self.full_magazines, self.empty_magazines, self.chunks, self.bytes, self.release
        )
    }
}

/// The depot and engine part of a reap (no thread cache is touched).
pub(super) fn reap_depots(shared: &Shared) -> ReapReport {
    let mut report = ReapReport::default();
    for (i, d) in shared.depots.iter() {
        let class = ClassId(i as u16);
        let r = d.reap();
        report.full_magazines += r.full.len();
        report.empty_magazines += r.empty;
        for mut m in r.full {
            report.chunks += m.len();
            report.bytes += m.len() * shared.engine.classes().chunk_size(class);
            shared.free_rounds(class, &mut m);
        }
    }
    report.release = shared.engine.reap();
    report
}

/// Like [`reap_depots`], after demand fell: every depot first gives *all* its full
/// magazines back to the engine, and the engine's retention target drops to its floor (see
/// [`SlabAllocator::shrink`](super::SlabAllocator::shrink)).
pub(super) fn shrink(shared: &Shared) -> ReapReport {
    let mut report = ReapReport::default();
    for (i, d) in shared.depots.iter() {
        let class = ClassId(i as u16);
        for mut m in d.drain() {
            report.full_magazines += 1;
            report.chunks += m.len();
            report.bytes += m.len() * shared.engine.classes().chunk_size(class);
            shared.free_rounds(class, &mut m);
        }
    }
    shared.engine.demand_dropped();
    let rest = reap_depots(shared);
    report.full_magazines += rest.full_magazines;
    report.empty_magazines += rest.empty_magazines;
    report.chunks += rest.chunks;
    report.bytes += rest.bytes;
    report.release = rest.release;
    report
}

#[cfg(not(loom))]
pub(super) use reaper::Reaper;

#[cfg(not(loom))]
mod reaper {
    use std::sync::mpsc::{self, RecvTimeoutError};
    use std::sync::Weak;
    use std::thread::{self, JoinHandle};
    use std::time::Duration;

    use crate::magazine::reap::reap_depots;
    use crate::magazine::shared::Shared;

    /// A thread that reaps an allocator every interval until dropped.
    #[derive(Debug)]
    pub(crate) struct Reaper {
        stop: Option<mpsc::Sender<()>>,
        handle: Option<JoinHandle<()>>,
    }

    impl Reaper {
        /// Starts the thread. It holds only a weak reference: it ends by itself if the
        /// allocator goes away.
        pub(crate) fn start(shared: Weak<Shared>, interval: Duration) -> std::io::Result<Self> {
            let (tx, rx) = mpsc::channel::<()>();
            let handle = thread::Builder::new()
                .name("slab-reaper".into())
                .spawn(move || loop {
                    match rx.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let Some(s) = shared.upgrade() else { return };
                    reap_depots(&s);
                })?;
            Ok(Reaper {
                stop: Some(tx),
                handle: Some(handle),
            })
        }
    }

    impl Drop for Reaper {
        fn drop(&mut self) {
            drop(self.stop.take());
            if let Some(h) = self.handle.take() {
                if h.thread().id() != thread::current().id() {
                    let _ = h.join();
                }
            }
        }
    }
}
