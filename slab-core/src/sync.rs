//! (engine layer: sync)
