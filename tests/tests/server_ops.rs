//! The operator's commands and flags, side by side with memcached 1.6.18 where it defines
//! the bytes: `lru_crawler` (metadump, mgdump, crawl and its settings), `memcached-tool
//! dump` and `keys`, `cache_memlimit`, `stats detail` with `-D`, `lru`, `-X`, `-W`, `-d`
//! with `-P`, `-B`, `-k`, `-r`.
//!
//! The differential tests start `/usr/bin/memcached` (installed by `scripts/setup.sh`)
//! as `-u nobody` on a free loopback port; they fail if it is missing.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{rss_kib, run_server_to_exit, server_bin, stat_u64, Client, ServerProc};

const MEMCACHED: &str = "/usr/bin/memcached";
const MEMCACHED_TOOL: &str = "/usr/share/memcached/scripts/memcached-tool";

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Connects to `addr` until it answers, for at most ten seconds.
fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} does not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// memcached 1.6.18, killed on drop.
struct Memcached {
    child: Child,
    addr: SocketAddr,
}

impl Memcached {
    fn start(args: &[&str]) -> Memcached {
        let port = free_port();
        let child = Command::new(MEMCACHED)
            .args(["-u", "nobody", "-l", "127.0.0.1", "-U", "0", "-p"])
            .arg(port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("memcached 1.6.18 (scripts/setup.sh installs it)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        wait_listening(addr);
        Memcached { child, addr }
    }

    fn connect(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `line` then `mn`, and returns what came back before the `MN`.
fn ask(c: &mut Client, line: &str) -> String {
    c.send(format!("{line}\r\nmn\r\n").as_bytes());
    let mut out = Vec::new();
    loop {
        let l = c.read_line();
        if l == b"MN\r\n" {
            return String::from_utf8_lossy(&out).into_owned();
        }
        out.extend_from_slice(&l);
    }
}

/// Reads a dump up to its closing line (`END` or `EN`), returning the item lines.
fn read_dump(c: &mut Client, end: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    let mut b = [0u8; 65536];
    loop {
        let n = c.stream.read(&mut b).expect("dump read");
        assert!(n > 0, "closed mid-dump");
        buf.extend_from_slice(&b[..n]);
        if buf.ends_with(end) && (buf.len() == end.len() || buf[buf.len() - end.len() - 1] == b'\n')
        {
            buf.truncate(buf.len() - end.len());
            break;
        }
    }
    for l in buf.split(|&x| x == b'\n').filter(|l| !l.is_empty()) {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        lines.push(String::from_utf8_lossy(l).into_owned());
    }
    lines
}

/// The `name=value` fields of a metadump line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ')
        .find_map(|f| f.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// Undoes memcached's URL encoding of dumped keys.
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Keys of every sort memcached's text protocol takes (URL-encoded in dumps).
fn keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 4 {
            0 => format!("user:{i}"),
            1 => format!("a%b/{i}?x=y&z"),
            2 => format!("plain-{i}.~_"),
            _ => format!("\u{e9}t\u{e9}#{i}"),
        })
        .collect()
}

fn load(c: &mut Client, keys: &[String]) {
    let mut req = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let ttl = if i % 3 == 0 { 0 } else { 3600 };
        let v = format!("value-{i}-{}", "x".repeat(i % 50));
        req.extend_from_slice(
            format!("set {k} {} {ttl} {} noreply\r\n{v}\r\n", i % 7, v.len()).as_bytes(),
        );
    }
    c.send(&req);
    assert!(ask(c, "version").starts_with("VERSION"));
}

/// Sends `noreply` storage requests in writes of about a megabyte, then waits until the
/// server has run them all.
fn send_sets(c: &mut Client, reqs: impl Iterator<Item = String>) {
    let mut buf = Vec::new();
    for r in reqs {
        buf.extend_from_slice(r.as_bytes());
        if buf.len() > 1 << 20 {
            c.send(&buf);
            buf.clear();
        }
    }
    c.send(&buf);
    assert!(ask(c, "version").starts_with("VERSION"));
}

#[test]
fn operator_replies_match_memcached() {
    let ours = ServerProc::start(&["-t", "2"]);
    let theirs = Memcached::start(&[]);
    let (mut a, mut b) = (ours.connect(), theirs.connect());
    let lines = &[
        "lru_crawler",
        "lru_crawler foo",
        "lru_crawler metadump",
        "lru_crawler metadump 0",
        "lru_crawler metadump 1,x",
        "lru_crawler metadump all extra",
        "lru_crawler mgdump",
        "lru_crawler crawl",
        "lru_crawler crawl 0",
        "lru_crawler crawl 64",
        "lru_crawler crawl 1,64",
        "lru_crawler metadump 64",
        "lru_crawler crawl all",
        "lru_crawler crawl 1,2",
        "lru_crawler sleep",
        "lru_crawler sleep x",
        "lru_crawler sleep 1000001",
        "lru_crawler sleep 100",
        "lru_crawler sleep 5 noreply",
        "lru_crawler tocrawl x",
        "lru_crawler tocrawl -1",
        "lru_crawler tocrawl 5 6",
        "lru_crawler tocrawl 0",
        "lru_crawler enable",
        "lru_crawler disable",
        "lru_crawler disable",
        "lru_crawler metadump all",
        "lru_crawler crawl all",
        "lru_crawler enable",
        "cache_memlimit",
        "cache_memlimit x",
        "cache_memlimit 7",
        "cache_memlimit 2000000000",
        "cache_memlimit 100 noreply",
        "cache_memlimit 64",
        "lru",
        "lru foo",
        "lru tune 10 30",
        "lru tune 10 30 0.1",
        "lru tune 200 30 0.1 2",
        "lru tune 10 30 0.1 2.0",
        "lru tune 10 30 0.1 2 3",
        "lru mode",
        "lru mode x",
        "lru mode flat",
        "lru mode segmented",
        "lru mode flat x",
        "lru temp_ttl",
        "lru temp_ttl x",
        "lru temp_ttl -5",
        "lru temp_ttl 100",
        "stats detail",
        "stats detail x",
        "stats detail on",
        "stats detail on extra",
        "stats detail off",
        "watch foo",
        "misbehave",
        "debugtime 5",
    ];
    same_replies(&mut a, &mut b, lines);
}

/// Each line gets the same reply from both servers.
fn same_replies(a: &mut Client, b: &mut Client, lines: &[&str]) {
    for line in lines {
        assert_eq!(ask(a, line), ask(b, line), "{line}");
    }
}

#[test]
fn metadump_matches_memcached_and_memcached_tool_round_trips() {
    let ours = ServerProc::start(&["-t", "2"]);
    let theirs = Memcached::start(&[]);
    let ks = keys(2000);
    let (mut a, mut b) = (ours.connect(), theirs.connect());
    load(&mut a, &ks);
    load(&mut b, &ks);
    // Fetch some so `fetch=yes` shows.
    for k in ks.iter().step_by(5) {
        ask(&mut a, &format!("mg {k} v"));
        ask(&mut b, &format!("mg {k} v"));
    }
    let dump = |c: &mut Client| {
        c.send(b"lru_crawler metadump all\r\n");
        let mut lines = read_dump(c, b"END\r\n");
        lines.sort_by(|x, y| field(x, "key").cmp(field(y, "key")));
        lines
    };
    let (da, db) = (dump(&mut a), dump(&mut b));
    assert_eq!(da.len(), ks.len());
    assert_eq!(db.len(), ks.len());
    for (x, y) in da.iter().zip(&db) {
        for f in ["key", "fetch", "size"] {
            assert_eq!(field(x, f), field(y, f), "{x}\n{y}");
        }
        let (ex, ey): (i64, i64) = (
            field(x, "exp").parse().unwrap(),
            field(y, "exp").parse().unwrap(),
        );
        assert!(
            ex == ey || (ex - ey).abs() <= 2 && ex > 0 && ey > 0,
            "{x}\n{y}"
        );
        let (lx, ly): (i64, i64) = (
            field(x, "la").parse().unwrap(),
            field(y, "la").parse().unwrap(),
        );
        assert!((lx - ly).abs() <= 2, "{x}\n{y}");
    }

    // `keys` and `dump` of memcached-tool read the metadump.
    let tool = |mode: &str| {
        let out = Command::new("perl")
            .args([MEMCACHED_TOOL, &ours.addr.to_string(), mode])
            .output()
            .expect("memcached-tool (scripts/setup.sh installs memcached)");
        assert!(out.status.success());
        out.stdout
    };
    let listed = String::from_utf8(tool("keys")).unwrap();
    assert_eq!(listed.lines().count(), ks.len());
    let dumped = tool("dump");
    // The dump loaded into a fresh memcached reproduces every item.
    let fresh = Memcached::start(&[]);
    let mut f = fresh.connect();
    f.send(&dumped);
    assert!(ask(&mut f, "version").starts_with(&"STORED\r\n".repeat(ks.len())));
    for (i, k) in ks.iter().enumerate() {
        let want = ask(&mut a, &format!("get {k}"));
        assert!(want.starts_with("VALUE"), "{k}: {want}");
        assert_eq!(ask(&mut f, &format!("get {k}")), want, "{k}");
        if i % 3 != 0 {
            let ttl = ask(&mut f, &format!("mg {k} t"));
            let left: i64 = ttl.trim().trim_start_matches("HD t").parse().unwrap();
            assert!((3590..=3600).contains(&left), "{k}: {ttl}");
        }
    }
}

#[test]
fn dump_variants_classes_and_switches() {
    let s = ServerProc::start(&["-t", "1"]);
    let mut c = s.connect();
    load(&mut c, &keys(400));
    c.send(b"lru_crawler mgdump all\r\n");
    let mg = read_dump(&mut c, b"EN\r\n");
    assert_eq!(mg.len(), 400);
    assert!(mg.iter().all(|l| l.starts_with("mg ")));
    // Each mg line is a valid request: its key is found.
    let l = &mg[0];
    assert!(ask(&mut c, &format!("{l} k")).starts_with("HD k"));
    // A class list covers exactly the items of those classes.
    c.send(b"lru_crawler metadump hash\r\n");
    let all = read_dump(&mut c, b"END\r\n");
    let cls = field(&all[0], "cls").to_owned();
    c.send(format!("lru_crawler metadump {cls}\r\n").as_bytes());
    let one = read_dump(&mut c, b"END\r\n");
    let want = all.iter().filter(|l| field(l, "cls") == cls).count();
    assert_eq!(one.len(), want);
    assert!(one.len() < all.len());
    // Expired and deleted items are not listed; crawl reclaims the expired.
    c.send(b"set gone 0 -1 1\r\nx\r\n");
    c.expect(b"STORED\r\n");
    let victim = url_decode(field(&all[1], "key"));
    assert_eq!(ask(&mut c, &format!("delete {victim}")), "DELETED\r\n");
    assert_eq!(ask(&mut c, "lru_crawler crawl all"), "OK\r\n");
    c.send(b"lru_crawler metadump all\r\n");
    let after = read_dump(&mut c, b"END\r\n");
    assert!(!after.iter().any(|l| l.starts_with("key=gone ")));
    assert!(!after.iter().any(|l| url_decode(field(l, "key")) == victim));
    assert_eq!(after.len(), 399);
    // Replies pipelined after a dump follow it.
    c.send(b"lru_crawler metadump 63\r\nversion\r\n");
    c.expect(b"END\r\nVERSION");

    let x = ServerProc::start(&["-X", "-W"]);
    let mut c = x.connect();
    assert_eq!(
        ask(&mut c, "lru_crawler metadump all"),
        "ERROR metadump not allowed\r\n"
    );
    assert_eq!(
        ask(&mut c, "watch"),
        "CLIENT_ERROR watch commands not allowed\r\n"
    );
    let st = c.stats("settings");
    let get = |n: &str| {
        st.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("dump_enabled"), "no");
    assert_eq!(get("watch_enabled"), "no");
}

#[test]
fn metadump_streams_under_load() {
    // 200k items; a second client keeps getting while the dump streams, read slowly.
    let s = ServerProc::start(&["-t", "2", "-m", "128"]);
    let mut c = s.connect();
    let n = 200_000;
    send_sets(
        &mut c,
        (0..n).map(|i| format!("set k:{i} 0 0 10 noreply\r\n0123456789\r\n")),
    );
    let addr = s.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut o = Client::connect(addr);
            let mut lat = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                o.send(format!("get k:{i}\r\n").as_bytes());
                o.expect(format!("VALUE k:{i} 0 10\r\n0123456789\r\nEND\r\n").as_bytes());
                lat.push(t.elapsed());
                i = (i + 7919) % n;
            }
            lat
        })
    };
    let t = Instant::now();
    c.send(b"lru_crawler metadump all\r\n");
    let lines = read_dump(&mut c, b"END\r\n");
    let took = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut lat = other.join().unwrap();
    assert_eq!(lines.len(), n);
    lat.sort();
    let p99 = lat[lat.len() * 99 / 100];
    eprintln!(
        "metadump of {n} items: {:.0} items/s; concurrent get p99 {p99:?} over {} gets",
        n as f64 / took.as_secs_f64(),
        lat.len()
    );
    assert!(!lat.is_empty());
}

#[test]
fn cache_memlimit_shrinks_and_grows() {
    let s = ServerProc::start(&["-t", "2", "-m", "128"]);
    let mut c = s.connect();
    let v = "v".repeat(1000);
    send_sets(
        &mut c,
        (0..110_000).map(|i| format!("set k{i} 0 0 1000 noreply\r\n{v}\r\n")),
    );
    let (before, _) = rss_kib(s.pid()).unwrap();
    assert!(before > 100_000, "loaded RSS {before} KiB");
    assert_eq!(ask(&mut c, "cache_memlimit 16"), "OK\r\n");
    let (after, _) = rss_kib(s.pid()).unwrap();
    eprintln!("RSS {before} KiB -> {after} KiB after cache_memlimit 16");
    assert!(after < 40_000, "RSS after shrinking to 16 MB: {after} KiB");
    assert_eq!(stat_u64(&c.stats("settings"), "maxbytes"), 16 << 20);
    assert_eq!(stat_u64(&c.stats(""), "limit_maxbytes"), 16 << 20);
    // Still serving, within the new limit.
    c.send(format!("set again 0 0 1000\r\n{v}\r\n").as_bytes());
    c.expect(b"STORED\r\n");
    assert!(stat_u64(&c.stats(""), "mapped_bytes") <= 16 << 20);
    // Growing takes effect at once.
    assert_eq!(ask(&mut c, "cache_memlimit 256"), "OK\r\n");
    assert_eq!(stat_u64(&c.stats("settings"), "maxbytes"), 256 << 20);
    send_sets(
        &mut c,
        (0..60_000).map(|i| format!("set g{i} 0 0 1000 noreply\r\n{v}\r\n")),
    );
    assert!(stat_u64(&c.stats(""), "mapped_bytes") > 32 << 20);
    // Beyond the address space reserved at start (four times -m): refused.
    assert_eq!(
        ask(&mut c, "cache_memlimit 100000"),
        "MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"
    );
}

#[test]
fn stats_detail_matches_memcached() {
    let script = "set foo:a 0 0 1\r\na\r\nget foo:a foo:b bar:x nokey\r\ndelete foo:a\r\n\
                  delete bar:q\r\nincr foo:a 1\r\n";
    for (args, on) in [(&[][..], true), (&["-D", "#"][..], false)] {
        let ours = ServerProc::start(args);
        let theirs = Memcached::start(args);
        let (mut a, mut b) = (ours.connect(), theirs.connect());
        let s = if on {
            script.to_owned()
        } else {
            script.replace(':', "#")
        };
        for c in [&mut a, &mut b] {
            if on {
                assert_eq!(ask(c, "stats detail on"), "OK\r\n");
            }
            c.send(s.as_bytes());
            ask(c, "version");
        }
        let dump_a = ask(&mut a, "stats detail dump");
        assert!(
            dump_a.contains("PREFIX foo get 2 hit 1 set 1 del 1\r\n"),
            "{dump_a}"
        );
        let mut la: Vec<&str> = dump_a.lines().collect();
        let dump_b = ask(&mut b, "stats detail dump");
        let mut lb: Vec<&str> = dump_b.lines().collect();
        la.sort();
        lb.sort();
        assert_eq!(la, lb);
        let get = |c: &mut Client, n: &str| {
            c.stats("settings")
                .into_iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v)
                .unwrap()
        };
        for n in ["stat_key_prefix", "detail_enabled"] {
            assert_eq!(get(&mut a, n), get(&mut b, n), "{n}");
        }
    }
}

/// A binary request packet: opcode, key, extras, value.
fn bin_request(op: u8, key: &[u8], extras: &[u8], value: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, op];
    p.extend_from_slice(&(key.len() as u16).to_be_bytes());
    p.extend_from_slice(&[extras.len() as u8, 0, 0, 0]);
    let body = (extras.len() + key.len() + value.len()) as u32;
    p.extend_from_slice(&body.to_be_bytes());
    p.extend_from_slice(&[0; 12]);
    p.extend_from_slice(extras);
    p.extend_from_slice(key);
    p.extend_from_slice(value);
    p
}

/// Reads binary responses up to and including the one of opcode `last`.
fn bin_read_until(c: &mut Client, last: u8) {
    loop {
        let h = c.read_n(24);
        let body = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
        c.read_n(body);
        if h[1] == last {
            return;
        }
    }
}

#[test]
fn stats_detail_counts_binary_and_large_values_as_memcached() {
    const NOOP: u8 = 0x0a;
    let ours = ServerProc::start(&[]);
    let theirs = Memcached::start(&[]);
    let mut dumps = Vec::new();
    for addr in [ours.addr, theirs.addr] {
        let mut t = Client::connect(addr);
        assert_eq!(ask(&mut t, "stats detail on"), "OK\r\n");
        let set_x = [0u8; 8];
        let exp = [0u8; 4];
        let mut b = Client::connect(addr);
        let mut pkts = Vec::new();
        for p in [
            bin_request(0x01, b"b:1", &set_x, b"v"),  // set
            bin_request(0x00, b"b:1", &[], &[]),      // get: hit
            bin_request(0x00, b"b:2", &[], &[]),      // get: miss
            bin_request(0x04, b"b:1", &[], &[]),      // delete
            bin_request(0x04, b"b:3", &[], &[]),      // delete: not found
            bin_request(0x1c, b"b:4", &exp, &[]),     // touch: miss
            bin_request(0x1d, b"b:1", &exp, &[]),     // gat: miss
            bin_request(0x0e, b"b:5", &[], b"x"),     // append: not stored
            bin_request(0x09, b"b:7", &[], &[]),      // getq: miss
            bin_request(0x12, b"b:8", &set_x, b"v"),  // addq
            bin_request(0x05, b"b:6", &[0; 20], &[]), // incr: not counted
        ] {
            pkts.extend_from_slice(&p);
        }
        pkts.extend_from_slice(&bin_request(NOOP, b"", &[], &[]));
        b.send(&pkts);
        bin_read_until(&mut b, NOOP);
        // Values long enough to be received straight into their items, sent in two
        // pieces: text and binary, and a text one over `-I`.
        let big = vec![b'v'; 100_000];
        t.send(b"set big:1 0 0 100000\r\n");
        let mut p = bin_request(0x01, b"bl:1", &set_x, &big);
        b.send(&p[..24 + 8 + 4 + 50_000]);
        std::thread::sleep(Duration::from_millis(50));
        t.send(&big[..50_000]);
        std::thread::sleep(Duration::from_millis(50));
        t.send(&big[50_000..]);
        t.send(b"\r\n");
        t.expect(b"STORED\r\n");
        b.send(&p.split_off(24 + 8 + 4 + 50_000));
        b.send(&bin_request(NOOP, b"", &[], &[]));
        bin_read_until(&mut b, NOOP);
        t.send(b"set big:2 0 0 2000000\r\n");
        t.send(&vec![b'v'; 2_000_000]);
        t.send(b"\r\n");
        t.expect(b"SERVER_ERROR object too large for cache\r\n");
        // Meta commands are not counted by memcached 1.6.18.
        let meta = ask(
            &mut t,
            "ms m:1 2\r\nhi\r\nmg m:1 v\r\nmg m:2\r\nmd m:1\r\nma m:1",
        );
        assert_eq!(meta, "HD\r\nVA 2\r\nhi\r\nEN\r\nHD\r\nNF\r\n");
        let dump = ask(&mut t, "stats detail dump");
        let mut lines: Vec<String> = dump.lines().map(str::to_owned).collect();
        lines.sort();
        dumps.push(lines);
    }
    assert_eq!(dumps[0], dumps[1]);
    assert_eq!(
        dumps[0],
        [
            "END",
            "PREFIX b get 5 hit 1 set 3 del 2",
            "PREFIX big get 0 hit 0 set 2 del 0",
            "PREFIX bl get 0 hit 0 set 1 del 0",
        ]
    );
}

#[test]
fn daemon_mode_writes_and_removes_the_pidfile() {
    let dir = std::env::temp_dir().join(format!("kvcache-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("kv.pid");
    let port = free_port().to_string();
    let st = Command::new(server_bin())
        .args(["-u", "root"])
        .args([
            "-d",
            "-P",
            pidfile.to_str().unwrap(),
            "-l",
            "127.0.0.1",
            "-p",
            &port,
        ])
        .status()
        .expect("spawn");
    // The parent exits 0 once the daemon listens.
    assert!(st.success());
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Client::connect(addr);
    assert!(ask(&mut c, "version").starts_with("VERSION"));
    // Detached: a session of its own.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(fields[3], pid.to_string(), "session id: {stat}");
    // SAFETY: kill(2) on the daemon we started; touches no memory.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pidfile.exists() {
        assert!(Instant::now() < deadline, "pid file not removed at exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn process_flags() {
    let s = ServerProc::start(&["-B", "ascii", "-k", "-r", "-L"]);
    let mut c = s.connect();
    assert!(ask(&mut c, "version").starts_with("VERSION"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let locked: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(locked > 0, "-k locked nothing");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let hard = core.split_whitespace().nth(5).unwrap();
    assert_eq!(core.split_whitespace().nth(4).unwrap(), hard, "{core}");
    let b = ServerProc::start(&["-B", "binary"]);
    let mut c = b.connect();
    // A text line on a binary-only server, a binary request on a text-only one: not
    // requests they answer (memcached 1.6.18 stays silent too).
    c.send(b"version\r\n");
    c.expect_silence(Duration::from_millis(300));
    let mut t = s.connect();
    let mut noop = [0u8; 24];
    noop[0] = 0x80;
    noop[1] = 0x0b;
    t.send(&noop);
    t.expect_silence(Duration::from_millis(300));
    for (args, want) in [
        (&["-B", "udp"][..], "Invalid value for binding protocol"),
        (&["-D", "ab"][..], "delimiter"),
        (&["-o", "ext_path=/tmp/x:1G"][..], "not supported"),
    ] {
        let (code, _, err) = run_server_to_exit(args, Duration::from_secs(10));
        assert_eq!(code, Some(2), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// Reads what arrives on `c` within `wait` after the first byte.
fn drain_for(c: &mut Client, wait: Duration) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 65536];
    c.stream.set_read_timeout(Some(wait)).unwrap();
    while let Ok(n) = c.stream.read(&mut b) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[..n]);
    }
    c.stream
        .set_read_timeout(Some(integration_tests::READ_TIMEOUT))
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn watch_streams_events_as_memcached_does() {
    let s = ServerProc::start(&["-t", "2"]);
    let theirs = Memcached::start(&[]);
    let script = b"set w:1 3 0 2\r\nhi\r\nget w:1 w:2\r\n";
    let mut got = Vec::new();
    for addr in [s.addr, theirs.addr] {
        let mut w = Client::connect(addr);
        w.send(b"watch fetchers mutations\r\n");
        w.expect(b"OK\r\n");
        let mut c = Client::connect(addr);
        c.send(script);
        c.expect(b"STORED\r\nVALUE w:1 3 2\r\nhi\r\nEND\r\n");
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while text.matches('\n').count() < 3 && Instant::now() < deadline {
            text += &drain_for(&mut w, Duration::from_millis(100));
        }
        // Without ts, gid, clsid and cfd, which differ by design.
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                l.split(' ')
                    .filter(|f| {
                        !["ts=", "gid=", "clsid=", "cfd="]
                            .iter()
                            .any(|p| f.starts_with(p))
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|l| !l.contains("status=not_found") || l.contains("w%3A2"))
            .collect();
        got.push(lines);
    }
    // memcached also logs the lookup its `set` makes first; the client's own requests
    // read the same.
    assert_eq!(got[0], got[1]);
    assert_eq!(
        got[0],
        [
            "type=item_store key=w%3A1 status=stored cmd=set ttl=0 size=2",
            "type=item_get key=w%3A1 status=found size=2",
            "type=item_get key=w%3A2 status=not_found size=0",
        ]
    );
}

/// The shape of a `type=eviction` line: its field names in order, with the values that
/// differ by design (time, ids, which key went first) replaced by what they must look like.
fn eviction_shape(line: &str) -> String {
    let fields: Vec<String> = line
        .split(' ')
        .filter(|f| !f.starts_with("ts=") && !f.starts_with("gid="))
        .map(|f| {
            let (name, v) = f.split_once('=').unwrap_or((f, ""));
            let num = |v: &str| v.parse::<i64>().is_ok();
            let v = match name {
                "key" if v.strip_prefix("ev%3A").is_some_and(num) => "<key>".to_owned(),
                "ttl" if v == "-1" => v.to_owned(),
                "ttl" if v.parse::<i64>().is_ok_and(|t| (0..=100).contains(&t)) => {
                    "<left>".to_owned()
                }
                "la" | "clsid" if v.parse::<u64>().is_ok() => "<n>".to_owned(),
                _ => v.to_owned(),
            };
            format!("{name}={v}")
        })
        .collect();
    fields.join(" ")
}

#[test]
fn watch_evictions_as_memcached_does() {
    let ours = ServerProc::start(&["-t", "2", "-m", "2"]);
    let theirs = Memcached::start(&["-m", "2"]);
    let mut shapes = Vec::new();
    for addr in [ours.addr, theirs.addr] {
        let mut w = Client::connect(addr);
        w.send(b"watch evictions\r\n");
        w.expect(b"OK\r\n");
        // 6 MB of values, half never expiring, into 2 MB: thousands of evictions.
        let mut c = Client::connect(addr);
        let value = "v".repeat(1000);
        send_sets(
            &mut c,
            (0..6000).map(|i| {
                let ttl = if i % 2 == 0 { 100 } else { 0 };
                format!("set ev:{i} 0 {ttl} 1000 noreply\r\n{value}\r\n")
            }),
        );
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while text.matches("type=eviction").count() < 100 && Instant::now() < deadline {
            text += &drain_for(&mut w, Duration::from_millis(100));
        }
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("skipped="))
            .collect();
        assert!(lines.len() >= 100, "{addr}: {} lines", lines.len());
        let mut kinds: Vec<String> = lines.iter().map(|l| eviction_shape(l)).collect();
        kinds.sort();
        kinds.dedup();
        shapes.push(kinds);
    }
    assert_eq!(shapes[0], shapes[1]);
    assert_eq!(
        shapes[0],
        [
            "type=eviction key=<key> fetch=no ttl=-1 la=<n> clsid=<n> size=1000",
            "type=eviction key=<key> fetch=no ttl=<left> la=<n> clsid=<n> size=1000",
        ]
    );
}

#[test]
fn slow_watcher_gets_skipped_lines_and_never_blocks_workers() {
    let s = ServerProc::start(&[
        "-t",
        "1",
        "-o",
        "watcher_logbuf_size=16,worker_logbuf_size=8192",
    ]);
    let mut w = s.connect();
    w.send(b"watch\r\n");
    w.expect(b"OK\r\n");
    // The watcher reads nothing while 60k gets of long keys run: the worker answers all.
    let key = "k".repeat(200);
    let mut c = s.connect();
    let n = 60_000;
    let req = format!("get {key}\r\n").repeat(n);
    let reader = {
        let mut r = Client {
            stream: c.stream.try_clone().unwrap(),
        };
        std::thread::spawn(move || {
            r.expect(&b"END\r\n".repeat(n));
        })
    };
    c.send(req.as_bytes());
    reader.join().unwrap();
    // Now the watcher drains; its next line is announced by what it lost.
    let mut seen = drain_for(&mut w, Duration::from_millis(500));
    c.send(b"get after\r\n");
    c.expect(b"END\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("key=after") && Instant::now() < deadline {
        seen += &drain_for(&mut w, Duration::from_millis(100));
    }
    let lines = seen.lines().count();
    let skipped: u64 = seen
        .lines()
        .filter_map(|l| l.strip_prefix("skipped="))
        .map(|v| v.parse::<u64>().unwrap())
        .sum();
    eprintln!("watcher got {lines} lines, skipped {skipped}");
    assert!(skipped > 0, "no skipped= line in {lines} lines");
    assert!(seen.contains("key=after"));
    assert!((lines as u64) < n as u64);
}

#[test]
fn crawler_off_at_start_and_large_pages_reported() {
    let ours = ServerProc::start(&["-o", "no_lru_crawler", "-L"]);
    let theirs = Memcached::start(&["-o", "no_lru_crawler"]);
    let (mut a, mut b) = (ours.connect(), theirs.connect());
    same_replies(
        &mut a,
        &mut b,
        &[
            "lru_crawler metadump all",
            "lru_crawler crawl all",
            "lru_crawler enable",
        ],
    );
    // (memcached may answer BUSY while the crawler it just started runs.)
    assert_eq!(ask(&mut a, "lru_crawler crawl all"), "OK\r\n");
    let st = a.stats("settings");
    assert!(st.contains(&("large_pages".to_owned(), "yes".to_owned())));
    assert!(st.contains(&("lru_crawler".to_owned(), "yes".to_owned())));
}

#[test]
fn root_must_name_a_user() {
    // SAFETY: getuid takes nothing and cannot fail.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("not root: the refusal does not apply");
        return;
    }
    // Without -u, as memcached 1.6.18: its message and EX_USAGE.
    let out = Command::new(server_bin())
        .args(["-l", "127.0.0.1", "-p", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "can't run as root without the -u switch\n"
    );
    let mc = Command::new(MEMCACHED)
        .args(["-l", "127.0.0.1", "-p", "0"])
        .output()
        .unwrap();
    assert_eq!(mc.status.code(), Some(64));
    assert_eq!(mc.stderr, out.stderr);
    // -u nobody: serving as nobody.
    let port = free_port().to_string();
    let mut child = Command::new(server_bin())
        .args(["-u", "nobody", "-l", "127.0.0.1", "-p", &port])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);
    let mut c = Client::connect(addr);
    assert!(ask(&mut c, "version").starts_with("VERSION"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        uid.split_whitespace().skip(1).all(|u| u == "65534"),
        "{uid}"
    );
    let bad = Command::new(server_bin())
        .args(["-u", "no-such-user-here", "-p", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("can't find the user"));
}
