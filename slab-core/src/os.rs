//! (engine layer: os)
