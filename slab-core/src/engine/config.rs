//! The engine's settings: size classes, the memory limit, the reservation and mapping granule,
//! and the bounds of retention.

use std::fs::File;
use std::sync::Arc;

use super::os::HUGE_PAGE;
use super::size_class::{ClassId, SizeClasses};

/// One slab of a saved table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabRecord {
    /// Its slot in the reservation (the file offset is `slot * slab_size`).
    pub slot: u32,
    /// The class that held it.
    pub class: ClassId,
    /// Chunks carved from its start (chunks `carved..` were never handed out).
    pub carved: u32,
}

/// What the engine's slabs are made of.
#[derive(Clone, Debug, Default)]
pub enum Backing {
    /// Anonymous private memory (the default): gone when the process ends.
    #[default]
    Anonymous,
    /// A file, mapped `MAP_SHARED`: the slab in slot `i` of the reservation is the file's
    /// bytes at `i * slab_size`, so what the engine's chunks hold outlives the process (on
    /// tmpfs, `/dev/shm`, or a DAX file system). The engine grows the file to the
    /// reservation's size if it is shorter (sparse: no blocks yet), allocates each range's
    /// blocks with `fallocate` before mapping it (a full file system is an
    /// [`Error::Os`](crate::error::Error::Os) from allocation, never a `SIGBUS`), and
    /// releases empty slabs by punching their blocks out of the file as well as unmapping
    /// them, one `fallocate(FALLOC_FL_PUNCH_HOLE)` per contiguous run.
    File(Arc<File>),
}

/// Engine configuration. Build with [`Config::new`] and the builder-style setters.
#[derive(Clone, Debug)]
pub struct Config {
    /// The size classes (their slab size is the engine's slab size).
    pub classes: SizeClasses,
    /// Hard limit on mapped bytes; `None` = unlimited (bounded by the reservation).
    pub memory_limit: Option<usize>,
    /// Advise mapped regions with `MADV_HUGEPAGE`.
    pub huge_pages: bool,
    /// Bytes of address space to reserve; `None` = twice the limit (at least 64 MiB), or 64 GiB
    /// when unlimited (halved until the reservation succeeds, down to 1 GiB).
    pub reserve_bytes: Option<usize>,
    /// Bytes mapped per `mmap` of fresh address space: a power of two, at least 2 MiB and at
    /// least one slab. Default 2 MiB (or one slab if slabs are larger).
    pub map_granule: usize,
    /// The retention target never drops below this many empty slabs.
    pub min_retained_slabs: usize,
    /// The retention target never exceeds this many empty slabs (`None` = no cap).
    pub max_retained_slabs: Option<usize>,
    /// Mapping new slabs within this many reap intervals of releasing some counts as a
    /// misjudgement and raises the retention target by the amount mapped. Default 4.
    pub misjudge_window: u32,
    /// After this many consecutive reap intervals in which pooled slabs stayed unused, the
    /// target decays by half the unused amount per interval. Default 2.
    pub decay_after: u32,
    /// Anonymous memory or a file (see [`Backing`]).
    pub backing: Backing,
    /// Slabs to take up again from a file-backed engine's earlier life (see
    /// [`SlabEngine::slab_table`](super::SlabEngine::slab_table)); empty for a fresh engine.
    pub restore: Vec<SlabRecord>,
}

impl Config {
    /// Defaults for `classes`: unlimited, no huge-page advice, 2 MiB mapping granule,
    /// retention adapting from 0.
    pub fn new(classes: SizeClasses) -> Self {
        let map_granule = HUGE_PAGE.max(classes.slab_size());
        Config {
            classes,
            memory_limit: None,
            huge_pages: false,
            reserve_bytes: None,
            map_granule,
            min_retained_slabs: 0,
            max_retained_slabs: None,
            misjudge_window: 4,
            decay_after: 2,
            backing: Backing::Anonymous,
            restore: Vec::new(),
        }
    }

    /// Sets what the slabs are made of.
    pub fn backing(mut self, backing: Backing) -> Self {
        self.backing = backing;
        self
    }

    /// Takes up a saved slab table at start: every listed slab is mapped again from the
    /// file at its slot and belongs to its class with all its carved chunks in use. The
    /// caller then frees the chunks that hold nothing it wants (the free lists are rebuilt
    /// from those frees). Needs [`Backing::File`] and the same classes and slab size as
    /// the engine that wrote the table.
    pub fn restore(mut self, table: Vec<SlabRecord>) -> Self {
        self.restore = table;
        self
    }

    /// Sets the hard memory limit in bytes.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Advise mapped memory for transparent huge pages.
    pub fn huge_pages(mut self, on: bool) -> Self {
        self.huge_pages = on;
        self
    }

    /// Sets the size of the address-space reservation.
    pub fn reserve_bytes(mut self, bytes: usize) -> Self {
        self.reserve_bytes = Some(bytes);
        self
    }

    /// Sets the bytes mapped per fresh `mmap`.
    pub fn map_granule(mut self, bytes: usize) -> Self {
        self.map_granule = bytes;
        self
    }

    /// Sets the floor and cap of the retention target, in slabs.
    pub fn retained_slabs(mut self, min: usize, max: Option<usize>) -> Self {
        self.min_retained_slabs = min;
        self.max_retained_slabs = max;
        self
    }

    /// Sets the misjudgement window and the decay delay, in reap intervals.
    pub fn retention_intervals(mut self, misjudge_window: u32, decay_after: u32) -> Self {
        self.misjudge_window = misjudge_window;
        self.decay_after = decay_after;
        self
    }
}
