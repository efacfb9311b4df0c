//! Warm restart (`-e <file>` on tmpfs) against the real binary: SIGUSR1 saves, the same
//! command line takes every item up again (text, meta and binary items, chained values,
//! flags, CAS), and every fault starts cold or exits 2 with a clear error. Memory files
//! live in a temporary directory under /dev/shm, removed at the end; `-m` stays small.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use integration_tests::{run_server_to_exit, stat_u64, Client, ServerProc};
use kvcache_server::protocol::binary::{opcode::*, request};

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;
const SIGUSR1: i32 = 10;

/// A directory under /dev/shm, removed (with what is in it) on drop.
struct ShmDir(PathBuf);

impl ShmDir {
    fn new(name: &str) -> Self {
        let p = PathBuf::from(format!(
            "/dev/shm/kvcache-restart-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create a directory in /dev/shm");
        ShmDir(p)
    }

    fn file(&self) -> String {
        self.0.join("mem").display().to_string()
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn meta(file: &str) -> PathBuf {
    PathBuf::from(format!("{file}.meta"))
}

fn start(file: &str, extra: &[&str]) -> ServerProc {
    let mut args = vec!["-m", "32", "-t", "2", "-e", file];
    args.extend_from_slice(extra);
    ServerProc::start(&args)
}

/// `gets key`: (flags, value, cas), or `None` on a miss.
fn gets(c: &mut Client, key: &str) -> Option<(u32, Vec<u8>, u64)> {
    c.send(format!("gets {key}\r\n").as_bytes());
    let line = String::from_utf8(c.read_line()).unwrap();
    if line == "END\r\n" {
        return None;
    }
    let w: Vec<&str> = line.trim_end().split(' ').collect();
    assert_eq!(w[0], "VALUE", "{line}");
    let len: usize = w[3].parse().unwrap();
    let data = c.read_n(len + 2);
    c.expect(b"END\r\n");
    Some((
        w[2].parse().unwrap(),
        data[..len].to_vec(),
        w[4].parse().unwrap(),
    ))
}

fn set(c: &mut Client, key: &str, flags: u32, exptime: u32, value: &[u8]) {
    let mut req = format!("set {key} {flags} {exptime} {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(value);
    req.extend_from_slice(b"\r\n");
    c.roundtrip(&req, b"STORED\r\n");
}

/// A value of `len` bytes that differs from key to key.
fn value(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + ((i * 7 + seed * 13) % 26) as u8)
        .collect()
}

fn save(server: ServerProc, file: &str) {
    let st = server.signal_and_wait(SIGUSR1);
    assert_eq!(st.code(), Some(0), "SIGUSR1 exits 0");
    assert!(meta(file).is_file(), "SIGUSR1 wrote the metadata file");
}

/// SIGUSR1, then the same command line again: it must restart warm.
fn restart_warm(server: ServerProc, file: &str) -> (ServerProc, Client) {
    save(server, file);
    let s = start(file, &[]);
    let mut c = s.connect();
    assert_eq!(state(&mut c).0, "warm", "{}", reason(&s));
    (s, c)
}

fn state(c: &mut Client) -> (String, u64, u64) {
    let s = c.stats("");
    let st = s
        .iter()
        .find(|(k, _)| k == "restart_state")
        .map(|(_, v)| v.clone())
        .unwrap();
    (
        st,
        stat_u64(&s, "restart_items_restored"),
        stat_u64(&s, "restart_items_dropped"),
    )
}

/// Lines of the start that explain a cold start.
fn reason(s: &ServerProc) -> String {
    s.startup_lines().join("\n")
}

#[test]
fn every_kind_of_item_comes_back_with_flags_and_cas() {
    let dir = ShmDir::new("roundtrip");
    let file = dir.file();
    let s = start(&file, &[]);
    let mut c = s.connect();
    assert_eq!(state(&mut c).0, "cold");
    for i in 0..2000 {
        set(
            &mut c,
            &format!("text:{i}"),
            i as u32 % 3,
            0,
            &value(i, 10 + i % 300),
        );
    }
    // Chained values (over the 32 KiB largest chunk), one near the 1 MB limit.
    for (i, len) in [(0, 40_000), (1, 300_000), (2, 1_000_000)] {
        set(&mut c, &format!("big:{i}"), 77, 0, &value(i, len));
    }
    c.roundtrip(b"ms meta:1 5 F9 T0\r\nhello\r\n", b"HD\r\n");
    // The protocol is chosen per connection by its first byte.
    let mut b = s.connect();
    b.send(&request(
        SET,
        b"bin:1",
        &[0, 0, 0, 42, 0, 0, 0, 0],
        b"binary",
        0,
        0,
    ));
    let h = b.read_n(24);
    assert_eq!((h[0], h[6], h[7]), (0x81, 0, 0), "binary set stored");
    set(&mut c, "soon", 1, 3, b"expires in three seconds");
    assert!(gets(&mut c, "soon").is_some());
    set(&mut c, "later", 2, 3600, b"expires in an hour");
    c.roundtrip(b"set gone 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.roundtrip(b"delete gone\r\n", b"DELETED\r\n");
    let mut before = Vec::new();
    let keys: Vec<String> = (0..2000)
        .map(|i| format!("text:{i}"))
        .chain((0..3).map(|i| format!("big:{i}")))
        .chain(["meta:1", "bin:1", "later"].map(String::from))
        .collect();
    for k in &keys {
        before.push(gets(&mut c, k).expect(k));
    }
    let max_cas = before.iter().map(|b| b.2).max().unwrap();
    drop(c);
    save(s, &file);
    // Let "soon" expire while the server is down.
    std::thread::sleep(Duration::from_millis(3500));

    let s = start(&file, &[]);
    assert!(!meta(&file).exists(), "a start consumes the metadata");
    let mut c = s.connect();
    let (st, restored, dropped) = state(&mut c);
    assert_eq!(st, "warm", "{}", reason(&s));
    assert_eq!(restored, keys.len() as u64);
    // The expired item is dropped by the walk, unless the crawl reclaimed it before.
    assert!(dropped <= 1, "{dropped}");
    for (k, b) in keys.iter().zip(&before) {
        assert_eq!(gets(&mut c, k).as_ref(), Some(b), "{k}");
    }
    assert_eq!(gets(&mut c, "soon"), None);
    assert_eq!(gets(&mut c, "gone"), None);
    c.roundtrip(b"mg meta:1 v f\r\n", b"VA 5 f9\r\nhello\r\n");
    // CAS continues above the saved counter, and cas commands take the saved uniques.
    set(&mut c, "new", 0, 0, b"n");
    assert!(gets(&mut c, "new").unwrap().2 > max_cas);
    let (_, _, cas1) = gets(&mut c, "text:1").unwrap();
    c.roundtrip(
        format!("cas text:1 0 0 1 {cas1}\r\nz\r\n").as_bytes(),
        b"STORED\r\n",
    );
    let stats = c.stats("");
    assert_eq!(stat_u64(&stats, "curr_items"), keys.len() as u64 + 1);
    drop(c);

    // A second round trip keeps the changes of the restored server.
    let (_s, mut c) = restart_warm(s, &file);
    assert_eq!(gets(&mut c, "text:1").unwrap().1, b"z");
    assert_eq!(gets(&mut c, "big:2").as_ref(), Some(&before[2002]));
}

#[test]
fn sigkill_and_sigterm_leave_nothing_to_restore() {
    let dir = ShmDir::new("kill");
    let file = dir.file();
    let s = start(&file, &[]);
    set(&mut s.connect(), "k", 0, 0, b"v");
    // Restored, then killed: the metadata was consumed, so the next start is cold and
    // serves nothing of a memory that may hold half-written items.
    let (s, mut c) = restart_warm(s, &file);
    set(&mut c, "k2", 0, 0, &value(1, 100_000));
    drop(c);
    assert!(!s.signal_and_wait(SIGKILL).success());
    let s = start(&file, &[]);
    let mut c = s.connect();
    assert_eq!(state(&mut c).0, "cold");
    assert!(reason(&s).contains("no metadata file"), "{}", reason(&s));
    assert_eq!(gets(&mut c, "k"), None);
    assert_eq!(gets(&mut c, "k2"), None);
    set(&mut c, "t", 0, 0, b"v");
    drop(c);
    // SIGTERM keeps its meaning: stop, no restart data.
    assert_eq!(s.signal_and_wait(SIGTERM).code(), Some(0));
    assert!(!meta(&file).exists());
    let s = start(&file, &[]);
    assert_eq!(gets(&mut s.connect(), "t"), None);
}

#[test]
fn a_removed_or_truncated_memory_file_starts_cold() {
    let dir = ShmDir::new("file");
    let file = dir.file();
    for fault in ["removed", "truncated", "replaced"] {
        let s = start(&file, &[]);
        set(&mut s.connect(), "k", 0, 0, b"v");
        save(s, &file);
        if fault == "removed" {
            std::fs::remove_file(&file).unwrap();
        } else if fault == "replaced" {
            // Same length, another file (a copy renamed over it).
            let copy = format!("{file}.copy");
            let f = std::fs::File::create(&copy).unwrap();
            f.set_len(std::fs::metadata(&file).unwrap().len()).unwrap();
            std::fs::rename(&copy, &file).unwrap();
        } else {
            let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
            f.set_len(1 << 20).unwrap();
        }
        let s = start(&file, &[]);
        let mut c = s.connect();
        assert_eq!(state(&mut c).0, "cold", "{fault}");
        let why = if fault == "replaced" {
            "another file"
        } else {
            "truncated or replaced"
        };
        assert!(reason(&s).contains(why), "{fault}: {}", reason(&s));
        assert_eq!(gets(&mut c, "k"), None);
        set(&mut c, "k", 0, 0, b"fresh");
        assert_eq!(gets(&mut c, "k").unwrap().1, b"fresh");
    }
}

#[test]
fn foreign_or_corrupt_metadata_starts_cold() {
    let dir = ShmDir::new("meta");
    let file = dir.file();
    let rewrite = |f: &dyn Fn(&str) -> String| {
        let text = std::fs::read_to_string(meta(&file)).unwrap();
        std::fs::write(meta(&file), f(&text)).unwrap();
    };
    // Another version, with a valid checksum.
    let other_version = |t: &str| {
        let body = &t[..t.rfind("crc32 ").unwrap()];
        let body = body.replacen("kvcache-restart 1\n", "kvcache-restart 99\n", 1);
        format!("{body}crc32 {:08x}\n", crc32fast::hash(body.as_bytes()))
    };
    let flipped = |t: &str| t.replacen("cas ", "cas 9", 1);
    let cut = |t: &str| t[..t.len() / 2].to_string();
    type Case<'a> = (&'a str, &'a dyn Fn(&str) -> String, &'a [&'a str]);
    let cases: [Case; 5] = [
        ("metadata version 99", &other_version, &[]),
        ("checksum does not match", &flipped, &[]),
        ("no checksum", &cut, &[]),
        ("memory_limit", &|t: &str| t.to_string(), &["-m", "48"]),
        ("cas", &|t: &str| t.to_string(), &["-C"]),
    ];
    for (why, f, flags) in cases {
        let s = start(&file, &[]);
        set(&mut s.connect(), "k", 0, 0, b"v");
        save(s, &file);
        rewrite(f);
        let s = start(&file, flags);
        let mut c = s.connect();
        assert_eq!(state(&mut c).0, "cold", "{why}");
        assert!(reason(&s).contains(why), "{why}: {}", reason(&s));
        assert_eq!(gets(&mut c, "k"), None, "{why}");
    }
}

#[test]
fn a_path_that_is_not_a_regular_file_exits_2() {
    let dir = ShmDir::new("notfile");
    let sub = dir.0.join("subdir");
    std::fs::create_dir(&sub).unwrap();
    for path in [sub.display().to_string(), "/dev/null".to_string()] {
        let (code, _, err) = run_server_to_exit(
            &["-p", "0", "-m", "8", "-e", &path],
            Duration::from_secs(10),
        );
        assert_eq!(code, Some(2), "{path}: {err}");
        assert!(err.contains("not a regular file"), "{err}");
    }
}

/// A tmpfs of `mb` megabytes mounted in a temporary directory, unmounted on drop.
struct SmallTmpfs {
    _dir: ShmDir,
    mnt: PathBuf,
}

impl SmallTmpfs {
    fn mount(mb: usize) -> Self {
        let dir = ShmDir::new("tmpfs");
        let mnt = dir.0.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(&mnt)
            .status()
            .expect("run mount");
        assert!(st.success(), "mounting a tmpfs needs root");
        SmallTmpfs { _dir: dir, mnt }
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

#[test]
fn a_full_tmpfs_exits_2_with_a_clear_error() {
    let fs = SmallTmpfs::mount(4);
    // Fill it.
    let filler = fs.mnt.join("filler");
    let _ = std::fs::write(&filler, vec![1u8; 4 << 20]);
    let file = fs.mnt.join("mem").display().to_string();
    let (code, _, err) = run_server_to_exit(
        &["-p", "0", "-m", "2", "-e", &file],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("bytes free for the memory file, -m needs"),
        "{err}"
    );
    // With room again, the same command line serves.
    std::fs::remove_file(&filler).unwrap();
    let s = ServerProc::start(&["-m", "2", "-t", "1", "-e", &file]);
    let mut c = s.connect();
    set(&mut c, "k", 0, 0, b"v");
    assert_eq!(gets(&mut c, "k").unwrap().1, b"v");
}

fn allocated(file: &str) -> u64 {
    std::fs::metadata(Path::new(file)).unwrap().blocks() * 512
}

#[test]
fn empty_slabs_are_punched_out_of_the_file() {
    let dir = ShmDir::new("punch");
    let file = dir.file();
    let s = start(&file, &[]);
    let mut c = s.connect();
    let mut req = Vec::new();
    for i in 0..20_000 {
        req.extend_from_slice(format!("set k{i} 0 0 1000 noreply\r\n").as_bytes());
        req.extend_from_slice(&value(i, 1000));
        req.extend_from_slice(b"\r\n");
    }
    c.send(&req);
    c.roundtrip(b"mn\r\n", b"MN\r\n");
    let full = allocated(&file);
    assert!(full >= 20 << 20, "the file holds the items: {full}");
    c.roundtrip(b"flush_all\r\n", b"OK\r\n");
    let after = allocated(&file);
    let stats = c.stats("");
    assert!(stat_u64(&stats, "slab_punch_calls") > 0);
    assert!(stat_u64(&stats, "slab_punched_bytes") >= 18 << 20);
    assert!(after < full / 4, "blocks fell from {full} to {after}");
    // What is left restores; the file stays as small.
    set(&mut c, "kept", 3, 0, b"still here");
    drop(c);
    let (_s, mut c) = restart_warm(s, &file);
    assert_eq!(gets(&mut c, "kept").unwrap().1, b"still here");
    assert!(allocated(&file) < full / 4);
}
