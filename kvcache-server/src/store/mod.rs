//! The item store: items in slab-core chunks, a sharded hashbrown index of 4-byte
//! handles, CAS, expiry, CLOCK eviction per class, `flush_all`, counters and the size
//! histogram. No networking here.
//!
//! # Design
//!
//! ```text
//!   key --hash--> h24 (24 bits, kept in the item's tag)
//!                  |-- top 12 bits --> shard i: Mutex<HashTable<u32>>  (4 bytes per entry)
//!                  '-- mix(h24) -----> index hash          |
//!                                                          v handle = chunk offset >> 2
//!   SlabAllocator (per-thread magazines) over SlabEngine:
//!     reservation [ slab | slab | slab | ... ]   (64 KiB slabs, ~130 classes, 4-byte steps)
//!     chunk = [hdr 14 | cas 8 | flags? | key | value]
//! ```
//!
//! * Every item lives in one chunk of the class that fits its [`stored_size`]; values
//!   longer than the largest chunk are chained over several chunks (see [`crate::item`]).
//!   The index is `N` shards (default 64), each a `Mutex` around a
//!   `hashbrown::HashTable<u32>` whose entries are chunk handles; lookups compare the key
//!   stored in the chunk. Shard sizes are spread over a doubling (`shard_map`) so the
//!   tables resize at different totals and the index stays ~63% full on average. There is
//!   no other per-item memory: 77 B of RSS per item at 14-byte keys and 32-byte values
//!   (memcached 1.6.18: 123 B), 145 B at 100-byte values (memcached: 196 B).
//! * Writers allocate and fill the new chunk *before* taking the shard lock (allocation may
//!   evict, which locks other shards), then lock, check the mode (add/replace/cas), link
//!   the new chunk in place of the old one, unlock, and free the old chunk. A chunk that is
//!   not linked is freed on every failure path.
//! * A large value still arriving is received into such a chunk chain (`begin_store`,
//!   `write_pending`, `finish_store`; the server's `recv.rs`): allocated when the command
//!   line arrives, linked when the value is complete, so values in flight count against
//!   `-m` as in memcached. Unlinked, it is invisible to readers and passed over by
//!   eviction, compaction and slab moves.
//! * Readers run their closure under the shard's read lock (the shards are `RwLock`s;
//!   everything else takes the write lock), so the value cannot be freed or overwritten
//!   while they copy it out or write it to a socket, and readers of one shard, even of
//!   one item, run together. A hit's access time and CLOCK bits are written atomically
//!   for that reason. A `gat` (which sets the expiration time) and a lookup that finds
//!   an expired item take the write lock.
//!
//! # Safety and correctness
//!
//! Item memory is written non-atomically only by the thread that owns it: a chunk being
//! built belongs to the thread that allocated it; a linked item is written only under its
//! shard's lock. The eviction hand (`evict.rs`) walks a class's slabs without any shard lock
//! and reads one word of each chunk, the *tag*, which is only ever accessed atomically (it
//! holds the `LIVE`/`REF` bits and the key's 24 hash bits). From the tag it finds the shard,
//! locks it and then checks that the index holds *this handle* (`find(hash, |h| h ==
//! handle)`, which reads no item memory). Only an item that passes that check is read
//! further, and it is then protected by the lock like any other. Tags of stale data (a
//! slab reused by another class) are harmless: the index check fails. Slabs walked by the
//! hand stay mapped because releasing memory to the OS ([`Store::maintenance`]) takes the
//! walk lock exclusively.
//!
//! # Memory limit
//!
//! The engine's hard limit is `-m` rounded down to whole slabs: we never map more than
//! `-m`. memcached instead grants each class its first 1 MiB page past `-m`; our small
//! default slabs (64 KiB) make that unnecessary as long as `-m` holds at least a slab per
//! class in use (~130 classes: 8.3 MiB). When a class cannot get a chunk it evicts from
//! its own CLOCK; a class with nothing to evict (it got no slab before memory filled up,
//! or holds only segments of chained values) takes the empty spare slab another class
//! keeps, else empties the slab of another class whose emptying loses the fewest items,
//! evicting the items whose heads or segments it holds, and takes it (see
//! `Store::rebalance` in `evict.rs`); with `-M` stores fail instead. While chained values
//! are stored, eviction counts hits per byte rather than age alone (see `evict.rs`):
//! segments come from evicting the largest chained value, and other classes take a slab
//! (typically a large value's segments) before evicting their own items, so a mixed-size
//! load keeps its many small values and loses its few large ones. Slabs also move
//! between classes on request (`slabs reassign`) and by the automove policy that
//! [`Store::maintenance`] runs, so pages follow the demand when item sizes change (see
//! `automove.rs`).
//!
//! # Returning memory
//!
//! [`Store::maintenance`] runs every reap interval (1 s by default; `-o reap_interval=<s>`)
//! and ends with a reap: idle depot magazines go back to the engine and pooled empty
//! slabs beyond the engine's adaptive retention are unmapped, one `munmap` per run of
//! adjacent slabs. On top of that:
//!
//! * Items the crawl reclaims (a `flush_all`, expiry) are freed straight into the engine,
//!   a batch per class, past every magazine: a magazine would keep them, and with them
//!   their slabs, for reuse that a flush says is not coming.
//! * An immediate `flush_all` *shrinks* right after its crawl, on the thread that ran it;
//!   live chunks falling to half their peak since the last shrink (a mass delete or
//!   expiry; at least `SHRINK_MIN_CHUNKS`, 8192, at the peak) make the next maintenance
//!   shrink instead of reap. A shrink: every depot magazine goes back, the
//!   engine's retention target drops to its floor (`SlabEngine::demand_dropped`), and
//!   every empty slab is unmapped (`stats`: `memory_shrinks`).
//! * Index tables shrink as they empty (an empty one frees its memory), and maintenance
//!   then asks glibc to return free heap pages (`malloc_trim`; `heap_trims`).
//!
//! After loading 1M items of 100 B and `flush_all`, RSS is within a tenth of the pre-load
//! RSS when the `OK` arrives (the binary sets glibc malloc up for it, see `main.rs`). What
//! stays pinned: a worker thread's own two
//! magazines per class it used (at most 64 KiB of chunks each), which only that thread
//! can give back. `stats` shows `mapped_bytes`, `slab_pooled_slabs`,
//! `slab_retention_target`, `slab_mmap_calls`, `slab_munmap_calls`,
//! `slab_released_bytes`, `slab_released_slabs`, `memory_shrinks` and `heap_trims`.
//!
//! # Compaction
//!
//! Each maintenance step also compacts (`compact.rs`, [`Store::compact`]): in a class of
//! at least [`COMPACT_MIN_SLABS`] slabs filled below [`COMPACT_MAX_FILL`], the engine marks
//! the sparsest slabs draining (no allocation takes their chunks) and each linked inline
//! item in them is copied, under its shard lock, into a free chunk of a fuller slab, its
//! handle swapped in the index and the old copy unmarked (`LIVE` cleared) before the lock
//! is released, then freed. A reader holds the same lock while it copies a value out, so
//! it sees one copy or the other, whole, with the same CAS, flags, exptime and access
//! time. Chained items are not moved (their segments are named by handle), and chunks in
//! other threads' magazines can keep a picked slab in use; such a slab serves allocations
//! again after the step. At most [`COMPACT_BUDGET`] items move per step. After 1M items of
//! 100 B and deleting every other key, RSS settles within a few percent of a fresh server
//! loaded with only the survivors (`stats`: `slabs_compacted`, `items_moved`).
//!
//! # Re-classing
//!
//! The engine holds the store's table followed by spare classes on a grid (every multiple
//! of 8 up to 32 KiB, of 256 above; [`spare_sizes`]), whose state is created on first use.
//! [`Store::set_classes`] (`slabs classes a-b-c`) points the size lookup at a new list;
//! classes left out are retired: their items stay readable and each maintenance step moves
//! up to [`MIGRATE_BUDGET`] of them into the listed classes, the same way compaction moves
//! an item (`reclass.rs`). An item's class is read from its slab's owner word, not derived
//! from its size, since the two part after a re-class.
//!
//! # Layout
//!
//! This file holds the [`Store`] and its parts, one per concern (the index, chunk memory,
//! expiry, counters, placement, eviction hands, slab moves), with the configuration,
//! errors and outcomes. The operations live in the modules named for what they do, as
//! further `impl Store` blocks (and `impl` blocks of the parts):
//!
//! | module | what |
//! | --- | --- |
//! | `index.rs` | hashing, shards, handles and pointers, lookup, link, unlink, freeing |
//! | `write.rs` | preparing an item, the value region iterator, the two-step store |
//! | `read.rs` | value views, the per-thread assembly buffer, `get` and friends |
//! | `commands.rs` | storage, concat, `incr`/`decr`, `touch`, `delete`, `flush_all` |
//! | `conditional.rs` | gets that win recache tokens, invalidating deletes and stores, peeks |
//! | `maintenance.rs` | the crawl, expiry reclaim, shrink, heap trim, the background thread |
//! | `evict.rs` | CLOCK eviction, on-demand rebalance, emptying a slab for a move |
//! | `automove.rs` | `slabs reassign` and the automove policy |
//! | `compact.rs` | moving items out of sparse slabs |
//! | `reclass.rs` | `slabs classes` and migrating items out of retired classes |
//! | `restart.rs` | `-e`: the metadata file, saving on SIGUSR1, the walk that takes items up |
//! | `restart_state.rs` | the warm-restart mode, figures and maintenance gate (leaf) |
//! | `expiry.rs` | the clock, CAS uniques, the flush horizon (leaf) |
//! | `stats.rs` | counters, gauges, the histogram and the `stats` snapshot (leaf) |
//! | `classes.rs` | the default classes, the spare grid, where new items go (leaf) |
//! | `clock.rs`, `histogram.rs` | the server clock, the size histogram (leaves) |
//!
//! Imports run one way, with no cycle: the leaves import nothing from the store but other
//! leaves; this file imports only from leaves (besides its `pub use` re-exports); the
//! other modules import from this file, from leaves and from siblings lower down
//! (`index.rs` below `write.rs` and `read.rs`, which are below `commands.rs` and
//! `conditional.rs`; `automove.rs` below `evict.rs`; `compact.rs` and `reclass.rs`
//! below `maintenance.rs`). Calls between `impl Store` blocks are method calls, not
//! imports.
//!
//! # Extending
//!
//! A new operation is a further `impl Store` block in the module of its concern (or a
//! new one), built on the store-internal (`pub(super)`) primitives: `Index::hash_key`
//! and `Index::lock` to find and lock a key's shard, `Store::find_live` or
//! `Store::with_live` to look it up, `Store::item` to read and change it in place under
//! the lock; `Store::prepare`, `Store::write_value` (or `Store::regions`) and
//! `Store::relock_unchanged` to build a replacement outside the lock and link it with
//! `Store::link_locked`; `Store::unlink_locked` or `Store::unlink_in`, then
//! `Store::free_garbage` or `Store::free_item` once the lock is released. Counters go
//! through `Counters`, fresh CAS uniques and liveness through `Expiry`. The server
//! receives large values through the crate-visible `Store::begin_store`,
//! `Store::write_pending` (or `Store::pending_rooms`), `Store::finish_store` and
//! `Store::abandon_store`.
//!
//! [`stored_size`]: crate::item::stored_size

mod automove;
mod classes;
mod clock;
mod commands;
mod compact;
mod conditional;
mod dump;
mod events;
mod evict;
mod expiry;
mod histogram;
mod index;
#[cfg(all(test, loom))]
mod loom_moves;
mod maintenance;
mod memlimit;
mod read;
mod reclass;
mod restart;
mod restart_state;
mod stats;
#[cfg(test)]
mod tests;
mod write;

pub use automove::{plan, Move, ReassignOutcome, DEFAULT_RATIO};
pub use classes::{
    default_classes, spare_sizes, COARSE_STEP, DEFAULT_SLAB_SIZE, FINE_GRID_MAX, FINE_MAX, GROWTH,
};
pub use clock::{Clock, REALTIME_MAXDELTA, START_OFFSET};
#[cfg(test)]
use commands::parse_counter;
pub use compact::{CompactReport, COMPACT_BUDGET, COMPACT_MAX_FILL, COMPACT_MIN_SLABS};
pub use conditional::{ItemDebug, MetaDeleteOutcome, MetaGetOptions, MetaGetState};
pub use dump::{DumpItem, DUMP_BATCH};
pub use events::{Evicted, StoreEvent, StoreWatcher};
pub use histogram::SizeHistogram;
pub use maintenance::CRAWL_STEPS;
pub use read::{ItemView, ValueHead};
pub use reclass::{MAX_LISTED, MIGRATE_BUDGET};
pub use restart::{check_restart_meta, meta_path, RestartError, RestartInfo, RESTART_VERSION};
pub use stats::{ClassSample, ClassStats, StoreStats};
pub(crate) use write::Pending;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;
use slab_core::engine::size_class::{ClassId, SizeClasses};
use slab_core::engine::{Backing, Config as EngineConfig, SlabEngine, SlabRecord};
use slab_core::lazy::LazyTable;
use slab_core::magazine::{AllocatorStats, MagazineConfig, SlabAllocator};

use crate::item::{self, key_offset, memcached_stored_size, KEY_MAX, SEGMENT_DATA};
use classes::Placement;
use expiry::Expiry;
use restart_state::RestartState;
use stats::Counters;

/// Default number of index shards.
pub const DEFAULT_SHARDS: usize = 64;

/// Bytes of free chunks each class's depot may keep (the magazine layer's bound).
const DEPOT_BYTES: usize = 256 << 10;

/// Store configuration. [`StoreConfig::new`] gives memcached's defaults with our classes.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Memory limit in bytes (`-m`); the engine never maps more.
    pub memory_limit: usize,
    /// The size classes (their slab size is the engine's slab size).
    pub classes: SizeClasses,
    /// Largest item in memcached's accounting (`-I`): a store whose
    /// [`memcached_stored_size`] exceeds it fails with [`StoreOutcome::TooLarge`].
    pub item_size_max: usize,
    /// CAS on (memcached's default; `-C` turns it off: cas 0, no CAS bytes stored).
    pub cas_enabled: bool,
    /// Evict when memory is full (`-M` turns it off: stores fail instead).
    pub evictions: bool,
    /// Index shards, 1 to 256 (of geometrically spread sizes, see `shard_map`).
    pub shards: usize,
    /// Advise the engine's memory for transparent huge pages.
    pub huge_pages: bool,
    /// Slabs may move between classes (`slabs reassign`, automove); memcached's
    /// `slab_reassign`, on by default.
    pub slab_reassign: bool,
    /// The automove mode, 0 to 2 (see `automove.rs`); memcached's `slab_automove`, 1 by
    /// default.
    pub slab_automove: u8,
}

impl StoreConfig {
    /// `memory_limit` bytes, our default classes on 64 KiB slabs, `-I 1m`, CAS on,
    /// evictions on, [`DEFAULT_SHARDS`] shards.
    pub fn new(memory_limit: usize) -> Self {
        let item_size_max = 1 << 20;
        StoreConfig {
            memory_limit,
            classes: default_classes(DEFAULT_SLAB_SIZE, item_size_max),
            item_size_max,
            cas_enabled: true,
            evictions: true,
            shards: DEFAULT_SHARDS,
            huge_pages: false,
            slab_reassign: true,
            slab_automove: 1,
        }
    }
}

/// Why a store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The configuration is inconsistent; the message says how.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// The slab engine refused (e.g. the address space could not be reserved).
    #[error("slab engine: {0}")]
    Engine(#[from] slab_core::error::Error),
}

/// What a store command does when the key exists or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// Store unconditionally.
    Set,
    /// Store only if absent.
    Add,
    /// Store only if present.
    Replace,
    /// Append the data to the present value (flags and exptime unchanged).
    Append,
    /// Prepend the data to the present value (flags and exptime unchanged).
    Prepend,
    /// Store only if present with this CAS unique.
    Cas(u64),
}

/// The result of [`Store::store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored.
    Stored,
    /// Not stored: `add` of a present key, `replace`/`append`/`prepend` of an absent one.
    NotStored,
    /// `cas`: the item changed since the client read it.
    Exists,
    /// `cas`: no such item.
    NotFound,
    /// Over `-I` (a `set` also deletes the old value, as memcached does).
    TooLarge,
    /// No memory and nothing evictable (a `set` also deletes the old value).
    OutOfMemory,
}

/// The result of [`Store::incr_decr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncrOutcome {
    /// The new value.
    Value(u64),
    /// No such item.
    NotFound,
    /// The value is not a decimal number (or too long to be one).
    NonNumeric,
    /// The value needed a new chunk and none could be had.
    OutOfMemory,
}

/// The store. Share it as `Arc<Store>`; every method takes `&self`.
///
/// Its state comes in parts, one per concern; the operations on each live in the module
/// named in its field's docs.
#[derive(Debug)]
pub struct Store {
    cfg: StoreConfig,
    /// The sharded index of chunk handles (`index.rs`).
    index: Index,
    /// Chunk memory: the allocator, the largest chunk, the walk lock, the shrink state.
    mem: Memory,
    /// The clock, CAS uniques, the flush horizon and the crawl's position (`expiry.rs`).
    expiry: Expiry,
    /// Counters, per-class gauges and the size histogram (`stats.rs`).
    counters: Counters,
    /// The class a new item goes to (`classes.rs`; rewritten by `reclass.rs`).
    placement: Placement,
    /// The CLOCK hands (`evict.rs`).
    hands: Hands,
    /// Slab moves: settings and the policy's state (`automove.rs`).
    moves: SlabMoves,
    /// Warm restart: mode, figures, the maintenance gate (`restart.rs`).
    restart: RestartState,
    /// Who hears of evictions and slab moves (`events.rs`; `watch`).
    watcher: OnceLock<Arc<dyn StoreWatcher>>,
}

// The store is shared by worker threads as `Arc<Store>`.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
};

/// The index: `N` shards, each a `RwLock` around a table of chunk handles (operations in
/// `index.rs`).
#[derive(Debug)]
struct Index {
    shards: Box<[Padded<RwLock<Shard>>]>,
    /// Shard of each value of the top 12 hash bits (see `index::shard_map`).
    shard_map: Box<[u8]>,
    hasher: hashbrown::DefaultHashBuilder,
    /// Handles are chunk offsets shifted right by this (2, or 3 for stores over 8 GiB).
    handle_shift: u32,
}

/// One index shard.
#[derive(Debug, Default)]
struct Shard {
    table: HashTable<u32>,
}

/// Cache-line padding so neighbouring shard locks do not share a line.
#[repr(align(128))]
#[derive(Debug)]
struct Padded<T>(T);

/// Chunk memory and what guards returning it to the OS.
#[derive(Debug)]
struct Memory {
    /// Chunks come from per-thread magazines over the slab engine.
    alloc: SlabAllocator,
    /// Largest chunk size: the limit of an inline item and the segment size.
    max_chunk: usize,
    /// Readers: walks over slabs (eviction, compaction, slab moves, migration); writer:
    /// releasing memory to the OS.
    walk_lock: RwLock<()>,
    /// Most live chunks seen by maintenance since its last shrink.
    peak_chunks: AtomicU64,
    /// Set when the crawl shrank an index table: the next maintenance trims the heap.
    tables_shrunk: AtomicBool,
}

impl Memory {
    /// Value bytes a segment holds.
    #[inline]
    fn payload(&self) -> usize {
        self.max_chunk - SEGMENT_DATA
    }

    /// Holds the slabs mapped for a walk over them.
    fn walk(&self) -> RwLockReadGuard<'_, ()> {
        self.walk_lock.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Excludes every walk, to release memory to the OS.
    fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.walk_lock.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The eviction hands (used in `evict.rs`).
#[derive(Debug)]
struct Hands {
    /// CLOCK hand position per class.
    hands: LazyTable<AtomicU64>,
    /// Rotates the slab a rebalance or a slab move empties.
    rebalance: AtomicU64,
}

/// Slab moves between classes: settings and the policy's state (operations in
/// `automove.rs`).
#[derive(Debug)]
struct SlabMoves {
    reassign: AtomicBool,
    mode: AtomicU8,
    /// `f64` bits of the age ratio.
    ratio: AtomicU64,
    /// Held while a move runs (`BUSY` for a second one).
    planner: Mutex<Planner>,
    /// Rotates `-1`'s pick of a source class.
    pick_any: AtomicU64,
    /// A move is running.
    running: AtomicBool,
}

/// The automove policy's memory between ticks.
#[derive(Debug, Default)]
struct Planner {
    prev: Vec<ClassSample>,
    /// Server clock of each class's last eviction seen (0: none yet).
    last_evict: Vec<u32>,
    /// Server clock when sampling started.
    since: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Builds a store: reserves the engine's address space (nothing is mapped yet).
    pub fn new(cfg: StoreConfig) -> Result<Self, StoreError> {
        Self::build(cfg, Backing::Anonymous, Vec::new())
    }

    /// Builds a store on `backing`, taking up `table` (see `restart.rs`).
    fn build(
        mut cfg: StoreConfig,
        backing: Backing,
        table: Vec<SlabRecord>,
    ) -> Result<Self, StoreError> {
        let settings = restart_state::settings_lines(
            cfg.memory_limit,
            cfg.item_size_max,
            &cfg.classes,
            cfg.cas_enabled,
        );
        let bad = |m: String| Err(StoreError::Config(m));
        if cfg.shards == 0 || cfg.shards > 256 {
            return bad(format!(
                "shards must be between 1 and 256, not {}",
                cfg.shards
            ));
        }
        let slab = cfg.classes.slab_size();
        if cfg.memory_limit < slab {
            return bad(format!(
                "memory limit {} is below one slab ({slab})",
                cfg.memory_limit
            ));
        }
        // 4-byte handles: offset >> 2 while the reservation (twice the limit) fits 16 GiB,
        // offset >> 3 (and chunk sizes rounded up to multiples of 8) up to 32 GiB.
        let handle_shift = if cfg.memory_limit <= item::handle_span(item::HANDLE_SHIFT_FINE) / 2 {
            item::HANDLE_SHIFT_FINE
        } else {
            item::HANDLE_SHIFT_COARSE
        };
        let span = item::handle_span(handle_shift);
        if cfg.memory_limit > span / 2 {
            return bad(format!(
                "memory limit {} is above {}",
                cfg.memory_limit,
                span / 2
            ));
        }
        let align = 1usize << handle_shift;
        if cfg.classes.sizes().iter().any(|&s| s % align != 0) {
            let mut sizes: Vec<usize> = cfg
                .classes
                .sizes()
                .iter()
                .map(|&s| s.next_multiple_of(align))
                .collect();
            sizes.dedup();
            cfg.classes = SizeClasses::from_list(&sizes, align, slab)
                .map_err(|e| StoreError::Config(e.to_string()))?;
        }
        if cfg.classes.sizes()[0] < 16 {
            return bad("chunk sizes must be at least 16 bytes".into());
        }
        let max_chunk = cfg.classes.max_chunk();
        if max_chunk < 256 {
            return bad(format!(
                "the largest chunk ({max_chunk}) must be at least 256 bytes"
            ));
        }
        // The head of the largest chained item must fit the largest chunk.
        let nseg = cfg.item_size_max.div_ceil(max_chunk - SEGMENT_DATA);
        let head = key_offset(cfg.cas_enabled, true) + KEY_MAX + 4 + 4 * nseg;
        if head > max_chunk {
            return bad(format!(
                "item size max {} needs {nseg} segments, more than a {max_chunk}-byte chunk can list",
                cfg.item_size_max
            ));
        }
        // Address space only: room for `cache_memlimit` to grow the limit fourfold.
        let reserve = (cfg.memory_limit * 4).clamp(256 << 20, span);
        let all = cfg
            .classes
            .with_spares(&spare_sizes(&cfg.classes))
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let ecfg = EngineConfig::new(all)
            .memory_limit(cfg.memory_limit)
            .reserve_bytes(reserve)
            .huge_pages(cfg.huge_pages)
            .backing(backing)
            .restore(table);
        let alloc = SlabAllocator::with_magazines(
            ecfg,
            MagazineConfig::default().max_depot_bytes(DEPOT_BYTES),
        )?;
        let (_, reserved) = alloc.engine().reservation();
        if reserved > span {
            return bad(format!(
                "reservation of {reserved} bytes is beyond 4-byte handles"
            ));
        }
        let all = alloc.engine().classes();
        let n = all.len();
        let hist_max = memcached_stored_size(KEY_MAX, cfg.item_size_max, 1, true);
        Ok(Store {
            index: Index::new(cfg.shards, handle_shift),
            expiry: Expiry::new(cfg.cas_enabled),
            counters: Counters::new(n, hist_max),
            hands: Hands {
                hands: LazyTable::new(n),
                rebalance: AtomicU64::new(0),
            },
            placement: Placement::new(all),
            moves: SlabMoves::new(cfg.slab_reassign, cfg.slab_automove),
            mem: Memory {
                alloc,
                max_chunk,
                walk_lock: RwLock::new(()),
                peak_chunks: AtomicU64::new(0),
                tables_shrunk: AtomicBool::new(false),
            },
            restart: RestartState::new(settings),
            watcher: OnceLock::new(),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// The allocator underneath (magazine figures, `live_chunks`, flushing a thread's
    /// cache). Do not start its background reaper or call its `reap`/`release_all`:
    /// returning memory to the OS must exclude the eviction walk, which
    /// [`maintenance`](Self::maintenance) does.
    pub fn allocator(&self) -> &SlabAllocator {
        &self.mem.alloc
    }

    /// The allocator's figures (engine accounting plus magazines).
    pub fn allocator_stats(&self) -> AllocatorStats {
        self.mem.alloc.stats()
    }

    /// The slab engine underneath (its own stats, reservation).
    pub fn engine(&self) -> &SlabEngine {
        self.mem.alloc.engine()
    }

    /// Every class of the engine: the store's table, then the spares.
    #[inline]
    pub(super) fn classes(&self) -> &SizeClasses {
        self.mem.alloc.engine().classes()
    }

    /// The class whose chunks are the largest: chained values' segments come from it.
    #[inline]
    pub(super) fn top_class(&self) -> ClassId {
        ClassId((self.classes().base_len() - 1) as u16)
    }

    /// The server clock (memcached's `current_time`).
    #[inline]
    pub fn now(&self) -> u32 {
        self.expiry.clock().now()
    }

    /// The clock itself: `realtime()` conversions, the Unix start time, and `advance`
    /// for tests.
    pub fn clock(&self) -> &Clock {
        self.expiry.clock()
    }

    /// Everything `stats`, `stats items` and `stats slabs` show.
    pub fn stats(&self) -> StoreStats {
        let running = self
            .moves
            .running
            .load(std::sync::atomic::Ordering::Relaxed);
        self.counters.snapshot(
            self.engine(),
            self.memory_limit() as u64,
            self.now(),
            running,
        )
    }

    /// `(stored size rounded up to a multiple of 8, item count)` for every nonempty
    /// bucket: the basis of `stats sizes` and `stats sizes_fine`. Sizes are
    /// [`stored_size`](crate::item::stored_size) (our layout).
    pub fn size_histogram(&self) -> Vec<(usize, u64)> {
        self.counters.histogram()
    }

    /// `stats reset`: zeroes the counters (not the item gauges or the histogram).
    pub fn reset_stats(&self) {
        self.counters.reset();
    }
}
