//! kvcache-server: a memcached-compatible cache server whose items live in slab-core.
#![warn(missing_docs)]

pub mod config;
pub mod exec;
pub mod item;
pub mod protocol;
pub mod server;
pub mod store;
