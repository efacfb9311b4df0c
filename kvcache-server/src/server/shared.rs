//! What every thread of the server shares.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mio::Waker;

use super::auth;
use super::conn::ConnInfo;
use crate::config::Config;
use crate::exec::stats::StatsHub;
use crate::exec::Settings;
use crate::store::Store;

/// State every thread shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: Config,
    /// What requests depend on, from `cfg`.
    pub settings: Settings,
    /// Operator settings changed at run time (`lru_crawler`, `stats detail`, `lru`).
    pub ops: crate::exec::ops::OpsState,
    /// The connections that sent `watch`, and the logger thread.
    pub watchers: super::watch::Watchers,
    pub store: Arc<Store>,
    pub stats: StatsHub,
    /// Unix time at start (memcached's `process_started`).
    pub started: u64,
    pub verbosity: AtomicU32,
    pub curr_conns: AtomicUsize,
    pub total_conns: AtomicUsize,
    pub rejected_conns: AtomicUsize,
    pub shutdown: AtomicBool,
    /// Live connections, for `stats conns`.
    pub conns: Mutex<Vec<Arc<ConnInfo>>>,
    pub local_addr: SocketAddr,
    /// The listening socket's fd (for `stats conns`).
    pub listen_fd: i32,
    /// The listening socket as `stats conns` names it (`tcp:<addr>`, `unix:<path>`).
    pub listen_name: String,
    /// `-Z`: the TLS configuration and its counters.
    pub tls: Option<super::tls::TlsState>,
    /// `-S`: the SASL password file.
    pub sasl: Option<Arc<super::sasl::Sasl>>,
    /// `-U`: the UDP socket (each worker reads a clone) and its counters.
    pub udp: Option<(std::net::UdpSocket, super::udp::UdpStats)>,
    /// `-Y`: the credentials connections must present.
    pub auth: Option<auth::AuthFile>,
    /// Wakes the acceptor when a stop is asked.
    pub(super) stop_waker: Arc<Waker>,
}

impl super::watch::Source for Shared {
    fn log(&self) -> &crate::exec::watch::EventLog {
        &self.ops.log
    }
    fn watcher_buf(&self) -> usize {
        self.ops.watcher_buf
    }
    fn watchers(&self) -> &super::watch::Watchers {
        &self.watchers
    }
    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }
}

impl Shared {
    /// Stops the server: the acceptor stops listening and the workers finish.
    pub fn request_stop(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        let _ = self.stop_waker.wake();
    }
}
