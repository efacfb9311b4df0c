//! The magazine layer's figures: per class ([`MagazineStats`]) and for the whole allocator
//! with the engine's accounting ([`AllocatorStats`]).

use std::fmt;

use crate::engine::size_class::ClassId;
use crate::engine::stats::Stats;

/// The magazine layer's figures for one class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MagazineStats {
    /// The class.
    pub class: ClassId,
    /// Its chunk size.
    pub chunk_size: usize,
    /// Current magazine size in rounds (grows under depot contention; 0 = magazines off).
    pub magazine_size: usize,
    /// Full magazines in the depot.
    pub depot_full: usize,
    /// Empty magazines in the depot.
    pub depot_empty: usize,
    /// Chunks in the depot's full magazines (exact).
    pub depot_chunks: usize,
    /// Chunks in threads' magazines, as of each thread's last magazine exchange (the fast
    /// path does not update it; exact once threads have flushed or exited).
    pub thread_chunks: usize,
    /// Times a thread found the depot lock busy.
    pub contention: u64,
    /// Depot lock acquisitions.
    pub exchanges: u64,
    /// Times contention grew the magazine size.
    pub resizes: u64,
}

/// The engine's accounting plus the magazine layer's, per class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// The engine's figures: chunks in magazines count as used there.
    pub engine: Stats,
    /// One entry per class.
    pub classes: Vec<MagazineStats>,
    /// Threads holding magazines of this allocator (those that used it and have not exited).
    pub threads: usize,
}

impl AllocatorStats {
    /// Chunks held in magazines (depots and threads).
    pub fn magazine_chunks(&self) -> usize {
        self.classes
            .iter()
            .map(|c| c.depot_chunks + c.thread_chunks)
            .sum()
    }

    /// Bytes of chunks held in magazines (depots and threads).
    pub fn magazine_bytes(&self) -> usize {
        self.classes
            .iter()
            .map(|c| (c.depot_chunks + c.thread_chunks) * c.chunk_size)
            .sum()
    }

    /// Chunks handed out to the program: the engine's used chunks minus those in magazines
    /// (exact when every thread's published count is current, e.g. after flushes).
    pub fn live_chunks(&self) -> usize {
        self.engine
            .classes
            .iter()
            .map(|c| c.used_chunks)
            .sum::<usize>()
            .saturating_sub(self.magazine_chunks())
    }
}

impl fmt::Display for AllocatorStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.engine)?;
        writeln!(
            f,
            "magazines hold {} chunks ({} bytes); {} threads hold magazines",
            self.magazine_chunks(),
            self.magazine_bytes(),
            self.threads
        )?;
        writeln!(
            f,
            "{:>5} {:>8} {:>6} {:>6} {:>6} {:>9} {:>9} {:>10} {:>10}",
            "class",
            "chunk",
            "magsz",
            "full",
            "empty",
            "depot",
            "threads",
            "contended",
            "exchanges"
        )?;
        for c in self.classes.iter().filter(|c| c.exchanges > 0) {
            writeln!(
                f,
                "{:>5} {:>8} {:>6} {:>6} {:>6} {:>9} {:>9} {:>10} {:>10}",
                c.class.display_id(),
                c.chunk_size,
                c.magazine_size,
                c.depot_full,
                c.depot_empty,
                c.depot_chunks,
                c.thread_chunks,
                c.contention,
                c.exchanges
            )?;
        }
        Ok(())
    }
}
