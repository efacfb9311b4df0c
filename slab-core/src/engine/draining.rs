//! Draining: slabs a compactor empties. A draining slab is kept out of its class's partial
//! list, so no allocation takes a chunk from it, while frees into it still count; a slab whose
//! last chunk is freed leaves the class (and the draining state) as usual.
//!
//! The engine's [`begin_drain`](super::SlabEngine::begin_drain),
//! [`end_drain`](super::SlabEngine::end_drain) and
//! [`alloc_in_place`](super::SlabEngine::alloc_in_place) call these under the class's lock.

use std::ptr::NonNull;

use super::class_list::{ClassState, NONE};

/// A slab picked by [`SlabEngine::begin_drain`](super::SlabEngine::begin_drain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainSlab {
    /// The slab's first byte (chunk `i` starts at `base + i * chunk_size`).
    pub base: NonNull<u8>,
    /// Chunks carved from the slab's start so far; chunks beyond were never handed out.
    pub carved: usize,
    /// Chunks handed out when it was picked.
    pub used: usize,
}

/// Picks the sparsest slabs of a class with `cps` chunks per slab and marks them draining
/// (the rule is [`SlabEngine::begin_drain`](super::SlabEngine::begin_drain)'s); `slot_ptr`
/// gives a slot's first byte.
pub(super) fn pick(
    st: &mut ClassState,
    cps: usize,
    min_slabs: usize,
    max_fill: f64,
    max_chunks: usize,
    slot_ptr: impl Fn(u32) -> NonNull<u8>,
) -> Vec<DrainSlab> {
    let n = st.slabs.len() - usize::from(st.spare.is_some());
    if n < min_slabs.max(2) || st.used as f64 >= max_fill * (n * cps) as f64 {
        return Vec::new();
    }
    // Slabs needed for every used chunk, plus one spare.
    let keep = st.used.div_ceil(cps) + 1;
    let mut cand: Vec<u32> = (0..st.slabs.len() as u32)
        .filter(|&i| {
            let m = &st.slabs[i as usize];
            m.used > 0 && m.used < cps as u32 && !m.draining && st.spare != Some(i)
        })
        .collect();
    cand.sort_unstable_by_key(|&i| st.slabs[i as usize].used);
    let mut picked = Vec::new();
    let mut chunks = 0;
    for i in cand {
        if n - picked.len() <= keep {
            break;
        }
        let used = st.slabs[i as usize].used as usize;
        if chunks + used > max_chunks {
            break;
        }
        chunks += used;
        if st.slabs[i as usize].partial_pos != NONE {
            st.remove_partial(i);
        }
        let m = &mut st.slabs[i as usize];
        m.draining = true;
        picked.push(DrainSlab {
            base: slot_ptr(m.slot),
            carved: m.bump as usize,
            used,
        });
    }
    picked
}

/// Ends the draining of slab `idx` (a class with `cps` chunks per slab): it serves
/// allocations again if it has room. Returns true if it was no longer draining (it emptied
/// meanwhile).
pub(super) fn end(st: &mut ClassState, idx: u32, cps: u32) -> bool {
    let m = &mut st.slabs[idx as usize];
    if !m.draining {
        return true;
    }
    m.draining = false;
    if m.used < cps {
        st.add_partial(idx);
    }
    false
}

/// The slab [`alloc_in_place`](super::SlabEngine::alloc_in_place) takes from: the class's
/// last partial slab, unless that is the former spare being filled (taking from it would not
/// compact anything).
pub(super) fn in_place_slab(st: &ClassState) -> Option<u32> {
    let idx = *st.partial.last()?;
    (st.slabs[idx as usize].used > 0).then_some(idx)
}
