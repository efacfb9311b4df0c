//! [`SlabGlobalAlloc`]: the allocator as a Rust `#[global_allocator]`.
//!
//! Small requests (at most [`SMALL_MAX`] bytes, at an alignment some class's chunks satisfy)
//! are served from slabs through the calling thread's magazines, with the
//! [`crate::engine::size_class::general_classes`] table; everything else goes to
//! [`std::alloc::System`]. `dealloc` routes by address: a pointer inside the engine's
//! reservation is a slab chunk ([`SlabEngine::contains`](crate::engine::SlabEngine::contains),
//! one subtraction and compare).
//!
//! ```no_run
//! use slab_core::global::SlabGlobalAlloc;
//!
//! #[global_allocator]
//! static GLOBAL: SlabGlobalAlloc = SlabGlobalAlloc::new();
//!
//! fn main() {
//!     let v: Vec<u64> = (0..1000).collect(); // 8000 bytes: from a slab
//!     assert_eq!(v.iter().sum::<u64>(), 999 * 1000 / 2);
//! }
//! ```
//!
//! # No recursion
//!
//! The allocator's own bookkeeping (the engine's slab lists, magazines' buffers, the
//! thread-local cache list) allocates through the global allocator, i.e. through this type.
//! While a thread is inside the allocator's slow paths a thread-local flag is set (see
//! `magazine::BusyGuard`), and every allocation made meanwhile goes to `System`; so the engine
//! never re-enters itself, and its metadata never lives in its own slabs. The flag is a
//! `thread_local!` with `const` initialisation and no destructor, so it stays readable while
//! other thread-locals are being destroyed; the thread-cache list is reached with `try_with`,
//! and once it is gone (late in thread exit) requests go straight to the engine.
//!
//! The allocator is created on first use (a [`OnceLock`]), with no memory limit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::{self, NonNull};
use std::sync::OnceLock;

use crate::engine::size_class::general_classes;
use crate::engine::Config;
use crate::magazine::{is_busy, BusyGuard, MagazineConfig, SlabAllocator};

/// Requests up to this many bytes are served from slabs.
pub const SMALL_MAX: usize = 32 << 10;

/// A global allocator: small sizes from slabs, the rest from the system. See the
/// [module docs](self).
#[derive(Debug)]
pub struct SlabGlobalAlloc {
    inner: OnceLock<Option<SlabAllocator>>,
}

impl Default for SlabGlobalAlloc {
    fn default() -> Self {
        Self::new()
    }
}

impl SlabGlobalAlloc {
    /// A global allocator; nothing is reserved until the first allocation.
    pub const fn new() -> Self {
        SlabGlobalAlloc {
            inner: OnceLock::new(),
        }
    }

    /// The slab allocator underneath, creating it if needed (`None` if creating it failed;
    /// then everything goes to the system allocator).
    pub fn allocator(&self) -> Option<&SlabAllocator> {
        self.inner
            .get_or_init(|| {
                let _busy = BusyGuard::enter();
                SlabAllocator::with_magazines(
                    Config::new(general_classes()),
                    MagazineConfig::default(),
                )
                .ok()
            })
            .as_ref()
    }

    #[inline]
    fn slab_for(&self, layout: Layout) -> Option<&SlabAllocator> {
        if layout.size() > SMALL_MAX || is_busy() {
            return None;
        }
        self.allocator()
    }
}

// SAFETY: 1. `alloc` returns either `System`'s answer for the same layout or a slab chunk of a
// class whose chunk size is at least `layout.size()` and a multiple of `layout.align()` (chunks
// start at a slab base, aligned to the slab size, plus a multiple of the chunk size), owned by
// the caller until `dealloc`. 2. `dealloc` gives a pointer back to whoever made it: slab chunks
// are exactly the pointers inside the engine's reservation, which `System` never returns.
// 3. No path re-enters the engine while it holds a lock: see the module docs.
unsafe impl GlobalAlloc for SlabGlobalAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(a) = self.slab_for(layout) {
            let classes = a.classes();
            if let Some(class) = classes.class_for(layout.size().max(1)) {
                if classes.chunk_size(class) % layout.align() == 0 {
                    return a
                        .alloc_class(class)
                        .map_or(ptr::null_mut(), NonNull::as_ptr);
                }
            }
        }
        // SAFETY: forwarded from the caller (non-zero size).
        unsafe { System.alloc(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(Some(a)) = self.inner.get() {
            if a.engine().contains(ptr) {
                let class = a
                    .classes()
                    .class_for(layout.size().max(1))
                    .expect("a slab chunk's layout maps to its class");
                let p = NonNull::new(ptr).expect("allocations are non-null");
                // SAFETY: `ptr` is inside the reservation, so `alloc` made it with this
                // layout from `class`; the caller gives it up.
                unsafe { a.dealloc_class(p, class) };
                return;
            }
        }
        // SAFETY: not a slab chunk, so `System` made it with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let in_slab = matches!(self.inner.get(), Some(Some(a)) if a.engine().contains(ptr));
        if !in_slab && new_size > SMALL_MAX {
            // System to System: let it grow in place when it can.
            // SAFETY: forwarded from the caller; `ptr` came from `System` with `layout`.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if in_slab {
            if let Some(Some(a)) = self.inner.get() {
                let classes = a.classes();
                let old = classes.class_for(layout.size().max(1));
                if old.is_some() && old == classes.class_for(new_size.max(1)) {
                    // Same chunk size: nothing to move.
                    return ptr;
                }
            }
        }
        // SAFETY: the caller guarantees `new_size` is non-zero and valid at `layout.align()`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: forwarded: a valid non-zero layout.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not overlap (the new
            // one was just allocated); then the old one is given back with its layout.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
