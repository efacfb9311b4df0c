//! The listening socket: TCP on `-l`/`-p`, or a unix stream socket (`-s`, mode `-a`).
//!
//! A unix socket path that exists is probed before binding: if a server answers on it,
//! starting fails with an error naming the path (`AddrInUse`); if nothing answers (a
//! server that died left it), the file is replaced, as memcached replaces it. The file
//! is removed when the listener is dropped, at exit.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};

use mio::event::Source;
use mio::net::{TcpListener, UnixListener};
use mio::{Interest, Registry, Token};

use super::stream::{PeerAddr, Stream};

/// The socket clients connect to.
#[derive(Debug)]
pub(crate) enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// A unix stream socket and its path (removed on drop).
    Unix(UnixListener, String),
}

impl Listener {
    /// Binds a TCP listener with `SO_REUSEADDR` and the given backlog.
    pub fn tcp(addr: SocketAddr, backlog: u32) -> io::Result<Listener> {
        let l = StdListener::bind(addr)?;
        l.set_nonblocking(true)?;
        set_backlog(l.as_raw_fd(), backlog)?;
        Ok(Listener::Tcp(TcpListener::from_std(l)))
    }

    /// Binds the unix socket at `path` with mode `mask` (see the module docs).
    pub fn unix(path: &str, mask: u32, backlog: u32) -> io::Result<Listener> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{path} exists and is not a socket"),
                ));
            }
            match StdUnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("another server is listening on {path}"),
                    ))
                }
                // Nobody listens: a dead server's socket file.
                Err(_) => std::fs::remove_file(path)?,
            }
        }
        let l = StdUnixListener::bind(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {path}: {e}")))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mask))?;
        l.set_nonblocking(true)?;
        set_backlog(l.as_raw_fd(), backlog)?;
        Ok(Listener::Unix(UnixListener::from_std(l), path.to_owned()))
    }

    /// The TCP address, if TCP.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// Accepts one connection.
    pub fn accept(&self) -> io::Result<(Stream, PeerAddr)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept()?;
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), PeerAddr::Tcp(peer)))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept()?;
                Ok((Stream::Unix(s), PeerAddr::Unix))
            }
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l, _) => l.as_raw_fd(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path.as_str());
        }
    }
}

impl Source for Listener {
    fn register(&mut self, r: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.register(r, token, interest),
            Listener::Unix(l, _) => l.register(r, token, interest),
        }
    }

    fn reregister(&mut self, r: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.reregister(r, token, interest),
            Listener::Unix(l, _) => l.reregister(r, token, interest),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.deregister(r),
            Listener::Unix(l, _) => l.deregister(r),
        }
    }
}

/// Raises a bound socket's listen backlog (std listens with 128).
fn set_backlog(fd: RawFd, backlog: u32) -> io::Result<()> {
    let backlog = backlog.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: `fd` is a valid, bound socket owned by the caller for the whole call;
    // listen(2) on an already listening socket only updates its backlog.
    let rc = unsafe { libc::listen(fd, backlog) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
