//! Security defaults and the features that guard the server, each reply checked against
//! memcached 1.6.18 with the same bytes (including whether and when it closes):
//! loopback by default, `shutdown` only with `-A`, `-Y` text authentication, HTTP
//! request lines, the `-c` connection limit with 1,200 connections, the file-descriptor
//! limit, and `SERVER_ERROR out of memory storing object` when `-M` memory is full.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use integration_tests::{run_server_to_exit, server_bin, Client, ServerProc};

const VERSION: &[u8] = b"VERSION 1.6.18-kvcache\r\n";
const UNAUTH: &[u8] = b"CLIENT_ERROR unauthenticated\r\n";

fn setting(c: &mut Client, name: &str) -> String {
    c.stats("settings")
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no setting {name}"))
}

fn stat(c: &mut Client, name: &str) -> u64 {
    c.stats("")
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.parse().expect("number"))
        .unwrap_or_else(|| panic!("no stat {name}"))
}

/// Waits (bounded) for the server to exit on its own and returns its exit code.
/// `signal_and_wait(0)` sends no signal: kill(pid, 0) only checks the process exists.
fn wait_exit(s: ServerProc) -> Option<i32> {
    s.signal_and_wait(0).code()
}

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("kvcache-security-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn listens_on_loopback_without_udp_by_default() {
    // No -l: the address printed is 127.0.0.1 (memcached's default is every interface).
    let mut child = Command::new(server_bin())
        .args(["-u", "root", "-p", "0", "-v"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let listening = loop {
        let line = lines.next().expect("a listening line").expect("stderr");
        if let Some(a) = line.strip_prefix("kvcache-server listening on ") {
            break a.to_owned();
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening.starts_with("127.0.0.1:"), "{listening}");

    let s = ServerProc::start(&[]);
    let mut c = s.connect();
    assert_eq!(setting(&mut c, "udpport"), "0");
    // UDP is off unless -U names a port (see server_transport.rs).
    let (code, _, err) = run_server_to_exit(&["-U", "65536"], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn shutdown_needs_dash_a() {
    let s = ServerProc::start(&[]);
    let mut c = s.connect();
    assert_eq!(setting(&mut c, "shutdown_command"), "no");
    for line in [
        &b"shutdown\r\n"[..],
        b"shutdown graceful\r\n",
        b"shutdown x\r\n",
    ] {
        c.roundtrip(line, b"ERROR: shutdown not enabled\r\n");
    }
    c.roundtrip(b"version\r\n", VERSION);
}

#[test]
fn shutdown_stops_the_server_with_dash_a() {
    for mode in [&b"shutdown\r\n"[..], b"shutdown graceful\r\n"] {
        let s = ServerProc::start(&["-A"]);
        let mut c = s.connect();
        assert_eq!(setting(&mut c, "shutdown_command"), "yes");
        c.roundtrip(b"shutdown x\r\n", b"CLIENT_ERROR invalid shutdown mode\r\n");
        c.roundtrip(
            b"shutdown graceful now\r\n",
            b"CLIENT_ERROR invalid shutdown mode\r\n",
        );
        // memcached closes this connection without a reply (also dropping a reply it had
        // not written yet) and exits 0.
        c.send(b"version\r\n");
        c.expect(VERSION);
        let mut other = s.connect();
        other.send(b"set k 0 0 1\r\nv\r\n");
        other.expect(b"STORED\r\n");
        c.send(&[b"version\r\n", mode].concat());
        c.expect_closed();
        assert_eq!(wait_exit(s), Some(0));
        // The other connection was closed by the stop.
        other.expect_closed();
    }
}

#[test]
fn authentication() {
    let file = TempFile::new("auth", b"alice:secret\nbob:pw2\r\n");
    let s = ServerProc::start(&["-Y", file.path()]);

    // Everything before authentication, meta and binary included, gets the same answer
    // and the connection stays open.
    let mut c = s.connect();
    for line in [
        &b"version\r\n"[..],
        b"get foo\r\n",
        b"mn\r\n",
        b"mg foo v\r\n",
        b"stats\r\n",
        b"quit\r\n",
        b"GET / HTTP/1.1\r\n",
        b"set a 0 0\r\n",
        b"set a 0 0 -1\r\n",
        b"SET a 0 0 12\r\n",
        b"\r\n",
    ] {
        c.roundtrip(line, UNAUTH);
    }
    // A binary header is read as text with -Y: no answer until a newline.
    c.send(&[
        0x80, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    c.expect_silence(Duration::from_millis(200));
    c.roundtrip(b"\r\n", UNAUTH);

    // Failures: wrong password, no password, bad termination.
    c.roundtrip(
        b"set a 0 0 12\r\nalice wrong!\r\n",
        b"CLIENT_ERROR authentication failure\r\n",
    );
    c.roundtrip(
        b"set a 0 0 5\r\nalice\r\n",
        b"CLIENT_ERROR bad authentication token format\r\n",
    );
    c.roundtrip(
        b"set a 0 0 12\r\nalice secretXX",
        b"CLIENT_ERROR bad command line termination\r\n",
    );
    c.roundtrip(b"version\r\n", UNAUTH);
    // The key, flags, exptime and noreply are ignored; the data block is "user pass".
    c.roundtrip(
        b"set anything 5 100 12 noreply\r\nalice secret\r\n",
        b"STORED\r\n",
    );
    c.roundtrip(b"version\r\n", VERSION);
    c.roundtrip(
        b"set k 0 0 1\r\nv\r\nget k\r\n",
        b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n",
    );
    assert_eq!(stat(&mut c, "auth_cmds"), 2);
    assert_eq!(stat(&mut c, "auth_errors"), 1);
    assert_eq!(setting(&mut c, "auth_enabled_ascii"), file.path());
    assert_eq!(setting(&mut c, "binding_protocol"), "ascii");

    // Second user (its line ends in \r\n), extra tokens after the password ignored, and
    // a plain \n after the command line.
    let mut d = s.connect();
    d.roundtrip(
        b"set a 0 0 11\nbob pw2 xyz\r\nversion\r\n",
        &[b"STORED\r\n", VERSION].concat(),
    );

    // memcached writes every reply before authentication into one response object, so
    // of replies pipelined in one batch only the last arrives.
    let mut e = s.connect();
    e.roundtrip(
        b"get a\r\nversion\r\nset a 0 0 12\r\nalice wrong!\r\n",
        b"CLIENT_ERROR authentication failure\r\n",
    );
    e.roundtrip(
        b"get a\r\nset a 0 0 12\r\nalice secret\r\nversion\r\n",
        &[b"STORED\r\n", VERSION].concat(),
    );

    // No newline within 2048 bytes, or a block too big for the read buffer: closed.
    let mut f = s.connect();
    f.send(&[b'x'; 3000]);
    f.expect_closed();
    let mut g = s.connect();
    g.send(b"set a 0 0 100000\r\n");
    let _ = g.stream.write_all(&[b'x'; 40_000]);
    g.expect_closed();
    c.roundtrip(b"version\r\n", VERSION);
}

#[test]
fn bad_auth_files() {
    let (code, _, err) = run_server_to_exit(
        &["-p", "0", "-Y", "/nonexistent/kvcache-authfile"],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        "Could not open authfile [/nonexistent/kvcache-authfile] for reading, error No such file or directory: No such file or directory\n"
    );
    let bad = TempFile::new("bad", b"alice:secret\nnocolon\n");
    let (code, _, err) =
        run_server_to_exit(&["-p", "0", "-Y", bad.path()], Duration::from_secs(10));
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!(
            "Authfile [{}] has a malformed entry. Should be 'user:password'",
            bad.path()
        )
    );
}

#[test]
fn http_request_lines_close_the_connection() {
    let s = ServerProc::start(&[]);
    for req in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"POST /x HTTP/1.0\r\n",
        b"HEAD / HTTP/1.1\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        // Replies not yet written when the line arrives are dropped, as memcached drops
        // them.
        b"version\r\nset a 0 0 1\r\na\r\nGET / HTTP/1.1\r\n",
    ] {
        let mut c = s.connect();
        c.send(req);
        c.expect_closed();
    }
    // memcached writes a get's reply before reading on: that one arrives.
    let mut c = s.connect();
    c.send(b"get nothing\r\nversion\r\nGET / HTTP/1.1\r\nversion\r\n");
    c.expect(b"END\r\n");
    c.expect_closed();
    // Not HTTP request lines: answered as usual.
    let mut c = s.connect();
    c.roundtrip(b"GET / HTTP/1.1 x\r\n", b"ERROR\r\n");
    c.roundtrip(b"get / HTTP/1.1\r\n", b"END\r\n");
    c.roundtrip(b"GET /\r\n", b"ERROR\r\n");
    c.roundtrip(b"version HTTP/1.1\r\n", VERSION);
}

#[test]
fn connections_past_the_limit_are_refused_and_the_others_go_on() {
    let s = ServerProc::start(&["-c", "1000", "-t", "4"]);
    let mut conns: Vec<Client> = (0..1200).map(|_| s.connect()).collect();
    // Connections are accepted in order: the first is served. Wait (bounded) until the
    // server has seen all of them, before writing anything: writing to a refused
    // connection could reset it before its error line is read.
    for _ in 0..500 {
        if stat(&mut conns[0], "rejected_connections") == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut served, mut refused) = (0, 0);
    let mut open = Vec::new();
    for mut c in conns {
        c.stream.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 64];
        let first = c.stream.read(&mut buf);
        c.stream.set_nonblocking(false).expect("blocking");
        match first {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                served += 1;
                open.push(c);
            }
            Ok(n) => {
                let mut got = buf[..n].to_vec();
                while !got.ends_with(b"\r\n") {
                    got.push(c.read_n(1)[0]);
                }
                assert_eq!(got, b"ERROR Too many open connections\r\n");
                c.expect_closed();
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((served, refused), (1000, 200));
    for c in &mut open {
        c.roundtrip(b"version\r\n", VERSION);
    }
    // The served ones go on working.
    for (i, c) in open.iter_mut().enumerate().step_by(37) {
        let set = format!("set k{i} 0 0 1\r\nx\r\n");
        c.roundtrip(set.as_bytes(), b"STORED\r\n");
    }
    let c = &mut open[0];
    assert_eq!(stat(c, "rejected_connections"), 200);
    assert_eq!(stat(c, "curr_connections"), 1000);
}

/// The soft and hard `RLIMIT_NOFILE` of a process, from `/proc/<pid>/limits`.
fn nofile_limits(pid: u64) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files line");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

#[test]
fn file_limit_is_raised_for_dash_c_or_start_fails() {
    let s = ServerProc::start(&["-c", "5000", "-t", "2"]);
    let mut c = s.connect();
    let pid = stat(&mut c, "pid");
    let (soft, hard) = nofile_limits(pid);
    assert!(soft >= 5000 && hard >= soft, "{soft} {hard}");
    // More than the kernel allows any process (fs.nr_open, at most 2^30): memcached's
    // message and EX_OSERR.
    let (code, _, err) =
        run_server_to_exit(&["-p", "0", "-c", "2000000000"], Duration::from_secs(10));
    assert_eq!(code, Some(71));
    assert_eq!(
        err,
        "failed to set rlimit for open files. Try starting as root or requesting smaller maxconns value.\n"
    );
}

#[test]
fn full_memory_without_evictions_answers_out_of_memory() {
    let s = ServerProc::start(&["-M", "-m", "2", "-t", "2"]);
    let mut c = s.connect();
    let value = vec![b'v'; 1000];
    let mut stored = 0;
    let mut refused = 0;
    // 2 MiB cannot hold 10,000 values of 1,000 bytes.
    for i in 0..10_000 {
        let mut req = format!("set k{i} 0 0 {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        c.send(&req);
        let line = c.read_line();
        if line == b"STORED\r\n" {
            stored += 1;
        } else {
            assert_eq!(
                String::from_utf8_lossy(&line),
                "SERVER_ERROR out of memory storing object\r\n"
            );
            refused += 1;
        }
    }
    assert!(stored > 0 && refused > 0, "{stored} {refused}");
    // Other sizes, with every class's memory taken: the same answer, never a crash.
    for size in [10usize, 100, 5000, 50_000, 500_000] {
        let mut req = format!("set other{size} 0 0 {size}\r\n").into_bytes();
        req.resize(req.len() + size, b'o');
        req.extend_from_slice(b"\r\n");
        c.send(&req);
        let line = c.read_line();
        assert!(
            line == b"STORED\r\n" || line == b"SERVER_ERROR out of memory storing object\r\n",
            "{size}: {:?}",
            String::from_utf8_lossy(&line)
        );
    }
    assert!(stat(&mut c, "store_no_memory") >= refused);
    // Stored values are intact and the server keeps serving.
    let mut get = b"get k0\r\n".to_vec();
    c.send(&get);
    let mut expect = b"VALUE k0 0 1000\r\n".to_vec();
    expect.extend_from_slice(&value);
    expect.extend_from_slice(b"\r\nEND\r\n");
    c.expect(&expect);
    get.clear();
    c.roundtrip(b"delete k0\r\n", b"DELETED\r\n");
    c.roundtrip(b"version\r\n", VERSION);
}
