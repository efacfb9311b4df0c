//! Reading a large value straight from the socket into its item, as memcached reads a
//! value into its item.
//!
//! While a read buffer's worth or more of a value going into its item is still to come
//! (see [`crate::exec::value`]) and the read buffer is empty, the socket is read with one
//! `readv` over the item's chunks: no copy through the read buffer, and up to a few
//! hundred kilobytes per call. The value's last bytes, its `\r\n` and what follows go
//! through the read buffer.

use std::io::{self, IoSliceMut, Read};

use super::conn::{Conn, ReadResult, READ_BUF};
use crate::store::Store;

/// Regions of the item one direct read fills at most (see [`read_direct`]).
const DIRECT_REGIONS: usize = 8;

/// Whether the next read should go straight into the item of the value being received.
pub(crate) fn wants_direct(conn: &Conn) -> bool {
    conn.rstart == conn.rend && conn.recv.as_ref().is_some_and(|r| r.wants_direct(READ_BUF))
}

/// One `read` (a `readv` over up to [`DIRECT_REGIONS`] chunks) from the socket straight
/// into the item of the value being received. Call only when [`wants_direct`];
/// `Data::drained` means the same as for [`Conn::read_once`].
pub(crate) fn read_direct(store: &Store, conn: &mut Conn) -> io::Result<ReadResult> {
    let Some(r) = conn.recv.as_mut() else {
        return Ok(ReadResult::WouldBlock);
    };
    let rooms = r.rooms(store, DIRECT_REGIONS);
    let mut bufs: Vec<IoSliceMut<'_>> = rooms.into_iter().map(IoSliceMut::new).collect();
    let space: usize = bufs.iter().map(|b| b.len()).sum();
    debug_assert!(space > 0);
    let got = loop {
        match conn.stream.read_vectored(&mut bufs) {
            Ok(0) => return Ok(ReadResult::Eof),
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadResult::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    drop(bufs);
    r.advance(got);
    Ok(ReadResult::Data {
        n: got,
        drained: got < space && !conn.stream.buffers_input(),
    })
}

/// Frees the item of a value still being received (the connection is closing).
pub(crate) fn abandon(store: &Store, conn: &mut Conn) {
    if let Some(r) = conn.recv.take() {
        r.abandon(store);
    }
}
