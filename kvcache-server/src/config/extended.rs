//! `-o`: memcached's extended options.

use super::{err, num, Config, ConfigError};

/// C's `atoi`: leading whitespace, a sign, digits; whatever follows is ignored, and no
/// digits read as 0.
pub(super) fn atoi(s: &str) -> i64 {
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

pub(super) fn parse_extended(cfg: &mut Config, list: &str) -> Result<(), ConfigError> {
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
            ("watcher_logbuf_size", Some(v)) => {
                cfg.operator.watcher_logbuf = num::<usize>(name, v)?.saturating_mul(1024)
            }
            ("worker_logbuf_size", Some(v)) => {
                cfg.operator.worker_logbuf = num::<usize>(name, v)?.saturating_mul(1024)
            }
            ("metrics_port", Some(v)) => cfg.operator.metrics_port = Some(num("metrics_port", v)?),
            ("metrics_listen", Some(v)) => cfg.operator.metrics_listen = v.to_owned(),
            // memcached's LRU and crawler tunables: checked as numbers; our CLOCK has no
            // segments or crawler pacing for them to change (see `exec::ops`).
            (
                "lru_crawler_sleep"
                | "lru_crawler_tocrawl"
                | "hot_lru_pct"
                | "warm_lru_pct"
                | "temporary_ttl"
                | "tail_repair_time"
                | "read_buf_mem_limit"
                | "sock_cookie_id",
                Some(v),
            ) => {
                let _: i64 = num(name, v)?;
            }
            ("hot_max_factor" | "warm_max_factor" | "slab_automove_freeratio", Some(v)) => {
                let _: f64 = num(name, v)?;
            }
            ("no_hashexpand" | "no_modern", None) => {}
            (n, _) if n.starts_with("ext_") => {
                return err(format!(
                    "\"{n}\": external storage (extstore) is not supported"
                ))
            }
            ("write_timeout", Some(v)) => cfg.write_timeout = num("write_timeout", v)?,
            ("lru_crawler", _) => cfg.operator.crawler = true,
            ("no_lru_crawler", _) => cfg.operator.crawler = false,
            // memcached tunables we accept and have no use for.
            (
                "maxconns_fast" | "no_maxconns_fast" | "hashpower" | "lru_maintainer"
                | "no_lru_maintainer" | "track_sizes" | "modern" | "hash_algorithm",
                _,
            ) => {}
            (n, v) if n.starts_with("ssl_") => match cfg.transport.tls.option(n, v) {
                Some(r) => r.map_err(ConfigError)?,
                None => return err(format!("Illegal suboption \"{sub}\"")),
            },
            _ => return err(format!("Illegal suboption \"{sub}\"")),
        }
    }
    Ok(())
}
