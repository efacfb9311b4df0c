//! The network side: an acceptor, `-t` workers on mio, and the connections, which know
//! bytes in and bytes out only: what the bytes mean is [`crate::exec`]'s business.
//!
//! ```text
//!                   +-----------------------------+
//!   listen socket ->|  acceptor (the main thread)  |<- SIGINT/SIGTERM (self-pipe)
//!                   +-----------------------------+
//!                      | round robin: channel + mio Waker
//!          +-----------+-----------+
//!          v                       v
//!   +-------------+         +-------------+
//!   |  worker 0   |  ...    |  worker t-1 |   each: own mio Poll, owns its connections
//!   | conns: read |         |             |   read -> parse in place -> execute ->
//!   | buf + out   |         |             |   one write per batch of replies
//!   +------+------+         +------+------+
//!          +-----------+-----------+
//!                      v
//!               Arc<Store> (shared)
//! ```
//!
//! The listener is TCP, or a unix stream socket with `-s` (`listen.rs`); a connection's
//! bytes go through a `Stream` (`stream.rs`), plain or TLS (`-Z`, `tls.rs`: rustls, the
//! handshake advanced by the worker's reads and writes). With `-U` every worker also
//! reads the UDP socket (`udp.rs`); with `-S` binary requests pass SASL first
//! (`sasl.rs`).
//!
//! Over the `-c` limit a new connection is answered `ERROR Too many open connections` and
//! closed, as memcached does. On SIGINT/SIGTERM (or `shutdown` with `-A`) the acceptor
//! stops listening, the workers answer the requests they have read, flush their replies,
//! shut their side of each connection and close, and the process exits 0 (within 5
//! seconds: connections not done in 3 are closed as they are).
//!
//! Limits that keep slow or hostile clients from costing memory or other clients'
//! latency, per connection:
//! - input: a 16 KiB read buffer that grows only to hold one request (a value up to
//!   `-I`, a `get` line up to 4 MiB); other lines over 2048 bytes close the connection;
//! - output: once 64 KiB of replies wait, the connection's requests stop executing and
//!   its socket stops being read until the client reads (back-pressure); a multi-key
//!   `get` pauses between keys at that mark, so no request buffers more than 64 KiB plus
//!   one value;
//! - time: `-o write_timeout=N` (default 30 s) closes a connection whose pending
//!   replies have not moved for N seconds; `-o idle_timeout=N` (default off) closes one
//!   that has sent no complete command for N seconds, as memcached's option does.

pub mod auth;
mod conn;
mod control;
mod direct;
mod listen;
mod metrics;
mod recv;
mod report;
mod sasl;
mod shared;
mod stream;
mod tls;
mod transport_report;
mod udp;
mod watch;
mod worker;

use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use mio::{Events, Interest, Poll, Token, Waker};

use crate::config::Config;
use crate::exec::stats::StatsHub;
use crate::exec::Settings;
use crate::protocol::text::reply;
use crate::store::Store;

pub use conn::ConnInfo;
use listen::Listener;
use shared::Shared;
pub use stream::PeerAddr;

/// A running server: the listener is bound and the workers are started.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    listener: Listener,
    poll: Poll,
    workers: Vec<(worker::ConnSender, Arc<Waker>)>,
    handles: Vec<JoinHandle<()>>,
    stop_waker: Arc<Waker>,
}

/// Stops a [`Server`] from another thread.
#[derive(Clone, Debug)]
pub struct StopHandle {
    shared: Arc<Shared>,
    waker: Arc<Waker>,
}

impl StopHandle {
    /// Asks the server to stop accepting, finish and return from [`Server::run`].
    pub fn stop(&self) {
        self.shared.request_stop();
        let _ = self.waker.wake();
    }
}

const LISTENER: Token = Token(0);
const STOP: Token = Token(1);

impl Server {
    /// Binds the listener and starts the workers. With `-Y` (`cfg.auth_file`), `auth`
    /// holds the credentials loaded from it (see [`auth::AuthFile::load`]); it is an
    /// error to leave them out.
    pub fn start(
        cfg: Config,
        store: Arc<Store>,
        auth: Option<auth::AuthFile>,
    ) -> io::Result<Server> {
        if cfg.auth_file.is_some() && auth.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an auth file is configured but its credentials were not given",
            ));
        }
        let listener = match &cfg.transport.unix_socket {
            Some(path) => Listener::unix(path, cfg.transport.unix_mask, cfg.backlog)?,
            None => {
                let addr = (cfg.listen.as_str(), cfg.port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on")
                    })?;
                Listener::tcp(addr, cfg.backlog)?
            }
        };
        let local_addr = listener
            .tcp_addr()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], cfg.port)));
        let listen_name = match &cfg.transport.unix_socket {
            Some(path) => format!("unix:{path}"),
            None => format!("tcp:{local_addr}"),
        };
        let listen_fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        let sasl = if cfg.transport.sasl {
            let s = Arc::new(sasl::Sasl::from_env()?);
            s.reload_on_sighup()?;
            Some(s)
        } else {
            None
        };
        let udp = if cfg.transport.udp_port != 0 {
            let addr = (cfg.listen.as_str(), cfg.transport.udp_port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on")
                })?;
            let sock = std::net::UdpSocket::bind(addr)?;
            sock.set_nonblocking(true)?;
            Some((sock, udp::UdpStats::default()))
        } else {
            None
        };
        let tls = if cfg.transport.tls.enabled {
            let t = tls::TlsState::new(cfg.transport.tls.clone(), store.now())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Some(t)
        } else {
            None
        };
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .saturating_sub(u64::from(store.now()));
        let poll = Poll::new()?;
        let stop_waker = Arc::new(Waker::new(poll.registry(), STOP)?);
        let shared = Arc::new(Shared {
            settings: Settings {
                item_size_max: cfg.item_size_max,
                flush_enabled: cfg.flush_enabled,
                shutdown_enabled: cfg.shutdown_enabled,
            },
            ops: crate::exec::ops::OpsState::new(
                cfg.dump_enabled,
                cfg.watch_enabled,
                cfg.prefix_delimiter,
            )
            .with_detail(cfg.operator.detail)
            .with_crawler(cfg.operator.crawler)
            .with_log(
                cfg.threads,
                cfg.operator.worker_logbuf,
                cfg.operator.watcher_logbuf,
            ),
            watchers: watch::Watchers::default(),
            stats: StatsHub::new(cfg.threads),
            verbosity: AtomicU32::new(u32::from(cfg.verbose)),
            cfg,
            store,
            started,
            curr_conns: AtomicUsize::new(0),
            total_conns: AtomicUsize::new(0),
            rejected_conns: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            local_addr,
            listen_fd,
            listen_name,
            auth,
            tls,
            sasl,
            udp,
            stop_waker: stop_waker.clone(),
        });
        shared.store.set_watcher(shared.ops.log.clone());
        let mut workers = Vec::new();
        let mut handles = Vec::new();
        for i in 0..shared.cfg.threads {
            let (w, tx, waker) = worker::Worker::new(i, shared.clone())?;
            handles.push(
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || w.run())?,
            );
            workers.push((tx, waker));
        }
        Ok(Server {
            shared,
            listener,
            poll,
            workers,
            handles,
            stop_waker,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Where the server listens, as `stats conns` names it (`tcp:127.0.0.1:11211`,
    /// `unix:/path/to.sock`).
    pub fn listen_name(&self) -> &str {
        &self.shared.listen_name
    }

    /// Serves `GET /metrics` (Prometheus text format) on `-o metrics_port`, if given;
    /// returns the address it listens on.
    pub fn start_metrics(&self) -> io::Result<Option<SocketAddr>> {
        let op = &self.shared.cfg.operator;
        let Some(port) = op.metrics_port else {
            return Ok(None);
        };
        let addr = if op.metrics_listen.contains(':') {
            format!("[{}]:{port}", op.metrics_listen)
        } else {
            format!("{}:{port}", op.metrics_listen)
        };
        metrics::serve(self.shared.clone(), &addr).map(Some)
    }

    /// A handle that stops the server.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            shared: self.shared.clone(),
            waker: self.stop_waker.clone(),
        }
    }

    /// Accepts connections until stopped (by a [`StopHandle`] or, with
    /// [`Server::stop_on_signals`], by SIGINT/SIGTERM); then lets the workers finish and
    /// joins them.
    pub fn run(mut self) -> io::Result<()> {
        self.poll
            .registry()
            .register(&mut self.listener, LISTENER, Interest::READABLE)?;
        let mut events = Events::with_capacity(64);
        let mut next = 0usize;
        'outer: loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                if ev.token() == STOP || self.shared.shutdown.load(Ordering::SeqCst) {
                    if self.shared.shutdown.load(Ordering::SeqCst) {
                        break 'outer;
                    }
                    continue;
                }
                loop {
                    match self.listener.accept() {
                        Ok((mut stream, peer)) => {
                            self.shared.total_conns.fetch_add(1, Ordering::Relaxed);
                            let curr = self.shared.curr_conns.load(Ordering::Relaxed);
                            if curr >= self.shared.cfg.max_conns {
                                self.shared.rejected_conns.fetch_add(1, Ordering::Relaxed);
                                let _ = stream.write(reply::TOO_MANY_CONNS);
                                continue;
                            }
                            self.shared.curr_conns.fetch_add(1, Ordering::Relaxed);
                            let (tx, waker) = &self.workers[next % self.workers.len()];
                            next = next.wrapping_add(1);
                            if tx.send((stream, peer)).is_ok() {
                                let _ = waker.wake();
                            } else {
                                self.shared.curr_conns.fetch_sub(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            // EMFILE and friends: keep serving the connections we have.
                            if self.shared.verbosity.load(Ordering::Relaxed) > 0 {
                                eprintln!("accept failed: {e}");
                            }
                            break;
                        }
                    }
                }
            }
        }
        // Stop accepting: close the listener first, then let the workers finish.
        drop(self.listener);
        for (_, waker) in &self.workers {
            let _ = waker.wake();
        }
        for h in self.handles {
            let _ = h.join();
        }
        Ok(())
    }

    /// Makes SIGINT and SIGTERM stop the server (through a self-pipe registered by
    /// signal-hook, which wakes the acceptor).
    pub fn stop_on_signals(&self) -> io::Result<()> {
        let handle = self.stop_handle();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if signals.forever().next().is_some() {
                    handle.stop();
                }
            })?;
        Ok(())
    }
}

/// File descriptors the process needs besides its client connections: the listener,
/// epoll instances and wakers of the acceptor and workers, signal pipes, stdio, and a
/// margin for libraries.
pub fn reserved_fds(threads: usize) -> u64 {
    32 + 4 * threads as u64
}

/// Makes sure `max_conns` connections fit under `RLIMIT_NOFILE`, raising the soft limit
/// (and the hard one, which needs privilege) when they do not, as memcached does at
/// start. The error is memcached's message for a limit that cannot be raised.
pub fn raise_fd_limit(max_conns: usize, threads: usize) -> Result<(), &'static str> {
    let need = (max_conns as u64).saturating_add(reserved_fds(threads));
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err("failed to getrlimit number of files");
    }
    if rl.rlim_cur != libc::RLIM_INFINITY && rl.rlim_cur < need {
        rl.rlim_cur = need;
        if rl.rlim_max != libc::RLIM_INFINITY && rl.rlim_max < need {
            rl.rlim_max = need;
        }
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 {
            return Err("failed to set rlimit for open files. Try starting as root or requesting smaller maxconns value.");
        }
    }
    Ok(())
}
