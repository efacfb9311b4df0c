//! Reading a large value straight from the socket into its item, as memcached reads a
//! value into its item.
//!
//! While value bytes going into its item are still to come (see [`crate::exec::value`])
//! and the read buffer is empty, the socket is read with one `readv` over all the item's
//! regions still to fill, with the connection's read buffer as the last slice: no copy
//! through the read buffer, up to the whole rest of the value per call, and the value's
//! `\r\n` and the requests after it arrive in the same call (no extra `read` per value).
//!
//! Measured (`benches/server/scenarios/large.py big --memcached <main's build> --seconds 5
//! --repeats 3`, interleaved, 2-vCPU VM under load from other builds, load average up to
//! 15): 1 MB sets, 1 client, 1.07x the MB/s of the previous 8-region `readv` without the
//! read buffer, CPU/MB 1.01x; 8 clients 1.15x MB/s, CPU/MB 0.90x.
//!
//! Measured and not kept (`kvload`, 8 keys of 10^6 bytes, `-m 1024 -t 2`, 5 s runs
//! alternating with memcached 1.6.18 in one script; requests per run, 1 client / 8
//! clients, sets):
//!
//! * Socket buffers of 4 MiB (`SO_RCVBUF` and `SO_SNDBUF` on every accepted socket, which
//!   turns the kernel's autotuning off): 1 client 14955 and 18376 against 11551 and 18138
//!   with autotuning (memcached 20169, 20832); 8 clients 32326, 34418 against 30946,
//!   36292; gets within 10% of autotuning either way. No steady gain, so the kernel
//!   sizes them, as it does for memcached's TCP sockets.
//! * Reading again after a short direct read while the value is still incomplete (what
//!   memcached's `conn_nread` does) instead of waiting for the next edge: medians of 3,
//!   1 client 0.88x memcached's sets (0.92x when those reads do not count towards the
//!   worker's bound of 4 reads per event) against 0.89x as it is; 8 clients 0.94x
//!   (0.99x) against 1.10x. Per 1 MB set ours makes 1.6 `readv`s and 1.7 `epoll_wait`s,
//!   memcached 3.5 `read`s and 1 `epoll_wait` (`strace -c`, 1 client); replacing the
//!   extra wait with reads did not pay.

use std::io::{self, IoSliceMut, Read};

use super::conn::{Conn, ReadResult};
use crate::store::Store;

/// Regions of the item one direct read fills at most (Linux's `IOV_MAX` less the read
/// buffer's slice): every region of a value up to `-I 1g` in 1 MB segments.
const DIRECT_REGIONS: usize = 1023;

/// Whether the next read should go straight into the item of the value being received.
pub(crate) fn wants_direct(conn: &Conn) -> bool {
    conn.rstart == conn.rend && conn.recv.as_ref().is_some_and(|r| r.wants_direct())
}

/// One `read` (a `readv` over the item's regions still to fill, then the read buffer)
/// from the socket straight into the item of the value being received. Call only when
/// [`wants_direct`]; `Data::drained` means the same as for [`Conn::read_once`]. What
/// goes past the value lands in the read buffer, for the next parse.
pub(crate) fn read_direct(store: &Store, conn: &mut Conn) -> io::Result<ReadResult> {
    let Some(r) = conn.recv.as_mut() else {
        return Ok(ReadResult::WouldBlock);
    };
    // The read buffer is empty (`wants_direct`): fill it from the front.
    conn.rstart = 0;
    conn.rend = 0;
    let rooms = r.rooms(store, DIRECT_REGIONS);
    let mut bufs: Vec<IoSliceMut<'_>> = Vec::with_capacity(rooms.len() + 1);
    let mut room = 0usize;
    for b in rooms {
        room += b.len();
        bufs.push(IoSliceMut::new(b));
    }
    debug_assert!(room > 0);
    let space = room + conn.rbuf.len();
    bufs.push(IoSliceMut::new(&mut conn.rbuf[..]));
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
    let into_item = got.min(room);
    r.advance(into_item);
    conn.rend = got - into_item;
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
