//! Thread caches: each thread's magazines for every allocator instance it has used, the
//! thread-local that holds them, its flush at thread exit, and the flag that marks a thread as
//! inside the allocator's slow paths.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::{Arc, Weak};

use super::magazine::ClassCache;
use super::shared::Shared;
use crate::engine::size_class::ClassId;
use crate::sync::atomic::Ordering;

/// One thread's magazines for one allocator instance: one [`ClassCache`] per class, in a
/// heap array owned through a raw pointer (so [`ThreadCaches`] can keep a second pointer to
/// the current entry's array without the two aliasing a `Box`).
pub(super) struct Entry {
    pub(super) id: u64,
    shared: Weak<Shared>,
    classes: NonNull<ClassCache>,
    len: usize,
}

impl Entry {
    /// Caches for the table's classes; spare classes are added by [`Entry::ensure`] when the
    /// thread first uses one.
    fn new(shared: &Arc<Shared>) -> Self {
        let b: Box<[ClassCache]> = (0..shared.engine.classes().base_len())
            .map(|_| ClassCache::new())
            .collect();
        let len = b.len();
        let classes = NonNull::new(Box::into_raw(b).cast::<ClassCache>()).expect("non-null box");
        Entry {
            id: shared.id,
            shared: Arc::downgrade(shared),
            classes,
            len,
        }
    }

    /// Grows the array to at least `len` caches (new ones empty); the caller re-points the
    /// fast path ([`ThreadCaches::set_current`]) afterwards.
    fn ensure(&mut self, len: usize) {
        if len <= self.len {
            return;
        }
        let old = std::ptr::slice_from_raw_parts_mut(self.classes.as_ptr(), self.len);
        // SAFETY: made by `Box::into_raw` of a boxed slice of `len` caches (in `new` or a
        // previous `ensure`); ownership comes back here and is given up again below.
        let mut v = unsafe { Box::from_raw(old) }.into_vec();
        v.resize_with(len, ClassCache::new);
        let b = v.into_boxed_slice();
        self.len = b.len();
        self.classes = NonNull::new(Box::into_raw(b).cast::<ClassCache>()).expect("non-null box");
    }

    pub(super) fn classes(&mut self) -> &mut [ClassCache] {
        // SAFETY: `classes` is the array of `len` caches made in `new` and freed only in
        // `drop`; `&mut self` makes this the only reference made from the entry, and the
        // thread's one other pointer to it (`ThreadCaches::cur`) is only used while no
        // reference from here is live (both are reached through the `RefCell` borrow).
        unsafe { std::slice::from_raw_parts_mut(self.classes.as_ptr(), self.len) }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.classes.as_ptr(), self.len);
        // SAFETY: made by `Box::into_raw` of a boxed slice of `len` caches in `new`, freed
        // once here.
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// One thread's magazines for every allocator instance it has used, most recent first, and
/// a direct pointer to the first entry's caches for the fast path.
pub(super) struct ThreadCaches {
    /// `entries[0].id`, or 0 (no allocator has id 0) when there is no entry.
    cur_id: u64,
    /// `entries[0].classes` and its length (dangling and 0 when there is no entry).
    cur: NonNull<ClassCache>,
    cur_len: usize,
    pub(super) entries: Vec<Entry>,
}

impl ThreadCaches {
    const fn new() -> Self {
        ThreadCaches {
            cur_id: 0,
            cur: NonNull::dangling(),
            cur_len: 0,
            entries: Vec::new(),
        }
    }

    /// Re-points the fast path at `entries[0]`; called after every change of `entries`.
    fn set_current(&mut self) {
        match self.entries.first() {
            Some(e) => {
                self.cur_id = e.id;
                self.cur = e.classes;
                self.cur_len = e.len;
            }
            None => {
                self.cur_id = 0;
                self.cur = NonNull::dangling();
                self.cur_len = 0;
            }
        }
    }

    /// The fast path's access: this thread's caches of `class` for allocator `id`, if that
    /// allocator is the one the thread used last.
    #[inline(always)]
    pub(super) fn current(&mut self, id: u64, class: ClassId) -> Option<&mut ClassCache> {
        if self.cur_id == id && class.index() < self.cur_len {
            // SAFETY: `cur` is `entries[0].classes`, an array of `cur_len` caches that lives as
            // long as that entry (`set_current` runs after every change of `entries`); the
            // `&mut self` borrow (through the thread-local's `RefCell`) excludes every other
            // reference into it.
            Some(unsafe { &mut *self.cur.as_ptr().add(class.index()) })
        } else {
            None
        }
    }

    /// Removes the entry of allocator `id`; true if there was one.
    pub(super) fn remove(&mut self, id: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.id != id);
        self.set_current();
        self.entries.len() != before
    }

    /// The entry for `shared` moved to the front, created (after dropping entries of dead
    /// allocators) if new. `None` if the thread is exiting and can no longer flush a new entry
    /// at exit.
    #[cold]
    pub(super) fn find_or_insert(
        &mut self,
        shared: &Arc<Shared>,
        need: usize,
    ) -> Option<&mut Entry> {
        // Spare classes: room for the one asked for and its neighbours, not all at once.
        let need = need.next_multiple_of(64).min(shared.depots.len());
        if let Some(i) = self.entries.iter().position(|e| e.id == shared.id) {
            self.entries.swap(0, i);
            self.entries[0].ensure(need);
            self.set_current();
            return self.entries.first_mut();
        }
        if !exit_hook_registered() {
            return None;
        }
        // Entries of allocators that are gone hold chunks of unmapped engines: forget them.
        self.entries.retain(|e| e.shared.strong_count() > 0);
        shared.thread_caches.fetch_add(1, Ordering::Release);
        self.entries.push(Entry::new(shared));
        let last = self.entries.len() - 1;
        self.entries.swap(0, last);
        self.entries[0].ensure(need);
        self.set_current();
        self.entries.first_mut()
    }

    /// Thread exit: every entry's magazines go back to its allocator.
    fn flush_all(&mut self) {
        let _busy = BusyGuard::enter();
        let entries = std::mem::take(&mut self.entries);
        self.set_current();
        for mut e in entries {
            if let Some(shared) = e.shared.upgrade() {
                shared.flush(e.classes());
                shared.thread_caches.fetch_sub(1, Ordering::Release);
            }
        }
    }
}

// The thread-local layout. Outside loom, the caches live in a thread-local *without* a
// destructor (`ManuallyDrop`), so the fast path is a plain `%fs`-relative access with no
// "registered / destroyed" state check, and a separate zero-sized thread-local (`EXIT`) whose
// destructor flushes them is registered on the slow path, when a thread first creates an
// entry. After `EXIT` is destroyed no new entry is created (`exit_hook_registered` fails) and
// allocations go straight to the engine. Under loom the caches' own destructor flushes them.

#[cfg(not(loom))]
type CachesCell = RefCell<std::mem::ManuallyDrop<ThreadCaches>>;

#[cfg(not(loom))]
std::thread_local! {
    pub(super) static CACHES: CachesCell =
        const { RefCell::new(std::mem::ManuallyDrop::new(ThreadCaches::new())) };
    static EXIT: ExitFlush = const { ExitFlush };
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Flushes the thread's caches when the thread exits (see above).
#[cfg(not(loom))]
struct ExitFlush;

#[cfg(not(loom))]
impl Drop for ExitFlush {
    fn drop(&mut self) {
        let _ = CACHES.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.flush_all();
            }
        });
    }
}

/// Registers (on first use) the destructor that flushes this thread's caches at exit; false
/// if it already ran.
#[cfg(not(loom))]
fn exit_hook_registered() -> bool {
    EXIT.try_with(|_| ()).is_ok()
}

/// The caches, flushed by their own destructor (loom runs it when the model thread ends).
#[cfg(loom)]
pub(super) struct LoomCaches(ThreadCaches);

#[cfg(loom)]
impl std::ops::Deref for LoomCaches {
    type Target = ThreadCaches;
    fn deref(&self) -> &ThreadCaches {
        &self.0
    }
}

#[cfg(loom)]
impl std::ops::DerefMut for LoomCaches {
    fn deref_mut(&mut self) -> &mut ThreadCaches {
        &mut self.0
    }
}

#[cfg(loom)]
impl Drop for LoomCaches {
    fn drop(&mut self) {
        self.0.flush_all();
    }
}

#[cfg(loom)]
type CachesCell = RefCell<LoomCaches>;

#[cfg(loom)]
crate::sync::thread_local! {
    pub(super) static CACHES: CachesCell = RefCell::new(LoomCaches(ThreadCaches::new()));
    static BUSY: Cell<bool> = Cell::new(false);
}

#[cfg(loom)]
fn exit_hook_registered() -> bool {
    true
}

/// Marks the current thread as inside the allocator's slow paths (engine, depot, thread-cache
/// bookkeeping), whose own heap allocations must not come back into the slabs. The global
/// allocator adapter routes allocations made while it is set to the system allocator.
pub(crate) struct BusyGuard {
    was: bool,
}

impl BusyGuard {
    #[inline]
    pub(crate) fn enter() -> Self {
        let was = BUSY.try_with(|b| b.replace(true)).unwrap_or(true);
        BusyGuard { was }
    }
}

impl Drop for BusyGuard {
    #[inline]
    fn drop(&mut self) {
        if !self.was {
            let _ = BUSY.try_with(|b| b.set(false));
        }
    }
}

/// Whether the current thread is inside the allocator's slow paths (see [`BusyGuard`]).
#[inline]
pub(crate) fn is_busy() -> bool {
    BUSY.try_with(Cell::get).unwrap_or(true)
}
