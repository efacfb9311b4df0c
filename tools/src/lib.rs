//! slabtune: size-class recommendations from observed traffic.
//!
//! # How it works
//! ```text
//!  live server ──stats sizes[_fine]──┐
//!  trace (CSV, zstd) ──trace.rs──────┼──> Observed / Hist ──optimize.rs──> report.rs
//!  pcap / pcapng ──pcap.rs──mcproto──┘     (stored sizes      (exact DP      (table, JSON,
//!                                           per server)        under rules)   flags, SVG)
//! ```
//! Every input becomes a histogram of item sizes *as each server stores them*
//! ([`hist::Target`]): ours from `kvcache_server::item::stored_size`, memcached's from its
//! item layout. [`optimize::optimize`] then finds the class list with the least total
//! waste (chunk size minus item size) for a number of classes, exactly, by a dynamic
//! program over the candidate sizes, under the rules each server applies to
//! `-o slab_sizes=` ([`optimize::Rules`]). memcached's `-n`/`-f` pair is searched on a
//! grid by rebuilding its class table.
//!
//! # Bad input
//! Parsers never panic on input: malformed lines, unknown operations and truncated or
//! garbled packets are counted in an [`issues::Issues`] with their line or packet numbers;
//! `--strict` turns the first one into an error.
//!
//! # Applying
//! [`apply`] sends the kvcache-server recommendation back to the live server it came
//! from (`slabs classes <list>`), which re-classes without a restart.
#![warn(missing_docs)]

pub mod apply;
pub mod hist;
pub mod issues;
pub mod live;
pub mod mcproto;
pub mod optimize;
pub mod pcap;
pub mod report;
pub mod svg;
pub mod trace;
