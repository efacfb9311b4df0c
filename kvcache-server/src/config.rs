//! Command-line configuration: memcached's flags with memcached's meaning.
//!
//! Parsing follows `getopt_long` as memcached uses it: short options take their value
//! attached (`-p11211`) or as the next argument (`-p 11211`), flags group (`-vv`, `-vC`),
//! long options take `--name=value` or `--name value`. `-o` takes a comma-separated list
//! of `name[=value]` suboptions.

use std::fmt::Write as _;

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Run the server.
    Run(Config),
    /// Print the usage text and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
}

/// A bad command line: the message says what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The server's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `-p`: TCP port (0: an ephemeral port, printed at start when `-v`).
    pub port: u16,
    /// `-l`: the address to listen on.
    pub listen: String,
    /// `-m`: item memory in bytes (given in megabytes).
    pub memory_limit: usize,
    /// `-c`: most simultaneous connections.
    pub max_conns: usize,
    /// `-t`: worker threads.
    pub threads: usize,
    /// `-f`: growth factor of the size classes, if given.
    pub factor: Option<f64>,
    /// `-n`: minimum space for key + value + flags, if given.
    pub min_space: Option<usize>,
    /// `-I`: the largest item, in bytes.
    pub item_size_max: usize,
    /// `!-C`: CAS values are kept.
    pub cas_enabled: bool,
    /// `!-M`: evict when memory is full (else answer out of memory).
    pub evictions: bool,
    /// `-o slab_sizes=a-b-c`: an explicit list of chunk sizes.
    pub slab_sizes: Option<Vec<usize>>,
    /// `-o slab_chunk_max=N` (kilobytes in memcached): reported by `stats settings`.
    pub slab_chunk_max: usize,
    /// `-v` count.
    pub verbose: u8,
    /// `-b`: listen backlog.
    pub backlog: u32,
    /// `-R`: most requests handled per connection per event before yielding.
    pub reqs_per_event: usize,
    /// `-F`: `flush_all` disabled.
    pub flush_enabled: bool,
    /// `-o slab_reassign` / `-o no_slab_reassign`: slabs may move between classes.
    pub slab_reassign: bool,
    /// `-o slab_automove=N`: the automove mode, 0 to 2.
    pub slab_automove: u8,
    /// `-A`: the `shutdown` command stops the server.
    pub shutdown_enabled: bool,
    /// `-Y`: the auth file (`user:password` lines); connections must authenticate.
    pub auth_file: Option<String>,
    /// `-o idle_timeout=N`: close a connection that has waited more than N seconds for
    /// its next command (memcached's option; 0: never).
    pub idle_timeout: u32,
    /// `-o write_timeout=N`: close a connection whose replies have not moved for N
    /// seconds because it does not read them (0: never).
    pub write_timeout: u32,
    /// `-o reap_interval=<s>`: seconds between maintenance steps (crawl an eighth of the
    /// index, return idle memory to the OS). Default 1.
    pub reap_interval: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 11211,
            listen: "127.0.0.1".into(),
            memory_limit: 64 << 20,
            max_conns: 1024,
            threads: 4,
            factor: None,
            min_space: None,
            item_size_max: 1 << 20,
            cas_enabled: true,
            evictions: true,
            slab_sizes: None,
            slab_chunk_max: 512 << 10,
            verbose: 0,
            backlog: 1024,
            reqs_per_event: 20,
            flush_enabled: true,
            slab_reassign: true,
            slab_automove: 1,
            shutdown_enabled: false,
            auth_file: None,
            idle_timeout: 0,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            reap_interval: 1,
        }
    }
}

/// The default of `-o write_timeout` (seconds).
pub const DEFAULT_WRITE_TIMEOUT: u32 = 30;

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
            "UDP port; only 0 (off, the default) is supported",
        ),
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
            "reap_interval=<s> (memory back to the OS every <s> seconds, default 1)",
        ),
        (
            "-v, --verbose",
            "verbose; -vv also prints the size class table",
        ),
        ("-u, --user=<user>", "accepted for compatibility; ignored"),
        ("-V, --version", "print version and exit"),
        ("-h, --help", "print this help and exit"),
    ] {
        let _ = writeln!(s, "{flag:<34}{text}");
    }
    s
}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, ConfigError> {
    v.trim()
        .parse()
        .or_else(|_| err(format!("invalid value for {flag}: '{v}'")))
}

/// A size with an optional `k`/`m`/`g` suffix, in bytes.
fn size_with_suffix(flag: &str, v: &str) -> Result<usize, ConfigError> {
    let v = v.trim();
    let (digits, mult) = match v.as_bytes().last() {
        Some(b'k' | b'K') => (&v[..v.len() - 1], 1usize << 10),
        Some(b'm' | b'M') => (&v[..v.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    let n: usize = num(flag, digits)?;
    n.checked_mul(mult)
        .map_or_else(|| err(format!("value for {flag} is too large: '{v}'")), Ok)
}

/// The options: (short, long, takes a value).
const OPTS: &[(char, &str, bool)] = &[
    ('p', "port", true),
    ('U', "udp-port", true),
    ('l', "listen", true),
    ('m', "memory-limit", true),
    ('M', "disable-evictions", false),
    ('c', "conn-limit", true),
    ('t', "threads", true),
    ('f', "slab-growth-factor", true),
    ('n', "slab-min-size", true),
    ('I', "max-item-size", true),
    ('C', "disable-cas", false),
    ('b', "listen-backlog", true),
    ('R', "max-reqs-per-event", true),
    ('F', "disable-flush-all", false),
    ('A', "enable-shutdown", false),
    ('Y', "auth-file", true),
    ('o', "extended", true),
    ('v', "verbose", false),
    ('u', "user", true),
    ('V', "version", false),
    ('h', "help", false),
];

/// Parses the arguments (without the program name).
pub fn parse<I, S>(args: I) -> Result<Action, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let args: Vec<String> = args.into_iter().map(|s| s.as_ref().to_owned()).collect();
    let mut opts: Vec<(char, Option<String>)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if let Some(long) = a.strip_prefix("--") {
            let (name, val) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let Some(&(c, _, takes)) = OPTS.iter().find(|o| o.1 == name) else {
                return err(format!("unrecognized option '--{name}'"));
            };
            let val = match (takes, val) {
                (true, Some(v)) => Some(v),
                (true, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.clone())
                    }
                    None => return err(format!("option '--{name}' requires an argument")),
                },
                (false, Some(_)) => {
                    return err(format!("option '--{name}' doesn't allow an argument"))
                }
                (false, None) => None,
            };
            opts.push((c, val));
        } else if let Some(shorts) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            let chars: Vec<char> = shorts.chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let Some(&(_, _, takes)) = OPTS.iter().find(|o| o.0 == c) else {
                    return err(format!("invalid option -- '{c}'"));
                };
                if takes {
                    let rest: String = chars[j..].iter().collect();
                    let val = if !rest.is_empty() {
                        rest
                    } else if let Some(v) = args.get(i) {
                        i += 1;
                        v.clone()
                    } else {
                        return err(format!("option requires an argument -- '{c}'"));
                    };
                    opts.push((c, Some(val)));
                    break;
                }
                opts.push((c, None));
            }
        } else {
            return err(format!("unexpected argument '{a}'"));
        }
    }

    let mut cfg = Config::default();
    let mut memory_mb: usize = 64;
    for (c, val) in opts {
        let v = val.as_deref().unwrap_or("");
        match c {
            'h' => return Ok(Action::Help),
            'V' => return Ok(Action::Version),
            'p' => cfg.port = num("-p", v)?,
            'U' => {
                let udp: u16 = num("-U", v)?;
                if udp != 0 {
                    return err("UDP is not supported: only -U 0 is accepted");
                }
            }
            'l' => cfg.listen = v.to_owned(),
            'm' => {
                let bytes = size_with_suffix("-m", v)?;
                // A bare number is megabytes, as in memcached.
                memory_mb = if v.trim().bytes().all(|b| b.is_ascii_digit()) {
                    bytes
                } else {
                    bytes >> 20
                };
                if memory_mb == 0 {
                    return err("-m must be at least 1 (megabyte)");
                }
            }
            'M' => cfg.evictions = false,
            'c' => {
                cfg.max_conns = num("-c", v)?;
                if cfg.max_conns == 0 {
                    return err("-c must be at least 1");
                }
            }
            't' => {
                cfg.threads = num("-t", v)?;
                if cfg.threads == 0 || cfg.threads > 256 {
                    return err("Number of threads must be greater than 0 and at most 256");
                }
            }
            'f' => {
                let f: f64 = num("-f", v)?;
                if !(f.is_finite() && f > 1.0) {
                    return err("Factor must be greater than 1");
                }
                cfg.factor = Some(f);
            }
            'n' => {
                let n: usize = num("-n", v)?;
                if n == 0 {
                    return err("Chunk size must be greater than 0");
                }
                cfg.min_space = Some(n);
            }
            'I' => {
                let size = size_with_suffix("-I", v)?;
                if size < 1024 {
                    return err("Item max size cannot be less than 1024 bytes.");
                }
                if size > 1 << 30 {
                    return err("Cannot set item size limit higher than 1 gigabyte.");
                }
                cfg.item_size_max = size;
            }
            'C' => cfg.cas_enabled = false,
            'b' => cfg.backlog = num("-b", v)?,
            'R' => {
                cfg.reqs_per_event = num("-R", v)?;
                if cfg.reqs_per_event == 0 {
                    return err("Number of requests per event must be greater than 0");
                }
            }
            'F' => cfg.flush_enabled = false,
            'A' => cfg.shutdown_enabled = true,
            'Y' => cfg.auth_file = Some(v.to_owned()),
            'o' => parse_extended(&mut cfg, v)?,
            'v' => cfg.verbose = cfg.verbose.saturating_add(1),
            'u' => {}
            _ => unreachable!("every option in OPTS is handled"),
        }
    }
    cfg.memory_limit = memory_mb
        .checked_mul(1 << 20)
        .map_or_else(|| err("-m is too large"), Ok)?;
    if cfg.item_size_max > cfg.memory_limit / 2 {
        return err("Cannot set item size limit higher than 1/2 of memory max.");
    }
    Ok(Action::Run(cfg))
}

/// C's `atoi`: leading whitespace, a sign, digits; whatever follows is ignored, and no
/// digits read as 0.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if neg {
        -n
    } else {
        n
    }
}

fn parse_extended(cfg: &mut Config, list: &str) -> Result<(), ConfigError> {
    for sub in list.split(',').filter(|s| !s.is_empty()) {
        let (name, val) = match sub.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (sub, None),
        };
        match (name, val) {
            ("slab_sizes", Some(v)) => {
                let mut sizes = Vec::new();
                // Our chunk sizes (what `slabtune` recommends from `stats sizes_fine`):
                // each rounded up to 8 bytes, at least 16, strictly ascending.
                for s in v.split('-') {
                    let n: usize = num("slab_sizes", s)?;
                    let n8 = n.div_ceil(8) * 8;
                    if n8 < 16 {
                        return err(format!("slab_sizes: size {n} is below the minimum of 16"));
                    }
                    if let Some(&prev) = sizes.last() {
                        if n8 <= prev {
                            return err(format!(
                                "slab_sizes: size {n} is not above the previous size ({prev})"
                            ));
                        }
                    }
                    sizes.push(n8);
                }
                if sizes.is_empty() || sizes.len() > 1000 {
                    return err("slab_sizes: between 1 and 1000 sizes are needed");
                }
                cfg.slab_sizes = Some(sizes);
            }
            ("reap_interval", Some(v)) => {
                let secs: u32 = num("reap_interval", v)?;
                if secs == 0 || secs > 3600 {
                    return err("reap_interval must be between 1 and 3600 seconds");
                }
                cfg.reap_interval = secs;
            }
            ("slab_chunk_max", Some(v)) => {
                let kb: usize = num("slab_chunk_max", v)?;
                if kb == 0 {
                    return err("slab_chunk_max must be greater than 0");
                }
                cfg.slab_chunk_max = kb << 10;
            }
            ("slab_reassign", _) => cfg.slab_reassign = true,
            ("no_slab_reassign", _) => cfg.slab_reassign = false,
            ("slab_automove", v) => {
                // memcached: no value means 1, else `atoi`, which reads 0 from junk.
                let n = v.map_or(1, atoi);
                if !(0..=2).contains(&n) {
                    return err("slab_automove must be between 0 and 2");
                }
                cfg.slab_automove = n as u8;
            }
            ("idle_timeout", Some(v)) => cfg.idle_timeout = num("idle_timeout", v)?,
            ("write_timeout", Some(v)) => cfg.write_timeout = num("write_timeout", v)?,
            // memcached tunables we accept and have no use for.
            (
                "maxconns_fast" | "no_maxconns_fast" | "hashpower" | "lru_crawler"
                | "no_lru_crawler" | "lru_maintainer" | "no_lru_maintainer" | "track_sizes"
                | "modern" | "hash_algorithm",
                _,
            ) => {}
            _ => return err(format!("Illegal suboption \"{sub}\"")),
        }
    }
    Ok(())
}

impl Config {
    /// The store's configuration: memory, item limit, CAS, evictions, and the size
    /// classes (ours by default; memcached-style geometric ones with `-f`/`-n`; an
    /// explicit list with `-o slab_sizes`, to which a class of half a slab is appended as
    /// memcached appends its `slab_chunk_max`).
    pub fn store_config(&self) -> Result<crate::store::StoreConfig, ConfigError> {
        use crate::store::{default_classes, StoreConfig};
        use slab_core::engine::size_class::SizeClasses;
        let mut sc = StoreConfig::new(self.memory_limit);
        sc.item_size_max = self.item_size_max;
        sc.cas_enabled = self.cas_enabled;
        sc.evictions = self.evictions;
        sc.slab_reassign = self.slab_reassign;
        sc.slab_automove = self.slab_automove;
        let slab_size = sc.classes.slab_size();
        sc.classes = if let Some(sizes) = &self.slab_sizes {
            let largest = sizes.iter().copied().max().unwrap_or(0);
            let slab = slab_size.max((largest * 2).next_power_of_two());
            let mut list = sizes.clone();
            if largest < slab / 2 {
                list.push(slab / 2);
            }
            SizeClasses::from_list(&list, 8, slab)
                .map_err(|e| ConfigError(format!("slab_sizes: {e}")))?
        } else if self.factor.is_some() || self.min_space.is_some() {
            let header = crate::item::stored_size(0, 0, 0, self.cas_enabled);
            let min_chunk = (header + self.min_space.unwrap_or(48)).div_ceil(8) * 8;
            let factor = self.factor.unwrap_or(1.25);
            SizeClasses::geometric(min_chunk, factor, slab_size / 2, 8, slab_size)
                .map_err(|e| ConfigError(format!("size classes: {e}")))?
        } else {
            default_classes(slab_size, self.item_size_max)
        };
        Ok(sc)
    }
}

#[cfg(test)]
mod tests {
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
}
