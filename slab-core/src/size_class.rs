//! (engine layer: size_class)
