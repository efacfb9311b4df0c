//! (magazine layer: allocator)
