//! The pool of empty slabs and its adaptive retention.
//!
//! Slabs that a class no longer needs come here, mapped, where any class can take them. A reap
//! ([`close_interval`](EmptySlabs::close_interval)) keeps a *target* number of them and returns
//! the rest to the OS. The target adapts to demand, like glibc's dynamic mmap threshold:
//! mapping new memory within `misjudge_window` reaps of releasing some raises it by that amount
//! (the release was a misjudgement); pooled slabs that stay unused for `decay_after` whole
//! intervals make it decay by half the unused amount per interval.
//!
//! Everything here is guarded by the engine's pool lock, together with the [`SlotMap`].

use std::collections::VecDeque;

use super::config::Config;
use super::reservation::SlotMap;

/// The empty-slab pool, the slot map, and the retention state (see the [module docs](self)).
#[derive(Debug)]
pub(super) struct EmptySlabs {
    /// Every slot's state and the mapped count.
    pub(super) slots: SlotMap,
    /// Empty mapped slabs not owned by any class.
    pub(super) empty: Vec<u32>,
    target: usize,
    /// Smallest `empty.len()` seen since the last reap.
    low_water: usize,
    /// Consecutive reap intervals with `low_water > 0`.
    idle_intervals: u32,
    epoch: u64,
    /// Slabs released by reaps, per reap epoch, not yet mapped again.
    recent_releases: VecDeque<(u64, usize)>,
    /// Calls of `demand_dropped`.
    demand_drops: u64,
    min_retained: usize,
    max_retained: Option<usize>,
    misjudge_window: u32,
    decay_after: u32,
}

impl EmptySlabs {
    /// No slab yet, `nslots` fresh slots, retention as `config` says.
    pub(super) fn new(nslots: usize, config: &Config) -> Self {
        EmptySlabs {
            slots: SlotMap::new(nslots),
            empty: Vec::new(),
            target: config.min_retained_slabs,
            low_water: 0,
            idle_intervals: 0,
            epoch: 0,
            recent_releases: VecDeque::new(),
            demand_drops: 0,
            min_retained: config.min_retained_slabs,
            max_retained: config.max_retained_slabs,
            misjudge_window: config.misjudge_window,
            decay_after: config.decay_after,
        }
    }

    /// The empty slabs the pool means to keep across a reap.
    pub(super) fn target(&self) -> usize {
        self.target
    }

    /// Calls of [`demand_dropped`](Self::demand_dropped).
    pub(super) fn demand_drops(&self) -> u64 {
        self.demand_drops
    }

    /// Takes an empty slab (the lowest-addressed of those mapped last).
    #[inline]
    pub(super) fn pop(&mut self) -> Option<u32> {
        let slot = self.empty.pop()?;
        self.low_water = self.low_water.min(self.empty.len());
        Some(slot)
    }

    /// Adds the slots `start..start + len`, just mapped. Mapping soon after a reap released
    /// slabs means that reap misjudged demand: the target grows by as much.
    pub(super) fn add_mapped(&mut self, start: u32, len: u32) {
        // Lowest address on top: pop order follows the address order.
        self.empty.extend((start..start + len).rev());
        let mut misjudged = len as usize;
        while misjudged > 0 {
            let Some(front) = self.recent_releases.front_mut() else {
                break;
            };
            let take = misjudged.min(front.1);
            front.1 -= take;
            misjudged -= take;
            self.target += take;
            if front.1 == 0 {
                self.recent_releases.pop_front();
            }
        }
        if let Some(max) = self.max_retained {
            self.target = self.target.min(max);
        }
    }

    /// Closes a reap interval: adapts the target to the demand seen since the last one and
    /// takes out the empty slabs beyond it, marked `Releasing` (the lowest-addressed ones are
    /// kept). Returns them and the interval's epoch, for [`released`](Self::released).
    pub(super) fn close_interval(&mut self) -> (Vec<u32>, u64) {
        self.epoch += 1;
        let epoch = self.epoch;
        let window = u64::from(self.misjudge_window);
        self.recent_releases.retain(|&(e, _)| epoch - e <= window);
        if self.low_water > 0 {
            self.idle_intervals += 1;
            if self.idle_intervals >= self.decay_after {
                self.target = self.target.saturating_sub(self.low_water.div_ceil(2));
            }
        } else {
            self.idle_intervals = 0;
        }
        self.target = self.target.max(self.min_retained);
        if let Some(max) = self.max_retained {
            self.target = self.target.min(max);
        }
        let keep = self.target.min(self.empty.len());
        let victims = if self.empty.len() > keep {
            self.empty.sort_unstable_by(|a, b| b.cmp(a));
            // Descending: the kept lowest-addressed ones stay on top of the stack.
            let cut = self.empty.len() - keep;
            let victims: Vec<u32> = self.empty.drain(..cut).collect();
            self.slots.mark_releasing(&victims);
            victims
        } else {
            Vec::new()
        };
        self.low_water = self.empty.len();
        (victims, epoch)
    }

    /// Records that the reap of `epoch` released `slabs` slabs (mapping again within the
    /// misjudgement window raises the target).
    pub(super) fn released(&mut self, epoch: u64, slabs: usize) {
        self.recent_releases.push_back((epoch, slabs));
    }

    /// Takes out every empty slab, marked `Releasing`, outside the retention decision.
    pub(super) fn take_all(&mut self) -> Vec<u32> {
        let victims = std::mem::take(&mut self.empty);
        self.slots.mark_releasing(&victims);
        self.low_water = 0;
        victims
    }

    /// Demand fell: the target drops to its floor and earlier reaps' releases are forgotten.
    pub(super) fn demand_dropped(&mut self) {
        self.target = self.min_retained;
        self.idle_intervals = 0;
        self.recent_releases.clear();
        self.demand_drops += 1;
    }
}
