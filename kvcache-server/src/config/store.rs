//! From the settings to the store's configuration.

use super::{Config, ConfigError};

impl Config {
    /// The store's configuration: memory, item limit, CAS, evictions, and the size
    /// classes (ours by default; memcached-style geometric ones with `-f`/`-n`; an
    /// explicit list with `-o slab_sizes`, to which a class of half a slab is appended as
    /// memcached appends its `slab_chunk_max`).
    pub fn store_config(&self) -> Result<crate::store::StoreConfig, ConfigError> {
        use crate::store::{default_classes, StoreConfig};
        use slab_core::engine::size_class::SizeClasses;
        let mut sc = StoreConfig::new(self.memory_limit);
        sc.item_size_max = self.item_size_max;
        sc.cas_enabled = self.cas_enabled;
        sc.evictions = self.evictions;
        sc.slab_reassign = self.slab_reassign;
        sc.slab_automove = self.slab_automove;
        sc.huge_pages = self.operator.huge_pages;
        let slab_size = sc.classes.slab_size();
        sc.classes = if let Some(sizes) = &self.slab_sizes {
            let largest = sizes.iter().copied().max().unwrap_or(0);
            let slab = slab_size.max((largest * 2).next_power_of_two());
            let mut list = sizes.clone();
            if largest < slab / 2 {
                list.push(slab / 2);
            }
            SizeClasses::from_list(&list, 8, slab)
                .map_err(|e| ConfigError(format!("slab_sizes: {e}")))?
        } else if self.factor.is_some() || self.min_space.is_some() {
            let header = crate::item::stored_size(0, 0, 0, self.cas_enabled);
            let min_chunk = (header + self.min_space.unwrap_or(48)).div_ceil(8) * 8;
            let factor = self.factor.unwrap_or(1.25);
            SizeClasses::geometric(min_chunk, factor, slab_size / 2, 8, slab_size)
                .map_err(|e| ConfigError(format!("size classes: {e}")))?
        } else {
            default_classes(slab_size, self.item_size_max)
        };
        Ok(sc)
    }
}
