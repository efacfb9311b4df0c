//! `slabtune live` against the real `kvcache-server`: the server's `stats sizes_fine`
//! histogram matches its item layout, slabtune reads it, and the server accepts the
//! `-o slab_sizes=` list slabtune recommends and then stores the same items only in
//! those classes.
//!
//! Needs both binaries built (`cargo build -p kvcache-server -p slabtune`, or `--release`);
//! `SLABTUNE_BIN` overrides where `slabtune` is looked for.

use std::path::PathBuf;
use std::process::Command;

use integration_tests::{server_bin, Client, ServerProc};
use kvcache_server::item::stored_size;

fn slabtune_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SLABTUNE_BIN") {
        return PathBuf::from(p);
    }
    let bin = server_bin().with_file_name("slabtune");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p slabtune` first (or set SLABTUNE_BIN)",
        bin.display()
    );
    bin
}

/// 600 items: keys of 6 to 15 bytes, values of 1 to 2000 bytes (skewed small), flags on
/// every third.
fn items() -> Vec<(String, usize, u32)> {
    (0..600u64)
        .map(|i| {
            let key = format!("k{}", "x".repeat((i % 10) as usize)) + &format!("{i:04}");
            let v = 1 + ((i * i * 7919) % 2000) as usize / (1 + (i % 4) as usize * 3);
            (key, v, if i % 3 == 0 { 5 } else { 0 })
        })
        .collect()
}

fn store(c: &mut Client, items: &[(String, usize, u32)]) {
    for (k, v, f) in items {
        c.roundtrip(
            format!("set {k} {f} 0 {v}\r\n{}\r\n", "v".repeat(*v)).as_bytes(),
            b"STORED\r\n",
        );
    }
}

fn chunk_sizes(c: &mut Client) -> Vec<usize> {
    let mut v: Vec<usize> = c
        .stats("slabs")
        .into_iter()
        .filter(|(k, _)| k.ends_with(":chunk_size"))
        .map(|(_, v)| v.parse().expect("numeric chunk size"))
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn slabtune_reads_our_server_and_the_server_takes_its_list() {
    let items = items();
    let server = ServerProc::start(&[]);
    let mut c = server.connect();
    store(&mut c, &items);

    // The histogram slabtune reads: 8-byte buckets of our stored size, rounded up.
    let mut want = std::collections::BTreeMap::<usize, u64>::new();
    for (k, v, f) in &items {
        *want
            .entry(stored_size(k.len(), *v, *f, true).div_ceil(8) * 8)
            .or_default() += 1;
    }
    let got: std::collections::BTreeMap<usize, u64> = c
        .stats("sizes_fine")
        .into_iter()
        .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
        .collect();
    assert_eq!(got, want);

    let out = Command::new(slabtune_bin())
        .args(["live", &server.addr.to_string(), "--classes", "12"])
        .output()
        .expect("run slabtune");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("(kvcache-server)"), "{text}");
    assert!(text.contains("== kvcache-server (600 items"), "{text}");
    assert!(text.contains("== memcached (600 items"), "{text}");
    let current = text
        .lines()
        .find(|l| l.starts_with("current "))
        .expect("the current configuration is compared");
    assert!(current.split_whitespace().count() >= 4, "{current}");
    let list = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("kvcache-server -o slab_sizes="))
        .expect("a kvcache-server flag line")
        .to_string();
    let sizes: Vec<usize> = list.split('-').map(|s| s.parse().unwrap()).collect();
    assert!(!sizes.is_empty() && sizes.len() <= 12, "{list}");

    // The server takes the list and uses only those classes (plus the one it appends).
    let tuned = ServerProc::start(&["-o", &format!("slab_sizes={list}")]);
    let mut c2 = tuned.connect();
    store(&mut c2, &items);
    let used = chunk_sizes(&mut c2);
    let top = kvcache_server::store::DEFAULT_SLAB_SIZE / 2;
    assert!(
        used.iter().all(|u| sizes.contains(u) || *u == top),
        "classes in use {used:?} are not from {sizes:?} + {top}"
    );
    // Each item sits in the smallest recommended class that holds it, and no other class
    // is in use.
    let mut predicted: Vec<usize> = items
        .iter()
        .map(|(k, v, f)| {
            let s = stored_size(k.len(), *v, *f, true);
            sizes.iter().copied().find(|&c| c >= s).unwrap_or(top)
        })
        .collect();
    predicted.sort_unstable();
    predicted.dedup();
    assert_eq!(used, predicted);
}
