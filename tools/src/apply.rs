//! Applying a recommendation to a running kvcache-server.
//!
//! `slabtune apply HOST:PORT` reads the live histogram ([`crate::live::read`]), computes
//! the kvcache-server recommendation exactly as `slabtune live` does
//! ([`crate::report::target_report`]), and sends
//!
//! ```text
//! slabs classes <size>-<size>-...\r\n
//! ```
//!
//! The sizes are the list `-o slab_sizes=` would take (the same rules,
//! [`crate::optimize::Rules::kvcache`]); the server answers `OK\r\n`, or
//! `CLIENT_ERROR bad class list: <reason>\r\n`, or `ERROR\r\n` if it is a build without
//! the command. memcached cannot change its classes while running: for memcached, `apply`
//! prints the flags to restart it with and fails.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use kvcache_server::protocol::lex::MAX_LINE;
use serde::Serialize;

use crate::report::TargetReport;

/// How long to wait for the answer to `slabs classes`: the server may move items first.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// The `slabs classes` command line for a list of chunk sizes, `\r\n` included.
///
/// Fails on an empty list, and on a line longer than the text protocol takes
/// ([`MAX_LINE`]): the server would close the connection on it.
pub fn classes_command(sizes: &[u64]) -> Result<String, String> {
    if sizes.is_empty() {
        return Err("no class sizes to send".into());
    }
    let list = sizes
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("-");
    let line = format!("slabs classes {list}\r\n");
    if line.len() > MAX_LINE {
        return Err(format!(
            "{} classes make a {}-byte command line, longer than the server's {MAX_LINE}-byte \
             limit: ask for fewer with --classes",
            sizes.len(),
            line.len()
        ));
    }
    Ok(line)
}

/// What the server answered to `slabs classes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Reply {
    /// `OK`: the new classes are in place.
    Ok,
    /// `CLIENT_ERROR <reason>`: the list was refused.
    Refused(String),
    /// `ERROR`: the server does not know the command.
    Unknown,
    /// Anything else (`SERVER_ERROR ...`, garbage).
    Other(String),
}

/// Classifies one reply line (with or without its line end).
pub fn parse_reply(line: &str) -> Reply {
    let line = line.trim_end_matches(['\r', '\n']);
    match line {
        "OK" => Reply::Ok,
        "ERROR" => Reply::Unknown,
        _ => match line.strip_prefix("CLIENT_ERROR ") {
            Some(reason) => Reply::Refused(reason.to_string()),
            None => Reply::Other(line.to_string()),
        },
    }
}

/// Sends `command` (from [`classes_command`]) to `addr` on a new connection and returns
/// the reply line without its line end.
pub fn send(addr: &str, command: &str) -> io::Result<String> {
    let a = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let mut s = TcpStream::connect_timeout(&a, Duration::from_secs(10))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.set_read_timeout(Some(REPLY_TIMEOUT))?;
    s.write_all(command.as_bytes())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 || !line.ends_with('\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a full reply line",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// The waste the recommendation is expected to save, on the histogram it was computed
/// from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WasteChange {
    /// What the recommendation is compared with: "current" (the classes in use, from
    /// `stats slabs`) or, for an empty server, "kvcache-server defaults".
    pub baseline: String,
    /// Waste of the baseline (bytes).
    pub before: u128,
    /// Waste with the recommended classes (bytes).
    pub after: u128,
    /// Stored bytes of the items both count.
    pub bytes: u128,
}

impl WasteChange {
    /// `after - before` as a percentage of `before` (negative: less waste).
    pub fn percent(&self) -> f64 {
        if self.before == 0 {
            0.0
        } else {
            (self.after as f64 - self.before as f64) * 100.0 / self.before as f64
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        let share = |w: u128| {
            if self.bytes + w == 0 {
                0.0
            } else {
                w as f64 * 100.0 / (self.bytes + w) as f64
            }
        };
        format!(
            "expected waste: {} B ({:.2}% of chunk bytes) with the {} classes -> {} B ({:.2}%) \
             recommended: {:+.1}%",
            self.before,
            share(self.before),
            self.baseline,
            self.after,
            share(self.after),
            self.percent()
        )
    }
}

/// The expected change from a report made with the classes in use: against "current" if
/// the server listed classes in use, else against its defaults. `None` without a
/// recommendation.
pub fn waste_change(t: &TargetReport) -> Option<WasteChange> {
    let rec = t.configs.first().filter(|c| c.name == "recommended")?;
    let base = t
        .configs
        .iter()
        .find(|c| c.name == "current")
        .or_else(|| t.configs.iter().find(|c| c.name.ends_with("defaults")))?;
    Some(WasteChange {
        baseline: base.name.clone(),
        before: base.eval.waste,
        after: rec.eval.waste,
        bytes: rec.eval.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::{Hist, Target};
    use crate::optimize::ClassCount;
    use crate::report::{target_report, Options};

    #[test]
    fn command_is_the_dash_joined_list() {
        assert_eq!(
            classes_command(&[96, 128, 1024]).unwrap(),
            "slabs classes 96-128-1024\r\n"
        );
        assert_eq!(classes_command(&[16]).unwrap(), "slabs classes 16\r\n");
        assert!(classes_command(&[]).is_err());
    }

    #[test]
    fn command_longer_than_a_line_is_refused() {
        // 400 five-digit sizes: 400 * 6 bytes is over 2048.
        let many: Vec<u64> = (0..400).map(|i| 10_000 + 8 * i).collect();
        let e = classes_command(&many).unwrap_err();
        assert!(e.contains("--classes"), "{e}");
        // The longest list that fits is accepted, one more size is not.
        let mut fit = Vec::new();
        let mut next = 10_000u64;
        while classes_command(&[fit.as_slice(), &[next]].concat()).is_ok() {
            fit.push(next);
            next += 8;
        }
        assert!(classes_command(&fit).unwrap().len() <= MAX_LINE);
        assert!(fit.len() > 100);
    }

    #[test]
    fn replies_are_classified() {
        assert_eq!(parse_reply("OK\r\n"), Reply::Ok);
        assert_eq!(parse_reply("OK"), Reply::Ok);
        assert_eq!(parse_reply("ERROR\r\n"), Reply::Unknown);
        assert_eq!(
            parse_reply("CLIENT_ERROR bad class list: size 8 is below the minimum of 16\r\n"),
            Reply::Refused("bad class list: size 8 is below the minimum of 16".into())
        );
        assert_eq!(
            parse_reply("SERVER_ERROR out of memory\r\n"),
            Reply::Other("SERVER_ERROR out of memory".into())
        );
        assert_eq!(parse_reply("OKAY\r\n"), Reply::Other("OKAY".into()));
    }

    /// The list sent is one the server's own `-o slab_sizes=` parser accepts, and it
    /// makes exactly the recommended chunks.
    #[test]
    fn recommended_command_parses_as_server_slab_sizes() {
        let h = Hist::from_pairs([(90, 500), (104, 2000), (260, 300), (1100, 40), (5000, 7)]);
        let opts = Options {
            count: ClassCount::Auto { min_gain: 0.005 },
            tail: false,
            kv_slab: kvcache_server::store::DEFAULT_SLAB_SIZE as u64,
        };
        let t = target_report(Target::Ours, &h, &opts, None);
        let line = classes_command(&t.slab_sizes).unwrap();
        let list = line
            .strip_prefix("slabs classes ")
            .and_then(|l| l.strip_suffix("\r\n"))
            .unwrap();
        let arg = format!("slab_sizes={list}");
        let cfg = match kvcache_server::config::parse(["-o", arg.as_str()]).unwrap() {
            kvcache_server::config::Action::Run(c) => c,
            other => panic!("{other:?}"),
        };
        let sc = cfg.store_config().unwrap();
        let made: Vec<u64> = sc.classes.sizes().iter().map(|&c| c as u64).collect();
        let mut want = t.chunks.clone();
        want.push(opts.kv_slab / 2);
        assert_eq!(made, want);
        // Every stored size fits a class.
        for &(s, _) in h.entries() {
            assert!(made.iter().any(|&c| c >= s), "{s} fits nowhere in {made:?}");
        }
    }

    #[test]
    fn waste_change_against_current_classes() {
        let h = Hist::from_pairs([(104, 1000), (200, 1000)]);
        let opts = Options {
            count: ClassCount::Exact(2),
            tail: false,
            kv_slab: 65536,
        };
        // Classes in use: 128 and 256, so 24 + 56 bytes wasted per pair of items; the
        // recommendation (104 and 200) wastes nothing.
        let t = target_report(Target::Ours, &h, &opts, Some(&[128, 256]));
        let w = waste_change(&t).unwrap();
        assert_eq!(w.baseline, "current");
        assert_eq!(w.before, 24 * 1000 + 56 * 1000);
        assert_eq!(w.after, 0);
        assert_eq!(w.percent(), -100.0);
        assert!(w.describe().contains("-100.0%"), "{}", w.describe());
        // Without classes in use it falls back to the defaults.
        let t = target_report(Target::Ours, &h, &opts, None);
        assert_eq!(
            waste_change(&t).unwrap().baseline,
            "kvcache-server defaults"
        );
    }
}
