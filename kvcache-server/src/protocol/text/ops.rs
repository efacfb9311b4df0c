//! The operator's commands: `lru_crawler`, `lru`, `cache_memlimit`, `stats detail`,
//! `watch`, with memcached 1.6.18's token rules and replies for malformed lines.

use super::reply;
use crate::protocol::lex::{next_token, parse_f64, parse_i32, parse_u32};

/// The classes a `lru_crawler metadump`/`crawl` covers: every class, or those whose
/// memcached ids (1 to 255) are set in the mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassFilter {
    /// `all` (or `hash` for a dump).
    All,
    /// `<id>,<id>,...`: bit `id` of the mask.
    Ids([u64; 4]),
}

impl ClassFilter {
    /// Whether the class of memcached id `id` (1-based) is covered.
    pub fn covers(&self, id: usize) -> bool {
        match self {
            ClassFilter::All => true,
            ClassFilter::Ids(m) => id < 256 && m[id / 64] & (1 << (id % 64)) != 0,
        }
    }
}

/// What the dump lines look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpFormat {
    /// `lru_crawler metadump`: `key=... exp=... la=... cas=... fetch=... cls=... size=...`.
    Meta,
    /// `lru_crawler mgdump`: `mg <key>` lines, then `EN`.
    Mg,
}

/// Which event kinds a `watch` connection receives (memcached's `LOG_*` bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchMask {
    /// `fetchers`: item gets.
    pub fetchers: bool,
    /// `mutations`: item stores.
    pub mutations: bool,
    /// `evictions`.
    pub evictions: bool,
    /// `connevents`: connections opened and closed.
    pub connevents: bool,
    /// `sysevents`: system events (slabs moved by the automove policy).
    pub sysevents: bool,
}

/// One operator request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OpsRequest {
    /// `lru_crawler metadump|mgdump <all|hash|ids>`.
    Dump {
        /// Line format.
        format: DumpFormat,
        /// Classes covered.
        classes: ClassFilter,
    },
    /// `lru_crawler crawl <all|ids>`: reclaim expired items now.
    Crawl(ClassFilter),
    /// `lru_crawler enable` (true) / `disable`.
    CrawlerEnable(bool),
    /// `lru_crawler sleep <us>` (at most 1,000,000).
    CrawlerSleep(u32),
    /// `lru_crawler tocrawl <n>`.
    CrawlerToCrawl(u32),
    /// `cache_memlimit <MB> [noreply]` (8 to 1,000,000,000).
    MemLimit {
        /// Megabytes.
        mb: u32,
        /// `noreply` was given.
        noreply: bool,
    },
    /// `lru tune <hot%> <warm%> <hot factor> <warm factor>`.
    LruTune {
        /// Percent of a class for its hot segment.
        hot: u32,
        /// Percent of a class for its warm segment.
        warm: u32,
    },
    /// `lru mode flat|segmented` (true: segmented).
    LruMode(bool),
    /// `lru temp_ttl <s>`.
    LruTempTtl(i32),
    /// `stats detail on` (true) / `off`.
    Detail(bool),
    /// `stats detail dump`.
    DetailDump,
    /// `watch [kinds...]`.
    Watch(WatchMask),
}

/// A parsed operator line: the request, or the fixed reply memcached gives instead and
/// whether `noreply` silences it.
pub type Parsed = Result<OpsRequest, (&'static [u8], bool)>;

fn ops(r: OpsRequest) -> Parsed {
    Ok(r)
}

fn err(line: &'static [u8]) -> Parsed {
    Err((line, false))
}

/// `BADCLASS invalid class id`.
pub const BADCLASS: &[u8] = b"BADCLASS invalid class id\r\n";

/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES` (63 + 1): a crawl or dump names classes 1
/// to 63 only, whatever the number of classes (`BADCLASS invalid class id` otherwise).
pub const MAX_CLASS_ID: usize = 63;

/// A class list as memcached reads it: `,`-separated ids (empty pieces skipped), each
/// 1 to [`MAX_CLASS_ID`].
fn class_list(tok: &[u8], allow_hash: bool) -> Option<ClassFilter> {
    if tok == b"all" || (allow_hash && tok == b"hash") {
        return Some(ClassFilter::All);
    }
    let mut mask = [0u64; 4];
    for piece in tok.split(|&b| b == b',').filter(|p| !p.is_empty()) {
        let id = parse_u32(piece)? as usize;
        if id == 0 || id > MAX_CLASS_ID {
            return None;
        }
        mask[id / 64] |= 1 << (id % 64);
    }
    Some(ClassFilter::Ids(mask))
}

/// The tokens of `args` (up to 8).
fn tokens(mut args: &[u8]) -> (usize, [&[u8]; 8]) {
    let mut t: [&[u8]; 8] = [b""; 8];
    let mut n = 0;
    while let (Some(tok), rest) = next_token(args) {
        if n < t.len() {
            t[n] = tok;
        }
        n += 1;
        args = rest;
    }
    (n, t)
}

/// `lru_crawler <sub> ...` (`args`: the line after `lru_crawler`).
pub(super) fn lru_crawler(args: &[u8]) -> Parsed {
    let (n, t) = tokens(args);
    match (n, t[0]) {
        (2, b"metadump" | b"mgdump") => {
            let format = if t[0] == b"metadump" {
                DumpFormat::Meta
            } else {
                DumpFormat::Mg
            };
            match class_list(t[1], true) {
                Some(classes) => ops(OpsRequest::Dump { format, classes }),
                None => err(BADCLASS),
            }
        }
        (2, b"crawl") => match class_list(t[1], false) {
            Some(c) => ops(OpsRequest::Crawl(c)),
            None => err(BADCLASS),
        },
        (1, b"enable") => ops(OpsRequest::CrawlerEnable(true)),
        (1, b"disable") => ops(OpsRequest::CrawlerEnable(false)),
        (2, b"sleep") => match parse_u32(t[1]) {
            Some(us) if us > 1_000_000 => err(b"CLIENT_ERROR sleep must be one second or less\r\n"),
            Some(us) => ops(OpsRequest::CrawlerSleep(us)),
            None => err(reply::BAD_FORMAT),
        },
        (2, b"tocrawl") => match parse_u32(t[1]) {
            Some(n) => ops(OpsRequest::CrawlerToCrawl(n)),
            None => err(reply::BAD_FORMAT),
        },
        _ => err(reply::ERROR),
    }
}

/// `lru <sub> ...`.
pub(super) fn lru(args: &[u8]) -> Parsed {
    let (n, t) = tokens(args);
    match t[0] {
        b"tune" if n >= 5 => {
            let nums = (
                parse_u32(t[1]),
                parse_u32(t[2]),
                parse_f64(t[3]),
                parse_f64(t[4]),
            );
            match nums {
                (Some(hot), Some(warm), Some(_), Some(_)) => {
                    if hot + warm > 80 {
                        err(b"ERROR hot and warm pcts must not exceed 80\r\n")
                    } else {
                        ops(OpsRequest::LruTune { hot, warm })
                    }
                }
                _ => err(reply::ERROR),
            }
        }
        b"mode" if n >= 2 => match t[1] {
            b"flat" => ops(OpsRequest::LruMode(false)),
            b"segmented" => ops(OpsRequest::LruMode(true)),
            _ => err(reply::ERROR),
        },
        b"temp_ttl" if n >= 2 => match parse_i32(t[1]) {
            Some(s) => ops(OpsRequest::LruTempTtl(s)),
            None => err(reply::ERROR),
        },
        _ => err(reply::ERROR),
    }
}

/// `cache_memlimit <MB> [noreply]`.
pub(super) fn cache_memlimit(args: &[u8]) -> Parsed {
    let (n, t) = tokens(args);
    let noreply = n == 2 && t[1] == b"noreply";
    if n != 1 && !noreply {
        return err(reply::ERROR);
    }
    match parse_u32(t[0]) {
        None => err(reply::ERROR),
        Some(mb) if mb < 8 => Err((
            b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
            noreply,
        )),
        Some(mb) if mb > 1_000_000_000 => Err((
            b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n",
            noreply,
        )),
        Some(mb) => ops(OpsRequest::MemLimit { mb, noreply }),
    }
}

/// `stats detail <on|off|dump>` (`args`: the line after `detail`).
pub(super) fn stats_detail(args: &[u8]) -> Parsed {
    match next_token(args).0 {
        Some(b"on") => ops(OpsRequest::Detail(true)),
        Some(b"off") => ops(OpsRequest::Detail(false)),
        Some(b"dump") => ops(OpsRequest::DetailDump),
        _ => err(reply::STATS_DETAIL),
    }
}

/// `watch [fetchers|mutations|evictions|connevents|sysevents ...]` (no argument:
/// fetchers).
pub(super) fn watch(mut args: &[u8]) -> Parsed {
    let mut m = WatchMask::default();
    let mut any = false;
    while let (Some(tok), rest) = next_token(args) {
        args = rest;
        any = true;
        match tok {
            b"fetchers" => m.fetchers = true,
            b"mutations" => m.mutations = true,
            b"evictions" => m.evictions = true,
            b"connevents" => m.connevents = true,
            b"sysevents" => m.sysevents = true,
            // Accepted, and memcached 1.6.18 itself never writes a line for them here:
            // `rawcmds` (`LOGGER_ASCII_CMD`) is defined but logged nowhere, and the
            // `proxy*` kinds are logged only by a build with the proxy (`PROXY`), which
            // Debian's is not and we have none of.
            b"rawcmds" | b"proxyreqs" | b"proxyevents" | b"proxyuser" => {}
            _ => return err(reply::ERROR),
        }
    }
    if !any {
        m.fetchers = true;
    }
    ops(OpsRequest::Watch(m))
}

/// memcached's `uriencode`: every byte but ASCII letters, digits and `-._~` as `%XX`.
pub fn uri_encode(out: &mut Vec<u8>, key: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crawler_lines() {
        assert_eq!(
            lru_crawler(b" metadump all"),
            Ok(OpsRequest::Dump {
                format: DumpFormat::Meta,
                classes: ClassFilter::All
            })
        );
        let Ok(OpsRequest::Dump { classes, .. }) = lru_crawler(b" metadump ,1,3,") else {
            panic!()
        };
        assert!(classes.covers(1) && classes.covers(3) && !classes.covers(2));
        let sleep: &[u8] = b"CLIENT_ERROR sleep must be one second or less\r\n";
        let small: &[u8] = b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n";
        for (got, want) in [
            (lru_crawler(b" metadump 0"), BADCLASS),
            (lru_crawler(b" crawl hash"), BADCLASS),
            (lru_crawler(b" metadump"), reply::ERROR),
            (lru_crawler(b" metadump all noreply"), reply::ERROR),
            (lru_crawler(b" sleep 1000001"), sleep),
            (lru_crawler(b" tocrawl -1"), reply::BAD_FORMAT),
            (lru_crawler(b""), reply::ERROR),
            (lru(b" tune 10 30 0.1"), reply::ERROR),
            (cache_memlimit(b" 7"), small),
            (cache_memlimit(b" x"), reply::ERROR),
            (stats_detail(b""), reply::STATS_DETAIL),
            (watch(b" foo"), reply::ERROR),
            (lru_crawler(b" crawl 64"), BADCLASS),
            (lru_crawler(b" metadump 1,64"), BADCLASS),
        ] {
            assert_eq!(got, Err((want, false)));
        }
        let Ok(OpsRequest::Crawl(top)) = lru_crawler(b" crawl 63") else {
            panic!()
        };
        assert!(top.covers(63) && !top.covers(62));
        let Ok(OpsRequest::Watch(m)) = watch(b" sysevents rawcmds proxyreqs") else {
            panic!()
        };
        assert_eq!(
            m,
            WatchMask {
                sysevents: true,
                ..WatchMask::default()
            }
        );
        assert_eq!(
            cache_memlimit(b" 100 noreply"),
            Ok(OpsRequest::MemLimit {
                mb: 100,
                noreply: true
            })
        );
    }

    #[test]
    fn uri_encoding_matches_memcached() {
        let mut v = Vec::new();
        uri_encode(&mut v, b"foo:a b%~_.-Z9");
        assert_eq!(v, b"foo%3Aa%20b%25~_.-Z9");
    }
}
