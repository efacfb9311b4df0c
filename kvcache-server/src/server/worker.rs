//! A worker thread: one mio `Poll`, the connections handed to it, and the read ->
//! parse -> execute -> write cycle.
//!
//! mio is edge-triggered, so a connection must be read until the socket is empty or the
//! readiness is lost. We stop after a *short* read (fewer bytes than the free space):
//! the kernel copied everything it had, so a further `read` would only return EAGAIN
//! (tokio's `TcpStream` relies on the same property). New bytes arriving later raise a
//! new edge. Replies of everything parsed from a batch of reads leave in one `write`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{
    Conn, ConnInfo, Mode, ReadResult, OUT_HIGH_WATER, STATE_NREAD, STATE_PARSE, STATE_SWALLOW,
};
use super::exec::{self, Ctx};
use super::report;
use super::stats::Counters;
use super::Shared;
use crate::protocol::text::{self, ParseError, Request};
use crate::protocol::{binary, meta};

const WAKER: Token = Token(usize::MAX);

/// A worker before it runs.
#[derive(Debug)]
pub(crate) struct Worker {
    id: usize,
    shared: Arc<Shared>,
    poll: Poll,
    rx: mpsc::Receiver<(TcpStream, SocketAddr)>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    counters: Counters,
}

/// The channel on which the acceptor hands connections to a worker.
pub(crate) type ConnSender = mpsc::Sender<(TcpStream, SocketAddr)>;

/// A worker with the sender and waker the acceptor uses to hand it connections.
type Handoff = (Worker, ConnSender, Arc<Waker>);

impl Worker {
    pub fn new(id: usize, shared: Arc<Shared>) -> io::Result<Handoff> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = mpsc::channel();
        Ok((
            Worker {
                id,
                shared,
                poll,
                rx,
                conns: Vec::new(),
                free: Vec::new(),
                counters: Counters::default(),
            },
            tx,
            waker,
        ))
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("worker {}: poll failed: {e}", self.id);
                break;
            }
            for ev in events.iter() {
                if ev.token() == WAKER {
                    self.accept_new();
                    continue;
                }
                let i = ev.token().0;
                let Some(Some(conn)) = self.conns.get_mut(i) else {
                    continue;
                };
                let mut ctx = Ctx {
                    shared: &self.shared,
                    counters: &mut self.counters,
                    worker: self.id,
                };
                let keep = drive(
                    &mut ctx,
                    conn,
                    ev.is_readable() || ev.is_read_closed(),
                    ev.is_read_closed() || ev.is_error(),
                    ev.is_writable(),
                );
                if !keep {
                    self.close(i);
                }
            }
            self.shared.stats.worker(self.id).publish(&self.counters);
            if self.shared.shutdown.load(Ordering::SeqCst) {
                self.finish();
                return;
            }
        }
    }

    fn accept_new(&mut self) {
        while let Ok((mut stream, peer)) = self.rx.try_recv() {
            let i = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            if self
                .poll
                .registry()
                .register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                self.free.push(i);
                self.shared.curr_conns.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            let info = Arc::new(ConnInfo {
                fd: stream.as_raw_fd(),
                peer,
                last_cmd: self.shared.store.now().into(),
                state: STATE_PARSE.into(),
            });
            self.shared
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(info.clone());
            self.conns[i] = Some(Conn::new(stream, info));
        }
    }

    fn close(&mut self, i: usize) {
        if let Some(mut conn) = self.conns[i].take() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            let mut list = self.shared.conns.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|c| !Arc::ptr_eq(c, &conn.info));
            drop(list);
            self.shared.curr_conns.fetch_sub(1, Ordering::Relaxed);
            self.free.push(i);
        }
    }

    /// Shutdown: write what is pending (bounded), then close every connection.
    fn finish(&mut self) {
        for i in 0..self.conns.len() {
            if let Some(conn) = self.conns[i].as_mut() {
                let _ = conn.stream.set_nodelay(true);
                for _ in 0..100 {
                    match conn.flush() {
                        Ok((true, _)) | Err(_) => break,
                        Ok((false, _)) => std::thread::sleep(std::time::Duration::from_millis(10)),
                    }
                }
            }
            self.close(i);
        }
        self.shared.stats.worker(self.id).publish(&self.counters);
    }
}

/// Handles readiness of one connection. Returns false when it must be closed.
///
/// `hup`: the peer closed (or the socket failed); read until EOF rather than stopping at
/// a short read, since no further edge will announce the EOF.
fn drive(ctx: &mut Ctx<'_>, conn: &mut Conn, readable: bool, hup: bool, writable: bool) -> bool {
    if writable && conn.pending_out() > 0 {
        match conn.flush() {
            Ok((done, n)) => {
                ctx.counters.bytes_written += n as u64;
                if !done {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    if conn.closing && conn.pending_out() == 0 {
        return false;
    }
    if conn.read_paused && conn.pending_out() > 0 {
        return true;
    }
    // Read if there is news, or if reading was paused for a full output buffer that has
    // just drained (the edge that announced the data is gone).
    conn.peer_closed |= hup;
    if readable || conn.read_paused {
        conn.read_paused = false;
        if !read_and_execute(ctx, conn) {
            return false;
        }
    }
    if conn.pending_out() > 0 {
        match conn.flush() {
            Ok((_, n)) => ctx.counters.bytes_written += n as u64,
            Err(_) => return false,
        }
    }
    conn.tidy_read();
    !((conn.closing || conn.eof) && conn.pending_out() == 0)
}

/// Executes what a paused batch left, then reads until the socket is drained,
/// executing after every read. Returns false on a read error.
fn read_and_execute(ctx: &mut Ctx<'_>, conn: &mut Conn) -> bool {
    let mut need = process(ctx, conn);
    loop {
        if conn.broken {
            return false;
        }
        if conn.closing || conn.eof || conn.read_paused {
            return true;
        }
        conn.reserve_read(need);
        match conn.read_once() {
            Ok(ReadResult::Data { n, drained }) => {
                ctx.counters.bytes_read += n as u64;
                need = process(ctx, conn);
                if drained && !conn.peer_closed {
                    return !conn.broken;
                }
            }
            Ok(ReadResult::WouldBlock) => return true,
            Ok(ReadResult::Eof) => {
                conn.eof = true;
                return true;
            }
            Err(_) => return false,
        }
    }
}

/// Executes every complete request in the read buffer. Returns the total length of the
/// incomplete request at the front, when known (so the buffer can grow to hold it).
fn process(ctx: &mut Ctx<'_>, conn: &mut Conn) -> usize {
    if conn.rstart == conn.rend {
        return 0;
    }
    conn.info
        .last_cmd
        .store(ctx.shared.store.now(), Ordering::Relaxed);
    loop {
        if conn.closing {
            return 0;
        }
        if conn.swallow > 0 {
            let n = conn.swallow.min(conn.rend - conn.rstart);
            conn.swallow -= n;
            conn.rstart += n;
            if conn.swallow > 0 {
                conn.info.state.store(STATE_SWALLOW, Ordering::Relaxed);
                return 0;
            }
        }
        let buf = &conn.rbuf[conn.rstart..conn.rend];
        if buf.is_empty() {
            conn.info.state.store(STATE_PARSE, Ordering::Relaxed);
            return 0;
        }
        if conn.mode == Mode::Unknown {
            conn.mode = if buf[0] == 0x80 {
                Mode::Binary
            } else {
                Mode::Text
            };
        }
        let max = ctx.shared.cfg.item_size_max;
        let parsed = if conn.mode == Mode::Binary {
            binary::parse(buf, max).map(|(pkt, n)| {
                ctx.counters.cmd_binary += 1;
                let shared = ctx.shared;
                let mut stats = |group: &[u8], out: &mut Vec<u8>| match binary_stats_group(group) {
                    Some(kind) => {
                        report::lines(shared, kind, out);
                        true
                    }
                    None => false,
                };
                (
                    crate::exec::binary::execute(&shared.store, &pkt, &mut conn.out, &mut stats),
                    n,
                )
            })
        } else {
            match text::parse(buf, max) {
                Ok((Request::Meta, _)) => meta::parse(buf, max).map(|(req, n)| {
                    ctx.counters.cmd_meta += 1;
                    (
                        crate::exec::meta::execute(&ctx.shared.store, &req, &mut conn.out),
                        n,
                    )
                }),
                Ok((req, n)) => {
                    if req == Request::RetrievalKeyTooLong {
                        // As memcached: the replies not yet sent are dropped.
                        conn.out.truncate(conn.out_pos);
                    }
                    Ok((exec::execute(ctx, req, &mut conn.out), n))
                }
                Err(e) => Err(e),
            }
        };
        match parsed {
            Ok((after, n)) => {
                conn.rstart += n;
                apply_after(conn, after);
            }
            Err(ParseError::Incomplete { need }) => {
                conn.info.state.store(
                    if need > 0 { STATE_NREAD } else { STATE_PARSE },
                    Ordering::Relaxed,
                );
                return need;
            }
            Err(ParseError::Close) => {
                conn.closing = true;
                return 0;
            }
        }
        if conn.pending_out() >= OUT_HIGH_WATER {
            // Write before executing more; if the socket is full, pause this
            // connection until it is writable again.
            match conn.flush() {
                Ok((done, n)) => {
                    ctx.counters.bytes_written += n as u64;
                    if !done {
                        conn.read_paused = true;
                        return 0;
                    }
                }
                Err(_) => {
                    conn.broken = true;
                    return 0;
                }
            }
        }
    }
}

/// Applies what a meta or binary request asks of the connection.
fn apply_after(conn: &mut Conn, after: crate::exec::After) {
    match after {
        crate::exec::After::Continue => {}
        crate::exec::After::Swallow(n) => conn.swallow = n,
        crate::exec::After::Close => conn.closing = true,
    }
}

/// The `stats` group a binary `stat` key names (memcached's prefixes), if any.
fn binary_stats_group(group: &[u8]) -> Option<text::StatsKind> {
    use text::StatsKind as K;
    Some(match group {
        b"" => K::General,
        b"settings" => K::Settings,
        b"items" => K::Items,
        b"slabs" => K::Slabs,
        b"sizes" => K::Sizes,
        b"sizes_fine" => K::SizesFine,
        b"conns" => K::Conns,
        b"reset" => K::Reset,
        _ => return None,
    })
}
