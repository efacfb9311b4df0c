//! What every executor takes ([`Ctx`]) and gives back ([`After`]).

use std::fmt;

use super::operator::OpsState;
use super::stats::Counters;
use crate::protocol::text::ops::{ClassFilter, DumpFormat};
use crate::protocol::text::StatsKind;
use crate::store::Store;

/// The server settings requests depend on (from the command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The item size limit (`-I`): larger values are refused before they arrive.
    pub item_size_max: usize,
    /// `flush_all` is allowed (not `-F`).
    pub flush_enabled: bool,
    /// `shutdown` is allowed (`-A`).
    pub shutdown_enabled: bool,
}

/// What only the server knows, for the rare commands that need it (`stats`,
/// `verbosity`, `shutdown`); never called on the path of other requests.
pub trait Control: fmt::Debug {
    /// Makes `counters` (this worker's) visible to the sums `stats` reports.
    fn publish(&self, counters: &Counters);
    /// Appends the `STAT <name> <value>\r\n` lines of `stats <kind>`, without the
    /// closing line (`stats reset` resets and writes nothing).
    fn stats(&self, kind: StatsKind, out: &mut Vec<u8>);
    /// `verbosity <level>`.
    fn set_verbosity(&self, level: u32);
    /// `shutdown` (with `-A`): stop the server; `graceful` for `shutdown graceful`.
    fn stop(&self, graceful: bool);
    /// `refresh_certs`: reload the TLS certificate and key; the error is memcached's
    /// message (without its `\r\n`).
    fn refresh_certs(&self) -> Result<(), String> {
        Err("Error TLS not enabled".into())
    }
    /// The operator settings shared by every worker (`lru_crawler`, `stats detail`...).
    fn ops(&self) -> &OpsState;
    /// This worker's number (its `watch` log buffer).
    fn worker(&self) -> usize {
        0
    }
    /// The connection's file descriptor (`cfd=` of `watch` lines).
    fn conn_fd(&self) -> i32 {
        -1
    }
}

/// A connection's socket, for a large value written straight from its item's memory
/// rather than copied into the output buffer first (see [`Ctx::direct`]).
pub trait Direct: fmt::Debug {
    /// Writes the unsent part of `out`, then `parts` in order, as far as the socket takes
    /// them now without blocking (one `writev`, repeated while it takes everything);
    /// what it does not take of `parts` is appended to `out`, to go out as the rest of the
    /// output does. A socket error is left for the next write of `out` to find: then all
    /// of `parts` is appended.
    fn send(&mut self, out: &mut Vec<u8>, parts: &[&[u8]]);
    /// How many bytes at the front of `out` the socket has taken.
    fn written(&self) -> usize;
}

/// Values at least this long are written to the socket straight from their item when
/// the connection allows it (see [`Direct`]); a shorter one costs less to copy into the
/// output buffer than a `writev` of its own.
pub const DIRECT_MIN: usize = 64 * 1024;

/// Appends a value held in `parts` (the item's memory, under its shard lock), then
/// `tail`, to a reply: a value of at least [`DIRECT_MIN`] bytes goes to `direct`'s socket
/// straight from `parts` when there is one; anything else is copied into `out`.
pub(crate) fn put_value(
    direct: Option<&mut (dyn Direct + '_)>,
    out: &mut Vec<u8>,
    parts: &[&[u8]],
    tail: &[u8],
) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    match direct {
        Some(d) if len >= DIRECT_MIN => {
            let mut iov = Vec::with_capacity(parts.len() + 1);
            iov.extend_from_slice(parts);
            if !tail.is_empty() {
                iov.push(tail);
            }
            d.send(out, &iov);
        }
        _ => {
            out.reserve(len + tail.len());
            for p in parts {
                out.extend_from_slice(p);
            }
            out.extend_from_slice(tail);
        }
    }
}

/// What execution needs besides the request: the same for the three protocols.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The store.
    pub store: &'a Store,
    /// The settings.
    pub settings: &'a Settings,
    /// This worker's counters.
    pub counters: &'a mut Counters,
    /// The server, for `stats`, `verbosity` and `shutdown`.
    pub control: &'a dyn Control,
    /// The connection's socket when values may be written from their items (a plain TCP
    /// or unix socket); `None` copies every reply into the output buffer.
    pub direct: Option<&'a mut dyn Direct>,
}

/// What the connection does after a request was executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Go on with the next request.
    Continue,
    /// Go on; the replies so far count as sent (memcached writes them out here, after a
    /// `get`, `gat` or `mn`): a later protocol error that closes the connection keeps
    /// them.
    Sent,
    /// Discard this many bytes following the request (a value that was refused), which
    /// may not have arrived yet.
    Swallow(usize),
    /// As `Swallow`, but the reply just written goes out once the bytes are discarded
    /// (text and meta answer a refused value after it, as memcached does).
    SwallowThenReply(usize),
    /// Write what is buffered, then close.
    Close,
    /// Drop the replies not sent yet (see [`After::Sent`]) and close at once (an enabled
    /// `shutdown`, as memcached closes that connection without a reply).
    Abort,
    /// `watch`: the reply written, the connection becomes a watcher of these event kinds
    /// (see [`super::watch`]).
    Watch(u8),
    /// Stream a `lru_crawler metadump`/`mgdump` (the connection keeps an
    /// [`ops::Dump`](super::ops::Dump) and runs it before its next request).
    Dump {
        /// Line format.
        format: DumpFormat,
        /// Classes covered.
        classes: ClassFilter,
    },
}

/// What became of the bytes at the front of a connection's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A request was executed, or its value started going into its item: consume
    /// `used` bytes, then do `after`.
    Done {
        /// Bytes to consume.
        used: usize,
        /// What the connection does next.
        after: After,
    },
    /// Consume `used` bytes (value bytes that went into their item) and wait for more:
    /// the request at the front needs `need` bytes in the buffer in all (0: unknown, or
    /// no more than the buffer holds).
    Incomplete {
        /// Bytes to consume.
        used: usize,
        /// Bytes the buffer must hold, 0 if unknown.
        need: usize,
    },
    /// memcached closes the connection here, at once: the replies not sent yet are lost.
    Close,
}

/// TTL left at `now` for an expiration time (`None`: never expires).
pub(crate) fn ttl_left(exptime: u32, now: u32) -> Option<u32> {
    (exptime != 0).then(|| exptime.saturating_sub(now))
}

/// A context for unit tests and fuzzing: default settings, fresh counters, and a
/// [`Control`] that reports no stats and ignores `verbosity` and `shutdown`.
#[doc(hidden)]
pub mod testing {
    use super::{Control, Counters, Ctx, OpsState, Settings, StatsKind, Store};

    /// The [`Control`] of [`with_ctx`].
    #[derive(Debug)]
    pub struct NoControl;

    impl Control for NoControl {
        fn publish(&self, _: &Counters) {}
        fn stats(&self, _: StatsKind, out: &mut Vec<u8>) {
            out.extend_from_slice(b"STAT pid 1\r\n");
        }
        fn set_verbosity(&self, _: u32) {}
        fn stop(&self, _: bool) {}
        fn ops(&self) -> &OpsState {
            static OPS: std::sync::LazyLock<OpsState> = std::sync::LazyLock::new(OpsState::default);
            &OPS
        }
    }

    /// Runs `f` with a context on `store` (item size limit `item_size_max`).
    pub fn with_ctx<R>(
        store: &Store,
        item_size_max: usize,
        f: impl FnOnce(&mut Ctx<'_>) -> R,
    ) -> R {
        let settings = Settings {
            item_size_max,
            flush_enabled: true,
            shutdown_enabled: false,
        };
        let mut counters = Counters::default();
        let mut ctx = Ctx {
            store,
            settings: &settings,
            counters: &mut counters,
            control: &NoControl,
            direct: None,
        };
        f(&mut ctx)
    }
}
