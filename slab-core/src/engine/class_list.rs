//! Per-class slab lists: each slab's metadata, the partial list, the one empty spare, the
//! owner word every slot's entry in the owner table holds, and the raw layer that reads and
//! writes the free-list link stored in a free chunk.
//!
//! All of it is guarded by the class's lock (see the [engine docs](super)).

use super::size_class::ClassId;
use crate::sync::atomic::{AtomicU64, Ordering};

// ---------------------------------------------------------------------------------------------
// The raw layer: reading and writing the free-list link stored in a free chunk.
// ---------------------------------------------------------------------------------------------

pub(super) mod link {
    use std::ptr::NonNull;

    /// Reads the free-list link stored in a free chunk.
    ///
    /// # Safety
    /// `chunk` must point to at least 4 bytes of mapped memory of a free chunk that this
    /// engine's class lock protects (no one else reads or writes it).
    #[inline]
    pub(crate) unsafe fn read(chunk: NonNull<u8>) -> u32 {
        // SAFETY: by the caller's contract the 4 bytes are mapped and not aliased mutably;
        // chunks need not be 4-aligned (alignment 1 tables), hence `read_unaligned`.
        unsafe { chunk.as_ptr().cast::<u32>().read_unaligned() }
    }

    /// Stores a free-list link in a chunk that was just freed.
    ///
    /// # Safety
    /// `chunk` must point to at least 4 bytes of mapped memory of a chunk that its owner has
    /// given back, under this engine's class lock.
    #[inline]
    pub(crate) unsafe fn write(chunk: NonNull<u8>, next: u32) {
        // SAFETY: by the caller's contract nobody else uses these 4 bytes any more.
        unsafe { chunk.as_ptr().cast::<u32>().write_unaligned(next) }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-class state.
// ---------------------------------------------------------------------------------------------

/// No position (in `SlabMeta::partial_pos`).
pub(super) const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
pub(super) struct SlabMeta {
    /// Slot number in the reservation.
    pub(super) slot: u32,
    /// Chunks carved so far; chunks `bump..` were never handed out (and never touched).
    pub(super) bump: u32,
    /// First free chunk index + 1, or 0; each free chunk stores the next link.
    pub(super) free_head: u32,
    /// Chunks handed out.
    pub(super) used: u32,
    /// Position in `ClassState::partial`, or `NONE`.
    pub(super) partial_pos: u32,
    /// Being emptied by a compactor: kept out of `partial`, so no chunk of it is handed out.
    pub(super) draining: bool,
}

#[derive(Debug, Default)]
pub(super) struct ClassState {
    pub(super) slabs: Vec<SlabMeta>,
    /// Indices into `slabs` of slabs with a free chunk and at least one used chunk (or the
    /// former spare being filled).
    pub(super) partial: Vec<u32>,
    /// Index of the one empty slab the class keeps, if any (not in `partial`).
    pub(super) spare: Option<u32>,
    pub(super) used: usize,
    pub(super) full: usize,
}

/// Cache-line padding so neighbouring class locks do not share a line.
#[repr(align(128))]
#[derive(Debug)]
pub(super) struct Padded<T>(pub(super) T);

/// The owner-table word of slab `idx` of `class`: `(class + 1) << 32 | idx` (0 is "no owner").
#[inline]
pub(super) fn owner_word(class: ClassId, idx: u32) -> u64 {
    ((class.0 as u64 + 1) << 32) | idx as u64
}

impl SlabMeta {
    /// A slab just taken into a class at `slot`: nothing carved, nothing used.
    pub(super) fn new(slot: u32) -> Self {
        SlabMeta {
            slot,
            bump: 0,
            free_head: 0,
            used: 0,
            partial_pos: NONE,
            draining: false,
        }
    }
}

impl ClassState {
    #[inline]
    pub(super) fn add_partial(&mut self, idx: u32) {
        let m = &mut self.slabs[idx as usize];
        debug_assert_eq!(m.partial_pos, NONE);
        m.partial_pos = self.partial.len() as u32;
        self.partial.push(idx);
    }

    #[inline]
    pub(super) fn remove_partial(&mut self, idx: u32) {
        let pos = self.slabs[idx as usize].partial_pos;
        debug_assert_ne!(pos, NONE);
        self.slabs[idx as usize].partial_pos = NONE;
        self.partial.swap_remove(pos as usize);
        if let Some(&moved) = self.partial.get(pos as usize) {
            self.slabs[moved as usize].partial_pos = pos;
        }
    }

    /// Removes slab `idx` (empty, not in `partial`, not the spare) and returns its slot.
    pub(super) fn remove_slab(&mut self, idx: u32, class: ClassId, owner: &[AtomicU64]) -> u32 {
        let m = self.slabs.swap_remove(idx as usize);
        debug_assert!(m.used == 0 && m.partial_pos == NONE);
        owner[m.slot as usize].store(0, Ordering::Release);
        let old_last = self.slabs.len() as u32;
        if let Some(moved) = self.slabs.get(idx as usize).copied() {
            owner[moved.slot as usize].store(owner_word(class, idx), Ordering::Release);
            if moved.partial_pos != NONE {
                self.partial[moved.partial_pos as usize] = idx;
            }
            if self.spare == Some(old_last) {
                self.spare = Some(idx);
            }
        }
        m.slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::ptr::NonNull;

    /// Checks the links between `slabs`, `partial`, `spare` and the owner table.
    fn check(st: &ClassState, class: ClassId, owner: &[AtomicU64]) {
        for (pos, &idx) in st.partial.iter().enumerate() {
            assert_eq!(st.slabs[idx as usize].partial_pos, pos as u32);
        }
        let in_partial = st.slabs.iter().filter(|m| m.partial_pos != NONE).count();
        assert_eq!(in_partial, st.partial.len());
        if let Some(s) = st.spare {
            assert_eq!(st.slabs[s as usize].partial_pos, NONE);
        }
        for (idx, m) in st.slabs.iter().enumerate() {
            assert_eq!(
                owner[m.slot as usize].load(Ordering::Relaxed),
                owner_word(class, idx as u32)
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 3 } else { 128 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Adding and removing slabs and partial entries in any order keeps every index and
        /// every owner word consistent (the bookkeeping `free_batch` and `drain_spares` rely
        /// on). No memory is mapped, so Miri runs this.
        #[test]
        fn class_lists_stay_consistent(ops in prop::collection::vec((0u8..4, any::<u16>()), 1..120)) {
            let class = ClassId(3);
            let owner: Vec<AtomicU64> = (0..64).map(|_| AtomicU64::new(0)).collect();
            let mut st = ClassState::default();
            let mut free_slots: Vec<u32> = (0..64).collect();
            for (op, r) in ops {
                let n = st.slabs.len();
                match op {
                    0 if !free_slots.is_empty() => {
                        let slot = free_slots.swap_remove(r as usize % free_slots.len());
                        let idx = n as u32;
                        st.slabs.push(SlabMeta::new(slot));
                        owner[slot as usize].store(owner_word(class, idx), Ordering::Relaxed);
                        st.add_partial(idx);
                    }
                    1 if !st.partial.is_empty() => {
                        let idx = st.partial[r as usize % st.partial.len()];
                        st.remove_partial(idx);
                    }
                    2 if n > 0 => {
                        let idx = (r as usize % n) as u32;
                        if st.slabs[idx as usize].partial_pos == NONE && st.spare != Some(idx) {
                            if st.spare.is_none() {
                                st.spare = Some(idx);
                            } else {
                                let slot = st.remove_slab(idx, class, &owner);
                                prop_assert_eq!(owner[slot as usize].load(Ordering::Relaxed), 0);
                                free_slots.push(slot);
                            }
                        }
                    }
                    3 => {
                        if let Some(idx) = st.spare.take() {
                            if r % 2 == 0 {
                                st.add_partial(idx);
                            } else {
                                free_slots.push(st.remove_slab(idx, class, &owner));
                            }
                        }
                    }
                    _ => {}
                }
                check(&st, class, &owner);
                prop_assert_eq!(st.slabs.len() + free_slots.len(), 64);
            }
        }
    }

    #[test]
    fn free_list_links_round_trip() {
        // Links are unaligned-safe: store and load at every offset of a buffer.
        let mut buf = [0u8; 16];
        for off in 0..12 {
            let p = NonNull::new(buf.as_mut_ptr().wrapping_add(off)).unwrap();
            // SAFETY: `p..p+4` lies inside `buf`, which nothing else uses.
            unsafe { link::write(p, 0xDEAD_0000 + off as u32) };
            // SAFETY: as above.
            assert_eq!(unsafe { link::read(p) }, 0xDEAD_0000 + off as u32);
        }
    }
}
