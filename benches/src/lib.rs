//! Benchmarks shared code.
