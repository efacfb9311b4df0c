//! (engine layer: error)
