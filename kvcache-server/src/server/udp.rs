//! UDP (`-U <port>`): every worker reads the one UDP socket (each through a clone of its
//! descriptor registered with its own poll) and answers with the same store and
//! execution path as TCP, framed as memcached frames it (see [`crate::protocol::udp`]).
//!
//! Reflection: UDP's source address is not verified, so a reply can be aimed at a victim
//! (memcached's UDP was used for amplification attacks). Besides being off by default,
//! replies to an address that is not loopback are bounded: the datagrams answering one
//! request datagram may carry at most [`AMPLIFICATION`] times its size; a request whose
//! replies would exceed that gets none (counted in `udp_replies_dropped`). Loopback
//! clients get memcached's replies in full.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use mio::net::UdpSocket;

use crate::exec::{self, After, Protocol, Receiving, Step};
use crate::protocol::udp;

/// The most reply bytes (datagram headers included) sent to a non-loopback address per
/// byte of the request datagram.
pub const AMPLIFICATION: usize = 4;

/// Datagrams one worker reads per readiness before it lets its connections run.
pub const DATAGRAMS_PER_EVENT: usize = 64;

/// The most bytes of replies one request datagram gets (as many datagrams as the
/// header can count).
const MAX_RESPONSE: usize = u16::MAX as usize * udp::DATA_PER_DATAGRAM;

/// The largest datagram read (memcached's `UDP_READ_BUFFER_SIZE`).
const READ_SIZE: usize = 65536;

/// The UDP counters `stats` shows.
#[derive(Debug, Default)]
pub(crate) struct UdpStats {
    /// Request datagrams answered.
    pub requests: AtomicU64,
    /// Datagrams dropped: no valid header, or spanning datagrams.
    pub dropped: AtomicU64,
    /// Replies not sent to a non-loopback address for the amplification bound.
    pub replies_dropped: AtomicU64,
}

/// One worker's side of the UDP socket.
#[derive(Debug)]
pub(crate) struct UdpPort {
    pub sock: UdpSocket,
    rbuf: Vec<u8>,
    out: Vec<u8>,
    dgram: Vec<u8>,
    /// Response ranges in `out` for the current request datagram.
    segs: Vec<(usize, usize, bool)>,
}

impl UdpPort {
    pub fn new(sock: UdpSocket) -> Self {
        UdpPort {
            sock,
            rbuf: vec![0; READ_SIZE],
            out: Vec::new(),
            dgram: Vec::with_capacity(udp::MAX_DATAGRAM),
            segs: Vec::new(),
        }
    }

    /// Reads and answers up to [`DATAGRAMS_PER_EVENT`] datagrams; true if the socket
    /// may hold more (no `WouldBlock` was seen).
    pub fn serve(&mut self, ctx: &mut exec::Ctx<'_>, stats: &UdpStats) -> bool {
        for _ in 0..DATAGRAMS_PER_EVENT {
            let (n, peer) = match self.sock.recv_from(&mut self.rbuf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => continue,
            };
            ctx.counters.bytes_read += n as u64;
            let Some((rid, _)) = udp::parse_request(&self.rbuf[..n]) else {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            stats.requests.fetch_add(1, Ordering::Relaxed);
            self.answer(ctx, n);
            self.send(ctx, stats, rid, peer, n);
        }
        true
    }

    /// Runs every complete request of the datagram in `rbuf[..n]`, recording the
    /// response ranges of `out`.
    fn answer(&mut self, ctx: &mut exec::Ctx<'_>, n: usize) {
        self.out.clear();
        self.segs.clear();
        let mut pos = udp::HEADER;
        let mut recv: Option<Receiving> = None;
        while pos < n {
            let start = self.out.len();
            let line_end = memchr::memchr(b'\n', &self.rbuf[pos..n]).map_or(n, |i| pos + i + 1);
            let line = self.rbuf[pos..line_end].to_vec();
            let proto = Protocol::of_first_byte(self.rbuf[pos]);
            let (used, after) = loop {
                let written = self.out.len();
                if written - start > MAX_RESPONSE {
                    break (0, After::Close);
                }
                let buf = &mut self.rbuf[pos..n];
                match exec::run(ctx, proto, buf, &mut self.out, written, &mut recv) {
                    // A multi-key get that paused at the output budget: go on.
                    Step::Done {
                        used: 0,
                        after: After::Continue,
                    } if self.out.len() > written => continue,
                    Step::Done { used, after } => break (used, after),
                    Step::Incomplete { .. } | Step::Close => break (0, After::Close),
                }
            };
            if let Some(r) = recv.take() {
                // A value that does not fit the datagram: nothing more to come.
                r.abandon(ctx.store);
            }
            let reply = &self.out[start..];
            match udp::get_segments(&line, reply) {
                Some(segs) => self
                    .segs
                    .extend(segs.into_iter().map(|(a, b)| (start + a, start + b, true))),
                // memcached answers `quit` with an empty response.
                None => {
                    let quit = matches!(after, After::Close) && used > 0;
                    self.segs
                        .push((start, self.out.len(), quit || self.out.len() > start));
                }
            }
            if used == 0 || !matches!(after, After::Continue | After::Sent) {
                break;
            }
            pos += used;
        }
    }

    /// Sends the responses recorded by [`Self::answer`] to `peer`.
    fn send(
        &mut self,
        ctx: &mut exec::Ctx<'_>,
        stats: &UdpStats,
        rid: u16,
        peer: SocketAddr,
        request_len: usize,
    ) {
        let segs = std::mem::take(&mut self.segs);
        if !peer.ip().is_loopback() {
            let bytes: usize = segs
                .iter()
                .filter(|s| s.2)
                .map(|&(a, b, _)| {
                    (b - a) + udp::HEADER * usize::from(udp::datagram_count(b - a).max(1))
                })
                .sum();
            if bytes > AMPLIFICATION * request_len {
                stats.replies_dropped.fetch_add(1, Ordering::Relaxed);
                self.segs = segs;
                return;
            }
        }
        for &(a, b, send) in &segs {
            if !send {
                continue;
            }
            let sock = &self.sock;
            let counters = &mut *ctx.counters;
            udp::for_each_datagram(rid, &self.out[a..b], &mut self.dgram, |d| {
                // A full socket buffer loses the datagram, as UDP may.
                if let Ok(n) = sock.send_to(d, peer) {
                    counters.bytes_written += n as u64;
                }
            });
        }
        self.segs = segs;
    }
}
