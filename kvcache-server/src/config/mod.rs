//! Command-line configuration: memcached's flags with memcached's meaning.
//!
//! Parsing follows `getopt_long` as memcached uses it: short options take their value
//! attached (`-p11211`) or as the next argument (`-p 11211`), flags group (`-vv`, `-vC`),
//! long options take `--name=value` or `--name value`. `-o` takes a comma-separated list
//! of `name[=value]` suboptions.

mod extended;
mod man;
mod operator;
mod store;
#[cfg(test)]
mod tests;
mod usage;

pub use man::man_page;
pub use operator::{Operator, WireProtocol};
pub use usage::usage;

use extended::parse_extended;

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // built once at start
pub enum Action {
    /// Run the server.
    Run(Config),
    /// Print the usage text and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
    /// Print the license and exit 0 (`-i`).
    License,
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
    /// `-X`: not given (dumps allowed).
    pub dump_enabled: bool,
    /// `-W`: not given (`watch` allowed).
    pub watch_enabled: bool,
    /// `-D <char>`: the `stats detail` prefix delimiter.
    pub prefix_delimiter: u8,
    /// `-d -P -u -k -r -L -B` and `-o metrics_port`: how the process runs (see
    /// [`Operator`]).
    pub operator: Operator,
    /// `-e <file>`: item memory is this file's pages (on tmpfs); SIGUSR1 saves for a warm
    /// restart.
    pub memory_file: Option<String>,
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
            dump_enabled: true,
            watch_enabled: true,
            prefix_delimiter: b':',
            operator: Operator::default(),
            memory_file: None,
        }
    }
}

/// The default of `-o write_timeout` (seconds).
pub const DEFAULT_WRITE_TIMEOUT: u32 = 30;

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
    ('e', "memory-file", true),
    ('o', "extended", true),
    ('v', "verbose", false),
    ('u', "user", true),
    ('d', "daemon", false),
    ('P', "pidfile", true),
    ('r', "enable-coredumps", false),
    ('k', "lock-memory", false),
    ('L', "enable-largepages", false),
    ('D', "prefix-delimiter", true),
    ('B', "protocol", true),
    ('X', "disable-dumping", false),
    ('W', "disable-watch", false),
    ('i', "license", false),
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
            'e' => cfg.memory_file = Some(v.to_owned()),
            'o' => parse_extended(&mut cfg, v)?,
            'v' => cfg.verbose = cfg.verbose.saturating_add(1),
            'u' => cfg.operator.user = Some(v.to_owned()),
            'X' => cfg.dump_enabled = false,
            'W' => cfg.watch_enabled = false,
            'i' => return Ok(Action::License),
            'D' => {
                let &[d] = v.as_bytes() else {
                    return err("No delimiter specified");
                };
                cfg.prefix_delimiter = d;
                cfg.operator.detail = true;
            }
            'd' | 'P' | 'r' | 'k' | 'L' | 'B' => cfg.operator.flag(c, v)?,
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
