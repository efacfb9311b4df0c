//! Reservation and mapping: the engine's one range of address space, cut into slab-sized
//! slots ([`Slots`]), and the state of every slot ([`SlotMap`]): never mapped, mapped, being
//! released, a hole we unmapped, or taken by someone else.
//!
//! Slots are mapped a granule at a time, holes first (with `MAP_FIXED_NOREPLACE`, since the
//! hole is no longer ours), then fresh slots (with `MAP_FIXED`, still inside our `PROT_NONE`
//! reservation), and unmapped a run at a time. Every system call goes through `os.rs`.

use std::collections::BTreeSet;
use std::ptr::NonNull;

use super::config::Config;
use super::os::{Os, HUGE_PAGE};
use super::release::{ReleaseReport, Run, Unmap};
use crate::error::Error;

/// Default reservation for an engine without a memory limit.
const UNLIMITED_RESERVE: usize = 64 << 30;
/// The smallest reservation tried when the default one fails.
const MIN_FALLBACK_RESERVE: usize = 1 << 30;
/// Most slots a default reservation holds (bounds the per-slot metadata for tiny slabs).
const MAX_DEFAULT_SLOTS: usize = 1 << 20;

/// The reserved address range and its cut into slots of one slab each. Fixed for the
/// engine's life.
#[derive(Debug)]
pub(super) struct Slots {
    /// The reservation's aligned base: slot `i` is `base + i * slab_size`.
    pub(super) base: NonNull<u8>,
    /// Usable reserved bytes from `base`.
    pub(super) reserved: usize,
    raw: NonNull<u8>,
    raw_len: usize,
    pub(super) slab_shift: u32,
    pub(super) nslots: u32,
}

impl Slots {
    /// Reserves the address space `config` asks for (see [`Config::reserve_bytes`]), aligned
    /// to 2 MiB or one slab, whichever is larger.
    pub(super) fn reserve(os: &Os, config: &Config) -> Result<Self, Error> {
        let slab = config.classes.slab_size();
        let align = HUGE_PAGE.max(slab);
        let reservation = match (config.reserve_bytes, config.memory_limit) {
            (Some(r), limit) => {
                let r = r.div_ceil(align) * align;
                if let Some(l) = limit {
                    if r < l {
                        return Err(Error::InvalidConfig(format!(
                            "reservation of {r} bytes is smaller than the memory limit {l}"
                        )));
                    }
                }
                os.reserve(r, align)?
            }
            (None, Some(l)) => {
                let r = (l.div_ceil(align) * align).saturating_mul(2).max(64 << 20);
                os.reserve(r, align)?
            }
            (None, None) => {
                let mut r = UNLIMITED_RESERVE.min(slab.saturating_mul(MAX_DEFAULT_SLOTS));
                loop {
                    match os.reserve(r, align) {
                        Ok(res) => break res,
                        Err(_) if r / 2 >= MIN_FALLBACK_RESERVE.max(align) => r /= 2,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        };
        let nslots = reservation.len / slab;
        if nslots > u32::MAX as usize - 1 {
            return Err(Error::InvalidConfig(format!("{nslots} slots is too many")));
        }
        Ok(Slots {
            base: reservation.base,
            reserved: reservation.len,
            raw: reservation.raw,
            raw_len: reservation.raw_len,
            slab_shift: slab.trailing_zeros(),
            nslots: nslots as u32,
        })
    }

    /// The first byte of `slot`.
    #[inline]
    pub(super) fn slot_ptr(&self, slot: u32) -> NonNull<u8> {
        let p = self
            .base
            .as_ptr()
            .wrapping_add((slot as usize) << self.slab_shift);
        NonNull::new(p).expect("slots lie inside the reservation")
    }

    /// Whether `ptr` lies in the reservation (O(1) range check).
    #[inline]
    pub(super) fn contains(&self, ptr: *const u8) -> bool {
        (ptr as usize).wrapping_sub(self.base.as_ptr() as usize) < self.reserved
    }

    /// `ptr`'s offset from the base (meaningful when [`contains`](Self::contains)).
    #[inline]
    pub(super) fn offset_of(&self, ptr: *const u8) -> usize {
        (ptr as usize).wrapping_sub(self.base.as_ptr() as usize)
    }

    /// Unmaps `runs` of slots marked `Releasing`, the way `how` says, with no lock held.
    /// Returns what was released and the runs whose `munmap` failed (still mapped).
    pub(super) fn unmap_runs(
        &self,
        os: &Os,
        runs: &[Run],
        how: Unmap,
    ) -> (ReleaseReport, Vec<Run>) {
        let slab = 1usize << self.slab_shift;
        let mut report = ReleaseReport::default();
        let mut failed = Vec::new();
        for r in runs {
            let bytes = r.len as usize * slab;
            if how == Unmap::Pages {
                const PAGE: usize = 4096;
                let start = self.slot_ptr(r.start);
                for off in (0..bytes).step_by(PAGE) {
                    let page = NonNull::new(start.as_ptr().wrapping_add(off)).expect("in slab");
                    report.munmap_calls += 1;
                    // SAFETY: as below: the page lies in a slot marked `Releasing`. A failed
                    // page leaves the slot unusable, so it is counted as released either way
                    // (mapping it back then meets EEXIST and marks it foreign).
                    let _ = unsafe { os.unmap(page, PAGE) };
                }
                report.slabs += r.len as usize;
                report.bytes += bytes;
                report.runs += 1;
                continue;
            }
            // A file-backed run gives its blocks back first: one hole punched per run. A
            // failed punch leaves the blocks allocated but loses nothing.
            if os.punch(r.start as usize * slab, bytes).is_ok() && os.file_backed() {
                report.punch_calls += 1;
            }
            report.munmap_calls += 1;
            // SAFETY: the run's slots are marked `Releasing`: mapped by us, owned by no class
            // (so no chunk in them is handed out), and no other code maps or uses them until the
            // caller marks them again.
            match unsafe { os.unmap(self.slot_ptr(r.start), bytes) } {
                Ok(()) => {
                    report.slabs += r.len as usize;
                    report.bytes += bytes;
                    report.runs += 1;
                }
                Err(_) => failed.push(*r),
            }
        }
        (report, failed)
    }

    /// Unmaps what is ours at teardown: the alignment slack and every slot whose `state` is
    /// fresh or mapped, in maximal runs. Holes may hold someone else's mapping by now and are
    /// skipped.
    pub(super) fn unmap_all(&self, os: &Os, state: &[SlotState]) {
        let raw_start = self.raw.as_ptr() as usize;
        let base = self.base.as_ptr() as usize;
        let slab = 1usize << self.slab_shift;
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut push = |start: usize, len: usize| match runs.last_mut() {
            Some((s, l)) if *s + *l == start => *l += len,
            _ => runs.push((start, len)),
        };
        push(raw_start, base - raw_start);
        for (i, st) in state.iter().enumerate() {
            if matches!(st, SlotState::Fresh | SlotState::Mapped) {
                push(base + i * slab, slab);
            }
        }
        let end = base + self.reserved;
        push(end, raw_start + self.raw_len - end);
        for (start, len) in runs {
            if len == 0 {
                continue;
            }
            let p = NonNull::new(self.raw.as_ptr().wrapping_add(start - raw_start))
                .expect("inside the reservation");
            // SAFETY: the range is part of our reservation and is either still reserved or
            // mapped by us; the caller is tearing the engine down (`&mut` access), so no chunk
            // handed out is in use any more (the caller's contract on freed pointers;
            // outstanding chunks die with the engine).
            let _ = unsafe { os.unmap(p, len) };
        }
    }
}

/// The state of one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum SlotState {
    /// Inside the reservation, `PROT_NONE`, never mapped.
    Fresh,
    /// Mapped read-write (in a class or in the pool).
    Mapped,
    /// Being unmapped (no lock held during `munmap`).
    Releasing,
    /// Unmapped by us: a hole in the reservation we may map back with `MAP_FIXED_NOREPLACE`.
    Hole,
    /// Something else mapped into our hole; never touched again.
    Foreign,
}

/// Every slot's state, and the counts of what is mapped and what was released. Guarded by the
/// engine's pool lock.
#[derive(Debug)]
pub(super) struct SlotMap {
    pub(super) state: Vec<SlotState>,
    /// Slots `next_fresh..` were never mapped.
    next_fresh: u32,
    holes: BTreeSet<u32>,
    pub(super) mapped_slabs: usize,
    pub(super) released_bytes: u64,
    pub(super) released_slabs: u64,
}

impl SlotMap {
    /// `nslots` fresh slots.
    pub(super) fn new(nslots: usize) -> Self {
        SlotMap {
            state: vec![SlotState::Fresh; nslots],
            next_fresh: 0,
            holes: BTreeSet::new(),
            mapped_slabs: 0,
            released_bytes: 0,
            released_slabs: 0,
        }
    }

    /// Maps up to `n` slots (`n > 0`) in one run, the lowest hole first, else fresh address
    /// space, and marks them mapped. Returns the run as `(start, len)`.
    pub(super) fn map(&mut self, slots: &Slots, os: &Os, n: usize) -> Result<(u32, u32), Error> {
        let slab = 1usize << slots.slab_shift;
        let (start, len) = loop {
            if let Some(&h) = self.holes.first() {
                // Map back into our own hole, as much of a contiguous run as we want.
                let mut len = 1u32;
                while (len as usize) < n && self.holes.contains(&(h + len)) {
                    len += 1;
                }
                for s in h..h + len {
                    self.holes.remove(&s);
                }
                let addr = slots.slot_ptr(h);
                // SAFETY: MAP_FIXED_NOREPLACE replaces nothing; the range is inside our
                // reservation and page-aligned.
                match unsafe { os.map_fixed(addr, len as usize * slab, true, h as usize * slab) } {
                    Ok(()) => break (h, len),
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        // Someone else mapped into the hole: never touch those slots again.
                        for s in h..h + len {
                            self.state[s as usize] = SlotState::Foreign;
                        }
                        continue;
                    }
                    Err(e) => {
                        self.holes.extend(h..h + len);
                        return Err(e.into());
                    }
                }
            }
            let avail = (slots.nslots - self.next_fresh) as usize;
            let len = n.min(avail) as u32;
            if len == 0 {
                return Err(Error::AddressSpaceExhausted {
                    reserved: slots.reserved,
                });
            }
            let start = self.next_fresh;
            // SAFETY: 1. slots `next_fresh..` are fresh: still our PROT_NONE reservation, and
            // nothing points into them; 2. slot addresses and slab sizes are page multiples.
            unsafe {
                os.map_fixed(
                    slots.slot_ptr(start),
                    len as usize * slab,
                    false,
                    start as usize * slab,
                )?
            };
            self.next_fresh += len;
            break (start, len);
        };
        for s in start..start + len {
            self.state[s as usize] = SlotState::Mapped;
        }
        self.mapped_slabs += len as usize;
        Ok((start, len))
    }

    /// Takes up a saved slab table: maps the slots in `sorted` (ascending, distinct, inside
    /// the reservation) from the engine's file, one `mmap` per contiguous run, and marks
    /// them mapped. Every other slot below the highest one becomes a hole (unmapped from
    /// the reservation, so later mappings there use `MAP_FIXED_NOREPLACE` as for any
    /// hole), and the file's blocks outside the table are punched out, one call per gap,
    /// so the file holds exactly the restored slabs. Called on a fresh slot map only.
    pub(super) fn restore(&mut self, slots: &Slots, os: &Os, sorted: &[u32]) -> Result<(), Error> {
        debug_assert_eq!(self.next_fresh, 0);
        let slab = 1usize << slots.slab_shift;
        let mut v = sorted.to_vec();
        let runs = super::release::coalesce(&mut v);
        let mut prev_end = 0u32;
        for r in &runs {
            // SAFETY: 1. slots `r.start..r.start + r.len` lie in our fresh `PROT_NONE`
            // reservation (the caller checked the bounds) and nothing points into them yet;
            // 2. slot addresses and slab sizes are page multiples.
            unsafe {
                os.map_fixed(
                    slots.slot_ptr(r.start),
                    r.len as usize * slab,
                    false,
                    r.start as usize * slab,
                )?
            };
            for s in r.start..r.start + r.len {
                self.state[s as usize] = SlotState::Mapped;
            }
            self.mapped_slabs += r.len as usize;
            if r.start > prev_end {
                self.make_holes(slots, os, prev_end, r.start)?;
            }
            prev_end = r.start + r.len;
        }
        self.next_fresh = prev_end;
        let tail = (slots.nslots - prev_end) as usize * slab;
        os.punch(prev_end as usize * slab, tail)?;
        Ok(())
    }

    /// Slots `start..end`, fresh in the reservation, become holes, and the file's blocks
    /// behind them are punched out.
    fn make_holes(&mut self, slots: &Slots, os: &Os, start: u32, end: u32) -> Result<(), Error> {
        let slab = 1usize << slots.slab_shift;
        let len = (end - start) as usize * slab;
        // SAFETY: the slots are fresh parts of our own reservation: nothing is mapped or
        // used there.
        unsafe { os.unmap(slots.slot_ptr(start), len)? };
        os.punch(start as usize * slab, len)?;
        for s in start..end {
            self.state[s as usize] = SlotState::Hole;
            self.holes.insert(s);
        }
        Ok(())
    }

    /// Marks `slots` as being released: from now on only the releasing code touches them.
    pub(super) fn mark_releasing(&mut self, slots: &[u32]) {
        for &s in slots {
            self.state[s as usize] = SlotState::Releasing;
        }
    }

    /// Records the outcome of [`Slots::unmap_runs`]: released runs become holes, those in
    /// `failed` are mapped again and go to `back` (the empty slabs).
    pub(super) fn finish_release(
        &mut self,
        runs: &[Run],
        failed: &[Run],
        report: &ReleaseReport,
        back: &mut Vec<u32>,
    ) {
        for r in runs {
            let ok = !failed.contains(r);
            for s in r.start..r.start + r.len {
                if ok {
                    self.state[s as usize] = SlotState::Hole;
                    self.holes.insert(s);
                } else {
                    self.state[s as usize] = SlotState::Mapped;
                    back.push(s);
                }
            }
        }
        self.mapped_slabs -= report.slabs;
        self.released_slabs += report.slabs as u64;
        self.released_bytes += report.bytes as u64;
    }
}
