//! kvcache-server: a memcached-compatible cache server.
#![warn(missing_docs)]

pub mod item;
