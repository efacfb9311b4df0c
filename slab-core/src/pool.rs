//! [`Pool<T>`]: a safe, typed object pool on a [`SlabAllocator`].
//!
//! Every object lives in a slab chunk; [`Pool::alloc`] moves a value in and returns a
//! [`PoolBox`] that derefs to it and frees the chunk when dropped (running `T`'s destructor
//! first). Allocation and free go through the calling thread's magazines, so the common case
//! takes no lock; a `PoolBox` may be dropped on another thread than the one that made it.
//!
//! ```
//! use slab_core::pool::Pool;
//!
//! #[derive(Debug, PartialEq)]
//! struct Session { id: u64, name: String }
//!
//! let pool = Pool::<Session>::new()?;
//! let mut s = pool.alloc(Session { id: 7, name: "a".into() })?;
//! s.name.push('b');
//! assert_eq!(*s, Session { id: 7, name: "ab".into() });
//! let owned: Session = s.into_inner(); // moves the value out, frees the chunk
//! assert_eq!(owned.id, 7);
//! assert_eq!(pool.live(), 0);
//! # Ok::<(), slab_core::Error>(())
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;

use crate::engine::size_class::{ClassId, SizeClasses};
use crate::engine::Config;
use crate::error::Error;
use crate::magazine::{MagazineConfig, SlabAllocator};

/// A pool of `T`s in slab chunks of one class. See the [module docs](self).
pub struct Pool<T> {
    alloc: Arc<SlabAllocator>,
    class: ClassId,
    _values: PhantomData<T>,
}

impl<T> fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("type", &std::any::type_name::<T>())
            .field("class", &self.class)
            .finish_non_exhaustive()
    }
}

/// The chunk size that holds a `T` at its alignment (at least 8 bytes, the engine's minimum).
fn chunk_for<T>() -> usize {
    let align = mem::align_of::<T>().max(8);
    mem::size_of::<T>().max(8).div_ceil(align) * align
}

impl<T> Pool<T> {
    /// A pool with its own allocator: one class sized for `T`, 1 MiB slabs, no memory limit.
    pub fn new() -> Result<Self, Error> {
        let chunk = chunk_for::<T>();
        let slab = (1usize << 20).max(chunk.next_power_of_two());
        let classes = SizeClasses::from_list(&[chunk], mem::align_of::<T>().max(8), slab)?;
        Self::with_config(Config::new(classes), MagazineConfig::default())
    }

    /// A pool with its own allocator built from `config` (whose classes must include one that
    /// fits `T`; the smallest such is used) and `magazines`.
    pub fn with_config(config: Config, magazines: MagazineConfig) -> Result<Self, Error> {
        Self::on(Arc::new(SlabAllocator::with_magazines(config, magazines)?))
    }

    /// A pool on a shared allocator: uses the smallest class that holds a `T` and whose chunks
    /// are aligned for it.
    pub fn on(alloc: Arc<SlabAllocator>) -> Result<Self, Error> {
        let align = mem::align_of::<T>();
        let need = mem::size_of::<T>().max(1);
        let classes = alloc.classes();
        let first = classes.class_for(need).ok_or_else(|| {
            Error::InvalidConfig(format!(
                "no class holds a {} ({need} bytes)",
                std::any::type_name::<T>()
            ))
        })?;
        let class = classes
            .iter()
            .skip(first.index())
            .find(|&(_, size)| size % align == 0 && classes.slab_size() % align == 0)
            .map(|(c, _)| c)
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "no class is aligned to {align} bytes for a {}",
                    std::any::type_name::<T>()
                ))
            })?;
        Ok(Pool {
            alloc,
            class,
            _values: PhantomData,
        })
    }

    /// Moves `value` into a chunk. Fails with [`Error::LimitReached`] if the allocator's
    /// memory limit is reached (after its caches gave their chunks back).
    pub fn alloc(&self, value: T) -> Result<PoolBox<'_, T>, Error> {
        let p = self.alloc.alloc_class(self.class)?.cast::<T>();
        // SAFETY: `p` is a fresh chunk of at least `size_of::<T>()` bytes, aligned for `T`
        // (`on` chose a class whose chunk size and slab size are multiples of `align_of::<T>`,
        // and chunks start at slab base + i * chunk size), owned by us.
        unsafe { p.as_ptr().write(value) };
        Ok(PoolBox {
            ptr: p,
            pool: self,
            _owns: PhantomData,
        })
    }

    /// Objects allocated from the allocator and not freed, counting every class (exact after
    /// threads flushed their caches; see
    /// [`AllocatorStats::live_chunks`](crate::magazine::AllocatorStats::live_chunks)).
    pub fn live(&self) -> usize {
        self.alloc.flush_thread_cache();
        self.alloc.stats().live_chunks()
    }

    /// The allocator underneath.
    pub fn allocator(&self) -> &Arc<SlabAllocator> {
        &self.alloc
    }

    /// The class objects are allocated from.
    pub fn class(&self) -> ClassId {
        self.class
    }

    /// # Safety
    /// `ptr` must come from `self.alloc` and hold no live value any more.
    unsafe fn free(&self, ptr: NonNull<T>) {
        // SAFETY: forwarded from the caller: a chunk of `self.class` from this allocator.
        unsafe { self.alloc.dealloc_class(ptr.cast(), self.class) }
    }
}

/// An object in a [`Pool`]: derefs to the `T`; dropping it drops the `T` and frees the chunk.
pub struct PoolBox<'a, T> {
    ptr: NonNull<T>,
    pool: &'a Pool<T>,
    _owns: PhantomData<T>,
}

// SAFETY: a `PoolBox` owns its `T` like a `Box` does; sending it sends the `T` (hence
// `T: Send`), and freeing the chunk from another thread is allowed by the allocator.
unsafe impl<T: Send> Send for PoolBox<'_, T> {}
// SAFETY: `&PoolBox` only gives `&T`.
unsafe impl<T: Sync> Sync for PoolBox<'_, T> {}

impl<T> PoolBox<'_, T> {
    /// Moves the value out and frees the chunk.
    pub fn into_inner(self) -> T {
        let this = ManuallyDrop::new(self);
        // SAFETY: the chunk holds a live `T` that we own; after the read it is moved out and
        // `this` is never dropped, so it is read exactly once.
        let value = unsafe { this.ptr.as_ptr().read() };
        // SAFETY: the chunk came from `pool.alloc` and holds no live value any more.
        unsafe { this.pool.free(this.ptr) };
        value
    }
}

impl<T> Deref for PoolBox<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the chunk holds a live, initialised `T` owned by this box.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for PoolBox<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for PoolBox<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the chunk holds a live `T` owned by this box, dropped exactly once here.
        unsafe { self.ptr.as_ptr().drop_in_place() };
        // SAFETY: the chunk came from `pool.alloc` and its value is gone.
        unsafe { self.pool.free(self.ptr) };
    }
}

impl<T: fmt::Debug> fmt::Debug for PoolBox<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn drops_run_and_chunks_come_back() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct D(#[allow(dead_code)] [u64; 5]);
        impl Drop for D {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::Relaxed);
            }
        }
        let pool = Pool::<D>::new().unwrap();
        let v: Vec<_> = (0..1000).map(|i| pool.alloc(D([i; 5])).unwrap()).collect();
        assert_eq!(pool.live(), 1000);
        drop(v);
        assert_eq!(DROPS.load(Ordering::Relaxed), 1000);
        assert_eq!(pool.live(), 0);
    }

    #[test]
    fn over_aligned_types_are_aligned() {
        #[repr(align(64))]
        struct A(u8);
        let pool = Pool::<A>::new().unwrap();
        let v: Vec<_> = (0..100).map(|i| pool.alloc(A(i)).unwrap()).collect();
        for (i, b) in v.iter().enumerate() {
            assert_eq!(&**b as *const A as usize % 64, 0);
            assert_eq!(b.0, i as u8);
        }
    }

    #[test]
    fn boxes_can_be_dropped_on_other_threads() {
        let pool = Pool::<String>::new().unwrap();
        let v: Vec<_> = (0..100)
            .map(|i| pool.alloc(format!("item {i}")).unwrap())
            .collect();
        std::thread::scope(|s| {
            // An explicit join also waits for the thread's thread-local destructors.
            s.spawn(move || drop(v)).join().unwrap();
        });
        assert_eq!(pool.live(), 0);
    }

    #[test]
    fn shared_allocator_picks_a_fitting_class() {
        let a =
            Arc::new(SlabAllocator::new(Config::new(SizeClasses::memcached_default())).unwrap());
        let pool = Pool::<[u8; 100]>::on(a.clone()).unwrap();
        assert_eq!(a.classes().chunk_size(pool.class()), 120);
        let b = pool.alloc([1; 100]).unwrap();
        assert_eq!(b[99], 1);
    }
}
