//! `slabtune apply` end to end: against a stub server on loopback that answers the
//! `stats` commands with a known histogram and records every line it receives, and
//! against the real kvcache-server binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Answers `stats sizes_fine` like kvcache-server.
    Ours,
    /// Answers `stats sizes_fine` with `ERROR` and `stats sizes` like memcached.
    Memcached,
}

/// A stub memcached-protocol server: one connection at a time, every request line
/// recorded; stops when dropped (or after 60 s).
struct Stub {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stub {
    /// `sizes` are (stored size, count) in the server's own sizes, `chunks` the chunk
    /// sizes of the classes in use, `classes_reply` the answer to `slabs classes`.
    fn start(kind: Kind, sizes: &[(u64, u64)], chunks: &[u64], classes_reply: &str) -> Stub {
        let page = match kind {
            Kind::Ours => 65536,
            Kind::Memcached => 1 << 20,
        };
        Stub::start_with_page(kind, sizes, chunks, classes_reply, page)
    }

    /// As [`Stub::start`], reporting `page` as `slab_page_size` in `stats settings`.
    fn start_with_page(
        kind: Kind,
        sizes: &[(u64, u64)],
        chunks: &[u64],
        classes_reply: &str,
        page: u64,
    ) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let sizes_reply: String = sizes
            .iter()
            .map(|(s, n)| format!("STAT {s} {n}\r\n"))
            .chain(["END\r\n".to_string()])
            .collect();
        let slabs_reply: String = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "STAT {}:chunk_size {c}\r\nSTAT {}:used_chunks 1\r\n",
                    i + 1,
                    i + 1
                )
            })
            .chain(["STAT active_slabs 2\r\nEND\r\n".to_string()])
            .collect();
        let settings_reply =
            format!("STAT cas_enabled yes\r\nSTAT slab_page_size {page}\r\nEND\r\n");
        let classes_reply = classes_reply.to_string();
        let (rec, st) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
                let s = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(e) => panic!("accept: {e}"),
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut w = s.try_clone().unwrap();
                for line in BufReader::new(s).lines() {
                    let Ok(line) = line else { break };
                    rec.lock().unwrap().push(line.clone());
                    let reply = match (kind, line.as_str()) {
                        (Kind::Ours, "stats sizes_fine") => sizes_reply.as_str(),
                        (Kind::Memcached, "stats sizes") => sizes_reply.as_str(),
                        (_, "stats slabs") => slabs_reply.as_str(),
                        (_, "stats settings") => settings_reply.as_str(),
                        (_, l) if l.starts_with("slabs classes ") => classes_reply.as_str(),
                        _ => "ERROR\r\n",
                    };
                    // A reply without its line end is sent, then the connection is
                    // closed (a server going away mid-reply).
                    if w.write_all(reply.as_bytes()).is_err() || !reply.ends_with('\n') {
                        break;
                    }
                }
            }
        });
        Stub {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    fn classes_commands(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|l| l.starts_with("slabs "))
            .collect()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn slabtune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slabtune"))
        .args(args)
        .output()
        .expect("run slabtune")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// kvcache-server sizes: 1000 items of 104 bytes and 1000 of 200, held in 128- and
/// 256-byte chunks; two classes fit them exactly.
const OURS_SIZES: [(u64, u64); 2] = [(104, 1000), (200, 1000)];
const OURS_CHUNKS: [u64; 2] = [128, 256];

#[test]
fn ok_reply_sends_the_recommended_list_once() {
    let stub = Stub::start(Kind::Ours, &OURS_SIZES, &OURS_CHUNKS, "OK\r\n");
    let out = slabtune(&["apply", &stub.addr.to_string(), "--classes", "2"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert_eq!(stub.classes_commands(), vec!["slabs classes 104-200"]);
    assert!(
        stdout.contains("sending: slabs classes 104-200"),
        "{stdout}"
    );
    assert!(stdout.contains("server: OK"), "{stdout}");
    // 24 + 56 bytes per pair of items wasted now, none with the recommendation.
    assert!(
        stdout.contains("expected waste: 80000 B") && stdout.contains("-> 0 B"),
        "{stdout}"
    );
    assert!(stdout.contains("-100.0%"), "{stdout}");
    // The histogram was read first, on its own connection.
    let r = stub.received();
    assert_eq!(r[0], "stats sizes_fine");
    assert_eq!(r.last().unwrap(), "slabs classes 104-200");
    // The JSON form carries the reply.
    let out = slabtune(&["apply", &stub.addr.to_string(), "--classes", "2", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reply"], "OK");
    assert_eq!(stub.classes_commands().len(), 2);
}

#[test]
fn the_list_sent_is_what_live_recommends() {
    // Without --classes, and with a spread of sizes, `apply` sends the list `live`
    // recommends from the same histogram with the same options.
    let sizes: Vec<(u64, u64)> = (0..60)
        .map(|i| (64 + 24 * i, 100 + (i * 37) % 500))
        .collect();
    let stub = Stub::start(Kind::Ours, &sizes, &[1024], "OK\r\n");
    let addr = stub.addr.to_string();
    for extra in [&[][..], &["--classes", "5"][..], &["--min-gain", "2"][..]] {
        let mut args = vec!["live", addr.as_str(), "--target", "ours", "--json"];
        args.extend_from_slice(extra);
        let live = slabtune(&args);
        assert!(live.status.success(), "{}", text(&live.stderr));
        let v: Value = serde_json::from_slice(&live.stdout).unwrap();
        let list: Vec<String> = v["targets"][0]["slab_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap().to_string())
            .collect();
        assert!(!list.is_empty());
        let before = stub.classes_commands().len();
        let mut args = vec!["apply", addr.as_str()];
        args.extend_from_slice(extra);
        let out = slabtune(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let sent = stub.classes_commands();
        assert_eq!(sent.len(), before + 1);
        assert_eq!(
            sent.last().unwrap(),
            &format!("slabs classes {}", list.join("-")),
            "{extra:?}"
        );
    }
}

#[test]
fn refused_list_fails_with_the_reason() {
    let stub = Stub::start(
        Kind::Ours,
        &OURS_SIZES,
        &OURS_CHUNKS,
        "CLIENT_ERROR bad class list: too many classes\r\n",
    );
    let out = slabtune(&["apply", &stub.addr.to_string(), "--classes", "2"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("refused the list: bad class list: too many classes"),
        "{err}"
    );
    assert!(text(&out.stdout).contains("server: CLIENT_ERROR bad class list"));
    assert_eq!(stub.classes_commands().len(), 1);
}

#[test]
fn unknown_command_fails_and_prints_the_restart_flags() {
    let stub = Stub::start(Kind::Ours, &OURS_SIZES, &OURS_CHUNKS, "ERROR\r\n");
    let out = slabtune(&["apply", &stub.addr.to_string(), "--classes", "2"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("does not know `slabs classes`"), "{err}");
    assert!(
        err.contains("kvcache-server -o slab_sizes=104-200"),
        "{err}"
    );
}

#[test]
fn other_replies_and_a_closed_connection_fail() {
    let stub = Stub::start(
        Kind::Ours,
        &OURS_SIZES,
        &OURS_CHUNKS,
        "SERVER_ERROR busy\r\n",
    );
    let out = slabtune(&["apply", &stub.addr.to_string(), "--classes", "2"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("SERVER_ERROR busy"));
    // A reply line without its end (the server went away mid-reply).
    let stub = Stub::start(Kind::Ours, &OURS_SIZES, &OURS_CHUNKS, "O");
    let out = slabtune(&["apply", &stub.addr.to_string(), "--classes", "2"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("connection closed before a full reply line"),
        "{err}"
    );
    assert_eq!(stub.classes_commands().len(), 1);
}

#[test]
fn dry_run_sends_nothing() {
    let stub = Stub::start(Kind::Ours, &OURS_SIZES, &OURS_CHUNKS, "OK\r\n");
    let out = slabtune(&[
        "apply",
        &stub.addr.to_string(),
        "--classes",
        "2",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("dry run: not sending `slabs classes 104-200`"),
        "{stdout}"
    );
    assert!(stdout.contains("expected waste"), "{stdout}");
    assert!(stub.classes_commands().is_empty(), "{:?}", stub.received());
    // The JSON form carries the command and the waste change.
    let out = slabtune(&[
        "apply",
        &stub.addr.to_string(),
        "--classes",
        "2",
        "--dry-run",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["command"], "slabs classes 104-200");
    assert_eq!(v["waste_change"]["before"], 80000);
    assert_eq!(v["waste_change"]["after"], 0);
    assert_eq!(v["reply"], Value::Null);
    assert_eq!(
        v["report"]["targets"][0]["slab_sizes"],
        serde_json::json!([104, 200])
    );
    assert!(stub.classes_commands().is_empty());
}

#[test]
fn memcached_is_not_sent_anything_and_gets_restart_flags() {
    // memcached's own sizes (32-byte buckets) of the same items: 48 + 8 bytes more each.
    let stub = Stub::start(
        Kind::Memcached,
        &[(160, 1000), (256, 1000)],
        &[192, 304],
        "OK\r\n",
    );
    let out = slabtune(&["apply", &stub.addr.to_string(), "--classes", "2"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("is memcached, which cannot change its slab classes while running"),
        "{err}"
    );
    assert!(err.contains("memcached -o slab_sizes=153-249"), "{err}");
    assert!(stub.classes_commands().is_empty(), "{:?}", stub.received());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("== memcached"), "{stdout}");
}

#[test]
fn slab_size_comes_from_the_server_unless_given() {
    // With 16 KiB slabs the largest chunk is 8 KiB: a 10000-byte item is chained and
    // not counted, so one class is enough; with 64 KiB slabs it gets its own class.
    let sizes = [(104, 1000), (10_000, 10)];
    let stub = Stub::start_with_page(Kind::Ours, &sizes, &[128], "OK\r\n", 16384);
    let addr = stub.addr.to_string();
    let out = slabtune(&["apply", &addr, "--classes", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = slabtune(&["apply", &addr, "--classes", "2", "--kv-slab", "65536"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        stub.classes_commands(),
        vec!["slabs classes 104", "slabs classes 104-10000"]
    );
}

#[test]
fn an_empty_server_is_not_sent_anything() {
    let stub = Stub::start(Kind::Ours, &[], &[], "OK\r\n");
    let out = slabtune(&["apply", &stub.addr.to_string()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("nothing to recommend from"), "{err}");
    assert!(stub.classes_commands().is_empty());
}

#[test]
fn refuses_a_list_too_long_for_one_line() {
    let sizes: Vec<(u64, u64)> = (0..500).map(|i| (16_000 + 8 * i, 10)).collect();
    let stub = Stub::start(Kind::Ours, &sizes, &[32768], "OK\r\n");
    let out = slabtune(&["apply", &stub.addr.to_string(), "--classes", "500"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--classes"),
        "{}",
        text(&out.stderr)
    );
    assert!(stub.classes_commands().is_empty());
}

// ---- the real server ----

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `$KVCACHE_SERVER_BIN`, else the kvcache-server built next to slabtune.
fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KVCACHE_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_slabtune")).with_file_name("kvcache-server");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --release -p kvcache-server), or set \
         KVCACHE_SERVER_BIN",
        bin.display()
    );
    bin
}

fn start_server() -> (Proc, SocketAddr) {
    let mut child = Command::new(server_bin())
        .args(["-u", "root"])
        .args([
            "-l",
            "127.0.0.1",
            "-p",
            "0",
            "-U",
            "0",
            "-t",
            "1",
            "-m",
            "64",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kvcache-server");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let p = Proc(child);
    let mut line = String::new();
    // The server prints its address on its first stderr line; a server that does not is
    // killed by `p`'s drop when the read fails.
    err.read_line(&mut line).expect("server stderr");
    let addr = line
        .trim()
        .strip_prefix("kvcache-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = err.read_to_end(&mut sink);
    });
    (p, addr)
}

/// Value of item `i`: its length is `len(i)`, its bytes depend on `i`.
fn value(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect()
}

fn len(i: usize) -> usize {
    // Three clusters of five sizes each.
    [70, 150, 600][i % 3] + i % 5
}

fn roundtrip(s: &mut BufReader<TcpStream>, req: &[u8], until: &[u8]) -> Vec<u8> {
    s.get_mut().write_all(req).unwrap();
    let mut got = Vec::new();
    while !got.ends_with(until) {
        let mut line = Vec::new();
        assert!(s.read_until(b'\n', &mut line).unwrap() > 0, "server closed");
        got.extend_from_slice(&line);
    }
    got
}

fn store_all(s: &mut BufReader<TcpStream>, n: usize) {
    for i in 0..n {
        let v = value(i, len(i));
        let mut req = format!("set item:{i:05} 0 0 {}\r\n", v.len()).into_bytes();
        req.extend_from_slice(&v);
        req.extend_from_slice(b"\r\n");
        assert_eq!(roundtrip(s, &req, b"\r\n"), b"STORED\r\n");
    }
}

fn check_all(s: &mut BufReader<TcpStream>, n: usize) {
    for i in 0..n {
        let v = value(i, len(i));
        let got = roundtrip(s, format!("get item:{i:05}\r\n").as_bytes(), b"END\r\n");
        let mut want = format!("VALUE item:{i:05} 0 {}\r\n", v.len()).into_bytes();
        want.extend_from_slice(&v);
        want.extend_from_slice(b"\r\nEND\r\n");
        assert_eq!(got, want, "item {i}");
    }
}

/// Chunk sizes of the classes whose `used_chunks` is not zero (`stats slabs`).
fn chunks_holding_items(addr: &str) -> Vec<u64> {
    let mut st = slabtune::live::StatsClient::connect(addr).unwrap();
    let stats = st.stats("stats slabs").unwrap().unwrap();
    let get = |id: &str, field: &str| {
        stats
            .iter()
            .find(|(k, _)| *k == format!("{id}:{field}"))
            .map(|(_, v)| v.parse::<u64>().unwrap())
    };
    let mut out: Vec<u64> = stats
        .iter()
        .filter_map(|(k, _)| k.strip_suffix(":chunk_size"))
        .filter(|id| get(id, "used_chunks").unwrap_or(0) > 0)
        .map(|id| get(id, "chunk_size").unwrap())
        .collect();
    out.sort_unstable();
    out
}

#[test]
fn real_server_is_reclassed_live() {
    let (_p, addr) = start_server();
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut c = BufReader::new(c);
    let n = 1500;
    store_all(&mut c, n);
    let out = slabtune(&["apply", &addr.to_string(), "--classes", "6"]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        stdout.contains("sending: slabs classes "),
        "{stdout}\n{stderr}"
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("\nserver: OK\n"), "{stdout}");
    let sent = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sending: slabs classes "))
        .unwrap();
    let mut allowed: Vec<u64> = sent.split('-').map(|x| x.parse().unwrap()).collect();
    allowed.push(32768);
    // Every item is still there, and after storing them again they sit in the new
    // classes only.
    check_all(&mut c, n);
    store_all(&mut c, n);
    check_all(&mut c, n);
    let used = chunks_holding_items(&addr.to_string());
    assert!(!used.is_empty());
    assert!(
        used.iter().all(|u| allowed.contains(u)),
        "classes in use {used:?}, sent {allowed:?}"
    );
    // Applying again to the same data recommends the same list, now also in use.
    let again = slabtune(&["apply", &addr.to_string(), "--classes", "6", "--dry-run"]);
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains(&format!("not sending `slabs classes {sent}`")),
        "{}",
        text(&again.stdout)
    );
}
