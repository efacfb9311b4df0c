//! The command line read as `getopt_long` reads it, into a [`Config`].

use super::extended::parse_extended;
use super::{err, num, Action, Config, ConfigError};

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
    ('s', "unix-socket", true),
    ('a', "unix-mask", true),
    ('Z', "enable-ssl", false),
    ('S', "enable-sasl", false),
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
        if let Some(r) = cfg.transport.flag(c, v) {
            r.map_err(ConfigError)?;
            continue;
        }
        match c {
            'h' => return Ok(Action::Help),
            'V' => return Ok(Action::Version),
            'p' => cfg.port = num("-p", v)?,
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
    cfg.transport
        .check(cfg.auth_file.is_some())
        .map_err(ConfigError)?;
    if cfg.item_size_max > cfg.memory_limit / 2 {
        return err("Cannot set item size limit higher than 1/2 of memory max.");
    }
    Ok(Action::Run(cfg))
}
