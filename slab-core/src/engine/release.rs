//! Batched release: empty slabs are sorted by address, adjacent ones merged into runs, and
//! each run returned to the OS with exactly one `munmap`, outside every lock (and, when the
//! engine's memory is a file, one `fallocate(FALLOC_FL_PUNCH_HOLE)` that gives the run's
//! blocks back to the file system).

use std::fmt;

/// What one release did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReleaseReport {
    /// Slabs returned to the OS.
    pub slabs: usize,
    /// Bytes returned to the OS.
    pub bytes: usize,
    /// `munmap` calls made (one per run when batched).
    pub munmap_calls: usize,
    /// Contiguous runs the slabs formed.
    pub runs: usize,
    /// Holes punched in the backing file (`fallocate(FALLOC_FL_PUNCH_HOLE)`, one per run;
    /// 0 for anonymous memory).
    pub punch_calls: usize,
}

impl ReleaseReport {
    /// Average bytes released per `munmap` call (0 if none was made).
    pub fn bytes_per_call(&self) -> usize {
        self.bytes.checked_div(self.munmap_calls).unwrap_or(0)
    }

    /// Adds another report to this one.
    pub fn merge(&mut self, other: ReleaseReport) {
        self.slabs += other.slabs;
        self.bytes += other.bytes;
        self.munmap_calls += other.munmap_calls;
        self.runs += other.runs;
        self.punch_calls += other.punch_calls;
    }
}

impl fmt::Display for ReleaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "released {} slabs, {} bytes in {} runs with {} munmap calls ({} bytes per call)",
            self.slabs,
            self.bytes,
            self.runs,
            self.munmap_calls,
            self.bytes_per_call()
        )
    }
}

/// How a release unmaps: the real path, and two naive ones kept for comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unmap {
    /// One `munmap` per run of adjacent slabs.
    Runs,
    /// One `munmap` per slab.
    Slabs,
    /// One `munmap` per 4 KiB page.
    Pages,
}

/// A run of adjacent slab slots: `start..start + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) start: u32,
    pub(crate) len: u32,
}

/// Sorts `slots` and merges neighbours into runs, lowest address first.
pub(crate) fn coalesce(slots: &mut [u32]) -> Vec<Run> {
    slots.sort_unstable();
    let mut runs: Vec<Run> = Vec::new();
    for &s in slots.iter() {
        match runs.last_mut() {
            Some(r) if r.start + r.len == s => r.len += 1,
            _ => runs.push(Run { start: s, len: 1 }),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn merges_neighbours() {
        let mut v = vec![7, 3, 4, 9, 5, 8, 1];
        let runs = coalesce(&mut v);
        assert_eq!(
            runs,
            vec![
                Run { start: 1, len: 1 },
                Run { start: 3, len: 3 },
                Run { start: 7, len: 3 }
            ]
        );
        assert!(coalesce(&mut []).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Runs cover exactly the input, are disjoint, sorted, and never adjacent.
        #[test]
        fn runs_are_maximal(set in prop::collection::btree_set(0u32..500, 0..200)) {
            let mut v: Vec<u32> = set.iter().rev().copied().collect();
            let runs = coalesce(&mut v);
            let covered: Vec<u32> = runs.iter().flat_map(|r| r.start..r.start + r.len).collect();
            prop_assert_eq!(covered, set.iter().copied().collect::<Vec<_>>());
            for w in runs.windows(2) {
                prop_assert!(w[0].start + w[0].len < w[1].start);
            }
        }
    }

    #[test]
    fn report_arithmetic() {
        let mut r = ReleaseReport {
            slabs: 4,
            bytes: 4 << 20,
            munmap_calls: 2,
            runs: 2,
            punch_calls: 0,
        };
        assert_eq!(r.bytes_per_call(), 2 << 20);
        r.merge(ReleaseReport {
            slabs: 1,
            bytes: 1 << 20,
            munmap_calls: 1,
            runs: 1,
            punch_calls: 1,
        });
        assert_eq!(r.punch_calls, 1);
        assert_eq!(r.slabs, 5);
        assert_eq!(ReleaseReport::default().bytes_per_call(), 0);
        assert!(r.to_string().contains("3 munmap calls"));
    }
}
