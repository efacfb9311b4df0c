//! The binary's flags, signals and `stats` output.

use std::time::Duration;

use integration_tests::{run_server_to_exit, ServerProc};

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

#[test]
fn bad_flags_exit_2() {
    for args in [
        &["-x"][..],
        &["-p", "notaport"],
        &["-t", "0"],
        &["-I", "10"],
        &["-U", "notaport"],
        &["-f", "0.5"],
        &["-o", "slab_sizes=100-104"],
        &["-o", "unknown_option"],
        &["extra"],
    ] {
        let (code, _, err) = run_server_to_exit(args, Duration::from_secs(10));
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(!err.is_empty(), "{args:?}: no message");
    }
}

#[test]
fn help_exits_0() {
    let (code, out, _) = run_server_to_exit(&["-h"], Duration::from_secs(10));
    assert_eq!(code, Some(0));
    for flag in [
        "-p", "-l", "-m", "-c", "-t", "-f", "-n", "-I", "-C", "-o", "-v",
    ] {
        assert!(out.contains(flag), "help lacks {flag}: {out}");
    }
}

#[test]
fn very_verbose_prints_class_table() {
    let (code, _, err) = run_server_to_exit(
        &[
            "-vv",
            "-l",
            "127.0.0.1",
            "-p",
            "0",
            "-t",
            "1",
            "-o",
            "slab_sizes=64-128-256",
        ],
        Duration::from_secs(3),
    );
    assert_eq!(code, None, "the server should still be running when killed");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("slab class"))
        .collect();
    assert!(lines.len() >= 3, "{err}");
    assert!(
        lines[0].starts_with("slab class   1: chunk size        64 perslab "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("slab class   2: chunk size       128 perslab "),
        "{}",
        lines[1]
    );
}

#[test]
fn sigterm_and_sigint_exit_0_after_finishing() {
    for sig in [SIGTERM, SIGINT] {
        let s = ServerProc::start(&["-t", "2"]);
        let mut c = s.connect();
        c.roundtrip(
            b"set a 0 0 1\r\nx\r\nget a\r\n",
            b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        );
        let addr = s.addr;
        let status = s.signal_and_wait(sig);
        assert_eq!(status.code(), Some(0), "signal {sig}");
        c.expect_closed();
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "still accepting after exit"
        );
    }
}

fn stat<'a>(stats: &'a [(String, String)], name: &str) -> &'a str {
    stats
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no stat {name}: {stats:?}"))
}

#[test]
fn stats_general_and_settings() {
    let s = ServerProc::start(&["-t", "3", "-m", "100", "-c", "500", "-I", "2m", "-C"]);
    let mut c = s.connect();
    c.roundtrip(
        b"set a 0 0 1\r\nx\r\nset b 0 0 2\r\nyy\r\n",
        b"STORED\r\nSTORED\r\n",
    );
    c.roundtrip(
        b"get a b c\r\n",
        b"VALUE a 0 1\r\nx\r\nVALUE b 0 2\r\nyy\r\nEND\r\n",
    );
    c.roundtrip(b"delete a\r\ndelete zz\r\n", b"DELETED\r\nNOT_FOUND\r\n");
    let st = c.stats("");
    assert!(stat(&st, "pid").parse::<u32>().unwrap() > 0);
    assert_eq!(stat(&st, "cmd_get"), "3");
    assert_eq!(stat(&st, "get_hits"), "2");
    assert_eq!(stat(&st, "get_misses"), "1");
    assert_eq!(stat(&st, "cmd_set"), "2");
    assert_eq!(stat(&st, "delete_hits"), "1");
    assert_eq!(stat(&st, "delete_misses"), "1");
    assert_eq!(stat(&st, "curr_items"), "1");
    assert_eq!(stat(&st, "total_items"), "2");
    assert_eq!(stat(&st, "threads"), "3");
    assert_eq!(stat(&st, "max_connections"), "500");
    assert_eq!(stat(&st, "curr_connections"), "1");
    assert_eq!(stat(&st, "limit_maxbytes"), (100u64 << 20).to_string());
    assert!(stat(&st, "bytes_read").parse::<u64>().unwrap() > 0);
    let set = c.stats("settings");
    assert_eq!(stat(&set, "maxbytes"), (100u64 << 20).to_string());
    assert_eq!(stat(&set, "maxconns"), "500");
    assert_eq!(stat(&set, "tcpport"), s.addr.port().to_string());
    assert_eq!(stat(&set, "num_threads"), "3");
    assert_eq!(stat(&set, "item_size_max"), (2u64 << 20).to_string());
    assert_eq!(stat(&set, "cas_enabled"), "no");
    assert_eq!(stat(&set, "evictions"), "on");
    // stats reset zeroes the counters but not the items.
    c.roundtrip(b"stats reset\r\n", b"RESET\r\n");
    let st = c.stats("");
    assert_eq!(stat(&st, "cmd_get"), "0");
    assert_eq!(stat(&st, "get_hits"), "0");
    assert_eq!(stat(&st, "curr_items"), "1");
}

#[test]
fn stats_items_slabs_sizes_conns() {
    let s = ServerProc::start(&["-t", "1"]);
    let mut c = s.connect();
    for i in 0..10 {
        c.roundtrip(
            format!("set key{i:02} 0 0 32\r\n{}\r\n", "v".repeat(32)).as_bytes(),
            b"STORED\r\n",
        );
    }
    c.roundtrip(
        format!("set large 0 0 1000\r\n{}\r\n", "w".repeat(1000)).as_bytes(),
        b"STORED\r\n",
    );
    let items = c.stats("items");
    let numbers: Vec<u64> = items
        .iter()
        .filter(|(k, _)| k.ends_with(":number"))
        .map(|(_, v)| v.parse().unwrap())
        .collect();
    assert_eq!(numbers.iter().sum::<u64>(), 11, "{items:?}");
    assert_eq!(numbers.len(), 2, "two classes hold items: {items:?}");
    let slabs = c.stats("slabs");
    let used: u64 = slabs
        .iter()
        .filter(|(k, _)| k.ends_with(":used_chunks"))
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum();
    assert!(used >= 11, "{slabs:?}");
    assert_eq!(stat(&slabs, "active_slabs"), "2");
    // Stored size of a 5-byte key and a 32-byte value with CAS, no flags.
    let size = kvcache_server::item::stored_size(5, 32, 0, true);
    let fine = c.stats("sizes_fine");
    let bucket8 = size.div_ceil(8) * 8;
    assert!(
        fine.contains(&(bucket8.to_string(), "10".to_string())),
        "{fine:?}"
    );
    let coarse = c.stats("sizes");
    let bucket32 = size.div_ceil(32) * 32;
    assert!(
        coarse.contains(&(bucket32.to_string(), "10".to_string())),
        "{coarse:?}"
    );
    let total: u64 = coarse.iter().map(|(_, v)| v.parse::<u64>().unwrap()).sum();
    assert_eq!(total, 11);
    let conns = c.stats("conns");
    let local = c.stream.local_addr().unwrap();
    assert!(
        conns
            .iter()
            .any(|(k, v)| k.ends_with(":addr") && v == &format!("tcp:{local}")),
        "{conns:?}"
    );
    assert!(conns
        .iter()
        .any(|(k, v)| k.ends_with(":state") && v == "conn_listening"));
}
