//! (magazine layer: global)
