//! The `-h` text.

use std::fmt::Write as _;

/// The usage text printed by `-h`.
pub fn usage() -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "kvcache-server {} (memcached 1.6.18 compatible)",
        env!("CARGO_PKG_VERSION")
    );
    for (flag, text) in [
        ("-p, --port=<num>", "TCP port to listen on (default: 11211)"),
        (
            "-U, --udp-port=<num>",
            "UDP port on the -l address (default: 0, off)",
        ),
        (
            "-s, --unix-socket=<file>",
            "UNIX socket to listen on (disables network support)",
        ),
        (
            "-a, --unix-mask=<mask>",
            "access mask for UNIX socket, in octal (default: 700)",
        ),
        (
            "-Z, --enable-ssl",
            "enable TLS/SSL (-o ssl_chain_cert=,ssl_key=...)",
        ),
        (
            "-S, --enable-sasl",
            "SASL PLAIN authentication on the binary protocol",
        ),
        ("", "(users from the file named by MEMCACHED_SASL_PWDB)"),
        (
            "-l, --listen=<addr>",
            "interface to listen on (default: 127.0.0.1, loopback only)",
        ),
        (
            "-A, --enable-shutdown",
            "enable the ascii \"shutdown\" command (default: off)",
        ),
        (
            "-Y, --auth-file=<file>",
            "ascii authentication against user:password lines; a client",
        ),
        (
            "",
            "first sends \"set <any> 0 0 <n>\\r\\n<user> <password>\\r\\n\"",
        ),
        (
            "-e, --memory-file=<file>",
            "item memory in this file (tmpfs): SIGUSR1 saves it, the same",
        ),
        ("", "command line restarts warm"),
        (
            "-m, --memory-limit=<num>",
            "item memory in megabytes (default: 64)",
        ),
        (
            "-M, --disable-evictions",
            "return error on memory exhausted instead of evicting",
        ),
        (
            "-c, --conn-limit=<num>",
            "max simultaneous connections (default: 1024)",
        ),
        (
            "-t, --threads=<num>",
            "number of worker threads (default: 4)",
        ),
        (
            "-f, --slab-growth-factor=<num>",
            "chunk size growth factor (geometric classes)",
        ),
        (
            "-n, --slab-min-size=<bytes>",
            "min space used for key+value+flags (geometric classes)",
        ),
        (
            "-I, --max-item-size=<num>",
            "max item size, k/m suffixes (default: 1m, min: 1k, max: 1024m)",
        ),
        ("-C, --disable-cas", "disable use of CAS"),
        (
            "-b, --listen-backlog=<num>",
            "listen backlog (default: 1024)",
        ),
        (
            "-R, --max-reqs-per-event=<num>",
            "requests per connection per event (default: 20)",
        ),
        ("-F, --disable-flush-all", "disable flush_all"),
        (
            "-X, --disable-dumping",
            "disable lru_crawler metadump (and mgdump)",
        ),
        (
            "-W, --disable-watch",
            "disable watch commands (live logging)",
        ),
        (
            "-D <char>",
            "prefix delimiter of stats detail (default ':'); turns it on",
        ),
        (
            "-B, --protocol=<name>",
            "ascii, binary or auto (default: auto-negotiate)",
        ),
        ("-d, --daemon", "run as a daemon (exits 0 once listening)"),
        (
            "-P, --pidfile=<file>",
            "write the PID to <file> once listening; removed at exit",
        ),
        (
            "-u, --user=<user>",
            "assume the identity of <user> (only when run as root)",
        ),
        ("-k, --lock-memory", "lock down all paged memory (mlockall)"),
        ("-r, --enable-coredumps", "maximize the core file limit"),
        (
            "-L, --enable-largepages",
            "advise slab memory for transparent huge pages",
        ),
        (
            "-o, --extended=<list>",
            "comma separated: slab_sizes=a-b-c, slab_chunk_max=<kb>,",
        ),
        ("", "slab_automove=<0-2>, slab_reassign, no_slab_reassign,"),
        (
            "",
            "idle_timeout=<s> (close a connection idle between commands; default 0: never),",
        ),
        (
            "",
            "write_timeout=<s> (close a connection not reading its replies; default 30, 0: never),",
        ),
        (
            "",
            "reap_interval=<s> (memory back to the OS every <s> seconds, default 1),",
        ),
        (
            "",
            "metrics_port=<port> (serve GET /metrics, Prometheus text; default off),",
        ),
        (
            "",
            "metrics_listen=<addr> (its address; default 127.0.0.1),",
        ),
        (
            "",
            "watcher_logbuf_size=<kb> (default 256), worker_logbuf_size=<kb> (default 64),",
        ),
        (
            "",
            "memcached's lru_crawler_sleep, lru_crawler_tocrawl, hot_lru_pct, warm_lru_pct,",
        ),
        (
            "",
            "hot_max_factor, warm_max_factor, temporary_ttl and other LRU tunables are",
        ),
        ("", "checked and have no effect (one CLOCK per class)"),
        (
            "-v, --verbose",
            "verbose; -vv also prints the size class table",
        ),
        ("-V, --version", "print version and exit"),
        ("-i, --license", "print the license and exit"),
        ("-h, --help", "print this help and exit"),
    ] {
        let _ = writeln!(s, "{flag:<34}{text}");
    }
    s
}
