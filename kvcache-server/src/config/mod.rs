//! Command-line configuration: memcached's flags with memcached's meaning.
//!
//! Parsing follows `getopt_long` as memcached uses it: short options take their value
//! attached (`-p11211`) or as the next argument (`-p 11211`), flags group (`-vv`, `-vC`),
//! long options take `--name=value` or `--name value`. `-o` takes a comma-separated list
//! of `name[=value]` suboptions.

mod extended;
mod man;
mod operator;
mod parse;
mod store;
#[cfg(test)]
mod tests;
mod transport;
mod usage;

pub use man::man_page;
pub use operator::{Operator, WireProtocol};
pub use parse::parse;
pub use transport::{TlsConfig, Transport, DEFAULT_UNIX_MASK, MAX_UNIX_PATH};
pub use usage::usage;

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
    /// `-s`, `-a`, `-U`, `-Z` with `-o ssl_*`, `-S`: transports and SASL.
    pub transport: Box<Transport>,
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
            transport: Box::default(),
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
