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
//! * Readers run their closure under the shard lock, so the value cannot be freed or
//!   overwritten while they copy it out.
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
//! keeps, else empties the slab of another class that is cheapest to empty, evicting the
//! items whose heads or segments it holds, and takes it (see `Store::rebalance` in
//! `evict.rs`); with `-M` stores fail instead. Slabs also move
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
//! # Extending
//!
//! The meta protocol's operations live in `meta_ops.rs` as further `impl Store` blocks,
//! built on the `pub(crate)` primitives here: `Store::hash_key`, `Store::lock_shard`,
//! `Store::find_live`, `Store::prepare`, `Store::begin_store`, `Store::write_pending`,
//! `Store::finish_store`, `Store::abandon_store`, `Store::link_locked`,
//! `Store::unlink_locked`, `Store::free_item`, `Store::item`, `Store::next_cas`.
//!
//! [`stored_size`]: crate::item::stored_size

mod automove;
mod classes;
mod clock;
mod compact;
mod evict;
mod histogram;
mod meta_ops;
mod reclass;
mod stats;
#[cfg(test)]
mod tests;

pub use automove::{plan, ClassSample, Move, ReassignOutcome, DEFAULT_RATIO};
pub use classes::{default_classes, DEFAULT_SLAB_SIZE, FINE_MAX, GROWTH};
pub use clock::{Clock, REALTIME_MAXDELTA, START_OFFSET};
pub use compact::{CompactReport, COMPACT_BUDGET, COMPACT_MAX_FILL, COMPACT_MIN_SLABS};
pub use histogram::SizeHistogram;
pub use meta_ops::{ItemDebug, MetaDeleteOutcome, MetaGetOptions, MetaGetState};
pub use reclass::{spare_sizes, COARSE_STEP, FINE_GRID_MAX, MAX_LISTED, MIGRATE_BUDGET};
pub use stats::{ClassStats, StoreStats};

use std::cell::Cell;
use std::hash::BuildHasher;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use hashbrown::HashTable;
use slab_core::allocator::{AllocatorStats, MagazineConfig, SlabAllocator};
use slab_core::engine::{Config as EngineConfig, SlabEngine};
use slab_core::lazy::LazyTable;
use slab_core::size_class::{ClassId, SizeClasses};

use crate::item::{
    self, key_offset, memcached_stored_size, pack_handle, stored_size, tag_atomic, tag_hash,
    unpack_handle, widen_access, ItemRef, NewHeader, CHAINED, FETCHED, KEY_MAX, LIVE, REF, SEGMENT,
    SEGMENT_DATA, STALE, WIN_SENT,
};
use stats::{bump, get, ClassCounters, ClassGauges, GlobalCounters};

/// Default number of index shards.
pub const DEFAULT_SHARDS: usize = 64;

/// How many eviction rounds a store attempts before reporting out of memory.
const EVICT_TRIES: usize = 32;

/// Items evicted per round when a class is out of memory.
const EVICT_BATCH: usize = 4;

/// Items store the low 16 bits of their last access time, exact within 65536 s of now.
/// The crawler (a full pass every few seconds) moves older access times up to this many
/// seconds ago, so they stay readable: idle times beyond 16 hours read as 16 hours. Any
/// flush that should have removed such an item took effect, and the crawler reclaimed the
/// item, long before.
const ACCESS_CAP: u32 = 16 * 3600;

/// [`Store::maintenance`] crawls the index in this many steps.
pub const CRAWL_STEPS: usize = 8;

/// A shrink on a fall of live chunks needs at least this many at the peak (about 1 MiB
/// of small items): below it, the ordinary reap is enough.
const SHRINK_MIN_CHUNKS: u64 = 8192;

/// Gives the C heap's free memory back to the OS (glibc keeps what freed index tables
/// leave, below its trim threshold or in worker threads' arenas).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks glibc's own arenas under their locks; it takes no
    // pointer from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Where the incremental crawl is.
#[derive(Debug, Default)]
struct CrawlState {
    next: usize,
    oldest: Vec<u32>,
}

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

/// An item as a reader sees it, valid inside the closure passed to [`Store::get`].
#[derive(Clone, Copy, Debug)]
pub struct ItemView<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// CAS unique (0 with `-C`).
    pub cas: u64,
    /// Expiration in server-clock seconds; 0 = never.
    pub exptime: u32,
    /// Server-clock time of the access *before* this one (or of the store).
    pub last_access: u32,
    /// Whether the item had been fetched before this access.
    pub fetched: bool,
    /// Whether the item is marked stale (meta invalidation).
    pub stale: bool,
    /// Whether a win token was already handed out (meta).
    pub win_token_sent: bool,
}

/// Assembled chained values up to this capacity keep their buffer for the thread's next
/// one (the default `-I` of 1 MB fits), so reading a large value does not map, fault in
/// and unmap a fresh megabyte each time.
const ASSEMBLED_KEEP: usize = 2 * 1024 * 1024;

thread_local! {
    /// The buffer [`Store::value_of`] assembles chained values in, between uses.
    static ASSEMBLED: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// An item's value as [`Store::value_of`] gives it: borrowed from the chunk, or assembled
/// from the segments of a chained value into a buffer that goes back to the thread when
/// dropped.
#[derive(Debug)]
pub(crate) enum Value<'a> {
    Inline(&'a [u8]),
    Assembled(Vec<u8>),
}

impl std::ops::Deref for Value<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Value::Inline(v) => v,
            Value::Assembled(v) => v,
        }
    }
}

impl Drop for Value<'_> {
    fn drop(&mut self) {
        if let Value::Assembled(v) = self {
            if v.capacity() <= ASSEMBLED_KEEP {
                let v = std::mem::take(v);
                // A nested read may have put a buffer back meanwhile: keep the larger.
                let old = ASSEMBLED.take();
                ASSEMBLED.set(if old.capacity() > v.capacity() {
                    old
                } else {
                    v
                });
            }
        }
    }
}

/// What [`Store::get_append`] tells of a hit before appending its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueHead {
    /// Client flags.
    pub flags: u32,
    /// CAS unique (0 with `-C`).
    pub cas: u64,
    /// The value's length.
    pub len: usize,
}

/// The hash of a key, split into what the store needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyHash {
    /// The 24 bits kept in the item's tag.
    pub(crate) h24: u32,
    /// The index hash, derived from `h24` only.
    pub(crate) th: u64,
    /// The shard.
    pub(crate) shard: usize,
}

/// One index shard.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    pub(crate) table: HashTable<u32>,
}

/// Cache-line padding so neighbouring shard locks do not share a line.
#[repr(align(128))]
#[derive(Debug)]
struct Padded<T>(T);

/// Why a lookup found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dead {
    Expired,
    Flushed,
}

/// The result of [`Store::find_live`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A live item.
    Hit(u32),
    /// No item.
    Miss,
    /// An item that had expired or was flushed; it was unlinked and its handle left in
    /// the [`Garbage`] to free after unlocking.
    Dead(Dead),
}

/// A key's shard, locked by [`Store::with_live`], with the lookup's context.
pub(crate) struct Locked<'a> {
    pub(crate) shard: &'a mut Shard,
    pub(crate) kh: &'a KeyHash,
    /// The server clock when the lookup ran.
    pub(crate) now: u32,
    pub(crate) garbage: &'a mut Garbage,
}

/// Handles unlinked under a shard lock, freed after it is released.
#[derive(Debug, Default)]
pub(crate) struct Garbage {
    slots: [Option<u32>; 2],
    more: Vec<u32>,
}

impl Garbage {
    pub(crate) fn push(&mut self, h: u32) {
        match self.slots.iter_mut().find(|s| s.is_none()) {
            Some(s) => *s = Some(h),
            None => self.more.push(h),
        }
    }
}

/// A new item's chunks, allocated and headed but not yet linked.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) head: u32,
    segs: Vec<u32>,
    vlen: usize,
}

/// A storage command's item, allocated by [`Store::begin_store`] and not linked yet. It
/// must end in [`Store::finish_store`] or [`Store::abandon_store`]: dropping it leaks its
/// chunks.
#[derive(Debug)]
pub(crate) struct Pending {
    prep: Prepared,
    kh: KeyHash,
}

/// The store. Share it as `Arc<Store>`; every method takes `&self`.
#[derive(Debug)]
pub struct Store {
    cfg: StoreConfig,
    /// Chunks come from per-thread magazines over the slab engine.
    alloc: SlabAllocator,
    shards: Box<[Padded<Mutex<Shard>>]>,
    /// Shard of each value of the top 12 hash bits (see [`shard_map`]).
    shard_map: Box<[u8]>,
    /// Handles are chunk offsets shifted right by this (2, or 3 for stores over 8 GiB).
    handle_shift: u32,
    hasher: hashbrown::DefaultHashBuilder,
    cas: AtomicU64,
    clock: Clock,
    /// memcached's `settings.oldest_live` (0 = no flush).
    oldest_live: AtomicU32,
    /// memcached's `settings.oldest_cas` (0 = none).
    oldest_cas: AtomicU64,
    global: GlobalCounters,
    per_class: LazyTable<ClassCounters>,
    gauges: LazyTable<ClassGauges>,
    hist: SizeHistogram,
    /// CLOCK hand position per class.
    hands: LazyTable<AtomicU64>,
    /// Size -> class for new items (rewritten by a re-class).
    lookup: reclass::Lookup,
    /// The classes new items go to.
    active: Mutex<reclass::Active>,
    /// See [`Store::cache_flush_requests`].
    flush_requests: AtomicU64,
    /// Rotates the slab a rebalance empties.
    rebalance_hand: AtomicU64,
    crawl_state: Mutex<CrawlState>,
    /// Readers: eviction walks; writer: releasing memory to the OS.
    walk_lock: RwLock<()>,
    /// Largest chunk size: the limit of an inline item and the segment size.
    max_chunk: usize,
    /// Slab moves: settings, counters, the policy's state.
    automove: automove::Automove,
    /// Most live chunks seen by maintenance since its last shrink.
    peak_chunks: AtomicU64,
    /// Set when the crawl shrank an index table: the next maintenance trims the heap.
    tables_shrunk: AtomicBool,
}

// The store is shared by worker threads as `Arc<Store>`.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
};

/// The index hash of the 24 tag bits (splitmix64's finalizer).
#[inline]
pub(crate) fn table_hash(h24: u32) -> u64 {
    let mut z = u64::from(h24).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps the top 12 bits of the tag hash to shards with geometric weights: shard `i` gets
/// a share proportional to `2^(i/n)`, so shard sizes spread evenly over one doubling.
///
/// A hashbrown table doubles when it is 7/8 full, so its fill swings between 44% and 88%;
/// equal shards all swing together (at a total just past a doubling, every table is
/// under half full). With sizes spread over a doubling, the shards resize at different
/// totals and the index's average fill stays near 63% whatever the item count.
pub(crate) fn shard_map(n: usize) -> Box<[u8]> {
    const SLOTS: usize = 1 << 12;
    let w: Vec<f64> = (0..n).map(|i| (i as f64 / n as f64).exp2()).collect();
    let total: f64 = w.iter().sum();
    let mut counts: Vec<usize> = w
        .iter()
        .map(|x| ((x / total * SLOTS as f64) as usize).max(1))
        .collect();
    // Hand out (or take back) the rounding remainder from the largest shards.
    let mut sum: usize = counts.iter().sum();
    let mut i = n;
    while sum != SLOTS {
        i = if i == 0 { n - 1 } else { i - 1 };
        if sum < SLOTS {
            counts[i] += 1;
            sum += 1;
        } else if counts[i] > 1 {
            counts[i] -= 1;
            sum -= 1;
        }
    }
    let mut map = Vec::with_capacity(SLOTS);
    for (shard, &c) in counts.iter().enumerate() {
        map.extend(std::iter::repeat_n(shard as u8, c));
    }
    map.into_boxed_slice()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// memcached's `safe_strtoull` applied to a value: leading whitespace, an optional sign,
/// digits, then whitespace or the end; overflow and negative numbers are refused.
pub fn parse_counter(value: &[u8]) -> Option<u64> {
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut i = 0;
    while i < value.len() && is_space(value[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < value.len() && (value[i] == b'+' || value[i] == b'-') {
        neg = value[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut n: u64 = 0;
    while i < value.len() && value[i].is_ascii_digit() {
        n = n.checked_mul(10)?.checked_add(u64::from(value[i] - b'0'))?;
        i += 1;
    }
    if i == start {
        // strtoull converted nothing (memcached's `str == endptr` check).
        return None;
    }
    if i < value.len() && !is_space(value[i]) {
        return None;
    }
    let n = if neg { n.wrapping_neg() } else { n };
    if (n as i64) < 0 && neg {
        return None;
    }
    Some(n)
}

impl Store {
    /// Builds a store: reserves the engine's address space (nothing is mapped yet).
    pub fn new(mut cfg: StoreConfig) -> Result<Self, StoreError> {
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
        let reserve = (cfg.memory_limit * 2).clamp(64 << 20, span);
        let all = cfg
            .classes
            .with_spares(&reclass::spare_sizes(&cfg.classes))
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let ecfg = EngineConfig::new(all)
            .memory_limit(cfg.memory_limit)
            .reserve_bytes(reserve)
            .huge_pages(cfg.huge_pages);
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
        let n = alloc.engine().classes().len();
        let shards = (0..cfg.shards)
            .map(|_| Padded(Mutex::new(Shard::default())))
            .collect();
        let hist_max = memcached_stored_size(KEY_MAX, cfg.item_size_max, 1, true);
        Ok(Store {
            shard_map: shard_map(cfg.shards),
            handle_shift,
            shards,
            hasher: hashbrown::DefaultHashBuilder::default(),
            cas: AtomicU64::new(0),
            clock: Clock::new(),
            oldest_live: AtomicU32::new(0),
            oldest_cas: AtomicU64::new(0),
            global: GlobalCounters::default(),
            per_class: LazyTable::new(n),
            gauges: LazyTable::new(n),
            hist: SizeHistogram::new(hist_max),
            hands: LazyTable::new(n),
            lookup: reclass::Lookup::new(alloc.engine().classes()),
            active: Mutex::new(reclass::Active::new(alloc.engine().classes())),
            flush_requests: AtomicU64::new(0),
            rebalance_hand: AtomicU64::new(0),
            crawl_state: Mutex::new(CrawlState::default()),
            walk_lock: RwLock::new(()),
            max_chunk,
            automove: automove::Automove::new(cfg.slab_reassign, cfg.slab_automove),
            peak_chunks: AtomicU64::new(0),
            tables_shrunk: AtomicBool::new(false),
            alloc,
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
        &self.alloc
    }

    /// The allocator's figures (engine accounting plus magazines).
    pub fn allocator_stats(&self) -> AllocatorStats {
        self.alloc.stats()
    }

    /// The slab engine underneath (its own stats, reservation).
    pub fn engine(&self) -> &SlabEngine {
        self.alloc.engine()
    }

    /// The server clock (memcached's `current_time`).
    #[inline]
    pub fn now(&self) -> u32 {
        self.clock.now()
    }

    /// The clock itself: `realtime()` conversions, the Unix start time, and `advance`
    /// for tests.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    // -----------------------------------------------------------------------------------
    // Internals shared with the protocol-specific operations.
    // -----------------------------------------------------------------------------------

    /// Hashes a key.
    #[inline]
    pub(crate) fn hash_key(&self, key: &[u8]) -> KeyHash {
        let h24 = tag_hash(self.hasher.hash_one(key));
        KeyHash {
            h24,
            th: table_hash(h24),
            shard: self.shard_of(h24),
        }
    }

    /// The shard of a key with these tag hash bits.
    #[inline]
    pub(crate) fn shard_of(&self, h24: u32) -> usize {
        usize::from(self.shard_map[(h24 >> 12) as usize])
    }

    /// Locks shard `i`.
    #[inline]
    pub(crate) fn lock_shard(&self, i: usize) -> MutexGuard<'_, Shard> {
        lock(&self.shards[i].0)
    }

    #[inline]
    fn ptr(&self, handle: u32) -> NonNull<u8> {
        self.alloc
            .engine()
            .ptr_at(unpack_handle(handle, self.handle_shift))
    }

    #[inline]
    fn handle_of(&self, p: NonNull<u8>) -> u32 {
        pack_handle(self.alloc.engine().offset_of(p.as_ptr()), self.handle_shift)
    }

    /// A view of the item at `handle`.
    ///
    /// The caller must hold the lock of the shard whose index holds `handle` (or own the
    /// chunk exclusively, e.g. a [`Prepared`] item not linked yet) for as long as it uses
    /// the view.
    #[inline]
    pub(crate) fn item(&self, handle: u32) -> ItemRef<'_> {
        // SAFETY: handles come from our index or from `prepare`, so they name chunks of
        // this engine holding a written item head; the caller holds the shard lock (or
        // owns the chunk), which is the view's contract.
        unsafe { ItemRef::new(self.ptr(handle), self.cfg.cas_enabled) }
    }

    /// The class of the chunk an item head occupies.
    #[inline]
    pub(crate) fn class_of(&self, handle: u32) -> ClassId {
        // A linked or prepared item's slab belongs to its class for as long as the item
        // holds the chunk (the class may be retired since: see `reclass`).
        let class = self
            .alloc
            .engine()
            .slab_class_of(self.ptr(handle).as_ptr())
            .expect("items live in class chunks");
        debug_assert!(self.classes().chunk_size(class) >= self.item(handle).head_size());
        class
    }

    /// A fresh CAS unique (0 with `-C`).
    #[inline]
    pub(crate) fn next_cas(&self) -> u64 {
        if self.cfg.cas_enabled {
            self.cas.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            0
        }
    }

    /// Whether a live item has expired or been flushed at `now`.
    pub(crate) fn is_dead(&self, it: &ItemRef<'_>, now: u32) -> Option<Dead> {
        let exp = it.exptime();
        if exp != 0 && exp <= now {
            return Some(Dead::Expired);
        }
        let ol = self.oldest_live.load(Ordering::Relaxed);
        if ol == 0 || ol > now {
            return None;
        }
        let oc = self.oldest_cas.load(Ordering::Relaxed);
        let cas = it.cas();
        if widen_access(now, it.access_low()) <= ol || (oc != 0 && cas != 0 && cas < oc) {
            return Some(Dead::Flushed);
        }
        None
    }

    /// Looks a key up in a locked shard; an expired or flushed item is unlinked and its
    /// handle pushed onto `garbage`.
    pub(crate) fn find_live(
        &self,
        shard: &mut Shard,
        kh: &KeyHash,
        key: &[u8],
        now: u32,
        garbage: &mut Garbage,
    ) -> Lookup {
        let Some(&h) = shard.table.find(kh.th, |&h| self.item(h).key() == key) else {
            return Lookup::Miss;
        };
        let it = self.item(h);
        match self.is_dead(&it, now) {
            None => Lookup::Hit(h),
            Some(d) => {
                let c = &self.per_class[self.class_of(h).index()];
                bump(&c.reclaimed);
                if it.bits() & FETCHED == 0 {
                    bump(&c.expired_unfetched);
                }
                self.unlink_locked(shard, kh.th, h);
                garbage.push(h);
                Lookup::Dead(d)
            }
        }
    }

    /// Removes `handle` from a locked shard and clears its `LIVE` bit; the caller frees it
    /// with [`free_item`](Self::free_item) after unlocking.
    pub(crate) fn unlink_locked(&self, shard: &mut Shard, th: u64, handle: u32) {
        let e = shard
            .table
            .find_entry(th, |&h| h == handle)
            .expect("unlink of a linked item");
        e.remove();
        let it = self.item(handle);
        it.clear_bits(LIVE);
        let size = it.stored_size();
        let g = &self.gauges[self.class_of(handle).index()];
        g.number.fetch_sub(1, Ordering::Relaxed);
        g.bytes.fetch_sub(size as u64, Ordering::Relaxed);
        self.hist.remove(size);
    }

    /// Links a prepared item into a locked shard, in place of `old` if given (which is
    /// then unlinked; the caller frees it after unlocking). Sets the CAS unique to `cas`.
    pub(crate) fn link_locked(
        &self,
        shard: &mut Shard,
        kh: &KeyHash,
        new: u32,
        old: Option<u32>,
        cas: u64,
    ) {
        let it = self.item(new);
        it.set_cas(cas);
        it.set_bits(LIVE);
        let size = it.stored_size();
        let g = &self.gauges[self.class_of(new).index()];
        g.number.fetch_add(1, Ordering::Relaxed);
        g.bytes.fetch_add(size as u64, Ordering::Relaxed);
        self.hist.add(size);
        bump(&self.global.total_items);
        if let Some(o) = old {
            self.unlink_locked(shard, kh.th, o);
        }
        shard
            .table
            .insert_unique(kh.th, new, |&h| table_hash(self.item(h).tag() >> 8));
    }

    /// Frees an unlinked item's chunks.
    pub(crate) fn free_item(&self, handle: u32) {
        let it = self.item(handle);
        debug_assert_eq!(it.bits() & LIVE, 0);
        if it.is_chained() {
            for i in 0..it.vlen_field() {
                let seg = self.ptr(it.segment(i));
                tag_atomic(seg).store(0, Ordering::Release);
                // SAFETY: the segment belongs to this unlinked item, which nobody else can
                // reach any more (it left the index under the shard lock), and it is freed
                // exactly once, here.
                unsafe { self.free_chunk(seg) };
            }
        }
        let p = it.ptr();
        // SAFETY: as above for the head chunk.
        unsafe { self.free_chunk(p) };
    }

    /// Gives a chunk back to this thread's magazine.
    ///
    /// # Safety
    /// `p` must be a chunk this store allocated and nobody uses any more; it is freed once.
    unsafe fn free_chunk(&self, p: NonNull<u8>) {
        let class = self
            .alloc
            .engine()
            .class_of(p.as_ptr())
            .expect("a chunk of the engine");
        self.gauges[class.index()]
            .chunks
            .fetch_sub(1, Ordering::Relaxed);
        // SAFETY: forwarded from the caller; `class` is the chunk's class.
        unsafe { self.alloc.dealloc_class(p, class) };
    }

    /// Frees unlinked items' chunks straight into the engine, one batch per class, past
    /// every thread's magazines: what the crawl reclaims (a flush, mass expiry) is not
    /// about to be reused by this thread, and chunks parked in a magazine would keep their
    /// slabs from emptying. Empties `handles`.
    fn free_items_direct(&self, handles: &mut Vec<u32>) {
        let engine = self.alloc.engine();
        let mut chunks: Vec<(ClassId, NonNull<u8>)> = Vec::with_capacity(handles.len());
        let class_of = |p: NonNull<u8>| engine.class_of(p.as_ptr()).expect("a chunk of the engine");
        for h in handles.drain(..) {
            let it = self.item(h);
            debug_assert_eq!(it.bits() & LIVE, 0);
            if it.is_chained() {
                for i in 0..it.vlen_field() {
                    let seg = self.ptr(it.segment(i));
                    tag_atomic(seg).store(0, Ordering::Release);
                    chunks.push((class_of(seg), seg));
                }
            }
            chunks.push((class_of(it.ptr()), it.ptr()));
        }
        chunks.sort_unstable_by_key(|&(c, p)| (c, p));
        let mut ptrs = Vec::new();
        for run in chunks.chunk_by(|a, b| a.0 == b.0) {
            let class = run[0].0;
            ptrs.clear();
            ptrs.extend(run.iter().map(|&(_, p)| p));
            self.gauges[class.index()]
                .chunks
                .fetch_sub(ptrs.len() as u64, Ordering::Relaxed);
            // SAFETY: every chunk belongs to an item that was unlinked under its shard lock
            // (nobody can reach it any more) and is listed once: a head, or a segment of
            // exactly one chain; all of `run` are of `class`.
            unsafe { engine.free_batch(class, &ptrs) };
        }
    }

    /// Looks `key` up under its shard's lock and runs `f` there with the live item's handle
    /// (`None` on a miss). What the lookup (for an expired item) or `f` leaves in
    /// [`Locked::garbage`] is freed once the lock is released.
    pub(crate) fn with_live<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&mut Locked<'_>, Option<u32>) -> R,
    ) -> R {
        let kh = self.hash_key(key);
        let now = self.now();
        let mut garbage = Garbage::default();
        let mut shard = self.lock_shard(kh.shard);
        let found = match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
            Lookup::Hit(h) => Some(h),
            _ => None,
        };
        let mut locked = Locked {
            shard: &mut shard,
            kh: &kh,
            now,
            garbage: &mut garbage,
        };
        let r = f(&mut locked, found);
        drop(shard);
        self.free_garbage(garbage);
        r
    }

    /// Unlinks the live item `h` found by [`with_live`](Self::with_live); it is freed after
    /// the lock is released.
    pub(crate) fn unlink_in(&self, l: &mut Locked<'_>, h: u32) {
        self.unlink_locked(l.shard, l.kh.th, h);
        l.garbage.push(h);
    }

    fn free_garbage(&self, g: Garbage) {
        for h in g.slots.into_iter().flatten().chain(g.more) {
            self.free_item(h);
        }
    }

    /// Allocates a chunk of `class`, evicting from the class when memory is full.
    fn alloc_chunk(&self, class: ClassId) -> Option<NonNull<u8>> {
        for _ in 0..EVICT_TRIES {
            match self.alloc.alloc_class(class) {
                Ok(p) => {
                    self.gauges[class.index()]
                        .chunks
                        .fetch_add(1, Ordering::Relaxed);
                    return Some(p);
                }
                Err(_) if self.cfg.evictions => {
                    // A few at a time, so the next allocations come from the magazine.
                    // A class with nothing to evict takes a slab from another class.
                    if self.evict(class, EVICT_BATCH) == 0 && !self.rebalance(class) {
                        return None;
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Allocates the chunks of a new item and writes its header and key; the value is
    /// written with [`write_value`](Self::write_value). `None` when memory cannot be had
    /// (nothing stays allocated).
    pub(crate) fn prepare(
        &self,
        key: &[u8],
        flags: u32,
        exptime: u32,
        vlen: usize,
        kh: &KeyHash,
        now: u32,
    ) -> Option<Prepared> {
        let cas = self.cfg.cas_enabled;
        let size = stored_size(key.len(), vlen, flags, cas);
        let mut h = NewHeader {
            exptime,
            vlen: vlen as u32,
            klen: key.len() as u8,
            bits: 0,
            hash24: kh.h24,
            access: now,
            cas: 0,
            flags,
        };
        if size <= self.max_chunk && vlen <= item::INLINE_VALUE_MAX {
            let class = self.class_for(size)?;
            let p = self.alloc_chunk(class)?;
            // SAFETY: the chunk was just allocated for us (nobody else accesses it but the
            // evictor's atomic tag reads), it is 8-aligned and `size` bytes fit in it.
            unsafe { item::write_header(p, cas, &h, key) };
            return Some(Prepared {
                head: self.handle_of(p),
                segs: Vec::new(),
                vlen,
            });
        }
        let payload = self.max_chunk - SEGMENT_DATA;
        let nseg = vlen.div_ceil(payload);
        let head_size = key_offset(cas, flags != 0) + key.len() + 4 + 4 * nseg;
        let head_class = self.class_for(head_size)?;
        let mut segs = Vec::with_capacity(nseg);
        let mut left = vlen;
        let release = |segs: &Vec<u32>| {
            for &s in segs {
                let p = self.ptr(s);
                tag_atomic(p).store(0, Ordering::Release);
                // SAFETY: allocated above by this call and not published anywhere.
                unsafe { self.free_chunk(p) };
            }
        };
        while left > 0 {
            let n = left.min(payload);
            let Some(p) = self
                .class_for(SEGMENT_DATA + n)
                .and_then(|c| self.alloc_chunk(c))
            else {
                release(&segs);
                return None;
            };
            tag_atomic(p).store(SEGMENT | (kh.h24 << 8), Ordering::Release);
            segs.push(self.handle_of(p));
            left -= n;
        }
        let Some(p) = self.alloc_chunk(head_class) else {
            release(&segs);
            return None;
        };
        h.vlen = nseg as u32;
        h.bits = CHAINED;
        // SAFETY: freshly allocated head chunk of `head_size` bytes or more.
        unsafe { item::write_header(p, cas, &h, key) };
        let body = key_offset(cas, flags != 0) + key.len();
        // SAFETY: the chain descriptor (length and `nseg` handles) fits in `head_size`.
        unsafe {
            let d = p.as_ptr().add(body);
            d.cast::<u32>().write_unaligned(vlen as u32);
            for (i, &s) in segs.iter().enumerate() {
                d.add(4 + 4 * i).cast::<u32>().write_unaligned(s);
            }
        }
        Some(Prepared {
            head: self.handle_of(p),
            segs,
            vlen,
        })
    }

    /// Writes the concatenation of `pieces` (exactly the prepared length) as the value.
    pub(crate) fn write_value(&self, prep: &Prepared, pieces: &[&[u8]]) {
        debug_assert_eq!(pieces.iter().map(|p| p.len()).sum::<usize>(), prep.vlen);
        let single: [(NonNull<u8>, usize); 1];
        let chained: Vec<(NonNull<u8>, usize)>;
        let dst: &[(NonNull<u8>, usize)] = if prep.segs.is_empty() {
            let it = self.item(prep.head);
            // SAFETY: the inline value area follows the key inside the head chunk.
            let p = unsafe { it.ptr().add(it.body_off()) };
            single = [(p, prep.vlen)];
            &single[..]
        } else {
            let payload = self.max_chunk - SEGMENT_DATA;
            let mut left = prep.vlen;
            chained = prep
                .segs
                .iter()
                .map(|&s| {
                    let n = left.min(payload);
                    left -= n;
                    // SAFETY: segment data starts at SEGMENT_DATA inside the chunk.
                    (unsafe { self.ptr(s).add(SEGMENT_DATA) }, n)
                })
                .collect();
            &chained[..]
        };
        let mut pi = 0;
        let mut po = 0;
        for &(d, n) in dst {
            let mut done = 0;
            while done < n {
                while pieces[pi].len() == po {
                    pi += 1;
                    po = 0;
                }
                let k = (n - done).min(pieces[pi].len() - po);
                // SAFETY: `d + done .. + k` lies in a region of the prepared item, which
                // this thread owns; the source is a caller slice that cannot overlap it
                // (a different chunk, or caller memory).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        pieces[pi].as_ptr().add(po),
                        d.as_ptr().add(done),
                        k,
                    )
                };
                done += k;
                po += k;
            }
        }
    }

    /// Frees a prepared item that was not linked.
    pub(crate) fn discard(&self, prep: Prepared) {
        self.free_item(prep.head);
    }

    /// The value of a live item (the caller holds its shard lock): borrowed from the chunk
    /// when inline, assembled when chained, in this thread's reused buffer (see
    /// [`Value`]).
    pub(crate) fn value_of<'a>(&self, it: &ItemRef<'a>) -> Value<'a> {
        if !it.is_chained() {
            return Value::Inline(it.inline_value());
        }
        let mut out = ASSEMBLED.take();
        out.clear();
        out.reserve(it.chained_len());
        self.value_parts(it, |part| out.extend_from_slice(part));
        Value::Assembled(out)
    }

    /// Calls `f` with the value of a live item (the caller holds its shard lock) in order:
    /// the inline value, or each segment's part of a chained one.
    fn value_parts(&self, it: &ItemRef<'_>, mut f: impl FnMut(&[u8])) {
        if !it.is_chained() {
            f(it.inline_value());
            return;
        }
        let payload = self.max_chunk - SEGMENT_DATA;
        let mut left = it.chained_len();
        for i in 0..it.vlen_field() {
            let n = left.min(payload);
            // SAFETY: segment `i` of a live item holds `n` value bytes from SEGMENT_DATA;
            // the caller's shard lock keeps it from being freed or written.
            let s = unsafe {
                std::slice::from_raw_parts(self.ptr(it.segment(i)).as_ptr().add(SEGMENT_DATA), n)
            };
            f(s);
            left -= n;
        }
    }

    fn view<'a>(&self, it: &ItemRef<'a>, value: &'a [u8], prev_access: u32) -> ItemView<'a> {
        let bits = it.bits();
        ItemView {
            key: it.key(),
            value,
            flags: it.flags(),
            cas: it.cas(),
            exptime: it.exptime(),
            last_access: prev_access,
            fetched: bits & FETCHED != 0,
            stale: bits & STALE != 0,
            win_token_sent: bits & WIN_SENT != 0,
        }
    }

    // -----------------------------------------------------------------------------------
    // The public operations.
    // -----------------------------------------------------------------------------------

    /// Looks `key` up; on a hit calls `f` with the item under the shard lock (copy the
    /// value out inside `f`) and returns true. Sets the item's CLOCK bit and counts
    /// `get_hits`/`get_misses`.
    pub fn get(&self, key: &[u8], f: impl FnOnce(&ItemView<'_>)) -> bool {
        self.get_inner(key, None, f)
    }

    /// `gat`/`gats`: like [`get`](Self::get), and sets the expiration time first.
    pub fn get_and_touch(&self, key: &[u8], exptime: i64, f: impl FnOnce(&ItemView<'_>)) -> bool {
        bump(&self.global.cmd_touch);
        self.get_inner(key, Some(exptime), f)
    }

    fn get_inner(&self, key: &[u8], touch: Option<i64>, f: impl FnOnce(&ItemView<'_>)) -> bool {
        self.get_item(key, touch, |it, prev| {
            let value = self.value_of(it);
            f(&self.view(it, &value, prev));
        })
    }

    /// A text `get`/`gets` (`gat`/`gats` with `touch`): looks `key` up as
    /// [`get`](Self::get) does (the same counters and CLOCK bit); on a hit calls `head`
    /// with the item's flags, CAS and value length, then appends the value to `out`
    /// straight from its chunks, without assembling a chained value first.
    pub fn get_append(
        &self,
        key: &[u8],
        touch: Option<i64>,
        out: &mut Vec<u8>,
        head: impl FnOnce(&ValueHead, &mut Vec<u8>),
    ) -> bool {
        if touch.is_some() {
            bump(&self.global.cmd_touch);
        }
        self.get_item(key, touch, |it, _| {
            let h = ValueHead {
                flags: it.flags(),
                cas: it.cas(),
                len: it.value_len(),
            };
            head(&h, out);
            out.reserve(h.len);
            self.value_parts(it, |part| out.extend_from_slice(part));
        })
    }

    /// Looks `key` up, setting the expiration time first with `touch`; on a hit calls `f`
    /// with the item under the shard lock and the time of its previous access. Counts
    /// hits, misses and touches (not `cmd_touch`).
    fn get_item(&self, key: &[u8], touch: Option<i64>, f: impl FnOnce(&ItemRef<'_>, u32)) -> bool {
        let kh = self.hash_key(key);
        let now = self.now();
        let mut garbage = Garbage::default();
        let mut shard = self.lock_shard(kh.shard);
        let hit = match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
            Lookup::Hit(h) => {
                let it = self.item(h);
                let c = &self.per_class[self.class_of(h).index()];
                bump(&c.get_hits);
                if let Some(e) = touch {
                    it.set_exptime(self.clock.realtime_at(e, now));
                    bump(&c.touch_hits);
                }
                let prev = widen_access(now, it.access_low());
                f(&it, prev);
                it.set_access(now);
                it.set_bits(REF | FETCHED);
                true
            }
            other => {
                bump(&self.global.get_misses);
                match other {
                    Lookup::Dead(Dead::Expired) => bump(&self.global.get_expired),
                    Lookup::Dead(Dead::Flushed) => bump(&self.global.get_flushed),
                    _ => {}
                }
                if touch.is_some() {
                    bump(&self.global.touch_misses);
                }
                false
            }
        };
        drop(shard);
        self.free_garbage(garbage);
        hit
    }

    /// Whether an item of this key and value length is over `-I` (memcached's accounting).
    pub fn too_large(&self, key_len: usize, value_len: usize, flags: u32) -> bool {
        memcached_stored_size(key_len, value_len, flags, self.cfg.cas_enabled)
            > self.cfg.item_size_max
    }

    /// Stores a value by `mode` (memcached's `set`/`add`/`replace`/`append`/`prepend`/
    /// `cas`). `exptime` is the client's raw value.
    pub fn store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        value: &[u8],
    ) -> StoreOutcome {
        self.store_checked(mode, key, flags, exptime, value, None).0
    }

    /// [`store`](Self::store), also returning the CAS unique the stored item got (0 unless
    /// `Stored`), assigned under the key's lock, so that a concurrent writer cannot slip in
    /// between the store and the CAS the client is told. `expect_cas` applies to `Append` and
    /// `Prepend` (the binary and meta protocols let them carry a CAS): the item's CAS is
    /// compared under the same lock that links the new value, and a mismatch is `Exists`.
    pub fn store_checked(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        value: &[u8],
        expect_cas: Option<u64>,
    ) -> (StoreOutcome, u64) {
        if key.is_empty() || key.len() > KEY_MAX {
            return (StoreOutcome::NotStored, 0);
        }
        if matches!(mode, StoreMode::Append | StoreMode::Prepend) {
            return self.concat(mode == StoreMode::Append, key, value, expect_cas);
        }
        let pending = match self.begin_store(mode, key, flags, exptime, value.len()) {
            Ok(p) => p,
            Err(outcome) => return (outcome, 0),
        };
        self.write_value(&pending.prep, &[value]);
        self.finish_store(mode, key, pending)
    }

    /// The first half of [`store_checked`](Self::store_checked) for `Set`, `Add`,
    /// `Replace` and `Cas` (not `Append`/`Prepend`): allocates the item for a value of
    /// `vlen` bytes, as memcached does when it reads a storage command's line, so that a
    /// value being received is held inside `-m`. Fails with `TooLarge` or `OutOfMemory`
    /// (a `Set` then also removes the key's old value), or `NotStored` for a bad key; the
    /// failure is counted as `store_checked` counts it.
    ///
    /// The value is then written with [`write_pending`](Self::write_pending) and the item
    /// linked by [`finish_store`](Self::finish_store) or freed by
    /// [`abandon_store`](Self::abandon_store). Until then it is in no index: no reader
    /// sees it and no eviction or slab move takes it (a slab move counts its chunks busy).
    pub(crate) fn begin_store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        vlen: usize,
    ) -> Result<Pending, StoreOutcome> {
        debug_assert!(!matches!(mode, StoreMode::Append | StoreMode::Prepend));
        if key.is_empty() || key.len() > KEY_MAX {
            return Err(StoreOutcome::NotStored);
        }
        let kh = self.hash_key(key);
        if self.too_large(key.len(), vlen, flags) {
            if mode == StoreMode::Set {
                self.remove_quiet(key, &kh);
            }
            return Err(StoreOutcome::TooLarge);
        }
        let now = self.now();
        let exp = self.clock.realtime_at(exptime, now);
        let Some(prep) = self.prepare(key, flags, exp, vlen, &kh, now) else {
            if let Some(c) = self.class_for(
                stored_size(key.len(), vlen, flags, self.cfg.cas_enabled).min(self.max_chunk),
            ) {
                bump(&self.per_class[c.index()].outofmemory);
                bump(&self.per_class[c.index()].cmd_set);
            }
            if mode == StoreMode::Set {
                self.remove_quiet(key, &kh);
            }
            return Err(StoreOutcome::OutOfMemory);
        };
        Ok(Pending { prep, kh })
    }

    /// Copies `data` into a pending item's value at byte `offset` (`offset + data.len()`
    /// at most the value length given to [`begin_store`](Self::begin_store)).
    pub(crate) fn write_pending(&self, p: &Pending, offset: usize, data: &[u8]) {
        let prep = &p.prep;
        assert!(offset + data.len() <= prep.vlen, "write past the value");
        let mut off = offset;
        let mut src = data;
        while !src.is_empty() {
            let (dst, room) = if prep.segs.is_empty() {
                let it = self.item(prep.head);
                // SAFETY: the inline value area (`vlen` bytes) follows the key inside the
                // head chunk.
                (
                    unsafe { it.ptr().add(it.body_off() + off) },
                    prep.vlen - off,
                )
            } else {
                let payload = self.max_chunk - SEGMENT_DATA;
                let (i, within) = (off / payload, off % payload);
                let seg_len = (prep.vlen - i * payload).min(payload);
                // SAFETY: segment `i` holds `seg_len` value bytes from SEGMENT_DATA.
                let p = unsafe { self.ptr(prep.segs[i]).add(SEGMENT_DATA + within) };
                (p, seg_len - within)
            };
            let k = room.min(src.len());
            // SAFETY: `dst .. dst + k` lies inside the value area of the pending item,
            // which this thread owns until it is linked or freed; `src` is caller memory,
            // not part of any chunk of this item.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_ptr(), k) };
            off += k;
            src = &src[k..];
        }
    }

    /// The unwritten part of a pending item's value from byte `offset`, as up to `max`
    /// regions in order (the inline value area, or what is left of each segment), for a
    /// caller that reads the value into place instead of copying it with
    /// [`write_pending`](Self::write_pending). Empty when `offset` is the value length.
    pub(crate) fn pending_rooms<'a>(
        &'a self,
        p: &'a mut Pending,
        offset: usize,
        max: usize,
    ) -> Vec<&'a mut [u8]> {
        let prep = &p.prep;
        assert!(offset <= prep.vlen, "offset past the value");
        let mut rooms = Vec::new();
        let mut off = offset;
        while off < prep.vlen && rooms.len() < max {
            let (dst, room) = if prep.segs.is_empty() {
                let it = self.item(prep.head);
                // SAFETY: the inline value area (`vlen` bytes) follows the key inside the
                // head chunk.
                (
                    unsafe { it.ptr().add(it.body_off() + off) },
                    prep.vlen - off,
                )
            } else {
                let payload = self.max_chunk - SEGMENT_DATA;
                let (i, within) = (off / payload, off % payload);
                let seg_len = (prep.vlen - i * payload).min(payload);
                // SAFETY: segment `i` holds `seg_len` value bytes from SEGMENT_DATA.
                let p = unsafe { self.ptr(prep.segs[i]).add(SEGMENT_DATA + within) };
                (p, seg_len - within)
            };
            // SAFETY: 1. `dst .. dst + room` lies inside the value area of the pending
            // item, and successive regions do not overlap (each starts where the last
            // ended). 2. The item's chunks belong to the holder of the `Pending`, borrowed
            // exclusively for 'a: no other reference to them exists (unlinked, no reader,
            // eviction or slab move touches them), and they stay allocated until the
            // `Pending` is consumed by `finish_store` or `abandon_store`, which the borrow
            // excludes. 3. Chunk memory is mapped and initialized (zeroed by the OS or
            // holding old bytes).
            rooms.push(unsafe { std::slice::from_raw_parts_mut(dst.as_ptr(), room) });
            off += room;
        }
        rooms
    }

    /// The second half of [`store_checked`](Self::store_checked): checks `mode` (add,
    /// replace, cas) under the key's lock and links the pending item, whose value must
    /// be complete, or frees it. Returns the outcome and the CAS unique assigned (0
    /// unless `Stored`).
    pub(crate) fn finish_store(
        &self,
        mode: StoreMode,
        key: &[u8],
        pending: Pending,
    ) -> (StoreOutcome, u64) {
        let Pending { prep, kh } = pending;
        let now = self.now();
        let class = self.class_of(prep.head);
        let c = &self.per_class[class.index()];
        bump(&c.cmd_set);
        let mut garbage = Garbage::default();
        let mut shard = self.lock_shard(kh.shard);
        let found = match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
            Lookup::Hit(h) => Some(h),
            _ => None,
        };
        let outcome = match (mode, found) {
            (StoreMode::Add, Some(h)) => {
                self.item(h).set_bits(REF);
                StoreOutcome::NotStored
            }
            (StoreMode::Replace, None) => StoreOutcome::NotStored,
            (StoreMode::Cas(_), None) => {
                bump(&self.global.cas_misses);
                StoreOutcome::NotFound
            }
            (StoreMode::Cas(want), Some(h)) if self.item(h).cas() != want => {
                bump(&self.per_class[self.class_of(h).index()].cas_badval);
                StoreOutcome::Exists
            }
            _ => StoreOutcome::Stored,
        };
        let mut new_cas = 0;
        let keep = if outcome == StoreOutcome::Stored {
            if let (StoreMode::Cas(_), Some(h)) = (mode, found) {
                bump(&self.per_class[self.class_of(h).index()].cas_hits);
            }
            new_cas = self.next_cas();
            // As memcached's link: the access time is the store's, also for a value that
            // took a while to arrive (a `flush_all` meanwhile does not hide it).
            self.item(prep.head).set_access(now);
            self.link_locked(&mut shard, &kh, prep.head, found, new_cas);
            if let Some(o) = found {
                garbage.push(o);
            }
            None
        } else {
            Some(prep)
        };
        drop(shard);
        if let Some(p) = keep {
            self.discard(p);
        }
        self.free_garbage(garbage);
        (outcome, new_cas)
    }

    /// Frees a pending item that will not be linked (a bad data chunk, a connection
    /// closed before its value arrived).
    pub(crate) fn abandon_store(&self, pending: Pending) {
        self.discard(pending.prep);
    }

    fn remove_quiet(&self, key: &[u8], kh: &KeyHash) {
        let mut garbage = Garbage::default();
        let mut shard = self.lock_shard(kh.shard);
        if let Lookup::Hit(h) = self.find_live(&mut shard, kh, key, self.now(), &mut garbage) {
            self.unlink_locked(&mut shard, kh.th, h);
            garbage.push(h);
        }
        drop(shard);
        self.free_garbage(garbage);
    }

    fn concat(
        &self,
        append: bool,
        key: &[u8],
        data: &[u8],
        expect_cas: Option<u64>,
    ) -> (StoreOutcome, u64) {
        let kh = self.hash_key(key);
        loop {
            let now = self.now();
            let mut garbage = Garbage::default();
            let mut shard = self.lock_shard(kh.shard);
            let (old, old_len, old_cas, flags, exptime) =
                match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
                    Lookup::Hit(h) => {
                        let it = self.item(h);
                        (h, it.value_len(), it.cas(), it.flags(), it.exptime())
                    }
                    _ => {
                        drop(shard);
                        self.free_garbage(garbage);
                        return (StoreOutcome::NotStored, 0);
                    }
                };
            if expect_cas.is_some_and(|c| c != old_cas) {
                bump(&self.per_class[self.class_of(old).index()].cas_badval);
                drop(shard);
                self.free_garbage(garbage);
                return (StoreOutcome::Exists, 0);
            }
            drop(shard);
            self.free_garbage(garbage);
            let new_len = old_len + data.len();
            let class = self.class_of(old);
            bump(&self.per_class[class.index()].cmd_set);
            if self.too_large(key.len(), new_len, flags) {
                bump(&self.per_class[class.index()].outofmemory);
                return (StoreOutcome::OutOfMemory, 0);
            }
            let Some(prep) = self.prepare(key, flags, exptime, new_len, &kh, now) else {
                bump(&self.per_class[class.index()].outofmemory);
                return (StoreOutcome::OutOfMemory, 0);
            };
            let mut garbage = Garbage::default();
            let mut shard = self.lock_shard(kh.shard);
            let same = match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
                // The same item, unchanged: a chunk reused by a newer item of the same
                // length has another CAS.
                Lookup::Hit(h) => {
                    h == old && self.item(h).value_len() == old_len && self.item(h).cas() == old_cas
                }
                _ => false,
            };
            if !same {
                drop(shard);
                self.discard(prep);
                self.free_garbage(garbage);
                continue;
            }
            {
                let it = self.item(old);
                let v = self.value_of(&it);
                if append {
                    self.write_value(&prep, &[&v, data]);
                } else {
                    self.write_value(&prep, &[data, &v]);
                }
            }
            let cas = self.next_cas();
            self.link_locked(&mut shard, &kh, prep.head, Some(old), cas);
            garbage.push(old);
            drop(shard);
            self.free_garbage(garbage);
            return (StoreOutcome::Stored, cas);
        }
    }

    /// Deletes `key`; true if it was there.
    pub fn delete(&self, key: &[u8]) -> bool {
        self.with_live(key, |l, found| match found {
            Some(h) => {
                bump(&self.per_class[self.class_of(h).index()].delete_hits);
                self.unlink_in(l, h);
                true
            }
            None => {
                bump(&self.global.delete_misses);
                false
            }
        })
    }

    /// `incr`/`decr` with memcached's semantics: incr wraps at 2^64, decr floors at 0;
    /// the value must be a decimal number; a shorter result is padded with spaces in
    /// place (as memcached does), a longer one gets a new chunk; flags and expiration are
    /// kept; a new CAS unique is assigned.
    pub fn incr_decr(&self, key: &[u8], delta: u64, incr: bool) -> IncrOutcome {
        let kh = self.hash_key(key);
        let miss = |s: &Self| {
            bump(if incr {
                &s.global.incr_misses
            } else {
                &s.global.decr_misses
            });
            IncrOutcome::NotFound
        };
        loop {
            let now = self.now();
            let mut garbage = Garbage::default();
            let mut shard = self.lock_shard(kh.shard);
            let h = match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
                Lookup::Hit(h) => h,
                _ => {
                    drop(shard);
                    self.free_garbage(garbage);
                    return miss(self);
                }
            };
            let it = self.item(h);
            if it.is_chained() || it.value_len() == 0 {
                return IncrOutcome::NonNumeric;
            }
            let Some(v) = parse_counter(it.inline_value()) else {
                return IncrOutcome::NonNumeric;
            };
            let new = if incr {
                v.wrapping_add(delta)
            } else {
                v.saturating_sub(delta)
            };
            let mut buf = [0u8; 20];
            let digits = fmt_u64(new, &mut buf);
            let c = &self.per_class[self.class_of(h).index()];
            if digits.len() <= it.value_len() {
                let dst = it.inline_value_mut();
                dst[..digits.len()].copy_from_slice(digits);
                dst[digits.len()..].fill(b' ');
                it.set_cas(self.next_cas());
                bump(if incr { &c.incr_hits } else { &c.decr_hits });
                drop(shard);
                self.free_garbage(garbage);
                return IncrOutcome::Value(new);
            }
            let (flags, exptime) = (it.flags(), it.exptime());
            drop(shard);
            self.free_garbage(garbage);
            let Some(prep) = self.prepare(key, flags, exptime, digits.len(), &kh, now) else {
                return IncrOutcome::OutOfMemory;
            };
            let mut garbage = Garbage::default();
            let mut shard = self.lock_shard(kh.shard);
            let still = match self.find_live(&mut shard, &kh, key, now, &mut garbage) {
                Lookup::Hit(h2) if h2 == h => {
                    let it = self.item(h);
                    !it.is_chained() && parse_counter(it.inline_value()) == Some(v)
                }
                _ => false,
            };
            if !still {
                drop(shard);
                self.discard(prep);
                self.free_garbage(garbage);
                continue;
            }
            self.write_value(&prep, &[digits]);
            bump(if incr { &c.incr_hits } else { &c.decr_hits });
            let cas = self.next_cas();
            self.link_locked(&mut shard, &kh, prep.head, Some(h), cas);
            garbage.push(h);
            drop(shard);
            self.free_garbage(garbage);
            return IncrOutcome::Value(new);
        }
    }

    /// Sets a new expiration time; true if the item was there.
    pub fn touch(&self, key: &[u8], exptime: i64) -> bool {
        bump(&self.global.cmd_touch);
        self.with_live(key, |l, found| match found {
            Some(h) => {
                let it = self.item(h);
                it.set_exptime(self.clock.realtime_at(exptime, l.now));
                it.set_access(l.now);
                it.set_bits(REF);
                bump(&self.per_class[self.class_of(h).index()].touch_hits);
                true
            }
            None => {
                bump(&self.global.touch_misses);
                false
            }
        })
    }

    /// `flush_all [delay]` with memcached 1.6's semantics: items last accessed (or, with
    /// CAS, stored) before the flush time are invalid from then on; items stored after it
    /// survive. An immediate flush also unlinks the flushed items and frees their memory.
    pub fn flush_all(&self, delay: i64) {
        bump(&self.global.cmd_flush);
        let now = self.now();
        let new_oldest = if delay > 0 {
            self.clock.realtime_at(delay, now)
        } else {
            now
        };
        if self.cfg.cas_enabled {
            let ol = new_oldest.saturating_sub(1);
            self.oldest_live.store(ol, Ordering::Relaxed);
            if ol <= now {
                self.oldest_cas.store(self.next_cas(), Ordering::Relaxed);
            }
        } else {
            self.oldest_live.store(new_oldest, Ordering::Relaxed);
        }
        if self.oldest_live.load(Ordering::Relaxed) <= now {
            self.crawl(false);
            // Demand fell: the memory goes back to the OS now, not a reap interval later.
            let live: u64 = self.gauges.iter().map(|(_, g)| get(&g.chunks)).sum();
            self.give_back(true, live);
        }
    }

    /// Unlinks the expired or flushed items of shards `range`; returns how many. With
    /// `count`, they count as `crawler_reclaimed`. Lowers `oldest[class]` to the oldest
    /// access time seen, and shrinks tables that became mostly empty.
    fn crawl_shards(&self, range: std::ops::Range<usize>, count: bool, oldest: &mut [u32]) -> u64 {
        let now = self.now();
        let mut total = 0;
        let mut dead = Vec::new();
        for i in range {
            let mut shard = self.lock_shard(i);
            shard.table.retain(|&mut h| {
                let it = self.item(h);
                let class = self.class_of(h).index();
                if self.is_dead(&it, now).is_none() {
                    let mut la = widen_access(now, it.access_low());
                    if now - la > ACCESS_CAP {
                        // Keep the 16-bit access time inside its window: an item idle
                        // longer than this reads as idle this long (see `ACCESS_CAP`).
                        la = now - ACCESS_CAP;
                        it.set_access(la);
                    }
                    oldest[class] = oldest[class].min(la);
                    return true;
                }
                let c = &self.per_class[class];
                bump(&c.reclaimed);
                if count {
                    bump(&c.crawler_reclaimed);
                }
                if it.bits() & FETCHED == 0 {
                    bump(&c.expired_unfetched);
                }
                it.clear_bits(LIVE);
                let size = it.stored_size();
                let g = &self.gauges[class];
                g.number.fetch_sub(1, Ordering::Relaxed);
                g.bytes.fetch_sub(size as u64, Ordering::Relaxed);
                self.hist.remove(size);
                dead.push(h);
                false
            });
            let (len, cap) = (shard.table.len(), shard.table.capacity());
            if (cap > 1024 && len * 4 < cap) || (len == 0 && cap > 0) {
                // An empty table gives all its memory back (`shrink_to(0)` frees it).
                shard
                    .table
                    .shrink_to(len * 2, |&h| table_hash(self.item(h).tag() >> 8));
                self.tables_shrunk.store(true, Ordering::Relaxed);
            }
            drop(shard);
            total += dead.len() as u64;
            self.free_items_direct(&mut dead);
        }
        total
    }

    fn publish_ages(&self, oldest: &[u32]) {
        for (i, g) in self.gauges.iter() {
            let o = oldest[i];
            g.oldest_access
                .store(if o == u32::MAX { 0 } else { o }, Ordering::Relaxed);
        }
    }

    /// Unlinks every expired or flushed item now (a full crawl); returns how many. With
    /// `count`, they count as `crawler_reclaimed`.
    fn crawl(&self, count: bool) -> u64 {
        let mut oldest = vec![u32::MAX; self.classes().len()];
        let n = self.crawl_shards(0..self.shards.len(), count, &mut oldest);
        self.publish_ages(&oldest);
        n
    }

    /// Reclaims every expired or flushed item now, in one full pass over the index;
    /// returns how many. [`maintenance`](Self::maintenance) does the same work
    /// incrementally.
    pub fn reclaim_expired(&self) -> u64 {
        self.crawl(true)
    }

    /// One background step: crawls the next eighth of the index shards, reclaiming
    /// expired and flushed items (a full pass every [`CRAWL_STEPS`] calls, which then
    /// refreshes the per-class `age`), and lets the allocator return memory it kept unused
    /// to the OS. Returns how many items were reclaimed. Call it about once a second, or
    /// use [`spawn_maintenance`](Self::spawn_maintenance).
    pub fn maintenance(&self) -> u64 {
        let n = {
            let mut st = lock(&self.crawl_state);
            if st.oldest.len() != self.classes().len() {
                st.oldest = vec![u32::MAX; self.classes().len()];
            }
            let shards = self.shards.len();
            let start = st.next;
            let end = (start + shards.div_ceil(CRAWL_STEPS)).min(shards);
            let n = self.crawl_shards(start..end, true, &mut st.oldest);
            st.next = end % shards;
            if end == shards {
                self.publish_ages(&st.oldest);
                st.oldest.fill(u32::MAX);
            }
            n
        };
        // Slabs emptied by moves reach the pool in the reap just after.
        self.automove_tick();
        self.compact(COMPACT_BUDGET);
        self.migrate(MIGRATE_BUDGET);
        // Live chunks fell to half their peak since the last shrink (mass delete or
        // expiry): a hint, like an immediate flush, that demand dropped.
        let live: u64 = self.gauges.iter().map(|(_, g)| get(&g.chunks)).sum();
        let peak = self
            .peak_chunks
            .fetch_max(live, Ordering::Relaxed)
            .max(live);
        let fell = peak >= SHRINK_MIN_CHUNKS && live <= peak / 2;
        self.give_back(fell, live);
        n
    }

    /// Lets the allocator return memory to the OS: a full shrink (depots emptied,
    /// retention to its floor, empty slabs unmapped, the heap trimmed) when demand fell,
    /// else the ordinary reap. `live` is the store's live chunk count now.
    fn give_back(&self, shrink: bool, live: u64) {
        let _w = self.walk_lock.write().unwrap_or_else(|e| e.into_inner());
        if shrink {
            self.peak_chunks.store(live, Ordering::Relaxed);
            self.alloc.shrink();
            bump(&self.global.memory_shrinks);
        } else {
            self.alloc.reap();
        }
        drop(_w);
        if self.tables_shrunk.swap(false, Ordering::Relaxed) || shrink {
            trim_heap();
            bump(&self.global.heap_trims);
        }
    }

    /// Starts a thread that calls [`maintenance`](Self::maintenance) every `interval`
    /// until the last `Arc` of the store is dropped.
    pub fn spawn_maintenance(self: &Arc<Self>, interval: Duration) -> std::thread::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("kvcache-maint".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                match weak.upgrade() {
                    Some(s) => {
                        s.maintenance();
                    }
                    None => return,
                }
            })
            .expect("spawn the maintenance thread")
    }

    /// Everything `stats`, `stats items` and `stats slabs` show.
    pub fn stats(&self) -> StoreStats {
        let es = self.alloc.engine().stats();
        let now = self.now();
        let mut s = StoreStats {
            get_misses: get(&self.global.get_misses),
            get_expired: get(&self.global.get_expired),
            get_flushed: get(&self.global.get_flushed),
            delete_misses: get(&self.global.delete_misses),
            incr_misses: get(&self.global.incr_misses),
            decr_misses: get(&self.global.decr_misses),
            cas_misses: get(&self.global.cas_misses),
            touch_misses: get(&self.global.touch_misses),
            total_items: get(&self.global.total_items),
            cmd_touch: get(&self.global.cmd_touch),
            cmd_flush: get(&self.global.cmd_flush),
            slabs_moved: get(&self.global.slabs_moved),
            slab_reassign_rescues: get(&self.automove.rescues),
            slab_reassign_evictions_nomem: get(&self.automove.evictions_nomem),
            slab_reassign_inline_reclaim: get(&self.automove.inline_reclaim),
            slab_reassign_busy_items: get(&self.automove.busy_items),
            slab_reassign_running: self.automove.running.load(Ordering::Relaxed),
            slabs_automoved: get(&self.automove.automoves),
            limit_maxbytes: self.cfg.memory_limit as u64,
            mapped_bytes: es.mapped_bytes as u64,
            slab_pooled_slabs: es.pooled_slabs as u64,
            slab_retention_target: es.retention_target_slabs as u64,
            slab_mmap_calls: es.mmap_calls,
            slab_munmap_calls: es.munmap_calls,
            slab_released_bytes: es.released_bytes,
            slab_released_slabs: es.released_slabs,
            memory_shrinks: get(&self.global.memory_shrinks),
            heap_trims: get(&self.global.heap_trims),
            slabs_compacted: get(&self.global.slabs_compacted),
            items_moved: get(&self.global.items_moved),
            slab_reclasses: get(&self.global.slab_reclasses),
            items_migrated: get(&self.global.items_migrated),
            ..StoreStats::default()
        };
        for (i, (chunk_size, cs)) in self.classes().sizes().iter().zip(&es.classes).enumerate() {
            let class = ClassId(i as u16);
            let c = &self.per_class[i];
            let g = &self.gauges[i];
            let mut end = 0;
            let cps = self.classes().chunks_per_slab(class);
            self.alloc
                .engine()
                .for_each_slab(class, |_, carved| end += cps - carved.min(cps));
            let used = (get(&g.chunks) as usize).min(cs.slabs * cps);
            let number = get(&g.number);
            let oldest = g.oldest_access.load(Ordering::Relaxed);
            let cl = ClassStats {
                id: class.display_id(),
                chunk_size: *chunk_size,
                chunks_per_page: cps,
                total_pages: cs.slabs,
                total_chunks: cs.slabs * cps,
                used_chunks: used,
                free_chunks: cs.slabs * cps - used,
                free_chunks_end: end,
                mem_requested: get(&g.bytes),
                get_hits: get(&c.get_hits),
                cmd_set: get(&c.cmd_set),
                delete_hits: get(&c.delete_hits),
                incr_hits: get(&c.incr_hits),
                decr_hits: get(&c.decr_hits),
                cas_hits: get(&c.cas_hits),
                cas_badval: get(&c.cas_badval),
                touch_hits: get(&c.touch_hits),
                number,
                age: if number > 0 && oldest != 0 {
                    now.saturating_sub(oldest)
                } else {
                    0
                },
                evicted: get(&c.evicted),
                evicted_nonzero: get(&c.evicted_nonzero),
                evicted_time: g.evicted_time.load(Ordering::Relaxed),
                outofmemory: get(&c.outofmemory),
                reclaimed: get(&c.reclaimed),
                expired_unfetched: get(&c.expired_unfetched),
                evicted_unfetched: get(&c.evicted_unfetched),
                crawler_reclaimed: get(&c.crawler_reclaimed),
            };
            s.curr_items += cl.number;
            s.bytes += cl.mem_requested;
            s.evictions += cl.evicted;
            s.reclaimed += cl.reclaimed;
            s.expired_unfetched += cl.expired_unfetched;
            s.evicted_unfetched += cl.evicted_unfetched;
            s.crawler_reclaimed += cl.crawler_reclaimed;
            s.get_hits += cl.get_hits;
            s.cmd_set += cl.cmd_set;
            s.delete_hits += cl.delete_hits;
            s.incr_hits += cl.incr_hits;
            s.decr_hits += cl.decr_hits;
            s.cas_hits += cl.cas_hits;
            s.cas_badval += cl.cas_badval;
            s.touch_hits += cl.touch_hits;
            s.outofmemory += cl.outofmemory;
            s.total_malloced += (cl.total_pages * self.classes().slab_size()) as u64;
            if cl.total_pages > 0 {
                s.active_slabs += 1;
            }
            s.classes.push(cl);
        }
        s
    }

    /// `(stored size rounded up to a multiple of 8, item count)` for every nonempty
    /// bucket: the basis of `stats sizes` and `stats sizes_fine`. Sizes are
    /// [`stored_size`] (our layout).
    pub fn size_histogram(&self) -> Vec<(usize, u64)> {
        self.hist.snapshot()
    }

    /// `stats reset`: zeroes the counters (not the item gauges or the histogram).
    pub fn reset_stats(&self) {
        self.global.reset();
        self.automove.reset();
        for (_, c) in self.per_class.iter() {
            c.reset();
        }
    }
}

/// Writes `n` in decimal into `buf`, returning the digits.
fn fmt_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}
