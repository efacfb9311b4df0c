//! Helpers for the transport tests: servers on a unix socket, certificates made with
//! `openssl`, a rustls client, and reads that work on any stream.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::{server_bin, READ_TIMEOUT};

/// A fresh directory under the system temp dir, readable by everyone (memcached runs as
/// `nobody`), removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates it.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "kvt-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        chmod(&p, 0o755);
        TempDir(p)
    }

    /// A path inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A server started with `-s <path>`, killed on drop.
#[derive(Debug)]
pub struct UnixServer {
    /// The process.
    pub child: Child,
    /// The socket path.
    pub path: PathBuf,
}

impl UnixServer {
    /// Starts the server on `path` with `args` and waits until the socket answers.
    pub fn start(path: &Path, args: &[&str]) -> UnixServer {
        let child = Command::new(server_bin())
            // The server refuses to run as root without `-u`.
            .args(["-u", "root"])
            .arg("-s")
            .arg(path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kvcache-server");
        let mut s = UnixServer {
            child,
            path: path.to_owned(),
        };
        let deadline = Instant::now() + READ_TIMEOUT;
        while UnixStream::connect(path).is_err() {
            assert!(
                s.child.try_wait().expect("try_wait").is_none(),
                "server exited"
            );
            assert!(
                Instant::now() < deadline,
                "server did not listen on {path:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// A client connection.
    pub fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.path).expect("connect");
        s.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
        s
    }

    /// SIGTERM, then waits (bounded) for the exit code.
    pub fn stop(mut self) -> Option<i32> {
        // SAFETY: kill(2) with our own child's pid and SIGTERM; it touches no memory.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code();
            }
            assert!(Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads exactly `n` bytes from any stream.
pub fn read_n(s: &mut impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("read {n} bytes: {e}"));
    buf
}

/// Sends `req` and asserts the next bytes are `reply`.
pub fn roundtrip(s: &mut (impl Read + Write), req: &[u8], reply: &[u8]) {
    s.write_all(req).expect("send");
    let got = read_n(s, reply.len());
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(reply),
        "reply to {:?}",
        String::from_utf8_lossy(req)
    );
}

/// Reads until the peer closes (or resets, or the timeout passes: then `None`).
pub fn read_to_close(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(all),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Some(all),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Some(all),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            // A TLS alert from the server ends the stream too.
            Err(_) => return Some(all),
        }
    }
}

/// `stats [sub]` over any stream, as (name, value) pairs.
pub fn stats(s: &mut (impl Read + Write), sub: &str) -> Vec<(String, String)> {
    let cmd = if sub.is_empty() {
        "stats\r\n".to_owned()
    } else {
        format!("stats {sub}\r\n")
    };
    s.write_all(cmd.as_bytes()).expect("send");
    let mut text = Vec::new();
    let mut b = [0u8; 1];
    while !text.ends_with(b"END\r\n") {
        s.read_exact(&mut b).expect("stats reply");
        text.push(b[0]);
    }
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| l.strip_prefix("STAT "))
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The certificates of a TLS test, made with `openssl` in a temp dir: a CA, a server
/// certificate for `localhost`/127.0.0.1 and a client certificate signed by it, and a
/// client certificate signed by another CA.
#[derive(Debug)]
pub struct Certs {
    /// Where they are.
    pub dir: TempDir,
}

impl Certs {
    /// Makes them (fails the test when `openssl` is missing).
    pub fn make() -> Certs {
        let dir = TempDir::new("certs");
        let sh = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca
openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=other-ca
for who in server client wrong; do
  openssl req -newkey rsa:2048 -nodes -keyout $who.key -out $who.csr -subj /CN=$who
done
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile client.ext
openssl x509 -req -in wrong.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial -out wrong.pem -days 2 -extfile client.ext
chmod 644 *
"#;
        let out = Command::new("sh")
            .arg("-c")
            .arg(sh)
            .current_dir(&dir.0)
            .output()
            .expect("run openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Certs { dir }
    }

    /// A file's path as a string.
    pub fn file(&self, name: &str) -> String {
        self.dir.path(name).to_string_lossy().into_owned()
    }

    /// `-o ssl_chain_cert=...,ssl_key=...` plus `extra` suboptions.
    pub fn server_opts(&self, extra: &str) -> String {
        let mut o = format!(
            "ssl_chain_cert={},ssl_key={}",
            self.file("server.pem"),
            self.file("server.key")
        );
        if !extra.is_empty() {
            o.push(',');
            o.push_str(extra);
        }
        o
    }
}

/// A TLS client connection.
pub type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects with TLS to `addr`, trusting the test CA and presenting the client
/// certificate `who` (`"client"`, `"wrong"`) if given; the handshake completes before
/// this returns (an error if the server refuses it).
pub fn tls_connect(addr: SocketAddr, certs: &Certs, who: Option<&str>) -> io::Result<TlsClient> {
    tls_connect_versions(addr, certs, who, rustls::DEFAULT_VERSIONS)
}

/// [`tls_connect`] offering only the TLS `versions` given.
pub fn tls_connect_versions(
    addr: SocketAddr,
    certs: &Certs,
    who: Option<&str>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> io::Result<TlsClient> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(certs.file("ca.pem")).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add ca");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let cfg = match who {
        None => b.with_no_client_auth(),
        Some(who) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(certs.file(&format!("{who}.pem")))
                    .expect("client cert")
                    .map(|c| c.expect("cert"))
                    .collect();
            let key = PrivateKeyDer::from_pem_file(certs.file(&format!("{who}.key"))).expect("key");
            b.with_client_auth_cert(chain, key).expect("client auth")
        }
    };
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).map_err(io::Error::other)?;
    let sock = TcpStream::connect_timeout(&addr, READ_TIMEOUT)?;
    sock.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    // TLS 1.3 servers reject a client certificate after the client's handshake is done:
    // a round trip makes the verdict arrive.
    s.write_all(b"version\r\n")?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        s.read_exact(&mut b)?;
        line.push(b[0]);
    }
    if !line.starts_with(b"VERSION ") {
        return Err(io::Error::other(format!("unexpected reply {line:?}")));
    }
    Ok(s)
}
