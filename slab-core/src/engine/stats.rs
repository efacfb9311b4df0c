//! Exact accounting: what the engine has mapped, how it is used, and every system call made.

use std::fmt;

use super::size_class::ClassId;

/// A snapshot of the engine's accounting.
///
/// `mapped_bytes` counts every byte the engine has mapped read-write and not yet unmapped:
/// slabs in classes plus empty slabs in the pool. When every chunk has been touched it agrees
/// with the growth of the process's RSS (the `rss_accounting` integration test checks 5%).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes mapped read-write now.
    pub mapped_bytes: usize,
    /// Bytes of address space reserved (not memory).
    pub reserved_bytes: usize,
    /// The hard limit on `mapped_bytes`, if any.
    pub limit: Option<usize>,
    /// `mmap` calls made, including the reservation.
    pub mmap_calls: u64,
    /// `munmap` calls made.
    pub munmap_calls: u64,
    /// `madvise` calls made.
    pub madvise_calls: u64,
    /// Whether the slabs are a file's pages ([`Backing::File`](crate::engine::Backing)).
    pub file_backed: bool,
    /// `fallocate` calls that allocated a file-backed range before mapping it.
    pub fallocate_calls: u64,
    /// Holes punched in the backing file: one per released run, plus those punched at a
    /// restore over the file's ranges outside the restored slabs.
    pub punch_calls: u64,
    /// Bytes of the backing file punched out so far.
    pub punched_bytes: u64,
    /// Bytes returned to the OS so far.
    pub released_bytes: u64,
    /// Slabs returned to the OS so far.
    pub released_slabs: u64,
    /// Empty slabs waiting in the pool (mapped, counted in `mapped_bytes`).
    pub pooled_slabs: usize,
    /// How many empty slabs the pool currently means to keep across a reap.
    pub retention_target_slabs: usize,
    /// Times the retention target was dropped to its floor by a hint that demand fell
    /// ([`SlabEngine::demand_dropped`](crate::engine::SlabEngine::demand_dropped)).
    pub demand_drops: u64,
    /// The slab size in bytes.
    pub slab_size: usize,
    /// Per-class figures, one entry per class.
    pub classes: Vec<ClassStats>,
}

/// One class's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// The class.
    pub class: ClassId,
    /// Its chunk size.
    pub chunk_size: usize,
    /// Chunks in one slab.
    pub chunks_per_slab: usize,
    /// Slabs the class holds (partial, full and its empty spare).
    pub slabs: usize,
    /// Slabs with every chunk in use.
    pub full_slabs: usize,
    /// Empty slabs the class keeps (at most one; the rest go to the pool).
    pub empty_slabs: usize,
    /// Chunks handed out.
    pub used_chunks: usize,
    /// Chunks in the class's slabs not handed out (`slabs * chunks_per_slab - used_chunks`).
    pub free_chunks: usize,
}

impl Stats {
    /// Bytes in slabs that belong to classes (`mapped_bytes` minus the pool).
    pub fn class_bytes(&self) -> usize {
        self.classes.iter().map(|c| c.slabs).sum::<usize>() * self.slab_size
    }

    /// Bytes of chunks handed out.
    pub fn used_bytes(&self) -> usize {
        self.classes
            .iter()
            .map(|c| c.used_chunks * c.chunk_size)
            .sum()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: f64 = (1 << 20) as f64;
        writeln!(
            f,
            "mapped {:.1} MiB of {} (reserved {:.0} MiB), pool {} slabs (target {}), \
             mmap {} munmap {} madvise {}, released {:.1} MiB in {} slabs",
            self.mapped_bytes as f64 / MIB,
            self.limit.map_or("unlimited".to_string(), |l| format!(
                "{:.1} MiB",
                l as f64 / MIB
            )),
            self.reserved_bytes as f64 / MIB,
            self.pooled_slabs,
            self.retention_target_slabs,
            self.mmap_calls,
            self.munmap_calls,
            self.madvise_calls,
            self.released_bytes as f64 / MIB,
            self.released_slabs,
        )?;
        writeln!(
            f,
            "{:>5} {:>8} {:>8} {:>7} {:>6} {:>6} {:>10} {:>10}",
            "class", "chunk", "perslab", "slabs", "full", "empty", "used", "free"
        )?;
        for c in self
            .classes
            .iter()
            .filter(|c| c.slabs > 0 || c.used_chunks > 0)
        {
            writeln!(
                f,
                "{:>5} {:>8} {:>8} {:>7} {:>6} {:>6} {:>10} {:>10}",
                c.class.display_id(),
                c.chunk_size,
                c.chunks_per_slab,
                c.slabs,
                c.full_slabs,
                c.empty_slabs,
                c.used_chunks,
                c.free_chunks
            )?;
        }
        Ok(())
    }
}
