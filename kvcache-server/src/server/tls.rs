//! TLS (`-Z`) with rustls, inside the mio workers.
//!
//! A [`TlsStream`] is a non-blocking TCP socket and a `rustls::ServerConnection`: reads
//! pull ciphertext from the socket and hand back plaintext, writes take plaintext and
//! push records; the handshake happens within those calls, so it never blocks the
//! worker and its other connections. Records the socket could not take stay in rustls
//! and count as the connection's pending output, so the worker's usual write-readiness
//! handling flushes them. A handshake not done within `-o ssl_handshake_timeout`
//! (default 10 s) is closed by the worker's timeout scan.
//!
//! The certificate, key and CA come from memcached's `-o ssl_*` options; the text
//! command `refresh_certs` builds a new configuration from the same files and swaps it
//! in for new connections ([`TlsState::refresh`]), as memcached does.

use std::io::{self, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use crate::config::TlsConfig;

/// Sessions the server remembers with `-o ssl_session_cache`.
const SESSION_CACHE: usize = 1024;

/// The TLS settings in force and what `stats` reports of them.
#[derive(Debug)]
pub(crate) struct TlsState {
    opts: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    /// Handshakes that failed (memcached's `ssl_handshake_errors`).
    pub handshake_errors: Arc<AtomicU64>,
    /// Server clock of the last certificate load.
    pub last_refresh: AtomicU32,
}

impl TlsState {
    /// Loads the certificate, key and CA named by `opts`; the error is memcached's
    /// message.
    pub fn new(opts: TlsConfig, now: u32) -> Result<TlsState, String> {
        let cfg = build(&opts)?;
        Ok(TlsState {
            opts,
            current: RwLock::new(cfg),
            handshake_errors: Arc::new(AtomicU64::new(0)),
            last_refresh: AtomicU32::new(now),
        })
    }

    /// `refresh_certs`: reloads the files; new connections use them, live ones keep
    /// theirs. On failure the old configuration stays.
    pub fn refresh(&self, now: u32) -> Result<(), String> {
        let cfg = build(&self.opts)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = cfg;
        self.last_refresh.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// A server-side TLS session over `sock`.
    pub fn accept(&self, sock: TcpStream) -> io::Result<TlsStream> {
        let cfg = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let tls = ServerConnection::new(cfg).map_err(io::Error::other)?;
        Ok(TlsStream {
            sock,
            tls,
            started: Instant::now(),
            handshake_errors: self.handshake_errors.clone(),
        })
    }
}

/// Builds the rustls configuration: memcached's messages for files that do not load.
fn build(opts: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    let chain = opts.chain_cert.as_deref().unwrap_or("");
    let key_path = opts.key.as_deref().unwrap_or("");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("Error loading the certificate chain: {chain} : {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "Error loading the certificate chain: {chain} : no certificate found"
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("Error loading the key: {key_path} : {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if opts.min_tls13 {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("Error setting the TLS versions: {e}"))?;
    let builder = if opts.verify_mode == 0 {
        builder.with_no_client_auth()
    } else {
        let ca = opts.ca_cert.as_deref().unwrap_or("");
        let mut roots = RootCertStore::empty();
        let cas = CertificateDer::pem_file_iter(ca)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("Error loading the CA certificate: {ca} : {e}"))?;
        for c in cas {
            roots
                .add(c)
                .map_err(|e| format!("Error loading the CA certificate: {ca} : {e}"))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        // 1: ask for a certificate and check one that is presented (SSL_VERIFY_PEER);
        // 2 and 3: require one (FAIL_IF_NO_PEER_CERT; 3 adds CLIENT_ONCE, which changes
        // nothing without renegotiation).
        let verifier = if opts.verify_mode == 1 {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        let verifier = verifier
            .build()
            .map_err(|e| format!("Error loading the CA certificate: {ca} : {e}"))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("Error validating the certificate: {e}"))?;
    if opts.session_cache {
        cfg.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    } else {
        cfg.session_storage = Arc::new(NoServerSessionStorage {});
    }
    Ok(Arc::new(cfg))
}

/// One TLS connection (see the module docs).
#[derive(Debug)]
pub(crate) struct TlsStream {
    sock: TcpStream,
    tls: ServerConnection,
    /// When the connection was accepted (for the handshake timeout).
    started: Instant,
    /// Where a failed handshake is counted.
    handshake_errors: Arc<AtomicU64>,
}

impl TlsStream {
    /// Still handshaking, and since when.
    pub fn handshake_started(&self) -> Option<Instant> {
        self.tls.is_handshaking().then_some(self.started)
    }

    pub fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    /// Records waiting for the socket (1 stands for "some": rustls does not say how
    /// many bytes).
    pub fn pending_out(&self) -> usize {
        usize::from(self.tls.wants_write())
    }

    /// Writes the records rustls holds; `Ok(false)` if the socket would block.
    pub fn flush_pending(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Sends close_notify (as far as the socket takes it) and shuts the write side.
    pub fn shutdown_write(&mut self) {
        self.tls.send_close_notify();
        let _ = self.flush_pending();
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }

    /// Feeds the socket's bytes to rustls until plaintext is ready, the socket is
    /// empty (`WouldBlock`) or closed (`Ok(false)`).
    fn fill(&mut self) -> io::Result<bool> {
        loop {
            match self.tls.read_tls(&mut self.sock) {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let state = match self.tls.process_new_packets() {
                Ok(s) => s,
                Err(e) => {
                    // Counted before the alert rustls queued goes out; then the
                    // connection fails.
                    if self.tls.is_handshaking() {
                        self.handshake_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = self.flush_pending();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            };
            // Handshake replies go out now; the worker retries any the socket refuses.
            self.flush_pending()?;
            if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
                return Ok(true);
            }
        }
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if !self.fill()? {
                // The peer closed without close_notify: an end of stream all the same.
                return Ok(0);
            }
        }
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        match bufs.iter_mut().find(|b| !b.is_empty()) {
            Some(b) => self.read(b),
            None => Ok(0),
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.flush_pending()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.tls.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            // rustls's plaintext buffer is full (the handshake is not done yet).
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.flush_pending()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for TlsStream {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}
