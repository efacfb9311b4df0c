//! Integration tests for the workspace live in `tests/tests/`: they start the real
//! `kvcache-server` and `slabtune` binaries on loopback ports and check their answers
//! byte for byte. This library holds the helpers they share.
//!
//! The binaries are not built here: build them first (`cargo build -p kvcache-server`,
//! or `--release` and set `KVCACHE_SERVER_BIN`). [`server_bin`] looks for the binary next
//! to the test executable's profile directory (`target/<profile>/kvcache-server`).
//!
//! Every read has a timeout, every server is killed when its [`ServerProc`] is dropped,
//! and servers listen on an ephemeral port of 127.0.0.1 (`-p 0`; the server prints the
//! port it got).
#![warn(missing_docs)]

pub mod kv_client;
pub mod kv_model;
pub mod linearizability;
pub mod rng;
pub mod transport;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a read waits for the bytes it expects before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The `kvcache-server` binary: `$KVCACHE_SERVER_BIN`, else `target/<profile>/kvcache-server`
/// next to the running test executable (which lives in `target/<profile>/deps/`).
pub fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KVCACHE_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("kvcache-server");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p kvcache-server` first (or set KVCACHE_SERVER_BIN)",
        bin.display()
    );
    bin
}

/// A running `kvcache-server`, killed on drop.
#[derive(Debug)]
pub struct ServerProc {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    stderr_lines: mpsc::Receiver<String>,
    /// What the server printed to stderr before its listening line.
    startup: Vec<String>,
}

impl ServerProc {
    /// Starts the server with `args` on an ephemeral loopback port and waits until it
    /// listens. Panics (failing the test) if it does not start within [`READ_TIMEOUT`].
    pub fn start(args: &[&str]) -> ServerProc {
        Self::start_wrapped(&[], args)
    }

    /// As [`start`](Self::start), with the server run by a wrapper command: `wrapper` is
    /// the command and its arguments before the server's path (e.g. `["prlimit",
    /// "--as=200000000", "--"]`, or `valgrind` and its options); empty runs it directly.
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> ServerProc {
        let mut cmd = match wrapper.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(server_bin());
                c
            }
            None => Command::new(server_bin()),
        };
        let mut child = cmd
            .args(["-l", "127.0.0.1", "-p", "0", "-U", "0"])
            // Tests may run as root, which the server refuses without `-u`.
            .args(["-u", "root"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kvcache-server");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut startup = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("kvcache-server listening on ") {
                        break a.trim().parse().expect("listen address");
                    }
                    startup.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("kvcache-server did not start: {:?}", child.wait());
                }
            }
        };
        ServerProc {
            child: Some(child),
            addr,
            stderr_lines: rx,
            startup,
        }
    }

    /// The lines the server printed to stderr before it listened.
    pub fn startup_lines(&self) -> &[String] {
        &self.startup
    }

    /// A new client connection.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// The lines the server printed to stderr so far (after the listening line).
    pub fn stderr_so_far(&self) -> Vec<String> {
        self.stderr_lines.try_iter().collect()
    }

    /// Sends `signal` and waits (bounded) for the process to exit.
    pub fn signal_and_wait(mut self, signal: i32) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) with the pid of our own child process and a valid signal
        // number; it touches no memory.
        let rc = unsafe { libc_kill(child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill failed");
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not exit after signal {signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id (for `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the server binary to completion with `args` (for flag errors, `-h`, `-vv`),
/// killing it after `timeout`. Returns (status, stdout, stderr).
pub fn run_server_to_exit(args: &[&str], timeout: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(server_bin())
        .args(["-u", "root"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kvcache-server");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    (status, out, err)
}

/// A blocking client connection with a read timeout.
#[derive(Debug)]
pub struct Client {
    /// The socket.
    pub stream: TcpStream,
}

impl Client {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, READ_TIMEOUT).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client { stream }
    }

    /// Sends all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads exactly `n` bytes (failing the test on timeout or EOF).
    pub fn read_n(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        let mut got = 0;
        while got < n {
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => panic!(
                    "connection closed after {got} of {n} bytes: {:?}",
                    String::from_utf8_lossy(&buf[..got])
                ),
                Ok(k) => got += k,
                Err(e) => panic!(
                    "read failed after {got} of {n} bytes ({e}): {:?}",
                    String::from_utf8_lossy(&buf[..got])
                ),
            }
        }
        buf
    }

    /// Reads as many bytes as `expected` has and asserts they are equal.
    pub fn expect(&mut self, expected: &[u8]) {
        let got = self.read_n(expected.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "reply differs"
        );
    }

    /// Sends `request` and expects exactly `reply` (then nothing more is checked).
    pub fn roundtrip(&mut self, request: &[u8], reply: &[u8]) {
        self.send(request);
        self.expect(reply);
    }

    /// Reads one line, `\r\n` included.
    pub fn read_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            match self.stream.read(&mut b) {
                Ok(0) => panic!(
                    "connection closed mid-line: {:?}",
                    String::from_utf8_lossy(&line)
                ),
                Ok(_) => line.push(b[0]),
                Err(e) => panic!(
                    "read failed ({e}) after {:?}",
                    String::from_utf8_lossy(&line)
                ),
            }
        }
        line
    }

    /// Reads lines up to and including `END\r\n` (a `stats` reply); returns them without
    /// the final `END`.
    pub fn read_until_end(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.read_line();
            if l == b"END\r\n" {
                return lines;
            }
            lines.push(String::from_utf8_lossy(&l[..l.len() - 2]).into_owned());
        }
    }

    /// `stats [sub]` as (name, value) pairs.
    pub fn stats(&mut self, sub: &str) -> Vec<(String, String)> {
        let cmd = if sub.is_empty() {
            "stats\r\n".to_owned()
        } else {
            format!("stats {sub}\r\n")
        };
        self.send(cmd.as_bytes());
        self.read_until_end()
            .into_iter()
            .map(|l| {
                let rest = l
                    .strip_prefix("STAT ")
                    .unwrap_or_else(|| panic!("not a STAT line: {l}"));
                let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    /// Asserts the server closes the connection (EOF or reset) within the timeout,
    /// after sending nothing more than `allowed_prefix`.
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 4096];
        let mut extra = Vec::new();
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => extra.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!(
                    "connection not closed ({e}); got {:?}",
                    String::from_utf8_lossy(&extra)
                ),
            }
        }
        assert!(
            extra.is_empty(),
            "unexpected bytes before close: {:?}",
            String::from_utf8_lossy(&extra)
        );
    }

    /// Asserts nothing arrives within `wait` (for `noreply`).
    pub fn expect_silence(&mut self, wait: Duration) {
        self.stream.set_read_timeout(Some(wait)).expect("timeout");
        let mut buf = [0u8; 256];
        let r = self.stream.read(&mut buf);
        self.stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        match r {
            Ok(0) => panic!("connection closed"),
            Ok(n) => panic!("unexpected reply: {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
    }
}

/// A duration in seconds from the environment variable `name`, else `default_secs`. Load
/// tests take their run time from here so that a user runs the full duration and CI may
/// run a shorter one (see the test's module docs for which variable and what CI uses).
pub fn env_secs(name: &str, default_secs: u64) -> Duration {
    let secs = std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default_secs);
    Duration::from_secs(secs)
}

/// Raises this process's soft `RLIMIT_NOFILE` to at least `want` (bounded by the hard
/// limit) and returns the soft limit now in force. Servers started afterwards inherit it.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the valid, exclusively borrowed `lim`.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(rc, 0, "getrlimit: {}", std::io::Error::last_os_error());
    if lim.rlim_cur < want {
        lim.rlim_cur = want.min(lim.rlim_max);
        // SAFETY: setrlimit reads one valid `rlimit`; raising the soft limit up to the
        // hard limit needs no privilege.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
        assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
    }
    lim.rlim_cur
}

/// Resident set size now and its peak (`VmRSS`, `VmHWM` of `/proc/PID/status`), in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    Some((status_kib(pid, "VmRSS:")?, status_kib(pid, "VmHWM:")?))
}

/// A `kB` field of `/proc/PID/status` (`name` with its colon, e.g. `"VmSize:"`), in KiB.
pub fn status_kib(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Sets `SO_LINGER` to zero seconds so that dropping the socket sends a reset (RST)
/// instead of the orderly FIN.
pub fn set_linger_zero(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `size_of::<linger>()` bytes from the valid `linger` for an
    // open socket this stream owns.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// The value of stat `name` in `stats` as a number (failing the test if it is missing).
pub fn stat_u64(stats: &[(String, String)], name: &str) -> u64 {
    stats
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no stat {name}"))
        .1
        .parse()
        .unwrap_or_else(|_| panic!("stat {name} is not a number"))
}
