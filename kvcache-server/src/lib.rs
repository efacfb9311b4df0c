//! kvcache-server: a memcached-compatible cache server whose items live in slab-core.
//!
//! It replaces memcached 1.6.18 for its clients: the same flags (`-p -l -m -c -t -f -n
//! -I -C -M -o slab_sizes=...`), the complete text protocol with memcached's exact reply
//! strings, the meta commands and the binary protocol, and the same `stats` groups
//! (plus `stats sizes_fine`). What differs is the memory: an item is its key, value and a
//! 14-to-26-byte header in one slab-core chunk, indexed by a 4-byte handle, so a million
//! small items take about 60% of memcached's RSS.
//!
//! # Design
//!
//! ```text
//!   clients --TCP--> acceptor (main thread) --round robin--> worker 0 .. worker t-1
//!                                                            | own mio Poll (epoll, edge)
//!                                                            | per connection: bytes in,
//!                                                            | bytes out (read buffer of
//!                                                            | 16 KiB, output buffer,
//!                                                            | 1 write per batch)
//!                                                            v
//!   server (sockets, connections) --bytes--> exec::run --> protocol::text / meta / binary
//!                                             |    ^         (bytes -> one request or one
//!                                             |    |          value head; no I/O, no store)
//!                                             v    |
//!                              exec::text / meta / binary (one Ctx: store, settings,
//!                                             |             counters, server Control)
//!                                             v
//!                                  store::Store (Arc, shared by all workers)
//!                                             | sharded index of 4-byte handles
//!                                             v
//!                      slab_core: SlabAllocator / SlabEngine (slabs in one
//!                      reservation, size classes, -m hard limit)
//! ```
//!
//! Imports go down the diagram only: [`protocol`] imports neither [`exec`], [`server`]
//! nor [`store`]; [`exec`] imports [`protocol`] and [`store`], never [`server`]; the store
//! imports no networking and of the protocol code only its lexer (`incr` reads and writes
//! counters with memcached's number rules).
//!
//! - [`config`] parses memcached's command line.
//! - [`protocol`] holds the parsers and reply writers, over one shared lexer
//!   ([`protocol::lex`]: key rules, memcached's number parsing and formatting). They
//!   borrow from the read buffer and return `Incomplete` distinct from invalid input, so
//!   a request is parsed once, when its line is whole, with no allocation; a storage
//!   request whose value has not all arrived comes back as a head that borrows nothing.
//! - [`exec`] runs requests of the three protocols against the store: its front
//!   ([`exec::run`]) sends each request to the parser of its protocol (a text
//!   connection's meta lines straight to the meta parser) and executes it, or keeps its
//!   value's head while the value arrives ([`exec::Receiving`]), into its item for a
//!   large value. What the connection does next comes back as an [`exec::After`].
//! - [`server`] owns the sockets: per worker one `mio::Poll`; a readable connection is
//!   read until a short read (the socket is then empty), everything parsed from the
//!   batch is executed, and the replies leave in one `write`. Over `-c` connections a
//!   client gets `ERROR Too many open connections`; SIGINT/SIGTERM stop the acceptor,
//!   let the workers answer what they have read, flush and close, and the process exits
//!   0. Per-connection input and output are capped (back-pressure on clients that do
//!   not read), `-o write_timeout`/`-o idle_timeout` drop stalled and idle clients, and
//!   `-Y` requires memcached's text-protocol authentication (see the crate's README).
//!   It listens on TCP or on a unix socket (`-s`), optionally with TLS (`-Z`: rustls,
//!   its handshake advanced inside the workers as bytes arrive), serves UDP (`-U`) from
//!   the same workers with memcached's framing, and with `-S` requires SASL `PLAIN` on
//!   the binary protocol.
//! - [`store`] keeps the items: CAS, expiry, CLOCK eviction per size class, `flush_all`,
//!   the counters behind `stats`, and the item-size histogram behind `stats sizes`.
//! - [`item`] is the layout of an item inside its chunk.
//!
//! # Safety and correctness
//!
//! The network side has no `unsafe` beyond a few system calls (`listen` to set the
//! backlog, `getrusage` for `stats`, `getrlimit`/`setrlimit` for `-c`). Protocol behaviour is pinned to memcached 1.6.18's
//! answers byte for byte by the integration tests in `tests/` (which run the real binary)
//! and by the real-client checks in `tests/clients/` (memccapable, pymemcache,
//! Cache::Memcached, memcached-tool). The store's own safety argument is in [`store`].
#![warn(missing_docs)]

pub mod config;
pub mod exec;
pub mod item;
pub mod process;
pub mod protocol;
pub mod server;
pub mod store;
