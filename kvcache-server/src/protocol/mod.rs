//! Wire protocols: parsers and reply writers. Nothing here does I/O or touches the
//! store; the server feeds bytes in and executes what comes out.
//!
//! - [`text`]: memcached's classic text protocol (`get`, `set`, `incr`, `stats`...).

pub mod binary;
pub mod meta;
pub mod text;
