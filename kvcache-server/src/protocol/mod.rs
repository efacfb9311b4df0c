//! Wire protocols: parsers and reply writers. Nothing here does I/O or touches the
//! store; the execution layer ([`crate::exec`]) feeds bytes in and runs what comes out.
//!
//! - [`lex`]: what the parsers share (the `Incomplete`/`Close` outcome, key rules, lines
//!   and tokens, memcached's number parsing and formatting);
//! - [`text`]: memcached's classic text protocol (`get`, `set`, `incr`, `stats`...);
//! - [`meta`]: the meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`), spoken on a text
//!   connection;
//! - [`binary`]: the binary protocol;
//! - [`sasl`]: the SASL `PLAIN` message the binary protocol's `SASL auth` carries;
//! - [`udp`]: the frame header of memcached's UDP datagrams.

pub mod binary;
pub mod lex;
pub mod meta;
pub mod sasl;
pub mod text;
pub mod udp;
