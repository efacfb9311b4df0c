//! Execution of meta and binary-protocol requests against the [`Store`](crate::store::Store).
//!
//! The parsers in [`crate::protocol`] turn bytes into requests; the functions here run
//! one request and append its reply to the connection's output buffer. They do no I/O:
//! what the connection must do next (go on, discard bytes that have not arrived yet,
//! close) comes back as an [`After`].

pub mod binary;
pub mod meta;

/// What the connection does after a request was executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Go on with the next request.
    Continue,
    /// Discard this many bytes following the request (a value that was refused).
    Swallow(usize),
    /// Write what is buffered, then close.
    Close,
}

/// TTL left at `now` for an expiration time (`None`: never expires).
pub(crate) fn ttl_left(exptime: u32, now: u32) -> Option<u32> {
    (exptime != 0).then(|| exptime.saturating_sub(now))
}
