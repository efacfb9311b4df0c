//! The server under load and at its limits: thousands of concurrent connections, the
//! `-c` connection limit, the `-m` memory limit held under a random workload over every
//! size class, and a concurrent consistency checker.
//!
//! Run times come from the environment so that a user runs the full durations and CI may
//! shorten them:
//!
//! | variable                   | default (full run) | what it bounds                               |
//! |----------------------------|--------------------|----------------------------------------------|
//! | `KVCACHE_LOAD_CONNS`       | 2000               | concurrent connections of the load test      |
//! | `KVCACHE_LOAD_SECS`        | 30                 | the 2,000-connection set/get run             |
//! | `KVCACHE_MEMLIMIT_SECS`    | 60                 | the `-m 64` random workload                  |
//! | `KVCACHE_CHECKER_SECS`     | 20                 | the versioned-value checker (also op-bounded) |
//!
//! `scripts/test-all.sh` runs them with these defaults. The connection tests raise this
//! process's soft `RLIMIT_NOFILE` (up to its hard limit) before starting the server,
//! which inherits it. Every loop is also bounded in
//! count, every read has a timeout, and a stall of [`READ_TIMEOUT`] fails the test.
//!
//! # Memory overhead beyond `-m`
//!
//! `-m 64` bounds the slab memory holding items (64 MiB of pages). The process also holds
//! memory `-m` does not count: the executable and its libraries, the hash index (grows
//! with the item count), each worker's stack, connection read/write buffers, the
//! allocator's per-class metadata. [`FIXED_OVERHEAD_MIB`] is the allowance the memory test
//! grants for these; the test prints what it measured (idle RSS at start, peak `VmHWM`
//! and the peak minus 64 MiB), and the README quotes the figure.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::{
    env_secs, raise_nofile, rss_kib, stat_u64, Client, ServerProc, READ_TIMEOUT,
};
use mio::{Events, Interest, Poll, Token};

/// A small deterministic generator (xorshift64*), so that a failure can be replayed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// 2,000 concurrent connections
// ---------------------------------------------------------------------------------------

/// Keys each load connection owns.
const KEYS_PER_CONN: usize = 4;
/// Upper bound on requests per connection, whatever the duration.
const MAX_OPS_PER_CONN: u64 = 20_000;

/// One multiplexed client connection: it owns its keys, remembers the last value it
/// stored under each, and compares every byte the server sends with the reply it expects.
#[derive(Debug)]
struct LoadConn {
    id: usize,
    stream: mio::net::TcpStream,
    connected: bool,
    out: Vec<u8>,
    out_pos: usize,
    expect: Vec<u8>,
    got: usize,
    values: [Option<(u32, Vec<u8>)>; KEYS_PER_CONN],
    seq: u64,
    ops: u64,
    done: bool,
    rng: Rng,
}

impl LoadConn {
    fn key(&self, k: usize) -> String {
        format!("load:c{}:k{k}", self.id)
    }

    fn expected_get(&self, k: usize) -> Vec<u8> {
        match &self.values[k] {
            Some((flags, v)) => {
                let mut e = format!("VALUE {} {flags} {}\r\n", self.key(k), v.len()).into_bytes();
                e.extend_from_slice(v);
                e.extend_from_slice(b"\r\n");
                e
            }
            None => Vec::new(),
        }
    }

    /// Queues the next batch of pipelined requests and the exact bytes they must produce.
    fn next_request(&mut self) {
        self.out.clear();
        self.out_pos = 0;
        self.expect.clear();
        self.got = 0;
        let commands = 1 + self.rng.below(3);
        for _ in 0..commands {
            let k = self.rng.below(KEYS_PER_CONN as u64) as usize;
            match self.rng.below(10) {
                0..=4 => {
                    self.seq += 1;
                    let flags = (self.seq % 65_536) as u32;
                    let fill = self.rng.below(1500) as usize;
                    let mut v = format!("c{}-k{k}-s{}-", self.id, self.seq).into_bytes();
                    v.extend((0..fill).map(|i| b'a' + ((i + self.seq as usize) % 26) as u8));
                    self.out.extend_from_slice(
                        format!("set {} {flags} 0 {}\r\n", self.key(k), v.len()).as_bytes(),
                    );
                    self.out.extend_from_slice(&v);
                    self.out.extend_from_slice(b"\r\n");
                    self.expect.extend_from_slice(b"STORED\r\n");
                    self.values[k] = Some((flags, v));
                }
                5..=8 => {
                    self.out
                        .extend_from_slice(format!("get {}\r\n", self.key(k)).as_bytes());
                    let e = self.expected_get(k);
                    self.expect.extend_from_slice(&e);
                    self.expect.extend_from_slice(b"END\r\n");
                }
                _ => {
                    self.out.extend_from_slice(b"get");
                    for k in 0..KEYS_PER_CONN {
                        self.out
                            .extend_from_slice(format!(" {}", self.key(k)).as_bytes());
                        let e = self.expected_get(k);
                        self.expect.extend_from_slice(&e);
                    }
                    self.out.extend_from_slice(b"\r\n");
                    self.expect.extend_from_slice(b"END\r\n");
                }
            }
        }
    }

    /// Writes what it can; false once the write side would block.
    fn flush(&mut self) {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => panic!("conn {}: write returned 0", self.id),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("conn {}: write failed: {e}", self.id),
            }
        }
    }

    /// Reads and checks what arrived; returns true when a whole batch completed.
    fn read_and_check(&mut self, buf: &mut [u8]) -> bool {
        loop {
            match self.stream.read(buf) {
                Ok(0) => panic!(
                    "conn {}: server closed the connection, expecting {:?}",
                    self.id,
                    String::from_utf8_lossy(&self.expect[self.got..])
                ),
                Ok(n) => {
                    let want = &self.expect[self.got..];
                    assert!(
                        n <= want.len() && buf[..n] == want[..n],
                        "conn {}: reply differs\n  request:  {:?}\n  expected: {:?}\n  got:      {:?}",
                        self.id,
                        String::from_utf8_lossy(&self.out),
                        String::from_utf8_lossy(want),
                        String::from_utf8_lossy(&buf[..n])
                    );
                    self.got += n;
                    if self.got == self.expect.len() {
                        return true;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("conn {}: read failed: {e}", self.id),
            }
        }
    }
}

/// Drives `conns` connections (ids from `first_id`) on one poll loop until `deadline`,
/// then lets each finish its batch. Returns the number of batches completed.
fn drive_connections(
    addr: SocketAddr,
    first_id: usize,
    count: usize,
    deadline: Instant,
    all_connected: Arc<AtomicU64>,
) -> u64 {
    let mut poll = Poll::new().expect("poll");
    let mut conns: Vec<LoadConn> = (0..count)
        .map(|i| {
            let id = first_id + i;
            let mut stream = mio::net::TcpStream::connect(addr).expect("connect");
            poll.registry()
                .register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .expect("register");
            LoadConn {
                id,
                stream,
                connected: false,
                out: Vec::new(),
                out_pos: 0,
                expect: Vec::new(),
                got: 0,
                values: Default::default(),
                seq: 0,
                ops: 0,
                done: false,
                rng: Rng::new(id as u64 + 1),
            }
        })
        .collect();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut open = count;
    let mut connected = 0;
    let mut total_ops = 0;
    let mut last_progress = Instant::now();
    while open > 0 {
        poll.poll(&mut events, Some(Duration::from_millis(200)))
            .expect("poll");
        if events.is_empty() {
            assert!(
                last_progress.elapsed() < READ_TIMEOUT,
                "no progress for {READ_TIMEOUT:?}: {open} connections still waiting \
                 ({connected} of {count} connected)"
            );
            continue;
        }
        last_progress = Instant::now();
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if c.done {
                continue;
            }
            if !c.connected {
                if let Some(e) = c.stream.take_error().expect("take_error") {
                    panic!("conn {}: connect failed: {e}", c.id);
                }
                match c.stream.peer_addr() {
                    Ok(_) => {
                        c.connected = true;
                        connected += 1;
                        if connected == count {
                            all_connected.fetch_add(1, Ordering::SeqCst);
                        }
                        c.stream.set_nodelay(true).expect("nodelay");
                        c.next_request();
                    }
                    Err(e) if e.kind() == ErrorKind::NotConnected => continue,
                    Err(e) => panic!("conn {}: connect failed: {e}", c.id),
                }
            }
            if ev.is_writable() || c.out_pos == 0 {
                c.flush();
            }
            if (ev.is_readable() || ev.is_read_closed()) && c.read_and_check(&mut buf) {
                c.ops += 1;
                total_ops += 1;
                if Instant::now() >= deadline || c.ops >= MAX_OPS_PER_CONN {
                    c.done = true;
                    open -= 1;
                    poll.registry()
                        .deregister(&mut c.stream)
                        .expect("deregister");
                } else {
                    c.next_request();
                    c.flush();
                }
            }
        }
    }
    total_ops
}

/// `KVCACHE_LOAD_CONNS` (2,000) connections, multiplexed on two client threads, do
/// pipelined sets, gets and multi-gets of their own keys for `KVCACHE_LOAD_SECS` (30 s);
/// every reply must be exactly right. A monitor connection meanwhile checks that the
/// server really holds them all at once (`curr_connections`).
#[test]
fn two_thousand_connections_set_and_get() {
    let conns = env_usize("KVCACHE_LOAD_CONNS", 2000);
    let secs = env_secs("KVCACHE_LOAD_SECS", 30);
    let limit = raise_nofile(conns as u64 * 2 + 256);
    assert!(
        limit >= conns as u64 + 64,
        "RLIMIT_NOFILE hard limit {limit} is too low for {conns} connections"
    );
    let max_conns = (conns + 100).to_string();
    let s = ServerProc::start(&["-t", "2", "-m", "256", "-c", &max_conns]);
    let mut monitor = s.connect();
    let addr = s.addr;
    let deadline = Instant::now() + secs;
    let connected = Arc::new(AtomicU64::new(0));
    let threads = 2;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let per = conns / threads + usize::from(t < conns % threads);
            let first = t * (conns / threads) + t.min(conns % threads);
            let connected = Arc::clone(&connected);
            std::thread::spawn(move || drive_connections(addr, first, per, deadline, connected))
        })
        .collect();
    // Sample curr_connections while the clients run: once every client thread has all
    // its connections up, the server must count them all (plus this monitor).
    let mut max_seen = 0;
    let mut samples_all_up = 0;
    let stop = deadline + READ_TIMEOUT;
    while !handles.iter().all(|h| h.is_finished()) && Instant::now() < stop {
        let all_up = connected.load(Ordering::SeqCst) == threads as u64;
        let curr = stat_u64(&monitor.stats(""), "curr_connections");
        max_seen = max_seen.max(curr);
        if all_up && Instant::now() + Duration::from_secs(1) < deadline {
            samples_all_up += 1;
            assert!(
                curr > conns as u64,
                "server counts {curr} connections while {conns} clients and a monitor are open"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let ops: u64 = handles
        .into_iter()
        .map(|h| h.join().expect("client thread"))
        .sum();
    let st = monitor.stats("");
    eprintln!(
        "{conns} connections for {secs:?}: {ops} request batches checked, \
         peak curr_connections {max_seen}, cmd_get {}, cmd_set {}",
        stat_u64(&st, "cmd_get"),
        stat_u64(&st, "cmd_set")
    );
    assert!(
        max_seen > conns as u64,
        "never saw all connections open at once"
    );
    assert!(
        samples_all_up > 0 || secs < Duration::from_secs(2),
        "no sample with every connection up"
    );
    assert!(ops >= conns as u64, "every connection completed a request");
}

/// With `-c 1000`, connections past the limit get `ERROR Too many open connections` and
/// are closed, while the 1,000 admitted ones go on working; closing some admits new ones.
#[test]
fn connection_limit_rejects_the_excess_and_serves_the_rest() {
    raise_nofile(4096);
    let limit = 1000;
    let s = ServerProc::start(&["-t", "2", "-c", &limit.to_string()]);
    // The monitor is one of the admitted connections.
    let mut monitor = s.connect();
    monitor.roundtrip(b"version\r\n", b"VERSION 1.6.18-kvcache\r\n");
    let mut admitted: Vec<Client> = (1..limit).map(|_| s.connect()).collect();
    // A round trip on each proves it was admitted (accepts are asynchronous).
    for (i, c) in admitted.iter_mut().enumerate() {
        let v = format!("v{i}");
        c.roundtrip(
            format!("set lim:{i} 0 0 {}\r\n{v}\r\n", v.len()).as_bytes(),
            b"STORED\r\n",
        );
    }
    assert_eq!(stat_u64(&monitor.stats(""), "curr_connections"), limit);
    let excess = 25;
    for _ in 0..excess {
        let mut c = s.connect();
        c.expect(b"ERROR Too many open connections\r\n");
        c.expect_closed();
    }
    let st = monitor.stats("");
    assert_eq!(stat_u64(&st, "rejected_connections"), excess);
    assert_eq!(stat_u64(&st, "curr_connections"), limit);
    // The admitted connections still work, each reading its own value back.
    for (i, c) in admitted.iter_mut().enumerate() {
        let v = format!("v{i}");
        c.roundtrip(
            format!("get lim:{i}\r\n").as_bytes(),
            format!("VALUE lim:{i} 0 {}\r\n{v}\r\nEND\r\n", v.len()).as_bytes(),
        );
    }
    // Closing ten makes room for ten new ones once the server has seen the closes.
    admitted.truncate(limit as usize - 1 - 10);
    let until = Instant::now() + READ_TIMEOUT;
    while stat_u64(&monitor.stats(""), "curr_connections") != limit - 10 {
        assert!(
            Instant::now() < until,
            "closed connections were not released"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 0..10 {
        let mut c = s.connect();
        c.roundtrip(
            format!("get lim:{i}\r\n").as_bytes(),
            format!(
                "VALUE lim:{i} 0 {}\r\nv{i}\r\nEND\r\n",
                format!("v{i}").len()
            )
            .as_bytes(),
        );
        admitted.push(c);
    }
    let mut extra = s.connect();
    extra.expect(b"ERROR Too many open connections\r\n");
    extra.expect_closed();
}

// ---------------------------------------------------------------------------------------
// The memory limit
// ---------------------------------------------------------------------------------------

/// What the process may hold beyond `-m` (see the module docs). Measured with `-t 2`:
/// 3.0 MiB idle before any item, a peak `VmHWM` of 64 MiB + 8.2 to 8.4 MiB under the full
/// workload (executable and libraries, index, two worker stacks, the four clients'
/// buffers for values up to 1 MB, allocator metadata); the allowance is twice that.
const FIXED_OVERHEAD_MIB: u64 = 16;

/// A value size drawn log-uniformly from 1 B to 1,000,000 B so that every slab class
/// gets traffic.
fn random_size(rng: &mut Rng) -> usize {
    let exp = rng.below(20_000) as f64 / 20_000.0 * (1_000_000f64).ln();
    (exp.exp() as usize).clamp(1, 1_000_000)
}

/// Under `-m 64`, four clients set (some with a short expiry), get and delete values of
/// every size class for `KVCACHE_MEMLIMIT_SECS` (60 s) while the test samples the server's
/// RSS: it never exceeds 64 MiB plus [`FIXED_OVERHEAD_MIB`], the server evicts
/// (`evictions` > 0), no set within `-I` fails other than by running out of memory (see
/// [`no_out_of_memory_replies_while_evicting`]), and every hit returns the value last
/// stored under the key by that client.
#[test]
fn memory_limit_holds_under_a_random_workload() {
    let secs = env_secs("KVCACHE_MEMLIMIT_SECS", 60);
    let (ops, oom, evictions) = memory_workload(secs, true);
    eprintln!("{ops} requests, {oom} sets answered out of memory, {evictions} evictions");
    assert!(evictions > 0, "a workload far above -m 64 must evict");
}

/// The same workload (for at most 15 s) must evict rather than fail: not one set answered
/// `SERVER_ERROR out of memory storing object`. Memory fills within the first second.
/// (memcached 1.6.18 answers up to one set in 1,400 so under this load.)
#[test]
fn no_out_of_memory_replies_while_evicting() {
    let secs = env_secs("KVCACHE_MEMLIMIT_SECS", 60).min(Duration::from_secs(15));
    let (ops, oom, evictions) = memory_workload(secs, false);
    eprintln!("{ops} requests, {oom} sets answered out of memory, {evictions} evictions");
    assert!(evictions > 0, "a workload far above -m 64 must evict");
    assert_eq!(oom, 0, "{oom} of about {} sets failed", ops / 2);
}

/// Runs the memory workload for `secs` against a fresh `-m 64` server, sampling its RSS
/// every 100 ms (and failing the test if the peak exceeds the allowance when
/// `check_rss`). Returns (requests, out-of-memory replies, evictions).
fn memory_workload(secs: Duration, check_rss: bool) -> (u64, u64, u64) {
    let s = ServerProc::start(&["-t", "2", "-m", "64"]);
    let pid = s.pid();
    let (idle_rss, _) = rss_kib(pid).expect("server status");
    let deadline = Instant::now() + secs;
    let stop = Arc::new(AtomicBool::new(false));
    let addr = s.addr;
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || memory_client(addr, t, deadline, &stop))
        })
        .collect();
    let limit_kib = (64 + FIXED_OVERHEAD_MIB) * 1024;
    let mut samples = 0u64;
    while !handles.iter().all(|h| h.is_finished()) {
        let (rss, hwm) = rss_kib(pid).expect("server status");
        samples += 1;
        if check_rss && hwm > limit_kib {
            stop.store(true, Ordering::SeqCst);
            panic!(
                "server peak RSS {hwm} KiB exceeds 64 MiB + {FIXED_OVERHEAD_MIB} MiB = \
                 {limit_kib} KiB (RSS now {rss} KiB, idle at start {idle_rss} KiB)"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (mut ops, mut oom) = (0, 0);
    for h in handles {
        let (o, m) = h.join().expect("memory client");
        ops += o;
        oom += m;
    }
    let (rss, hwm) = rss_kib(pid).expect("server status");
    let st = s.connect().stats("");
    let evictions = stat_u64(&st, "evictions");
    eprintln!(
        "-m 64 for {secs:?}: {samples} RSS samples; idle RSS {idle_rss} KiB, peak VmHWM \
         {hwm} KiB (64 MiB + {} KiB), RSS at end {rss} KiB; curr_items {}, bytes {}, \
         mapped_bytes {}",
        hwm as i64 - 64 * 1024,
        stat_u64(&st, "curr_items"),
        stat_u64(&st, "bytes"),
        stat_u64(&st, "mapped_bytes"),
    );
    if check_rss {
        assert!(hwm <= limit_kib, "peak RSS {hwm} KiB > {limit_kib} KiB");
        assert!(stat_u64(&st, "mapped_bytes") <= 64 << 20);
    }
    (ops, oom, evictions)
}

/// The runs of equal bytes in `data` (offset, length, byte), at most 12 of them: what a
/// corrupt value holds instead of its fill.
fn describe_runs(data: &[u8]) -> String {
    let mut runs: Vec<String> = Vec::new();
    let mut start = 0;
    for i in 1..=data.len() {
        if i == data.len() || data[i] != data[start] {
            if runs.len() < 12 {
                runs.push(format!("{start}+{}:{:?}", i - start, data[start] as char));
            }
            start = i;
        }
    }
    runs.join(" ")
}

/// One client of the memory test: returns the number of requests it made and how many
/// sets were answered `SERVER_ERROR out of memory storing object`. Panics on any other
/// error reply or a hit that is not the last value it stored under the key.
fn memory_client(addr: SocketAddr, t: u64, deadline: Instant, stop: &AtomicBool) -> (u64, u64) {
    let mut c = Client::connect(addr);
    let mut rng = Rng::new(1000 + t);
    let mut last: HashMap<u64, (u64, usize)> = HashMap::new();
    let mut ops = 0;
    let mut seq = 0u64;
    let mut out_of_memory = 0;
    while Instant::now() < deadline && !stop.load(Ordering::SeqCst) && ops < 2_000_000 {
        ops += 1;
        let k = rng.below(400);
        let key = format!("mem:{t}:{k}");
        match rng.below(10) {
            0..=4 => {
                seq += 1;
                let size = random_size(&mut rng);
                // One in five sets expires after a second.
                let exptime = if rng.below(5) == 0 { 1 } else { 0 };
                let fill = b'a' + (seq % 26) as u8;
                let mut req = format!("set {key} {seq} {exptime} {size}\r\n").into_bytes();
                req.resize(req.len() + size, fill);
                req.extend_from_slice(b"\r\n");
                c.send(&req);
                let line = c.read_line();
                if line == b"SERVER_ERROR out of memory storing object\r\n" {
                    // The old value is gone (memcached unlinks it too).
                    out_of_memory += 1;
                    last.remove(&k);
                    continue;
                }
                assert_eq!(
                    String::from_utf8_lossy(&line),
                    "STORED\r\n",
                    "set of {size} bytes under -m 64"
                );
                last.insert(k, (seq, size));
            }
            5..=8 => {
                c.send(format!("get {key}\r\n").as_bytes());
                let line = c.read_line();
                if line == b"END\r\n" {
                    // A miss: evicted, expired or deleted.
                    continue;
                }
                let head = String::from_utf8_lossy(&line).into_owned();
                let parts: Vec<&str> = head.trim_end().split(' ').collect();
                assert_eq!(parts.len(), 4, "bad VALUE line {head:?}");
                assert_eq!(parts[1], key);
                let flags: u64 = parts[2].parse().expect("flags");
                let len: usize = parts[3].parse().expect("length");
                let (want_seq, want_len) = last.get(&k).copied().expect("hit on a key never set");
                assert_eq!(
                    (flags, len),
                    (want_seq, want_len),
                    "hit is not the last value stored under {key}"
                );
                let data = c.read_n(len + 2);
                let fill = b'a' + (flags % 26) as u8;
                assert!(
                    data[..len].iter().all(|&b| b == fill) && data.ends_with(b"\r\n"),
                    "value of {key} ({len} bytes of {:?}) is corrupt: {}",
                    fill as char,
                    describe_runs(&data)
                );
                c.expect(b"END\r\n");
            }
            _ => {
                c.send(format!("delete {key}\r\n").as_bytes());
                let line = c.read_line();
                assert!(
                    line == b"DELETED\r\n" || line == b"NOT_FOUND\r\n",
                    "delete answered {:?}",
                    String::from_utf8_lossy(&line)
                );
                last.remove(&k);
            }
        }
    }
    (ops, out_of_memory)
}

// ---------------------------------------------------------------------------------------
// Concurrent checker
// ---------------------------------------------------------------------------------------

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A versioned value: `key|writer|seq|padding|checksum`, the checksum (FNV-1a, hex)
/// covering everything before it.
fn versioned_value(key: &str, writer: usize, seq: u64, pad: usize) -> Vec<u8> {
    let mut v = format!("{key}|{writer}|{seq}|").into_bytes();
    v.extend((0..pad).map(|i| b'A' + ((i as u64 + seq * 7 + writer as u64) % 26) as u8));
    v.push(b'|');
    let sum = fnv1a(&v);
    v.extend_from_slice(format!("{sum:016x}").as_bytes());
    v
}

/// Checks one value read under `key`, returning (writer, seq). Panics on a torn value
/// (bad checksum) or another key's value.
fn parse_versioned(key: &str, flags: u32, v: &[u8]) -> (usize, u64) {
    assert!(
        v.len() > 17,
        "value of {key} too short: {:?}",
        String::from_utf8_lossy(v)
    );
    let (body, sum) = v.split_at(v.len() - 16);
    let want = format!("{:016x}", fnv1a(body));
    assert_eq!(
        std::str::from_utf8(sum).unwrap_or("<not utf-8>"),
        want,
        "torn value under {key}: {:?}",
        String::from_utf8_lossy(v)
    );
    let text = std::str::from_utf8(body).expect("checksummed value is ASCII");
    let mut parts = text.split('|');
    let k = parts.next().unwrap_or("");
    assert_eq!(k, key, "a get of {key} returned the value of {k}");
    let writer: usize = parts.next().and_then(|w| w.parse().ok()).expect("writer");
    let seq: u64 = parts.next().and_then(|s| s.parse().ok()).expect("seq");
    assert_eq!(
        flags as usize, writer,
        "flags and data of {key} from different writes"
    );
    (writer, seq)
}

/// Several clients write versioned values to a shared set of keys and read them back
/// (single and multi-key gets). No value may be torn (checksum), belong to another key,
/// or be older than a value the same client already saw for that key: a client that has
/// seen writer W's write number S on a key (or made it itself) must never again read one
/// of W's earlier writes on that key, since W issued them one after another.
#[test]
fn concurrent_versioned_values_are_whole_and_monotonic() {
    let secs = env_secs("KVCACHE_CHECKER_SECS", 20);
    let s = ServerProc::start(&["-t", "4", "-m", "64"]);
    let clients = 6;
    let keys: Vec<String> = (0..12).map(|k| format!("chk:{k}")).collect();
    let deadline = Instant::now() + secs;
    let handles: Vec<_> = (0..clients)
        .map(|w| {
            let mut c = s.connect();
            let keys = keys.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::new(77 + w as u64);
                // (key, writer) -> highest seq this client has seen or written.
                let mut seen: HashMap<(usize, usize), u64> = HashMap::new();
                let mut seq = 0u64;
                let mut reads = 0u64;
                let mut ops = 0u64;
                let observe = |k: usize, flags: u32, v: &[u8], seen: &mut HashMap<_, u64>| {
                    let (writer, s) = parse_versioned(&keys[k], flags, v);
                    let e = seen.entry((k, writer)).or_insert(0);
                    assert!(
                        s >= *e,
                        "client {w} read {} write {s} of writer {writer} after having seen \
                         write {}",
                        keys[k],
                        *e
                    );
                    *e = s;
                };
                while Instant::now() < deadline && ops < 200_000 {
                    ops += 1;
                    let k = rng.below(keys.len() as u64) as usize;
                    if rng.below(3) == 0 {
                        seq += 1;
                        let v = versioned_value(&keys[k], w, seq, rng.below(3000) as usize);
                        let mut req = format!("set {} {w} 0 {}\r\n", keys[k], v.len()).into_bytes();
                        req.extend_from_slice(&v);
                        req.extend_from_slice(b"\r\n");
                        c.roundtrip(&req, b"STORED\r\n");
                        seen.insert((k, w), seq);
                    } else {
                        let multi = rng.below(4) == 0;
                        let ks: Vec<usize> = if multi {
                            (0..3)
                                .map(|_| rng.below(keys.len() as u64) as usize)
                                .collect()
                        } else {
                            vec![k]
                        };
                        let names: Vec<&str> = ks.iter().map(|&k| keys[k].as_str()).collect();
                        c.send(format!("get {}\r\n", names.join(" ")).as_bytes());
                        let mut next = 0;
                        loop {
                            let line = c.read_line();
                            if line == b"END\r\n" {
                                break;
                            }
                            let head = String::from_utf8_lossy(&line).into_owned();
                            let p: Vec<&str> = head.trim_end().split(' ').collect();
                            assert_eq!((p.len(), p[0]), (4, "VALUE"), "bad line {head:?}");
                            // Replies come in request order; every key was set before
                            // it can be read, so a miss is only a key nobody wrote yet.
                            let pos = ks[next..]
                                .iter()
                                .position(|&k| keys[k] == p[1])
                                .unwrap_or_else(|| panic!("unrequested key in {head:?}"));
                            next += pos + 1;
                            let flags: u32 = p[2].parse().expect("flags");
                            let len: usize = p[3].parse().expect("length");
                            let data = c.read_n(len + 2);
                            assert!(data.ends_with(b"\r\n"));
                            observe(ks[next - 1], flags, &data[..len], &mut seen);
                            reads += 1;
                        }
                    }
                }
                (ops, reads)
            })
        })
        .collect();
    let mut ops = 0;
    let mut reads = 0;
    for h in handles {
        let (o, r) = h.join().expect("checker client");
        ops += o;
        reads += r;
    }
    eprintln!("checker: {clients} clients, {ops} requests, {reads} values checked");
    assert!(reads > 0, "the checker read nothing");
}
