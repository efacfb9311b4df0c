//! How the process runs, beside what it serves: `-d` (daemon), `-P` (pidfile), `-u`
//! (user), `-k` (lock memory), `-r` (core limit), `-L` (huge pages), `-B` (protocol),
//! `-D` (detail on) and the metrics endpoint (`-o metrics_port=`).

use super::{err, ConfigError};

/// Which protocols connections may speak (`-B`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WireProtocol {
    /// `auto` (the default): decided by each connection's first byte.
    #[default]
    Auto,
    /// `ascii`: text and meta only.
    Ascii,
    /// `binary`: binary only.
    Binary,
}

/// The process settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// `-d`: fork, detach (`setsid`), stdio to `/dev/null`; the parent exits 0 once the
    /// child listens.
    pub daemonize: bool,
    /// `-P <file>`: the PID, written once listening, removed at exit.
    pub pid_file: Option<String>,
    /// `-u <user>`: the user to run as when started as root.
    pub user: Option<String>,
    /// `-k`: `mlockall(MCL_CURRENT | MCL_FUTURE)`.
    pub lock_memory: bool,
    /// `-r`: raise the core file limit to its maximum.
    pub core_dumps: bool,
    /// `-L`: advise slab memory for transparent huge pages.
    pub huge_pages: bool,
    /// `-B`.
    pub protocol: WireProtocol,
    /// `-D` given: `stats detail` starts on.
    pub detail: bool,
    /// `-o metrics_port=<port>`: serve `GET /metrics` there (off by default).
    pub metrics_port: Option<u16>,
    /// `-o metrics_listen=<addr>`: its address (default 127.0.0.1).
    pub metrics_listen: String,
    /// `-o no_lru_crawler` not given: `lru_crawler` dumps and crawls are allowed until
    /// `lru_crawler disable`.
    pub crawler: bool,
    /// `-o worker_logbuf_size=<kb>`: each worker's `watch` buffer, in bytes.
    pub worker_logbuf: usize,
    /// `-o watcher_logbuf_size=<kb>`: each watcher's buffer, in bytes.
    pub watcher_logbuf: usize,
}

impl Default for Operator {
    fn default() -> Self {
        Operator {
            daemonize: false,
            pid_file: None,
            user: None,
            lock_memory: false,
            core_dumps: false,
            huge_pages: false,
            protocol: WireProtocol::Auto,
            detail: false,
            metrics_port: None,
            metrics_listen: "127.0.0.1".into(),
            crawler: true,
            worker_logbuf: 64 << 10,
            watcher_logbuf: 256 << 10,
        }
    }
}

impl Operator {
    /// Takes one of `-d -P -r -k -L -B` with its value.
    pub(super) fn flag(&mut self, c: char, v: &str) -> Result<(), ConfigError> {
        match c {
            'd' => self.daemonize = true,
            'P' => self.pid_file = Some(v.to_owned()),
            'r' => self.core_dumps = true,
            'k' => self.lock_memory = true,
            'L' => self.huge_pages = true,
            'B' => {
                self.protocol = match v {
                    "auto" => WireProtocol::Auto,
                    "ascii" => WireProtocol::Ascii,
                    "binary" => WireProtocol::Binary,
                    _ => return err(format!("Invalid value for binding protocol: {v}\n -- should be one of auto, binary, or ascii")),
                }
            }
            _ => unreachable!("only the operator's flags come here"),
        }
        Ok(())
    }
}
