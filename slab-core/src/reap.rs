//! (magazine layer: reap)
