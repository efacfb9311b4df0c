//! Size histograms and the two servers' per-item size models.

use std::collections::BTreeMap;

use serde::Serialize;

/// A histogram of item sizes: `(size, count)` pairs with distinct sizes, ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Hist {
    entries: Vec<(u64, u64)>,
}

impl Hist {
    /// Builds a histogram from `(size, count)` pairs in any order; equal sizes are merged
    /// and zero counts dropped.
    pub fn from_pairs<I: IntoIterator<Item = (u64, u64)>>(pairs: I) -> Self {
        let mut m = BTreeMap::new();
        for (s, c) in pairs {
            if c != 0 {
                *m.entry(s).or_insert(0u64) += c;
            }
        }
        Hist {
            entries: m.into_iter().collect(),
        }
    }

    /// The `(size, count)` pairs, ascending by size.
    pub fn entries(&self) -> &[(u64, u64)] {
        &self.entries
    }

    /// Number of items.
    pub fn items(&self) -> u64 {
        self.entries.iter().map(|e| e.1).sum()
    }

    /// Sum of the item sizes.
    pub fn bytes(&self) -> u128 {
        self.entries
            .iter()
            .map(|&(s, c)| u128::from(s) * u128::from(c))
            .sum()
    }

    /// True when the histogram holds no item.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The largest size, if any.
    pub fn max_size(&self) -> Option<u64> {
        self.entries.last().map(|e| e.0)
    }

    /// The same items with every size moved by `delta` (sizes that would fall below 1 are
    /// clamped to 1).
    pub fn shifted(&self, delta: i64) -> Hist {
        Hist::from_pairs(
            self.entries
                .iter()
                .map(|&(s, c)| ((s as i64 + delta).max(1) as u64, c)),
        )
    }

    /// Splits into the items of size at most `limit` and those above it.
    pub fn split_at(&self, limit: u64) -> (Hist, Hist) {
        let i = self.entries.partition_point(|e| e.0 <= limit);
        (
            Hist {
                entries: self.entries[..i].to_vec(),
            },
            Hist {
                entries: self.entries[i..].to_vec(),
            },
        )
    }
}

/// Which server's item layout sizes are computed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// `kvcache-server` (this project): sizes from [`kvcache_server::item::stored_size`].
    Ours,
    /// memcached 1.6: 48 B header + 8 B CAS + key + 1 + value + 2 (+ 4 with flags).
    Memcached,
}

impl Target {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Target::Ours => "kvcache-server",
            Target::Memcached => "memcached",
        }
    }

    /// Bytes this server stores for an item.
    pub fn stored_size(self, key_len: usize, value_len: usize, flags: u32, cas: bool) -> u64 {
        (match self {
            Target::Ours => kvcache_server::item::stored_size(key_len, value_len, flags, cas),
            Target::Memcached => {
                kvcache_server::item::memcached_stored_size(key_len, value_len, flags, cas)
            }
        }) as u64
    }
}

/// memcached's stored size minus ours for the same item.
///
/// Both layouts add 4 bytes for nonzero client flags, so for a given CAS setting the
/// difference is the same for every item: this is the one assumption made when a
/// histogram of one server's stored sizes is translated into the other's.
pub fn memcached_minus_ours(cas: bool) -> i64 {
    Target::Memcached.stored_size(0, 0, 0, cas) as i64
        - Target::Ours.stored_size(0, 0, 0, cas) as i64
}

/// Observed items: the key and value lengths and whether the client flags were nonzero.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// `(key_len, value_len, flags_nonzero) -> count`.
    pub items: BTreeMap<(u32, u32, bool), u64>,
}

impl Observed {
    /// Counts `n` items of one shape.
    pub fn add(&mut self, key_len: u32, value_len: u32, flags_nonzero: bool, n: u64) {
        *self
            .items
            .entry((key_len, value_len, flags_nonzero))
            .or_insert(0) += n;
    }

    /// The histogram of stored sizes on `target`.
    pub fn hist(&self, target: Target, cas: bool) -> Hist {
        Hist::from_pairs(self.items.iter().map(|(&(k, v, f), &n)| {
            (
                target.stored_size(k as usize, v as usize, u32::from(f), cas),
                n,
            )
        }))
    }

    /// Number of items.
    pub fn count(&self) -> u64 {
        self.items.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_is_the_same_with_and_without_flags() {
        for cas in [false, true] {
            let d = memcached_minus_ours(cas);
            for (k, v) in [(1, 0), (14, 32), (250, 100_000)] {
                for f in [0, 7] {
                    let m = Target::Memcached.stored_size(k, v, f, cas) as i64;
                    let o = Target::Ours.stored_size(k, v, f, cas) as i64;
                    assert_eq!(m - o, d);
                }
            }
        }
    }

    #[test]
    fn hist_merges_and_splits() {
        let h = Hist::from_pairs([(10, 1), (5, 2), (10, 3), (7, 0)]);
        assert_eq!(h.entries(), &[(5, 2), (10, 4)]);
        assert_eq!(h.items(), 6);
        assert_eq!(h.bytes(), 50);
        let (a, b) = h.split_at(9);
        assert_eq!(a.entries(), &[(5, 2)]);
        assert_eq!(b.entries(), &[(10, 4)]);
        assert_eq!(h.shifted(-6).entries(), &[(1, 2), (4, 4)]);
    }
}
