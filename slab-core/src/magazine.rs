//! (magazine layer: magazine)
