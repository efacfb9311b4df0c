//! One client connection: its socket, read buffer, output buffer and protocol state.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering::Relaxed};
use std::time::Instant;

use super::stream::{PeerAddr, Stream};
use crate::exec::{Protocol, Receiving};

/// The read buffer's normal size (memcached's `READ_BUFFER_SIZE`).
pub(crate) const READ_BUF: usize = 16 * 1024;

/// An output buffer larger than this is written before more requests are executed, and
/// a connection stops reading while it cannot be written (a multi-key `get` pauses at
/// the same mark).
pub(crate) const OUT_HIGH_WATER: usize = crate::exec::text::OUT_BUDGET;

/// Buffers grown beyond this are shrunk back when empty.
const SHRINK_ABOVE: usize = 64 * 1024;

/// A worker keeps an emptied output buffer up to this capacity for the next large reply
/// (see [`Conn::return_out`]): a value of the default `-I` (1 MB) and its header fit.
const SPARE_MAX: usize = 4 * 1024 * 1024;

/// What `stats conns` shows of a connection; shared with the stats reader.
#[derive(Debug)]
pub struct ConnInfo {
    /// The socket's file descriptor (memcached numbers connections by it).
    pub fd: i32,
    /// The client's address.
    pub peer: PeerAddr,
    /// Server clock of the last command.
    pub last_cmd: AtomicU32,
    /// memcached's state name index (see [`ConnInfo::state_name`]).
    pub state: AtomicU8,
}

pub(crate) const STATE_PARSE: u8 = 0;
pub(crate) const STATE_NREAD: u8 = 1;
pub(crate) const STATE_SWALLOW: u8 = 2;
pub(crate) const STATE_WRITE: u8 = 3;

impl ConnInfo {
    /// memcached's name of the connection's state.
    pub fn state_name(&self) -> &'static str {
        match self.state.load(Relaxed) {
            STATE_NREAD => "conn_nread",
            STATE_SWALLOW => "conn_swallow",
            STATE_WRITE => "conn_mwrite",
            _ => "conn_parse_cmd",
        }
    }
}

/// A connection owned by one worker.
#[derive(Debug)]
pub(crate) struct Conn {
    pub stream: Stream,
    pub info: std::sync::Arc<ConnInfo>,
    /// Read buffer: bytes `rstart..rend` are received and not yet consumed.
    pub rbuf: Vec<u8>,
    pub rstart: usize,
    pub rend: usize,
    /// Bytes of a too-large data block still to discard.
    pub swallow: usize,
    /// The reply to send once `swallow` is done (text and meta answer a refused value
    /// after discarding it, as memcached does).
    pub after_swallow: Vec<u8>,
    /// A storage request whose value is arriving.
    pub recv: Option<Receiving>,
    /// Replies not yet written: `out[out_pos..]`.
    pub out: Vec<u8>,
    pub out_pos: usize,
    /// How the connection speaks, once its first byte has arrived.
    pub proto: Option<Protocol>,
    /// Close once `out` is written (quit, protocol error, peer closed).
    pub closing: bool,
    /// Reading paused because `out` could not be written; resume when it drains.
    pub read_paused: bool,
    /// The peer closed its side: no more reads.
    pub eof: bool,
    /// A write failed: drop the connection.
    pub broken: bool,
    /// An event reported the peer's FIN (or an error): read until EOF, since no later
    /// edge will announce it.
    pub peer_closed: bool,
    /// The connection may run commands (always, unless `-Y`).
    pub authenticated: bool,
    /// Unauthenticated: the length of the authentication data block now expected.
    pub auth_pending: Option<usize>,
    /// `out[..sent_mark]` is what memcached would already have sent: the replies up to
    /// the last `get`/`gat`/`mn`, after which it writes before reading on. A protocol
    /// error that closes the connection drops the replies after it.
    pub sent_mark: usize,
    /// When the replies last stopped moving (a write that left bytes unsent and took
    /// none, or took some but not all); `None` while everything is written.
    pub stalled_since: Option<Instant>,
    /// Stopping: our side is shut after the last reply.
    pub write_shut: bool,
    /// Stopped reading with input possibly left in the socket; the worker resumes it.
    pub yielded: bool,
    /// `-S`: the connection's SASL state.
    pub sasl: super::sasl::SaslConn,
    /// A `lru_crawler metadump` streaming: runs before the next request.
    pub dump: Option<crate::exec::ops::Dump>,
    /// `watch` was sent: once the reply is out, the logger thread takes the socket.
    pub watch: Option<u8>,
}

/// The outcome of a read attempt.
pub(crate) enum ReadResult {
    /// Bytes arrived; `drained` when the read was short (the socket is empty: with
    /// edge-triggered epoll a short read means no readiness is pending, so a further
    /// read would only return EAGAIN).
    Data { n: usize, drained: bool },
    /// Nothing to read right now.
    WouldBlock,
    /// The peer closed.
    Eof,
}

impl Conn {
    pub fn new(stream: Stream, info: std::sync::Arc<ConnInfo>, authenticated: bool) -> Self {
        Conn {
            stream,
            info,
            rbuf: vec![0; READ_BUF],
            rstart: 0,
            rend: 0,
            swallow: 0,
            after_swallow: Vec::new(),
            recv: None,
            out: Vec::with_capacity(READ_BUF),
            out_pos: 0,
            proto: None,
            closing: false,
            read_paused: false,
            eof: false,
            broken: false,
            peer_closed: false,
            authenticated,
            auth_pending: None,
            sent_mark: 0,
            stalled_since: None,
            write_shut: false,
            yielded: false,
            sasl: Default::default(),
            dump: None,
            watch: None,
        }
    }

    /// Makes room in the read buffer: space for at least `need` unconsumed bytes (the
    /// total length of a pending request, 0 if unknown) plus a quarter buffer free to
    /// read into, moving the unconsumed bytes to the front when that helps.
    ///
    /// The buffer grows with the bytes that actually arrive, at most doubling what is
    /// pending, not to the declared length at once: a client that declares a 1 MB value
    /// and sends a few bytes costs a few kilobytes, not a megabyte. (Most large values
    /// never come here: they are received into their item, see [`Receiving`].)
    pub fn reserve_read(&mut self, need: usize) {
        let pending = self.rend - self.rstart;
        let free = READ_BUF / 4;
        let want = need.min(pending.max(READ_BUF) * 2).max(pending) + free;
        if self.rstart > 0
            && (self.rbuf.len() - self.rstart < want || self.rbuf.len() - self.rend < free)
        {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rstart = 0;
            self.rend = pending;
        }
        if self.rbuf.len() - self.rstart < want {
            let cap = self.rstart + need.max(pending) + free;
            let new_len = (self.rstart + want).max((self.rbuf.len() * 2).min(cap));
            self.rbuf.resize(new_len, 0);
        }
    }

    /// One `read` into the free space of the read buffer.
    pub fn read_once(&mut self) -> io::Result<ReadResult> {
        let space = self.rbuf.len() - self.rend;
        debug_assert!(space > 0);
        loop {
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => return Ok(ReadResult::Eof),
                Ok(n) => {
                    self.rend += n;
                    return Ok(ReadResult::Data {
                        n,
                        drained: n < space && !self.stream.buffers_input(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadResult::WouldBlock)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// After a batch: reset or shrink the read buffer when it is empty.
    pub fn tidy_read(&mut self) {
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
            if self.rbuf.len() > SHRINK_ABOVE {
                self.rbuf.truncate(READ_BUF);
                self.rbuf.shrink_to_fit();
            }
        }
    }

    /// Writes as much of `out` as the socket takes. Returns `Ok(true)` when all is
    /// written.
    pub fn flush(&mut self) -> io::Result<(bool, usize)> {
        let mut written = 0;
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_pos += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if written > 0 || self.stalled_since.is_none() {
                        self.stalled_since = Some(Instant::now());
                    }
                    return Ok((false, written));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        match self.stream.flush_pending() {
            Ok(true) => {}
            Ok(false) => {
                if written > 0 || self.stalled_since.is_none() {
                    self.stalled_since = Some(Instant::now());
                }
                return Ok((false, written));
            }
            Err(e) => return Err(e),
        }
        self.stalled_since = None;
        self.out.clear();
        self.out_pos = 0;
        self.sent_mark = 0;
        Ok((true, written))
    }

    /// Before the connection runs: an empty output buffer smaller than the worker's
    /// spare trades places with it, so large replies reuse memory already mapped (a
    /// megabyte buffer freed and allocated again for every large `get` costs more in page
    /// faults than copying the value).
    pub fn borrow_out(&mut self, spare: &mut Vec<u8>) {
        if self.out.is_empty() && spare.capacity() > self.out.capacity() {
            std::mem::swap(&mut self.out, spare);
        }
    }

    /// After the connection ran: an output buffer grown beyond [`SHRINK_ABOVE`] and now
    /// empty goes back to the worker's spare (the larger of the two is kept, up to
    /// [`SPARE_MAX`]) and the
    /// connection returns to a normal-sized one, so an idle connection holds no large
    /// buffer. A buffer with replies still unsent stays with its connection.
    pub fn return_out(&mut self, spare: &mut Vec<u8>) {
        if !self.out.is_empty() || self.out.capacity() <= SHRINK_ABOVE {
            return;
        }
        if self.out.capacity() > spare.capacity() && self.out.capacity() <= SPARE_MAX {
            std::mem::swap(&mut self.out, spare);
        }
        if self.out.capacity() > SHRINK_ABOVE {
            self.out = Vec::with_capacity(READ_BUF);
        }
    }

    /// Drops the replies memcached would not have sent yet when it closes on a protocol
    /// error (see `sent_mark`).
    pub fn drop_unsent(&mut self) {
        self.out.truncate(self.out_pos.max(self.sent_mark));
    }

    /// Unwritten reply bytes.
    pub fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos + self.stream.pending_out()
    }
}
