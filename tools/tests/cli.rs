//! End-to-end tests of `slabtune`: generated traces (plain and zstd, with bad lines), a
//! capture of real memcached traffic, memcached's own `stats sizes`/`stats slabs` output,
//! and a live memcached (skipped, saying why, when `/usr/bin/memcached` is absent).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use slabtune::hist::{Hist, Observed, Target};
use slabtune::optimize::{evaluate, memcached_classes, MEMCACHED_CHUNK_MAX};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn slabtune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slabtune"))
        .args(args)
        .output()
        .expect("run slabtune")
}

fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = slabtune(&a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("slabtune-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// The items `make_fixtures.py` stores: key "k%03d", value 10 + (i*7) % 400, flags i % 3.
fn fixture_items() -> Observed {
    let mut o = Observed::default();
    for i in 0..300u32 {
        o.add(4, 10 + (i * 7) % 400, i % 3 != 0, 1);
    }
    o
}

fn stat_lines(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut it = l.trim_end().splitn(3, ' ');
            match (it.next(), it.next(), it.next()) {
                (Some("STAT"), Some(k), Some(v)) => Some((k.to_string(), v.to_string())),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn memcached_stats_sizes_fixture_matches_the_size_formula() {
    let got = slabtune::live::parse_sizes(&stat_lines(&data("memcached_stats_sizes.txt"))).unwrap();
    // memcached buckets each item's total size up to a multiple of 32.
    let h = fixture_items().hist(Target::Memcached, true);
    let want = Hist::from_pairs(h.entries().iter().map(|&(s, n)| (s.div_ceil(32) * 32, n)));
    assert_eq!(got, want);
}

#[test]
fn memcached_stats_slabs_fixture_matches_the_generated_table() {
    let used = slabtune::live::parse_slab_chunks(&stat_lines(&data("memcached_stats_slabs.txt")));
    let table = memcached_classes(48, 1.25, MEMCACHED_CHUNK_MAX);
    // The classes memcached used are exactly those our table and size formula predict.
    let ev = evaluate(
        &fixture_items().hist(Target::Memcached, true),
        &table,
        1 << 20,
    );
    let predicted: Vec<u64> = ev
        .classes
        .iter()
        .filter(|c| c.items > 0)
        .map(|c| c.chunk)
        .collect();
    assert_eq!(used, predicted);
}

fn capture_port(cap: &[u8]) -> u16 {
    let mut port = None;
    let mut issues = slabtune::issues::Issues::default();
    slabtune::pcap::packets(cap, &mut issues, |_, lt, frame| {
        if let Ok(Some(s)) = slabtune::pcap::decode(lt, frame) {
            if s.syn && port.is_none() {
                port = Some(s.dport);
            }
        }
    })
    .unwrap();
    port.expect("the capture holds a SYN")
}

#[test]
fn real_capture_gives_the_items_written() {
    let cap = std::fs::read(data("memcached_traffic.pcap")).unwrap();
    let port = capture_port(&cap);
    let r = slabtune::pcap::read_capture(&cap, port).unwrap();
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    // 300 sets and 30 VALUE replies.
    assert_eq!(r.events.len(), 330);
    assert_eq!(
        slabtune::pcap::observe(&r.events, false).items,
        fixture_items().items
    );
    assert_eq!(slabtune::pcap::observe(&r.events, true).count(), 330);

    let v = json(&[
        "pcap",
        data("memcached_traffic.pcap").to_str().unwrap(),
        "--port",
        &port.to_string(),
    ]);
    let mc = &v["targets"][1];
    assert_eq!(mc["target"], "memcached");
    assert_eq!(mc["items"], 300);
    let rec = mc["configs"][0]["eval"]["waste"].as_u64().unwrap();
    let def = mc["configs"][1]["eval"]["waste"].as_u64().unwrap();
    assert!(rec < def, "recommended {rec} vs defaults {def}");
    // The truncated capture is reported with its packet number, or refused with --strict.
    let cut = tmp("cut.pcap");
    std::fs::write(&cut, &cap[..cap.len() - 10]).unwrap();
    let v = json(&["pcap", cut.to_str().unwrap(), "--port", &port.to_string()]);
    assert_eq!(v["issues"]["count"], 1);
    assert!(v["issues"]["examples"][0]
        .as_str()
        .unwrap()
        .contains("capture truncated"));
    let out = slabtune(&[
        "pcap",
        cut.to_str().unwrap(),
        "--port",
        &port.to_string(),
        "--strict",
    ]);
    assert!(!out.status.success());
}

#[test]
fn capture_of_kvcache_server_with_pymemcache_matches_its_own_histogram() {
    // make_kvcache_fixture.py drove the real server with pymemcache (set with flags, add,
    // replace, append, prepend, cas, delete, multi-get, incr) under tcpdump, then saved
    // the server's `stats sizes_fine`. The sizes slabtune derives from the capture alone
    // must match that histogram.
    let cap = std::fs::read(data("kvcache_traffic.pcap")).unwrap();
    let port = capture_port(&cap);
    let r = slabtune::pcap::read_capture(&cap, port).unwrap();
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    let h = slabtune::pcap::observe(&r.events, false).hist(Target::Ours, true);
    let got = Hist::from_pairs(h.entries().iter().map(|&(s, n)| (s.div_ceil(8) * 8, n)));
    let want = slabtune::live::parse_sizes(&stat_lines(&data("kvcache_sizes_fine.txt"))).unwrap();
    assert_eq!(got, want);
}

fn write_trace(path: &Path, zstd: bool) -> Observed {
    let mut text = String::new();
    let mut want = Observed::default();
    for i in 0..2000u32 {
        let key = format!("key{}", i % 500);
        let v = 1 + (i * 37) % 3000;
        text.push_str(&format!("{i},{key},{},{v},1,set,0\n", key.len()));
        text.push_str(&format!("{i},{key},{},{v},1,get,0\n", key.len()));
    }
    // Keys 0..500: the last write of key j was i = 1500 + j.
    for j in 0..500u32 {
        let i = 1500 + j;
        want.add(
            format!("key{j}").len() as u32,
            1 + (i * 37) % 3000,
            false,
            1,
        );
    }
    text.push_str("4001,oops,not,a,row\n");
    text.push_str("4002,key1,4,10,1,frobnicate,0\n");
    let bytes = if zstd {
        zstd::encode_all(text.as_bytes(), 3).unwrap()
    } else {
        text.into_bytes()
    };
    std::fs::write(path, bytes).unwrap();
    want
}

#[test]
fn generated_traces_plain_and_zstd() {
    for z in [false, true] {
        let p = tmp(if z { "t.csv.zst" } else { "t.csv" });
        let want = write_trace(&p, z);
        let v = json(&["trace", p.to_str().unwrap(), "--classes", "6"]);
        assert_eq!(v["issues"]["count"], 2);
        assert!(v["issues"]["examples"][0]
            .as_str()
            .unwrap()
            .starts_with("line 4001:"));
        assert!(v["issues"]["examples"][1]
            .as_str()
            .unwrap()
            .starts_with("line 4002: unknown operation"));
        for (i, t) in [Target::Ours, Target::Memcached].into_iter().enumerate() {
            let h = want.hist(t, true);
            let r = &v["targets"][i];
            assert_eq!(r["items"], h.items());
            let sizes: Vec<u64> = r["chunks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            assert!(sizes.len() <= 6);
            // The reported waste is the waste of the listed classes on the expected items.
            let mut classes = sizes.clone();
            classes.extend(r["rules"]["implicit_top"].as_u64());
            let ev = evaluate(&h, &classes, 1 << 20);
            assert_eq!(
                r["configs"][0]["eval"]["waste"].as_u64().unwrap() as u128,
                ev.waste
            );
        }
        let out = slabtune(&["trace", p.to_str().unwrap(), "--strict"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("line 4001"));
    }
}

#[test]
fn truncated_zstd_trace_keeps_what_was_read() {
    let p = tmp("cut.csv.zst");
    write_trace(&p, true);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let v = json(&["trace", p.to_str().unwrap(), "--target", "memcached"]);
    let ex = v["issues"]["examples"].as_array().unwrap();
    assert!(
        ex.iter()
            .any(|e| e.as_str().unwrap().contains("input ends early")),
        "{ex:?}"
    );
    let out = slabtune(&["trace", p.to_str().unwrap(), "--strict"]);
    assert!(!out.status.success());
}

#[test]
fn per_request_counts_every_write() {
    let p = tmp("pr.csv");
    write_trace(&p, false);
    let v = json(&[
        "trace",
        p.to_str().unwrap(),
        "--per-request",
        "--target",
        "memcached",
    ]);
    assert_eq!(v["targets"][0]["items"], 2000);
}

#[test]
fn plot_is_an_svg_with_the_class_lines() {
    let p = tmp("plot.csv");
    write_trace(&p, false);
    let svg = tmp("plot.svg");
    let v = json(&[
        "trace",
        p.to_str().unwrap(),
        "--target",
        "memcached",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let doc = std::fs::read_to_string(&svg).unwrap();
    assert!(doc.starts_with("<svg") && doc.trim_end().ends_with("</svg>"));
    let n = v["targets"][0]["configs"][0]["eval"]["classes"]
        .as_array()
        .unwrap()
        .len();
    // One line per recommended class whose boundary lies on the plot (the 524288 class
    // may lie beyond it).
    let lines = doc.matches("<title>chunk ").count();
    assert!(lines >= n - 1, "{lines} lines for {n} classes");
}

// ---- live memcached ----

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_memcached(extra: &[&str]) -> Option<(Proc, u16)> {
    let port = free_port();
    let child = Command::new("/usr/bin/memcached")
        .args([
            "-u",
            "nobody",
            "-l",
            "127.0.0.1",
            "-U",
            "0",
            "-p",
            &port.to_string(),
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = p.0.try_wait() {
            let mut err = String::new();
            let _ = p.0.stderr.take().unwrap().read_to_string(&mut err);
            panic!("memcached {extra:?} exited: {err}");
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((p, port));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("memcached did not start");
}

fn store(port: u16, items: &[(String, usize, u32)]) {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for (k, v, f) in items {
        w.write_all(format!("set {k} {f} 0 {v}\r\n{}\r\n", "x".repeat(*v)).as_bytes())
            .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "STORED\r\n");
    }
}

#[test]
fn live_memcached_recommendation_is_accepted_by_memcached() {
    if !Path::new("/usr/bin/memcached").exists() {
        eprintln!("skipped: /usr/bin/memcached is not installed (apt-get install memcached)");
        return;
    }
    let items: Vec<(String, usize, u32)> = (0..400)
        .map(|i| (format!("key:{i:05}"), 20 + (i * i) % 700, (i % 2) as u32))
        .collect();
    let (_mc, port) = start_memcached(&["-o", "track_sizes"]).unwrap();
    store(port, &items);
    let v = json(&[
        "live",
        &format!("127.0.0.1:{port}"),
        "--target",
        "memcached",
        "--classes",
        "10",
    ]);
    assert!(v["source"].as_str().unwrap().contains("memcached"));
    let t = &v["targets"][0];
    assert_eq!(t["items"], 400);
    let names: Vec<&str> = t["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"current"), "{names:?}");
    let sizes: Vec<u64> = t["slab_sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert!(!sizes.is_empty() && sizes.len() <= 10);
    let list = sizes
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("-");

    // memcached takes the list, and stores the same items in those classes only.
    let (_mc2, port2) = start_memcached(&["-o", &format!("slab_sizes={list}")]).unwrap();
    store(port2, &items);
    let mut c = slabtune::live::StatsClient::connect(&format!("127.0.0.1:{port2}")).unwrap();
    let used = slabtune::live::parse_slab_chunks(&c.stats("stats slabs").unwrap().unwrap());
    let chunks: Vec<u64> = t["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    let mut allowed = chunks.clone();
    allowed.push(MEMCACHED_CHUNK_MAX);
    assert!(
        used.iter().all(|u| allowed.contains(u)),
        "{used:?} not in {allowed:?}"
    );
    // Exactly the classes the chunk list predicts for these items are in use, so memcached
    // made the chunks slabtune said it would of the written sizes.
    let mut o = Observed::default();
    for (k, v, f) in &items {
        o.add(k.len() as u32, *v as u32, *f != 0, 1);
    }
    let ev = evaluate(&o.hist(Target::Memcached, true), &allowed, 1 << 20);
    let predicted: Vec<u64> = ev
        .classes
        .iter()
        .filter(|c| c.items > 0)
        .map(|c| c.chunk)
        .collect();
    assert_eq!(used, predicted);
    // The `-n`/`-f` flags are accepted too.
    let nf = &t["nf"];
    let (_mc3, _) = start_memcached(&[
        "-n",
        &nf["n"].to_string(),
        "-f",
        &format!("{:.2}", nf["factor"].as_f64().unwrap()),
    ])
    .unwrap();
}
