//! (engine layer: engine)
