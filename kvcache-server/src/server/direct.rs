//! Large values written to the socket straight from their item, as memcached writes a
//! value with `sendmsg` over the item's chunks: no copy into the output buffer first.
//!
//! The executor calls [`Direct::send`] with the value's parts while it holds the key's
//! shard lock for reading (the lock is what keeps the parts from being replaced, deleted
//! or evicted meanwhile), so the write never blocks: the socket is non-blocking, and
//! whatever it does not take now is copied into the output buffer and goes out with the
//! rest. On a loopback or LAN socket with room for the reply the value is never copied
//! by us; the lock is held for the `writev`, about as long as it would be for the copy.
//! Other gets of the shard, of the same key too, go on meanwhile (it is a read lock):
//! with one mutex per shard, 8 kvload clients getting the same 8 values of 10^6 bytes
//! (`-m 1024 -t 2`, 5 s runs alternating with memcached 1.6.18) completed
//! 0.70-0.82x memcached's gets, the second worker asleep on the lock; with the read
//! lock, 0.95-1.14x.

use std::io::{self, IoSlice, Write};

use super::stream::Stream;
use crate::exec::Direct;

/// Slices one `writev` takes at most (Linux's `IOV_MAX`).
const IOV_MAX: usize = 1024;

/// A plain TCP or unix connection's socket and the position of its output buffer up to
/// which the bytes are sent.
#[derive(Debug)]
pub(crate) struct DirectSocket<'c> {
    pub stream: &'c mut Stream,
    pub out_pos: &'c mut usize,
    /// Bytes written (for `bytes_written`).
    pub bytes: usize,
}

impl Direct for DirectSocket<'_> {
    fn send(&mut self, out: &mut Vec<u8>, parts: &[&[u8]]) {
        // Bytes of `parts` the socket has taken.
        let mut taken = 0usize;
        let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len() + 1);
        loop {
            iov.clear();
            let pending = &out[*self.out_pos..];
            if !pending.is_empty() {
                iov.push(IoSlice::new(pending));
            }
            let mut skip = taken;
            for p in parts {
                if skip >= p.len() {
                    skip -= p.len();
                    continue;
                }
                iov.push(IoSlice::new(&p[skip..]));
                skip = 0;
            }
            if iov.is_empty() {
                break;
            }
            let batch = &iov[..iov.len().min(IOV_MAX)];
            let want: usize = batch.iter().map(|s| s.len()).sum();
            match self.stream.write_vectored(batch) {
                Ok(0) => break,
                Ok(n) => {
                    self.bytes += n;
                    let from_out = n.min(pending.len());
                    *self.out_pos += from_out;
                    taken += n - from_out;
                    if n < want {
                        // The socket is full: the rest waits in `out`.
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Would block, or failed: the next write of `out` finds out which.
                Err(_) => break,
            }
        }
        let mut skip = taken;
        for p in parts {
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            out.extend_from_slice(&p[skip..]);
            skip = 0;
        }
    }

    fn written(&self) -> usize {
        *self.out_pos
    }
}
