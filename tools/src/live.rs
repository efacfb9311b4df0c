//! Reading the size histogram from a running server.
//!
//! `kvcache-server` answers `stats sizes_fine` with `STAT <size> <count>` per 8-byte bucket
//! of its own stored size; memcached answers that with `ERROR`, and then `stats sizes`
//! (with `-o track_sizes`) gives 32-byte buckets of memcached's stored size. A bucket's
//! size is its upper bound (both servers round up), and we take every item in it to have
//! that size. The other server's sizes are derived by the constant offset
//! [`crate::hist::memcached_minus_ours`] (valid for every item given the CAS setting).
//!
//! `stats slabs` lists the chunk sizes of the classes that hold items: since each item
//! sits in the smallest class that fits it and that class is listed, those chunk sizes
//! give the current configuration's waste exactly (for the histogram's resolution).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::hist::{memcached_minus_ours, Hist, Target};

/// What was read from a server.
#[derive(Clone, Debug)]
pub struct LiveData {
    /// Which server answered.
    pub server: Target,
    /// Stored sizes as that server reports them.
    pub hist: Hist,
    /// Chunk sizes of its classes in use (`stats slabs`).
    pub current: Vec<u64>,
    /// CAS enabled (`stats settings` `cas_enabled`, default yes).
    pub cas: bool,
    /// The slab size (`stats settings` `slab_page_size`), if the server reports it.
    pub slab_page_size: Option<u64>,
}

impl LiveData {
    /// The histogram in `target`'s stored sizes.
    pub fn hist_for(&self, target: Target) -> Hist {
        let d = memcached_minus_ours(self.cas);
        match (self.server, target) {
            (a, b) if a == b => self.hist.clone(),
            (Target::Ours, _) => self.hist.shifted(d),
            (Target::Memcached, _) => self.hist.shifted(-d),
        }
    }
}

/// A connection that sends `stats` commands.
#[derive(Debug)]
pub struct StatsClient {
    r: BufReader<TcpStream>,
}

impl StatsClient {
    /// Connects with 10-second timeouts.
    pub fn connect(addr: &str) -> io::Result<Self> {
        let a = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
        let s = TcpStream::connect_timeout(&a, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(StatsClient {
            r: BufReader::new(s),
        })
    }

    /// Sends `cmd` and returns the `STAT name value` pairs up to `END`; `Ok(None)` if the
    /// server answered `ERROR` (unknown command).
    pub fn stats(&mut self, cmd: &str) -> io::Result<Option<Vec<(String, String)>>> {
        self.r
            .get_mut()
            .write_all(format!("{cmd}\r\n").as_bytes())?;
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            let line = line.trim_end();
            if line == "END" {
                return Ok(Some(out));
            }
            if line == "ERROR"
                || line.starts_with("CLIENT_ERROR")
                || line.starts_with("SERVER_ERROR")
            {
                return Ok(None);
            }
            let mut it = line.splitn(3, ' ');
            match (it.next(), it.next(), it.next()) {
                (Some("STAT"), Some(k), Some(v)) => out.push((k.to_string(), v.to_string())),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unexpected reply line {line:?}"),
                    ))
                }
            }
        }
    }
}

/// Parses `STAT <size> <count>` pairs into a histogram; `Err` if sizes are disabled or a
/// line is not numeric.
pub fn parse_sizes(stats: &[(String, String)]) -> Result<Hist, String> {
    let mut pairs = Vec::new();
    for (k, v) in stats {
        if k == "sizes_status" {
            if v == "disabled" {
                return Err(
                    "the server does not track sizes (start memcached with -o track_sizes)".into(),
                );
            }
            continue;
        }
        let (Ok(s), Ok(n)) = (k.parse::<u64>(), v.parse::<u64>()) else {
            return Err(format!("unexpected size line {k:?} {v:?}"));
        };
        pairs.push((s, n));
    }
    Ok(Hist::from_pairs(pairs))
}

/// Chunk sizes from `stats slabs` (`<class>:chunk_size <n>`), ascending.
pub fn parse_slab_chunks(stats: &[(String, String)]) -> Vec<u64> {
    let mut v: Vec<u64> = stats
        .iter()
        .filter(|(k, _)| k.ends_with(":chunk_size"))
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Reads sizes, classes in use and the CAS setting from `addr`.
pub fn read(addr: &str) -> Result<LiveData, String> {
    let mut c = StatsClient::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    let io = |e: io::Error| format!("{addr}: {e}");
    let (server, sizes) = match c.stats("stats sizes_fine").map_err(io)? {
        Some(s) => (Target::Ours, s),
        None => (
            Target::Memcached,
            c.stats("stats sizes")
                .map_err(io)?
                .ok_or("`stats sizes` not supported")?,
        ),
    };
    let hist = parse_sizes(&sizes)?;
    let current = c
        .stats("stats slabs")
        .map_err(io)?
        .map(|s| parse_slab_chunks(&s))
        .unwrap_or_default();
    let settings = c.stats("stats settings").map_err(io)?.unwrap_or_default();
    let setting = |name: &str| {
        settings
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let cas = setting("cas_enabled").is_none_or(|v| v != "no");
    let slab_page_size = setting("slab_page_size").and_then(|v| v.parse().ok());
    Ok(LiveData {
        server,
        hist,
        current,
        cas,
        slab_page_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_memcached_stats_sizes_fixture() {
        let text = include_str!("../tests/data/memcached_stats_sizes.txt");
        let stats: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.trim_end().splitn(3, ' ');
                match (it.next(), it.next(), it.next()) {
                    (Some("STAT"), Some(k), Some(v)) => Some((k.into(), v.into())),
                    _ => None,
                }
            })
            .collect();
        let h = parse_sizes(&stats).unwrap();
        assert!(!h.is_empty());
        assert!(h.entries().iter().all(|e| e.0 % 32 == 0));
        let disabled = vec![("sizes_status".to_string(), "disabled".to_string())];
        assert!(parse_sizes(&disabled).is_err());
    }
}
