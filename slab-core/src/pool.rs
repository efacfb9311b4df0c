//! (magazine layer: pool)
