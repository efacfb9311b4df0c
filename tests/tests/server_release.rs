//! Memory goes back to the OS: after `flush_all` the maintenance step unmaps the emptied
//! slabs (the `slab_*` release counters move, `mapped_bytes` falls to 0) and the
//! process's RSS falls back toward what it was before the load.

use std::time::{Duration, Instant};

use integration_tests::{Client, ServerProc};

fn stats(c: &mut Client) -> Vec<(String, String)> {
    c.stats("")
}

fn stat(st: &[(String, String)], name: &str) -> u64 {
    st.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or_else(|| panic!("no stat {name}"))
}

/// Resident set size in KiB, from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// Stores `n` items of `size`-byte values, pipelined, then waits for the last reply.
fn load(c: &mut Client, n: usize, size: usize) {
    let value = "v".repeat(size);
    for start in (0..n).step_by(1000) {
        let mut batch = Vec::new();
        for i in start..(start + 1000).min(n) {
            batch.extend_from_slice(format!("set key:{i:08} 0 0 {size} noreply\r\n").as_bytes());
            batch.extend_from_slice(value.as_bytes());
            batch.extend_from_slice(b"\r\n");
        }
        c.send(&batch);
    }
    c.roundtrip(b"mn\r\n", b"MN\r\n");
}

#[test]
fn flush_all_gives_memory_back() {
    let s = ServerProc::start(&["-t", "2", "-m", "256", "-o", "reap_interval=1"]);
    let mut c = s.connect();
    c.send(b"stats settings\r\n");
    let settings = c.read_until_end();
    assert!(settings.iter().any(|l| l == "STAT reap_interval 1"));
    let before = rss_kib(s.pid());
    load(&mut c, 200_000, 100);
    let loaded = stats(&mut c);
    let loaded_rss = rss_kib(s.pid());
    assert_eq!(stat(&loaded, "curr_items"), 200_000);
    assert!(stat(&loaded, "mapped_bytes") >= 200_000 * 100);
    assert!(
        loaded_rss > before + 20_000,
        "{before} KiB -> {loaded_rss} KiB"
    );
    c.roundtrip(b"flush_all\r\n", b"OK\r\n");
    // Wait (bounded) for the maintenance step after the flush.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let st = stats(&mut c);
        if stat(&st, "memory_shrinks") > 0 || Instant::now() > deadline {
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        stat(&after, "memory_shrinks"),
        1,
        "no shrink after the flush"
    );
    assert_eq!(stat(&after, "curr_items"), 0);
    assert_eq!(stat(&after, "mapped_bytes"), 0);
    assert!(stat(&after, "slab_munmap_calls") > stat(&loaded, "slab_munmap_calls"));
    assert!(
        stat(&after, "slab_released_bytes")
            >= stat(&loaded, "slab_released_bytes") + stat(&loaded, "mapped_bytes")
    );
    assert!(stat(&after, "heap_trims") > 0);
    // RSS is back near its start: at most a tenth of what the load added stays.
    let after_rss = rss_kib(s.pid());
    assert!(
        after_rss < before + (loaded_rss - before) / 10,
        "RSS {before} KiB before, {loaded_rss} KiB loaded, {after_rss} KiB after the flush"
    );
    // And the server serves on.
    c.roundtrip(b"set k 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.roundtrip(b"get k\r\n", b"VALUE k 0 1\r\nx\r\nEND\r\n");
}
