//! A client connection's byte stream, whatever carries it: TCP, a unix stream socket, or
//! TLS over TCP (see [`super::tls`]). The worker reads and writes through it and
//! registers it with mio without knowing which one it is.

use std::fmt;
use std::io::{self, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

use super::tls::TlsStream;

/// A connection's transport.
#[derive(Debug)]
pub(crate) enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// A unix stream socket (`-s`).
    Unix(UnixStream),
    /// TLS over TCP (`-Z`).
    Tls(Box<TlsStream>),
}

/// Who is at the other end, as `stats conns` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAddr {
    /// A TCP client.
    Tcp(SocketAddr),
    /// A unix-socket client (unnamed, as clients' sockets are).
    Unix,
}

impl PeerAddr {
    /// The TCP address; `None` for a unix-socket client.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            PeerAddr::Tcp(a) => Some(*a),
            PeerAddr::Unix => None,
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Tcp(a) => write!(f, "tcp:{a}"),
            // memcached 1.6.18 prints an unnamed peer's empty address this way.
            PeerAddr::Unix => f.write_str("?:<AF 0>"),
        }
    }
}

impl Stream {
    /// Whether bytes may wait inside the stream (decrypted or still encrypted) after a
    /// read shorter than the buffer: then a short read does not mean the socket is
    /// empty, and the worker reads on until the stream says it would block.
    pub fn buffers_input(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Bytes the stream holds that the socket has not taken yet (TLS records), beyond
    /// what the connection's output buffer holds.
    pub fn pending_out(&self) -> usize {
        match self {
            Stream::Tls(t) => t.pending_out(),
            _ => 0,
        }
    }

    /// Writes what the stream holds; `Ok(false)` when the socket would block first.
    pub fn flush_pending(&mut self) -> io::Result<bool> {
        match self {
            Stream::Tls(t) => t.flush_pending(),
            _ => Ok(true),
        }
    }

    /// Shuts the write side (TLS first sends its close_notify).
    pub fn shutdown_write(&mut self) {
        match self {
            Stream::Tcp(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            Stream::Unix(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            Stream::Tls(t) => t.shutdown_write(),
        }
    }

    /// The TLS stream, if this is one.
    pub fn tls(&self) -> Option<&TlsStream> {
        match self {
            Stream::Tls(t) => Some(t),
            _ => None,
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tls(t) => t.as_raw_fd(),
        }
    }
}

impl Read for Stream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }

    #[inline]
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read_vectored(bufs),
            Stream::Unix(s) => s.read_vectored(bufs),
            Stream::Tls(t) => t.read_vectored(bufs),
        }
    }
}

impl Write for Stream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }

    #[inline]
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
            Stream::Tls(t) => t.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, token, interest),
            Stream::Unix(s) => s.register(r, token, interest),
            Stream::Tls(t) => t.socket_mut().register(r, token, interest),
        }
    }

    fn reregister(&mut self, r: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, token, interest),
            Stream::Unix(s) => s.reregister(r, token, interest),
            Stream::Tls(t) => t.socket_mut().reregister(r, token, interest),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
            Stream::Tls(t) => t.socket_mut().deregister(r),
        }
    }
}
