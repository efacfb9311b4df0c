//! Magazines: fixed-capacity stacks of free chunk pointers, and the per-thread pair of them
//! (loaded and previous) that serves one class (Bonwick & Adams 2001, section 3).
//!
//! Everything here is plain thread-local data: no atomics, no locks. A thread owns its
//! [`ClassCache`]; a [`Magazine`] moves between a thread and the depot by value.

use std::ptr::NonNull;

/// A stack of at most `cap` free chunks of one class. A magazine with `cap == 0` is the
/// "no magazine" placeholder (kmem's `NULL` magazine): it is both empty and full.
#[derive(Debug)]
pub(crate) struct Magazine {
    rounds: Vec<NonNull<u8>>,
    cap: usize,
}

// SAFETY: a magazine holds pointers to free chunks that belong to whoever holds the magazine;
// moving it to another thread moves that ownership along, and nothing in it is thread-bound.
unsafe impl Send for Magazine {}

impl Magazine {
    /// The "no magazine" placeholder; allocates nothing.
    pub(crate) const fn none() -> Self {
        Magazine {
            rounds: Vec::new(),
            cap: 0,
        }
    }

    /// An empty magazine of `cap` rounds (the buffer is allocated now, never later).
    pub(crate) fn with_capacity(cap: usize) -> Self {
        let rounds = Vec::with_capacity(cap);
        debug_assert!(rounds.capacity() >= cap);
        Magazine { rounds, cap }
    }

    /// Whether this is the placeholder.
    #[inline]
    pub(crate) fn is_none(&self) -> bool {
        self.cap == 0
    }

    /// Rounds held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.rounds.len()
    }

    /// Capacity in rounds.
    #[inline]
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// No rounds held.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.rounds.is_empty()
    }

    /// No room for another round.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.rounds.len() >= self.cap
    }

    /// Takes the top round.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<NonNull<u8>> {
        self.rounds.pop()
    }

    /// Pushes a round. Panics if the magazine is full.
    #[inline]
    pub(crate) fn push(&mut self, chunk: NonNull<u8>) {
        let len = self.rounds.len();
        assert!(len < self.cap, "push into a full magazine");
        // SAFETY: `len < cap <= capacity` (the buffer was allocated with `cap` slots and never
        // shrinks), so slot `len` is inside the allocation; writing it and growing the length
        // by one keeps every slot below the length initialised. This avoids `Vec::push`'s
        // growth path on the free fast path.
        unsafe {
            self.rounds.as_mut_ptr().add(len).write(chunk);
            self.rounds.set_len(len + 1);
        }
    }

    /// The rounds, e.g. to hand them back to the engine in one batch.
    pub(crate) fn rounds(&self) -> &[NonNull<u8>] {
        &self.rounds
    }

    /// Forgets every round (after the caller handed them back elsewhere).
    pub(crate) fn clear(&mut self) {
        self.rounds.clear();
    }

    /// The buffer to fill, e.g. with the engine's `alloc_batch`; room for `cap - len` more.
    pub(crate) fn rounds_mut(&mut self) -> &mut Vec<NonNull<u8>> {
        &mut self.rounds
    }
}

/// One thread's magazines for one class: kmem's per-CPU `cpu_cache` (loaded and previous).
#[derive(Debug)]
pub(crate) struct ClassCache {
    /// Allocations pop from and frees push to this one.
    pub(crate) loaded: Magazine,
    /// The previously loaded magazine: always either full or empty (or the placeholder).
    pub(crate) previous: Magazine,
    /// Rounds last published to the allocator's shared per-class counter (see
    /// [`ClassCache::held`]); updated only on slow paths.
    pub(crate) published: usize,
}

impl ClassCache {
    /// Two placeholders: the first allocation or free goes to the slow path.
    pub(crate) const fn new() -> Self {
        ClassCache {
            loaded: Magazine::none(),
            previous: Magazine::none(),
            published: 0,
        }
    }

    /// The fast path of allocation: a round from the loaded magazine.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<NonNull<u8>> {
        self.loaded.pop()
    }

    /// The fast path of free: a push into the loaded magazine if it has room. Returns the
    /// chunk back if not.
    #[inline]
    pub(crate) fn push(&mut self, chunk: NonNull<u8>) -> Result<(), NonNull<u8>> {
        if self.loaded.is_full() {
            return Err(chunk);
        }
        self.loaded.push(chunk);
        Ok(())
    }

    /// kmem's first fallback for allocation: if `previous` is full, swap it in and pop.
    #[inline]
    pub(crate) fn pop_after_swap(&mut self) -> Option<NonNull<u8>> {
        if !self.previous.is_empty() {
            std::mem::swap(&mut self.loaded, &mut self.previous);
            return self.loaded.pop();
        }
        None
    }

    /// kmem's first fallback for free: if `previous` is an empty magazine, swap it in and
    /// push. Returns the chunk back if not.
    #[inline]
    pub(crate) fn push_after_swap(&mut self, chunk: NonNull<u8>) -> Result<(), NonNull<u8>> {
        if !self.previous.is_none() && self.previous.is_empty() {
            std::mem::swap(&mut self.loaded, &mut self.previous);
            self.loaded.push(chunk);
            return Ok(());
        }
        Err(chunk)
    }

    /// Rounds held in both magazines.
    pub(crate) fn held(&self) -> usize {
        self.loaded.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct pointers (never dereferenced), derived from a real allocation so they carry
    /// provenance (the tests run under Miri with strict provenance).
    static BUF: [u8; 1024] = [0; 1024];

    fn p(i: usize) -> NonNull<u8> {
        NonNull::from(&BUF[i * 64 % 1024]).cast()
    }

    #[test]
    fn placeholder_is_empty_and_full() {
        let m = Magazine::none();
        assert!(m.is_none() && m.is_empty() && m.is_full());
        let mut c = ClassCache::new();
        assert_eq!(c.pop(), None);
        assert_eq!(c.push(p(1)), Err(p(1)));
        assert_eq!(c.pop_after_swap(), None);
        assert_eq!(c.push_after_swap(p(1)), Err(p(1)));
    }

    #[test]
    fn magazine_is_lifo_and_bounded() {
        let mut m = Magazine::with_capacity(3);
        for i in 0..3 {
            assert!(!m.is_full());
            m.push(p(i));
        }
        assert!(m.is_full());
        assert_eq!(m.pop(), Some(p(2)));
        assert_eq!(m.len(), 2);
        assert_eq!(m.cap(), 3);
    }

    #[test]
    fn swap_follows_kmem() {
        let mut c = ClassCache::new();
        c.loaded = Magazine::with_capacity(2);
        c.previous = Magazine::with_capacity(2);
        // Fill loaded, then the next free swaps in the empty previous.
        c.push(p(1)).unwrap();
        c.push(p(2)).unwrap();
        assert_eq!(c.push(p(3)), Err(p(3)));
        c.push_after_swap(p(3)).unwrap();
        assert_eq!(c.held(), 3);
        // Now previous is full: a further overflow cannot swap.
        c.push(p(4)).unwrap();
        assert_eq!(c.push_after_swap(p(5)), Err(p(5)));
        // Allocation empties loaded, then swaps in the full previous.
        assert_eq!(c.pop(), Some(p(4)));
        assert_eq!(c.pop(), Some(p(3)));
        assert_eq!(c.pop(), None);
        assert_eq!(c.pop_after_swap(), Some(p(2)));
        assert_eq!(c.pop(), Some(p(1)));
        assert_eq!(c.pop_after_swap(), None);
        assert_eq!(c.held(), 0);
    }
}
