//! Per-worker counters (commands, hits, bytes, connections) and their sums for `stats`
//! (the replies themselves are written by the server, which knows every worker).
//!
//! Each worker counts into a plain [`Counters`] it owns and publishes it, once per poll
//! iteration, to its [`PublishedCounters`] with relaxed stores: a request costs a few
//! register increments, never a shared atomic read-modify-write. `stats` sums the
//! published copies; `stats reset` records the current sums as a baseline.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Per-worker counters, with memcached's names.
        #[derive(Clone, Copy, Debug, Default)]
        #[allow(missing_docs)]
        pub struct Counters { $(pub $name: u64,)* }

        /// A worker's counters as last published.
        #[derive(Debug, Default)]
        pub struct PublishedCounters { $($name: AtomicU64,)* }

        impl PublishedCounters {
            /// Publishes `c` (called by the owning worker only).
            pub fn publish(&self, c: &Counters) {
                $(self.$name.store(c.$name, Relaxed);)*
            }

            /// Adds the published values into `sum`.
            pub fn add_to(&self, sum: &mut Counters) {
                $(sum.$name += self.$name.load(Relaxed);)*
            }
        }

        impl Counters {
            /// `self - base`, per field, saturating.
            pub fn since(&self, base: &Counters) -> Counters {
                Counters { $($name: self.$name.saturating_sub(base.$name),)* }
            }
        }
    };
}

counters!(
    cmd_get,
    cmd_set,
    cmd_flush,
    cmd_touch,
    cmd_meta,
    cmd_binary,
    get_hits,
    get_misses,
    delete_misses,
    delete_hits,
    incr_misses,
    incr_hits,
    decr_misses,
    decr_hits,
    cas_misses,
    cas_hits,
    cas_badval,
    touch_hits,
    touch_misses,
    store_too_large,
    store_no_memory,
    bytes_read,
    bytes_written,
    conn_yields,
    auth_cmds,
    auth_errors,
    idle_kicks,
    write_timeouts,
);

/// All workers' published counters and the `stats reset` baseline.
#[derive(Debug)]
pub struct StatsHub {
    workers: Vec<PublishedCounters>,
    baseline: Mutex<Counters>,
}

impl StatsHub {
    /// One slot per worker.
    pub fn new(workers: usize) -> Self {
        StatsHub {
            workers: (0..workers).map(|_| PublishedCounters::default()).collect(),
            baseline: Mutex::new(Counters::default()),
        }
    }

    /// Worker `i`'s slot.
    pub fn worker(&self, i: usize) -> &PublishedCounters {
        &self.workers[i]
    }

    fn raw_sum(&self) -> Counters {
        let mut sum = Counters::default();
        for w in &self.workers {
            w.add_to(&mut sum);
        }
        sum
    }

    /// The sums since the last reset.
    pub fn sum(&self) -> Counters {
        let base = *self.baseline.lock().unwrap_or_else(|e| e.into_inner());
        self.raw_sum().since(&base)
    }

    /// `stats reset` for the server-side counters.
    pub fn reset(&self) {
        let now = self.raw_sum();
        *self.baseline.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }
}
