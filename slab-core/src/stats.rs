//! (engine layer: stats)
