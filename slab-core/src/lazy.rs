//! [`LazyTable`]: a fixed-length table whose entries are created on first use.
//!
//! Per-class state (a class's slab lists and lock, its depot) is sized for every class a
//! table can ever use, including spare classes that a running program may switch to later
//! ([`SizeClasses::with_spares`](crate::SizeClasses::with_spares)). A class never used should
//! cost next to nothing: here it costs one pointer, and its entry is allocated the first time
//! it is asked for.
//!
//! An entry is published with one compare-and-swap of its pointer: two threads that race to
//! create the same entry both build one, the loser frees its own and uses the winner's. Once
//! set, a pointer never changes until the table is dropped, so `&T` lives as long as `&self`.
//! The atomics come from the loom shim; `tests::loom_lazy` checks the race.

use std::fmt;
use std::ptr;

use crate::sync::atomic::{AtomicPtr, Ordering};

/// A table of `len` entries of `T`, each boxed and created on first access.
pub struct LazyTable<T> {
    slots: Box<[AtomicPtr<T>]>,
}

impl<T> LazyTable<T> {
    /// A table of `len` entries, none created yet.
    pub fn new(len: usize) -> Self {
        LazyTable {
            slots: (0..len).map(|_| AtomicPtr::new(ptr::null_mut())).collect(),
        }
    }

    /// The number of entries (created or not).
    #[inline]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if the table has no entries.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Entry `i` if it has been created. Panics if `i >= len`.
    #[inline]
    pub fn peek(&self, i: usize) -> Option<&T> {
        let p = self.slots[i].load(Ordering::Acquire);
        // SAFETY: a non-null slot holds a pointer from `Box::into_raw` published with
        // `Release` (the `Acquire` load above pairs with it, so the entry is initialised);
        // it is never replaced or freed before the table is dropped, which `&self` excludes.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// Entry `i`, created with `init` if it does not exist yet. Panics if `i >= len`.
    #[inline]
    pub fn get_with(&self, i: usize, init: impl FnOnce() -> T) -> &T {
        match self.peek(i) {
            Some(t) => t,
            None => self.create(i, init),
        }
    }

    #[cold]
    fn create(&self, i: usize, init: impl FnOnce() -> T) -> &T {
        let new = Box::into_raw(Box::new(init()));
        match self.slots[i].compare_exchange(
            ptr::null_mut(),
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: we just published `new`; see `peek` for why it stays valid.
            Ok(_) => unsafe { &*new },
            Err(winner) => {
                // SAFETY: `new` came from `Box::into_raw` above and was never shared.
                drop(unsafe { Box::from_raw(new) });
                // SAFETY: `winner` is a published entry, as in `peek`.
                unsafe { &*winner }
            }
        }
    }

    /// The created entries with their indices, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> + '_ {
        (0..self.slots.len()).filter_map(move |i| self.peek(i).map(|t| (i, t)))
    }

    /// How many entries have been created.
    pub fn created(&self) -> usize {
        self.iter().count()
    }
}

impl<T: Default> LazyTable<T> {
    /// Entry `i`, created with `T::default()` if it does not exist yet.
    #[inline]
    pub fn get(&self, i: usize) -> &T {
        self.get_with(i, T::default)
    }
}

impl<T: Default> std::ops::Index<usize> for LazyTable<T> {
    type Output = T;

    /// Entry `i`, created with `T::default()` on first access.
    #[inline]
    fn index(&self, i: usize) -> &T {
        self.get(i)
    }
}

impl<T> Drop for LazyTable<T> {
    fn drop(&mut self) {
        for s in self.slots.iter() {
            // `&mut self`: no other thread can touch the slots any more.
            let p = s.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: each non-null slot owns one `Box` made in `create`; `&mut self`
                // means no reference into it remains.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for LazyTable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

// SAFETY: the table owns its entries (like `Vec<Box<T>>`): sending it sends the `T`s.
unsafe impl<T: Send> Send for LazyTable<T> {}
// SAFETY: `&LazyTable` hands out `&T` to any thread and may create a `T` on any thread (which
// the owner later drops), so `T` must be `Send + Sync`.
unsafe impl<T: Send + Sync> Sync for LazyTable<T> {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn entries_are_made_once_on_first_use() {
        let t: LazyTable<AtomicUsize> = LazyTable::new(100);
        assert_eq!(t.created(), 0);
        assert!(t.peek(7).is_none());
        t[7].fetch_add(3, Ordering::Relaxed);
        t.get(7).fetch_add(1, Ordering::Relaxed);
        assert_eq!(t.peek(7).unwrap().load(Ordering::Relaxed), 4);
        assert_eq!(t.created(), 1);
        let seen: Vec<usize> = t.iter().map(|(i, _)| i).collect();
        assert_eq!(seen, vec![7]);
    }

    #[test]
    fn racing_creators_agree_on_one_entry() {
        let t = Arc::new(LazyTable::<AtomicUsize>::new(64));
        let made = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (t, made) = (t.clone(), made.clone());
                std::thread::spawn(move || {
                    for i in 0..64 {
                        t.get_with(i, || {
                            made.fetch_add(1, Ordering::Relaxed);
                            AtomicUsize::new(0)
                        })
                        .fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        for i in 0..64 {
            assert_eq!(t.peek(i).unwrap().load(Ordering::Relaxed), 4, "entry {i}");
        }
        assert!(made.load(Ordering::Relaxed) >= 64);
    }
}
