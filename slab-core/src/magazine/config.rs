//! [`MagazineConfig`]: the magazine layer's settings, and the per-class depot settings they
//! make.

use std::time::Duration;

use super::depot::DepotParams;
use crate::error::Error;

/// Settings of the magazine layer. Build with [`MagazineConfig::default`] and the setters.
#[derive(Clone, Debug)]
pub struct MagazineConfig {
    /// Rounds per magazine at start (before contention grows it). Default 32.
    pub initial_rounds: usize,
    /// Rounds per magazine at most, however contended the depot. Default 256.
    pub max_rounds: usize,
    /// Bytes of chunks one magazine may hold: a class's magazine size is capped at
    /// `max_magazine_bytes / chunk_size`, and classes whose chunk is larger than this bypass
    /// magazines (every allocation goes to the engine). Default 64 KiB.
    pub max_magazine_bytes: usize,
    /// Bytes of chunks one class's depot may hold in full magazines; beyond it, frees that
    /// overflow a thread's magazines go straight back to the engine. Default 4 MiB.
    pub max_depot_bytes: usize,
    /// Contention events on a depot lock (since the last resize or reap) that double the
    /// class's magazine size. Default 8.
    pub contention_threshold: u64,
    /// Start a background reaper with this interval when the allocator is built. Default none.
    pub reap_interval: Option<Duration>,
}

impl Default for MagazineConfig {
    fn default() -> Self {
        MagazineConfig {
            initial_rounds: 32,
            max_rounds: 256,
            max_magazine_bytes: 64 << 10,
            max_depot_bytes: 4 << 20,
            contention_threshold: 8,
            reap_interval: None,
        }
    }
}

impl MagazineConfig {
    /// Sets the initial magazine size in rounds (0 disables magazines).
    pub fn initial_rounds(mut self, rounds: usize) -> Self {
        self.initial_rounds = rounds;
        self
    }

    /// Sets the largest magazine size in rounds.
    pub fn max_rounds(mut self, rounds: usize) -> Self {
        self.max_rounds = rounds;
        self
    }

    /// Sets the bytes one magazine may hold.
    pub fn max_magazine_bytes(mut self, bytes: usize) -> Self {
        self.max_magazine_bytes = bytes;
        self
    }

    /// Sets the bytes one class's depot may hold.
    pub fn max_depot_bytes(mut self, bytes: usize) -> Self {
        self.max_depot_bytes = bytes;
        self
    }

    /// Sets the contention events that grow a magazine.
    pub fn contention_threshold(mut self, events: u64) -> Self {
        self.contention_threshold = events;
        self
    }

    /// Starts a background reaper with this interval.
    pub fn reap_interval(mut self, interval: Duration) -> Self {
        self.reap_interval = Some(interval);
        self
    }

    pub(super) fn params(&self, chunk: usize) -> DepotParams {
        let by_bytes = self.max_magazine_bytes / chunk;
        DepotParams {
            initial_rounds: self.initial_rounds.min(by_bytes),
            max_rounds: self.max_rounds.min(by_bytes).max(1),
            max_depot_rounds: self.max_depot_bytes / chunk,
            contention_threshold: self.contention_threshold.max(1),
        }
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        if self.initial_rounds > self.max_rounds {
            return Err(Error::InvalidConfig(format!(
                "initial magazine size {} exceeds the maximum {}",
                self.initial_rounds, self.max_rounds
            )));
        }
        if self.reap_interval == Some(Duration::ZERO) {
            return Err(Error::InvalidConfig(
                "reap interval must not be zero".into(),
            ));
        }
        Ok(())
    }
}
