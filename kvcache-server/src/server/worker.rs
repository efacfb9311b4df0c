//! A worker thread: one mio `Poll`, the connections handed to it, and the read ->
//! parse -> execute -> write cycle.
//!
//! mio is edge-triggered, so a connection must be read until the socket is empty or the
//! readiness is lost. We stop after a *short* read (fewer bytes than the free space):
//! the kernel copied everything it had, so a further `read` would only return EAGAIN
//! (tokio's `TcpStream` relies on the same property). New bytes arriving later raise a
//! new edge. Replies of everything parsed from a batch of reads leave in one `write`.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};

use super::auth::{self, AuthStep};
use super::conn::{
    Conn, ConnInfo, ReadResult, OUT_HIGH_WATER, READ_BUF, STATE_NREAD, STATE_PARSE, STATE_SWALLOW,
};
use super::control::ServerControl;
use super::direct::DirectSocket;
use super::recv;
use super::sasl;
use super::shared::Shared;
use super::stream::{PeerAddr, Stream};
use super::udp;
use crate::exec::{self, After, Counters, Protocol, Receiving, Step};

const WAKER: Token = Token(usize::MAX);
const UDP: Token = Token(usize::MAX - 1);

/// A connection that still has bytes to read after this many full reads yields to the
/// others on its worker and is resumed after them (memcached's `conn_yields`): a client
/// that pipelines without pause cannot starve its neighbours.
const READS_PER_EVENT: usize = 4;

/// Dump bytes a connection writes before it yields to the others of its worker.
const DUMP_SLICE: usize = 16 * 1024;

/// How often the idle and write timeouts are checked.
const TIMEOUT_SCAN: Duration = Duration::from_secs(1);

/// How long the workers may take, after a stop was asked, to answer what they have read
/// and close (the process exits within 5 seconds of SIGTERM, also when a client does not
/// read its replies).
const STOP_GRACE: Duration = Duration::from_millis(3000);

/// What a connection's handling needs of its worker.
#[derive(Debug)]
struct Ctx<'a> {
    shared: &'a Shared,
    counters: &'a mut Counters,
    control: ServerControl<'a>,
}

impl<'a> Ctx<'a> {
    fn new(shared: &'a Shared, counters: &'a mut Counters, worker: usize) -> Self {
        Ctx {
            shared,
            counters,
            control: ServerControl {
                shared,
                worker,
                fd: -1,
            },
        }
    }

    /// The execution context.
    #[inline]
    fn exec(&mut self) -> exec::Ctx<'_> {
        exec::Ctx {
            store: &self.shared.store,
            settings: &self.shared.settings,
            counters: self.counters,
            control: &self.control,
            direct: None,
        }
    }
}

/// A worker before it runs.
#[derive(Debug)]
pub(crate) struct Worker {
    id: usize,
    shared: Arc<Shared>,
    poll: Poll,
    rx: mpsc::Receiver<(Stream, PeerAddr)>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    counters: Counters,
    last_scan: Instant,
    /// Connections that yielded with input left to read, to resume after this poll.
    yielded: Vec<usize>,
    /// The store's cache flush requests seen (see `Store::cache_flush_requests`).
    flushes_seen: u64,
    /// An empty output buffer kept for the next connection that needs a large one (see
    /// `Conn::borrow_out`).
    spare_out: Vec<u8>,
    /// `-U`: this worker's clone of the UDP socket.
    udp: Option<udp::UdpPort>,
    /// The UDP socket may hold datagrams this worker has not read.
    udp_more: bool,
}

/// The channel on which the acceptor hands connections to a worker.
pub(crate) type ConnSender = mpsc::Sender<(Stream, PeerAddr)>;

/// A worker with the sender and waker the acceptor uses to hand it connections.
type Handoff = (Worker, ConnSender, Arc<Waker>);

impl Worker {
    pub fn new(id: usize, shared: Arc<Shared>) -> io::Result<Handoff> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = mpsc::channel();
        let udp = match &shared.udp {
            Some((sock, _)) => {
                let mut s = mio::net::UdpSocket::from_std(sock.try_clone()?);
                poll.registry().register(&mut s, UDP, Interest::READABLE)?;
                Some(udp::UdpPort::new(s))
            }
            None => None,
        };
        Ok((
            Worker {
                id,
                shared,
                poll,
                rx,
                conns: Vec::new(),
                free: Vec::new(),
                counters: Counters::default(),
                last_scan: Instant::now(),
                yielded: Vec::new(),
                flushes_seen: 0,
                spare_out: Vec::new(),
                udp,
                udp_more: false,
            },
            tx,
            waker,
        ))
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let cfg = &self.shared.cfg;
        let timeouts = cfg.idle_timeout > 0 || cfg.write_timeout > 0 || cfg.transport.tls.enabled;
        let tick = timeouts.then_some(TIMEOUT_SCAN);
        loop {
            // Connections that yielded are resumed right after a poll that does not wait.
            let wait = if self.yielded.is_empty() && !self.udp_more {
                tick
            } else {
                Some(Duration::ZERO)
            };
            let resume = std::mem::take(&mut self.yielded);
            if let Err(e) = self.poll.poll(&mut events, wait) {
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
                if ev.token() == UDP {
                    self.udp_more = true;
                    continue;
                }
                let i = ev.token().0;
                let Some(Some(conn)) = self.conns.get_mut(i) else {
                    continue;
                };
                let mut ctx = Ctx::new(&self.shared, &mut self.counters, self.id);
                conn.borrow_out(&mut self.spare_out);
                let keep = drive(
                    &mut ctx,
                    conn,
                    ev.is_readable() || ev.is_read_closed(),
                    ev.is_read_closed() || ev.is_error(),
                    ev.is_writable(),
                );
                conn.return_out(&mut self.spare_out);
                if !keep {
                    self.close(i);
                } else if conn.yielded {
                    self.yielded.push(i);
                }
            }
            if self.udp_more {
                self.serve_udp();
            }
            for i in resume {
                let Some(Some(conn)) = self.conns.get_mut(i) else {
                    continue;
                };
                if !conn.yielded {
                    // An event already resumed it.
                    continue;
                }
                let mut ctx = Ctx::new(&self.shared, &mut self.counters, self.id);
                conn.borrow_out(&mut self.spare_out);
                let keep = drive(&mut ctx, conn, true, false, false);
                conn.return_out(&mut self.spare_out);
                if !keep {
                    self.close(i);
                } else if conn.yielded {
                    self.yielded.push(i);
                }
            }
            if timeouts && self.last_scan.elapsed() >= TIMEOUT_SCAN {
                self.last_scan = Instant::now();
                self.close_timed_out();
            }
            self.shared.stats.worker(self.id).publish(&self.counters);
            let flushes = self.shared.store.cache_flush_requests();
            if flushes != self.flushes_seen {
                // Free chunks of retired classes in this thread's magazines would keep
                // their slabs from emptying.
                self.flushes_seen = flushes;
                self.shared.store.allocator().flush_thread_cache();
            }
            if self.shared.shutdown.load(Ordering::SeqCst) {
                self.finish();
                return;
            }
        }
    }

    /// Closes the connections past `-o idle_timeout` (waiting for a command, as
    /// memcached counts it: since the last complete command line, a partial line does
    /// not count; not while a value is being received or replies are pending) and past
    /// `-o write_timeout` (replies pending that the socket has not taken for that long:
    /// the client does not read).
    fn close_timed_out(&mut self) {
        let idle = self.shared.cfg.idle_timeout;
        let write = Duration::from_secs(u64::from(self.shared.cfg.write_timeout));
        let clock = self.shared.store.now();
        let now = Instant::now();
        let handshake =
            Duration::from_secs(u64::from(self.shared.cfg.transport.tls.handshake_timeout));
        for i in 0..self.conns.len() {
            let Some(conn) = self.conns[i].as_ref() else {
                continue;
            };
            let tls_started = conn.stream.tls().and_then(|t| t.handshake_started());
            if tls_started.is_some_and(|t| now.duration_since(t) >= handshake) {
                // A handshake that stalls: counted as failed.
                if let Some(t) = &self.shared.tls {
                    t.handshake_errors.fetch_add(1, Ordering::Relaxed);
                }
                self.close(i);
            } else if conn.pending_out() > 0 {
                let stalled = conn
                    .stalled_since
                    .is_some_and(|t| now.duration_since(t) >= write);
                if !write.is_zero() && stalled {
                    self.counters.write_timeouts += 1;
                    self.close(i);
                }
            } else if idle > 0
                && conn.info.state.load(Ordering::Relaxed) == STATE_PARSE
                && clock.saturating_sub(conn.info.last_cmd.load(Ordering::Relaxed)) > idle
            {
                self.counters.idle_kicks += 1;
                self.close(i);
            }
        }
    }

    fn accept_new(&mut self) {
        while let Ok((stream, peer)) = self.rx.try_recv() {
            let mut stream = match (stream, &self.shared.tls) {
                (Stream::Tcp(s), Some(tls)) => match tls.accept(s) {
                    Ok(t) => Stream::Tls(Box::new(t)),
                    Err(_) => {
                        self.shared.curr_conns.fetch_sub(1, Ordering::Relaxed);
                        continue;
                    }
                },
                (s, _) => s,
            };
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
            let log = &self.shared.ops.log;
            if log.wants(exec::watch::CONNEVENTS) {
                let peer = info.peer.tcp();
                log.emit(self.id, exec::watch::CONNEVENTS, |o| {
                    exec::watch::conn_event(o, peer, info.fd, None)
                });
            }
            let mut conn = Conn::new(stream, info, self.shared.auth.is_none());
            match self.shared.cfg.operator.protocol {
                crate::config::WireProtocol::Auto => {}
                crate::config::WireProtocol::Ascii => conn.proto = Some(Protocol::Text),
                crate::config::WireProtocol::Binary => conn.proto = Some(Protocol::Binary),
            }
            if self.shared.auth.is_some() {
                // memcached binds the text protocol only with `-Y`...
                conn.proto = Some(Protocol::Text);
            }
            if self.shared.sasl.is_some() {
                // ... and the binary protocol only with `-S`.
                conn.proto = Some(Protocol::Binary);
            }
            self.conns[i] = Some(conn);
        }
    }

    fn serve_udp(&mut self) {
        let (Some(port), Some((_, stats))) = (self.udp.as_mut(), self.shared.udp.as_ref()) else {
            return;
        };
        let mut ctx = Ctx::new(&self.shared, &mut self.counters, self.id);
        self.udp_more = port.serve(&mut ctx.exec(), stats);
    }

    fn close(&mut self, i: usize) {
        if let Some(mut conn) = self.conns[i].take() {
            // A value still arriving: its item's chunks go back.
            recv::abandon(&self.shared.store, &mut conn);
            let _ = self.poll.registry().deregister(&mut conn.stream);
            let mut list = self.shared.conns.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|c| !Arc::ptr_eq(c, &conn.info));
            drop(list);
            self.shared.curr_conns.fetch_sub(1, Ordering::Relaxed);
            self.free.push(i);
            let log = &self.shared.ops.log;
            if let Some(kinds) = conn.watch {
                self.shared.watchers.add(&self.shared, conn.stream, kinds);
            } else if log.wants(exec::watch::CONNEVENTS) {
                let (peer, fd) = (conn.info.peer.tcp(), conn.info.fd);
                log.emit(self.id, exec::watch::CONNEVENTS, |o| {
                    exec::watch::conn_event(o, peer, fd, Some("normal"))
                });
            }
        }
    }

    /// Stopping: no new reads are parsed; every connection gets the replies to the
    /// requests already read (also those held back by a full output buffer), then its
    /// write side is shut and what the peer still sends is discarded until it closes
    /// (closing with unread bytes would reset the connection and could destroy replies
    /// the peer has not read yet). Connections not done within [`STOP_GRACE`] are
    /// closed as they are.
    fn finish(&mut self) {
        let deadline = Instant::now() + STOP_GRACE;
        let mut events = Events::with_capacity(256);
        loop {
            let mut open = 0;
            for i in 0..self.conns.len() {
                let Some(conn) = self.conns[i].as_mut() else {
                    continue;
                };
                let mut ctx = Ctx::new(&self.shared, &mut self.counters, self.id);
                if finish_step(&mut ctx, conn) {
                    open += 1;
                } else {
                    self.close(i);
                }
            }
            if open == 0 || Instant::now() >= deadline {
                break;
            }
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20));
            let _ = self.poll.poll(&mut events, Some(wait));
        }
        for i in 0..self.conns.len() {
            self.close(i);
        }
        self.shared.stats.worker(self.id).publish(&self.counters);
    }
}

/// Writes the connection's pending output as far as the socket takes it, counting the
/// bytes; true when all of it left.
#[inline]
fn send(ctx: &mut Ctx<'_>, conn: &mut Conn) -> io::Result<bool> {
    let (done, n) = conn.flush()?;
    ctx.counters.bytes_written += n as u64;
    Ok(done)
}

/// One round of stopping a connection (see [`Worker::finish`]). Returns false when the
/// connection is done with.
fn finish_step(ctx: &mut Ctx<'_>, conn: &mut Conn) -> bool {
    if conn.broken {
        return false;
    }
    if !conn.write_shut {
        loop {
            if conn.pending_out() > 0 {
                match send(ctx, conn) {
                    Ok(true) => {}
                    Ok(false) => return true,
                    Err(_) => return false,
                }
            }
            // Requests read but held back while the output was full.
            if conn.closing || !conn.read_paused {
                break;
            }
            conn.read_paused = false;
            process(ctx, conn);
            if conn.broken {
                return false;
            }
        }
        conn.stream.shutdown_write();
        conn.write_shut = true;
    }
    let mut scratch = [0u8; 4096];
    loop {
        match conn.stream.read(&mut scratch) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Handles readiness of one connection. Returns false when it must be closed.
///
/// `hup`: the peer closed (or the socket failed); read until EOF rather than stopping at
/// a short read, since no further edge will announce the EOF.
fn drive(ctx: &mut Ctx<'_>, conn: &mut Conn, readable: bool, hup: bool, writable: bool) -> bool {
    if writable && conn.pending_out() > 0 {
        match send(ctx, conn) {
            Ok(true) => {}
            Ok(false) => return true,
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
    if conn.pending_out() > 0 && send(ctx, conn).is_err() {
        return false;
    }
    conn.tidy_read();
    !((conn.closing || conn.eof) && conn.pending_out() == 0)
}

/// Executes what a paused batch left, then reads until the socket is drained,
/// executing after every read. Returns false on a read error.
fn read_and_execute(ctx: &mut Ctx<'_>, conn: &mut Conn) -> bool {
    conn.yielded = false;
    let mut need = process(ctx, conn);
    let mut reads = 0;
    loop {
        if conn.broken {
            return false;
        }
        if conn.closing || conn.eof || conn.read_paused {
            return true;
        }
        let read = if recv::wants_direct(conn) {
            recv::read_direct(&ctx.shared.store, conn)
        } else {
            conn.reserve_read(need);
            conn.read_once()
        };
        match read {
            Ok(ReadResult::Data { n, drained }) => {
                ctx.counters.bytes_read += n as u64;
                need = process(ctx, conn);
                if drained && !conn.peer_closed {
                    return !conn.broken;
                }
                reads += 1;
                if reads >= READS_PER_EVENT && !conn.peer_closed {
                    // More may be waiting, and no new edge will announce it: resume
                    // this connection after the others.
                    ctx.counters.conn_yields += 1;
                    conn.yielded = true;
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
    if conn.rstart == conn.rend && conn.recv.is_none() && conn.dump.is_none() {
        return 0;
    }
    let mut commands = false;
    let need = run_requests(ctx, conn, &mut commands);
    if commands {
        // memcached's `last_cmd_time`: set by a complete command, not by bytes.
        conn.info
            .last_cmd
            .store(ctx.shared.store.now(), Ordering::Relaxed);
    }
    need
}

/// What [`authenticate`] leaves the connection in.
enum AuthProgress {
    /// Go on parsing (authenticated now, or a reply was written).
    Continue,
    /// Wait for this many bytes in total (0: unknown).
    Wait(usize),
    /// The connection closes.
    Closed,
}

/// One step of `-Y` authentication on an unauthenticated connection (see
/// [`super::auth`]).
fn authenticate(ctx: &mut Ctx<'_>, conn: &mut Conn) -> AuthProgress {
    let Some(file) = ctx.shared.auth.as_ref() else {
        conn.authenticated = true;
        return AuthProgress::Continue;
    };
    let buf = &conn.rbuf[conn.rstart..conn.rend];
    let reply = match auth::step(buf, conn.auth_pending) {
        AuthStep::Incomplete => {
            let state = if conn.auth_pending.is_some() {
                STATE_NREAD
            } else {
                STATE_PARSE
            };
            conn.info.state.store(state, Ordering::Relaxed);
            // Never ask the buffer to grow past what `auth::step` accepts.
            return AuthProgress::Wait(conn.auth_pending.unwrap_or(0).min(READ_BUF + 1));
        }
        AuthStep::Close => {
            conn.drop_unsent();
            conn.closing = true;
            return AuthProgress::Closed;
        }
        AuthStep::Consumed {
            used,
            reply,
            pending,
        } => {
            conn.rstart += used;
            conn.auth_pending = pending;
            reply
        }
        AuthStep::Credentials {
            used,
            user,
            password,
        } => {
            conn.rstart += used;
            conn.auth_pending = None;
            ctx.counters.auth_cmds += 1;
            if file.check(&user, &password) {
                conn.authenticated = true;
                Some(auth::STORED)
            } else {
                ctx.counters.auth_errors += 1;
                Some(auth::FAILURE)
            }
        }
    };
    if let Some(reply) = reply {
        // memcached writes every reply before authentication into the same response
        // object: a later one replaces the unsent earlier ones.
        conn.out.truncate(conn.out_pos);
        conn.out.extend_from_slice(reply);
    }
    AuthProgress::Continue
}

fn run_requests(ctx: &mut Ctx<'_>, conn: &mut Conn, commands: &mut bool) -> usize {
    ctx.control.fd = conn.info.fd;
    loop {
        if conn.closing {
            return 0;
        }
        if !conn.authenticated {
            match authenticate(ctx, conn) {
                AuthProgress::Continue => continue,
                AuthProgress::Wait(need) => return need,
                AuthProgress::Closed => return 0,
            }
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
        if let Some(dump) = conn.dump.as_mut() {
            // A dump goes out 16 KiB at a time (about 200 items, a few hundred
            // microseconds); between them the connection yields, so the other connections
            // of this worker run while it streams.
            if dump.fill(&ctx.shared.store, &mut conn.out, DUMP_SLICE) {
                conn.dump = None;
            } else {
                match send(ctx, conn) {
                    Ok(true) => conn.yielded = true,
                    Ok(false) => conn.read_paused = true,
                    Err(_) => conn.broken = true,
                }
                return 0;
            }
        }
        if !conn.after_swallow.is_empty() {
            conn.out.extend_from_slice(&conn.after_swallow);
            conn.after_swallow.clear();
        }
        let mark = conn.out.len();
        let step = if conn.recv.is_some() {
            let buf = &conn.rbuf[conn.rstart..conn.rend];
            Receiving::feed(&mut ctx.exec(), &mut conn.recv, buf, &mut conn.out)
        } else {
            let buf = &mut conn.rbuf[conn.rstart..conn.rend];
            if buf.is_empty() {
                conn.info.state.store(STATE_PARSE, Ordering::Relaxed);
                return 0;
            }
            let proto = *conn
                .proto
                .get_or_insert_with(|| Protocol::of_first_byte(buf[0]));
            let max = ctx.shared.settings.item_size_max;
            let sasl = ctx.shared.sasl.as_deref().and_then(|s| {
                sasl::intercept(s, &mut conn.sasl, buf, max, &mut conn.out, ctx.counters)
            });
            if let Some(step) = sasl {
                step
            } else {
                let written = conn.out_pos;
                // Large values go to a plain socket straight from their items.
                let plain = matches!(conn.stream, Stream::Tcp(_) | Stream::Unix(_));
                let mut direct = plain.then_some(DirectSocket {
                    stream: &mut conn.stream,
                    out_pos: &mut conn.out_pos,
                    bytes: 0,
                });
                let mut ex = ctx.exec();
                ex.direct = direct.as_mut().map(|d| d as &mut dyn exec::Direct);
                let step = exec::run(&mut ex, proto, buf, &mut conn.out, written, &mut conn.recv);
                if let Some(d) = direct {
                    ctx.counters.bytes_written += d.bytes as u64;
                }
                step
            }
        };
        match step {
            Step::Done { used, after } => {
                *commands = true;
                conn.rstart += used;
                match after {
                    After::Continue => {}
                    After::Sent => conn.sent_mark = conn.out.len(),
                    After::Swallow(n) => conn.swallow = n,
                    After::SwallowThenReply(n) => {
                        // The reply goes out once the bytes are discarded.
                        conn.swallow = n;
                        conn.after_swallow.extend_from_slice(&conn.out[mark..]);
                        conn.out.truncate(mark);
                    }
                    After::Close => conn.closing = true,
                    After::Watch(kinds) => {
                        conn.watch = Some(kinds);
                        conn.closing = true;
                    }
                    After::Dump { format, classes } => {
                        conn.dump = Some(crate::exec::ops::Dump::new(format, classes));
                    }
                    After::Abort => {
                        conn.drop_unsent();
                        conn.closing = true;
                        return 0;
                    }
                }
            }
            Step::Incomplete { used, need } => {
                conn.rstart += used;
                let nread = need > 0 || conn.recv.is_some();
                conn.info.state.store(
                    if nread { STATE_NREAD } else { STATE_PARSE },
                    Ordering::Relaxed,
                );
                return need;
            }
            Step::Close => {
                // memcached closes at once: replies it had not written are lost.
                conn.drop_unsent();
                conn.closing = true;
                return 0;
            }
        }
        if conn.pending_out() >= OUT_HIGH_WATER {
            // Write before executing more; if the socket is full, pause this
            // connection until it is writable again.
            match send(ctx, conn) {
                Ok(true) => {}
                Ok(false) => {
                    conn.read_paused = true;
                    return 0;
                }
                Err(_) => {
                    conn.broken = true;
                    return 0;
                }
            }
        }
    }
}
