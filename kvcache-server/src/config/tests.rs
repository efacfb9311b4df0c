//! The command line, flag by flag.

use super::*;

fn run(args: &[&str]) -> Config {
    match parse(args) {
        Ok(Action::Run(c)) => c,
        other => panic!("{args:?}: {other:?}"),
    }
}

#[test]
fn defaults() {
    let c = run(&[]);
    assert_eq!(
        (c.port, c.listen.as_str(), c.memory_limit, c.threads),
        (11211, "127.0.0.1", 64 << 20, 4)
    );
    assert!(c.cas_enabled && c.evictions);
    assert!(!c.shutdown_enabled);
    assert_eq!(c.auth_file, None);
    assert_eq!(
        (c.idle_timeout, c.write_timeout),
        (0, DEFAULT_WRITE_TIMEOUT)
    );
}

#[test]
fn security_and_timeout_flags() {
    let c = run(&[
        "-A",
        "-Y",
        "/etc/kvcache.auth",
        "-o",
        "idle_timeout=5,write_timeout=0",
    ]);
    assert!(c.shutdown_enabled);
    assert_eq!(c.auth_file.as_deref(), Some("/etc/kvcache.auth"));
    assert_eq!((c.idle_timeout, c.write_timeout), (5, 0));
    let c = run(&[
        "--enable-shutdown",
        "--auth-file=/a",
        "-o",
        "write_timeout=7",
    ]);
    assert!(c.shutdown_enabled);
    assert_eq!(c.auth_file.as_deref(), Some("/a"));
    assert_eq!((c.idle_timeout, c.write_timeout), (0, 7));
}

#[test]
fn slab_move_options_as_memcached() {
    let c = run(&[]);
    assert!(c.slab_reassign);
    assert_eq!(c.slab_automove, 1);
    let c = run(&["-o", "no_slab_reassign,slab_automove=2"]);
    assert!(!c.slab_reassign);
    assert_eq!(c.slab_automove, 2);
    let sc = c.store_config().unwrap();
    assert!(!sc.slab_reassign);
    assert_eq!(sc.slab_automove, 2);
    // No value means 1; memcached's atoi reads junk as 0.
    assert_eq!(
        run(&["-o", "slab_automove=0,slab_automove"]).slab_automove,
        1
    );
    assert_eq!(run(&["-o", "slab_automove=x"]).slab_automove, 0);
    assert!(run(&["-o", "no_slab_reassign,slab_reassign"]).slab_reassign);
    assert_eq!(
        parse(["-o", "slab_automove=3"]).unwrap_err().0,
        "slab_automove must be between 0 and 2"
    );
    assert!(parse(["-o", "slab_automove=-1"]).is_err());
}

#[test]
fn memcached_flags() {
    let c = run(&[
        "-p",
        "2000",
        "-l127.0.0.2",
        "-m",
        "1024",
        "-c",
        "10",
        "-t1",
        "-f",
        "1.1",
        "-n",
        "32",
        "-I",
        "2m",
        "-C",
        "-U",
        "0",
        "-vv",
        "-o",
        "slab_sizes=64-128-256,slab_chunk_max=1024,reap_interval=5",
        "-M",
    ]);
    assert_eq!(c.port, 2000);
    assert_eq!(c.listen, "127.0.0.2");
    assert_eq!(c.memory_limit, 1024 << 20);
    assert_eq!(
        (c.max_conns, c.threads, c.factor, c.min_space),
        (10, 1, Some(1.1), Some(32))
    );
    assert_eq!(c.item_size_max, 2 << 20);
    assert!(!c.cas_enabled && !c.evictions);
    assert_eq!(c.verbose, 2);
    assert_eq!(c.slab_sizes, Some(vec![64, 128, 256]));
    assert_eq!(c.slab_chunk_max, 1 << 20);
    assert_eq!(c.reap_interval, 5);
    let c = run(&[
        "--port=3000",
        "--threads",
        "2",
        "--max-item-size=512k",
        "-v",
        "-v",
    ]);
    assert_eq!(
        (c.port, c.threads, c.item_size_max, c.verbose),
        (3000, 2, 512 << 10, 2)
    );
}

#[test]
fn bad_command_lines() {
    for args in [
        &["-x"][..],
        &["-p"],
        &["-p", "abc"],
        &["-p", "70000"],
        &["-t", "0"],
        &["-f", "1"],
        &["-I", "10"],
        &["-I", "2g"],
        &["-U", "11211"],
        &["-o", "slab_sizes=64-60"],
        &["-o", "slab_sizes=100-104"],
        &["-o", "bogus"],
        &["-o", "reap_interval=0"],
        &["-o", "reap_interval=x"],
        &["-o", "reap_interval=3601"],
        &["--nope"],
        &["stray"],
        &["-m", "1", "-I", "1m"],
    ] {
        assert!(parse(args).is_err(), "{args:?}");
    }
    assert_eq!(parse(["-h"]), Ok(Action::Help));
    for args in [
        &["-o", "idle_timeout=x"][..],
        &["-o", "idle_timeout=-1"],
        &["-o", "write_timeout"],
        &["-Y"],
        &["-A", "1"],
    ] {
        assert!(parse(args).is_err(), "{args:?}");
    }
    assert_eq!(parse(["-V"]), Ok(Action::Version));
}

#[test]
fn memory_file_flag() {
    assert_eq!(run(&[]).memory_file, None);
    for args in [
        &["-e", "/dev/shm/m"][..],
        &["-e/dev/shm/m"],
        &["--memory-file=/dev/shm/m"],
        &["--memory-file", "/dev/shm/m"],
    ] {
        assert_eq!(
            run(args).memory_file.as_deref(),
            Some("/dev/shm/m"),
            "{args:?}"
        );
    }
    assert!(parse(["-e"]).is_err());
}
