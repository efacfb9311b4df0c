//! (engine layer: release)
