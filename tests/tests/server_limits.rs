//! Faults from the operating system's limits.
//!
//! - Address space: the server runs under `RLIMIT_AS` a little above what it maps (the
//!   address space reserved for the items, four times `-m` and at least 256 MiB, plus the
//!   fixed overhead an idle server shows), then takes a load that fills `-m` with small
//!   items and large chained values over hundreds of connections (at most 256 requests
//!   in flight on each). Every reply must be `STORED`
//!   or `SERVER_ERROR out of memory storing object`; the process must stay up, with no
//!   panic on stderr, and answer afterwards.
//! - File descriptors: `ulimit -n` just above `-c`: connections past `-c` are refused with
//!   memcached's `ERROR Too many open connections`, the ones already open are served,
//!   and once some close new ones are served again. A limit that cannot cover `-c` is
//!   refused at start with memcached's message.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use integration_tests::{stat_u64, Client, ServerProc, READ_TIMEOUT};

/// `VmSize` of a process, in KiB.
fn vm_size_kib(pid: u32) -> u64 {
    integration_tests::status_kib(pid, "VmSize:").expect("VmSize")
}

/// Sets `n` items of `size` bytes under `prefix` over `c`, pipelined; returns (stored,
/// out of memory). Any other reply fails the test.
fn fill(c: &mut Client, prefix: &str, n: usize, size: usize) -> (u64, u64) {
    let v = vec![b'x'; size];
    let (mut stored, mut oom) = (0, 0);
    // At most 256 requests in flight: their replies fit a connection's first output
    // buffer, so what grows under the limit is the store, not the reply buffers (whose
    // growth still aborts when the heap is exhausted).
    let batch = ((256 << 10) / (size + 40) + 1).min(256);
    let mut i = 0;
    while i < n {
        let k = batch.min(n - i);
        let mut req = Vec::new();
        for j in i..i + k {
            req.extend_from_slice(format!("set {prefix}{j} 0 0 {size}\r\n").as_bytes());
            req.extend_from_slice(&v);
            req.extend_from_slice(b"\r\n");
        }
        c.send(&req);
        for _ in 0..k {
            let line = c.read_line();
            match &line[..] {
                b"STORED\r\n" => stored += 1,
                b"SERVER_ERROR out of memory storing object\r\n" => oom += 1,
                other => panic!("set reply {:?}", String::from_utf8_lossy(other)),
            }
        }
        i += k;
    }
    (stored, oom)
}

#[test]
fn address_space_limit_gives_out_of_memory_replies_not_an_abort() {
    let args = ["-m", "64", "-t", "2", "-c", "1024"];
    // The address space a server uses with the test's 300 idle connections open and no
    // items (its reservation is most of it; each connection's buffers add some).
    let idle = {
        let s = ServerProc::start(&args);
        let conns: Vec<Client> = (0..300).map(|_| s.connect()).collect();
        let _ = s.connect().stats("");
        let vm = vm_size_kib(s.pid());
        drop(conns);
        vm
    };
    // A little above it: 4 MiB for the index, buffers and the heap's growth, less than the
    // index needs for a million items, so the limit binds while memory is still free.
    let limit = (idle + (4 << 10)) << 10;
    let as_arg = format!("--as={limit}");
    let s = ServerProc::start_wrapped(&["prlimit", &as_arg, "--"], &args);
    let mut c = s.connect();
    // Hundreds of connections, each holding its buffers.
    let idle_conns: Vec<Client> = (0..300).map(|_| s.connect()).collect();
    // Small items past -m (eviction), then large chained values, over four connections.
    let mut totals = (0u64, 0u64);
    let loaders: Vec<_> = (0..4)
        .map(|t| {
            let addr = s.addr;
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let a = fill(&mut c, &format!("small{t}:"), 250_000, 24);
                let b = fill(&mut c, &format!("big{t}:"), 40, 900_000);
                let d = fill(&mut c, &format!("mid{t}:"), 4000, 3000);
                (a.0 + b.0 + d.0, a.1 + b.1 + d.1)
            })
        })
        .collect();
    for h in loaders {
        let Ok((st, oom)) = h.join() else {
            panic!("a loader failed; server stderr: {:?}", s.stderr_so_far());
        };
        totals.0 += st;
        totals.1 += oom;
    }
    drop(idle_conns);
    let st = c.stats("");
    let items = stat_u64(&st, "curr_items");
    let evictions = stat_u64(&st, "evictions");
    let vm = vm_size_kib(s.pid());
    let errs: Vec<String> = s
        .stderr_so_far()
        .into_iter()
        .filter(|l| l.contains("panick") || l.contains("memory allocation"))
        .collect();
    eprintln!(
        "RLIMIT_AS {} MiB (idle {} MiB): {} stored, {} out of memory, {items} items, \
         {evictions} evictions, VmSize now {} MiB",
        limit >> 20,
        idle >> 10,
        totals.0,
        totals.1,
        vm >> 10
    );
    assert!(errs.is_empty(), "{errs:?}");
    assert!(evictions > 0, "the load was meant to fill -m");
    assert!(
        totals.1 > 0,
        "the load was meant to reach the address-space limit"
    );
    assert!(totals.0 > 200_000, "too few stores: {totals:?}");
    // Still serving, with the limit in force.
    c.roundtrip(b"set after 0 0 2\r\nok\r\n", b"STORED\r\n");
    c.roundtrip(b"get after\r\n", b"VALUE after 0 2\r\nok\r\nEND\r\n");
    assert!(vm << 10 <= limit);
}

#[test]
fn fd_limit_just_above_maxconns_refuses_new_connections_cleanly() {
    // -c 64 under a limit of 110 descriptors: just above -c plus the 40 the server reserves
    // for -t 2 (memcached reserves some too).
    let s = ServerProc::start_wrapped(
        &["prlimit", "--nofile=110:110", "--"],
        &["-c", "64", "-t", "2"],
    );
    let mut probe = s.connect();
    probe.roundtrip(b"set k 0 0 1\r\nv\r\n", b"STORED\r\n");
    // 100 more: the server holds `probe`, so 63 of them fit under -c 64.
    let mut served = Vec::new();
    let mut refused = 0;
    for _ in 0..100 {
        let mut t = TcpStream::connect(s.addr).expect("connect (the backlog takes it)");
        t.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        t.write_all(b"get k\r\n").unwrap();
        let mut buf = [0u8; 64];
        let n = t.read(&mut buf).unwrap_or(0);
        match &buf[..n] {
            b"VALUE k 0 1\r\nv\r\nEND\r\n" => served.push(t),
            b"ERROR Too many open connections\r\n" => refused += 1,
            other => panic!("{:?}", String::from_utf8_lossy(other)),
        }
    }
    let st = probe.stats("");
    eprintln!(
        "-c 64 under nofile 110: {} served, {refused} refused, rejected_connections {}",
        served.len(),
        stat_u64(&st, "rejected_connections")
    );
    assert_eq!(served.len(), 63);
    assert_eq!(refused, 37);
    // The open ones are served; after some close, new ones are served again.
    for t in served.iter_mut().take(5) {
        t.write_all(b"get k\r\n").unwrap();
        let mut buf = [0u8; 64];
        let n = t.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"VALUE k 0 1\r\nv\r\nEND\r\n");
    }
    served.truncate(40);
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..20 {
        let mut c = s.connect();
        c.roundtrip(b"get k\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n");
        served.push(c.stream);
    }
    probe.roundtrip(b"get k\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n");
}

#[test]
fn fd_limit_below_maxconns_is_refused_at_start() {
    // As an unprivileged user the hard limit cannot be raised: memcached's message, exit 1.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .args(["prlimit", "--nofile=50:50", "--"])
        .arg(integration_tests::server_bin())
        .args(["-l", "127.0.0.1", "-p", "0", "-U", "0", "-c", "1024"])
        .output()
        .expect("run setpriv");
    let (code, err) = (out.status.code(), String::from_utf8_lossy(&out.stderr));
    assert!(
        err.contains("failed to set rlimit for open files"),
        "exit {code:?}, stderr {err:?}"
    );
    assert_ne!(code, Some(0));
}
