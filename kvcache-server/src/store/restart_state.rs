//! The store's warm-restart state (leaf): the mode, what the walk found, the gate that
//! stops maintenance before a save, and the settings a saved layout depends on. The
//! saving and the walk are in `restart.rs`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

use slab_core::engine::size_class::SizeClasses;

/// No `-e`.
pub(super) const MODE_OFF: u8 = 0;
/// `-e`, started with an empty cache.
pub(super) const MODE_COLD: u8 = 1;
/// `-e`, items taken up from the file.
pub(super) const MODE_WARM: u8 = 2;

/// The lines of the metadata file that must match between the saving and the restoring
/// configuration (as given, before the store rounds its classes).
pub(super) fn settings_lines(
    memory_limit: usize,
    item_size_max: usize,
    classes: &SizeClasses,
    cas_enabled: bool,
) -> String {
    let list: Vec<String> = classes.sizes().iter().map(|s| s.to_string()).collect();
    format!(
        "memory_limit {memory_limit}\nitem_size_max {item_size_max}\nslab_size {}\ncas {cas_enabled}\nclasses {}\n",
        classes.slab_size(),
        list.join("-")
    )
}

/// The store's warm-restart state: the mode, what the walk found, and the gate that stops
/// maintenance before a save.
#[derive(Debug, Default)]
pub(super) struct RestartState {
    /// [`settings_lines`] of the configuration as given.
    pub(super) settings: String,
    pub(super) mode: AtomicU8,
    pub(super) path: Mutex<Option<PathBuf>>,
    pub(super) restored: AtomicU64,
    pub(super) dropped: AtomicU64,
    /// Set by a save: maintenance runs no more.
    pub(super) halted: AtomicBool,
    /// Held by each maintenance step, and by a save.
    gate: Mutex<()>,
}

impl RestartState {
    /// Holds off maintenance.
    pub(super) fn gate(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// No `-e` (yet), for a configuration whose [`settings_lines`] are `settings`.
    pub(super) fn new(settings: String) -> Self {
        RestartState {
            settings,
            ..Default::default()
        }
    }

    /// The gate a maintenance step holds, or `None` once a save halted maintenance.
    pub(super) fn enter(&self) -> Option<MutexGuard<'_, ()>> {
        let g = self.gate();
        (!self.halted.load(Ordering::Acquire)).then_some(g)
    }
}
