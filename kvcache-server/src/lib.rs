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
//!                                                            | per connection:
//!                                                            |   read buffer (16 KiB, grows
//!                                                            |   only for one large value)
//!                                                            |   parse in place -> execute
//!                                                            |   -> output buffer -> 1 write
//!                                                            v
//!   protocol::text / meta / binary    exec (meta, binary)    server::exec (text)
//!        (bytes -> requests,              \                  /
//!         no I/O, no store)                +--> store::Store (Arc, shared by all workers)
//!                                                | sharded index of 4-byte handles
//!                                                v
//!                                   slab_core: SlabAllocator / SlabEngine (slabs in one
//!                                   reservation, size classes, -m hard limit)
//! ```
//!
//! - [`config`] parses memcached's command line.
//! - [`protocol`] holds the parsers and reply writers; they borrow from the read buffer
//!   and return `Incomplete` distinct from invalid input, so a request is parsed once,
//!   when it is whole, with no allocation.
//! - [`server`] owns the sockets: per worker one `mio::Poll`; a readable connection is
//!   read until a short read (the socket is then empty), everything parsed from the
//!   batch is executed, and the replies leave in one `write`. Over `-c` connections a
//!   client gets `ERROR Too many open connections`; SIGINT/SIGTERM stop the acceptor,
//!   let the workers answer what they have read, flush and close, and the process exits
//!   0. Per-connection input and output are capped (back-pressure on clients that do
//!   not read), `-o write_timeout`/`-o idle_timeout` drop stalled and idle clients, and
//!   `-Y` requires memcached's text-protocol authentication (see the crate's README).
//! - [`store`] keeps the items: CAS, expiry, CLOCK eviction per size class, `flush_all`,
//!   the counters behind `stats`, and the item-size histogram behind `stats sizes`.
//! - [`exec`] runs meta and binary requests against the store.
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
pub mod protocol;
pub mod server;
pub mod store;
