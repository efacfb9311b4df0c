//! `kvload`: the load of `benches/server/scenarios/large.py`, driven from Rust so that the
//! client is not what bounds the figures.
//!
//! Each client is a thread with one blocking TCP connection speaking memcached's text
//! protocol: `get` of a random key, and on a miss `set` of the key's value (`mixed`), or
//! `set` only, or `get` only. Every key has one fixed size (given on the command line as
//! a file of sizes, one per line, so that both servers see the same keys and sizes), and
//! its value is derived from the key: its first and last bytes name the key and the bytes
//! between are a fixed pattern. Sets go out with one `writev` over the request line, the
//! pattern and the trailer (no value is assembled); every value read back is compared
//! whole.
//!
//! Protocol with the caller: once every client is connected (and, with `--preload`, every
//! key stored), `kvload` prints `ready` and waits for a line on stdin; it then runs for
//! `--seconds` and prints one JSON object: the reply counts, and the requests and value
//! bytes per size bucket (powers of 4 from 1 B, as `large.py`), plus the wall time.

use std::io::{self, BufRead, IoSlice, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

const BUCKETS: usize = 10;
const PATTERN_LEN: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Mixed,
    Set,
    Get,
}

#[derive(Parser, Debug)]
#[command(about = "get-or-set-on-miss load over keys of fixed sizes, memcached text protocol")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:11211")]
    addr: String,
    /// File of value sizes, one per line: key `k%07d` of line i has the size on it.
    #[arg(long)]
    sizes: String,
    #[arg(long, default_value_t = 4)]
    clients: usize,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    #[arg(long, value_enum, default_value_t = Mode::Mixed)]
    mode: Mode,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Store every key once before `ready`.
    #[arg(long)]
    preload: bool,
    /// Start at once instead of waiting for a line on stdin after `ready`.
    #[arg(long)]
    no_wait: bool,
}

/// The bytes between a value's first and last: the same for every key.
fn pattern() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..PATTERN_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn key(i: usize) -> Vec<u8> {
    format!("k{i:07}").into_bytes()
}

/// The byte that starts and ends the value of `key`.
fn tag(key: &[u8]) -> u8 {
    (key.iter().map(|&b| b as u32).sum::<u32>() % 26) as u8 + b'A'
}

fn bucket_of(size: usize) -> usize {
    let mut b = 0;
    let mut n = size.max(1);
    while n >= 4 && b < BUCKETS - 1 {
        n /= 4;
        b += 1;
    }
    b
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// A connection with its read buffer.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Conn {
    fn connect(addr: &str) -> io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Conn {
            s,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        })
    }

    /// The next line, without its `\r\n`, as a range of the buffer.
    fn line(&mut self) -> io::Result<std::ops::Range<usize>> {
        let mut from = self.start;
        loop {
            if let Some(i) = self.buf[from..self.end]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                let r = self.start..from + i;
                self.start = from + i + 2;
                return Ok(r);
            }
            from = self.end.saturating_sub(1).max(self.start);
            if self.end == self.buf.len() {
                if self.start == 0 {
                    return Err(io::Error::other("line longer than the read buffer"));
                }
                self.buf.copy_within(self.start..self.end, 0);
                from -= self.start;
                self.end -= self.start;
                self.start = 0;
            }
            let n = self.s.read(&mut self.buf[self.end..])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.end += n;
        }
    }

    /// The next `n` bytes into `out`: what is buffered, the rest read straight into place.
    fn take(&mut self, n: usize, out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        let have = n.min(self.end - self.start);
        out.extend_from_slice(&self.buf[self.start..self.start + have]);
        self.start += have;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        out.resize(n, 0);
        self.s.read_exact(&mut out[have..])
    }

    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut sent = 0;
        while sent < total {
            let mut skip = sent;
            let mut iov = Vec::with_capacity(parts.len());
            for p in parts {
                if skip >= p.len() {
                    skip -= p.len();
                    continue;
                }
                iov.push(IoSlice::new(&p[skip..]));
                skip = 0;
            }
            let n = self.s.write_vectored(&iov)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            sent += n;
        }
        Ok(())
    }
}

#[derive(Default, Clone)]
struct Counts {
    get: u64,
    hit: u64,
    miss: u64,
    stored: u64,
    oom: u64,
    error: u64,
    bad: u64,
    breq: [u64; BUCKETS],
    bbytes: [u64; BUCKETS],
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.get += o.get;
        self.hit += o.hit;
        self.miss += o.miss;
        self.stored += o.stored;
        self.oom += o.oom;
        self.error += o.error;
        self.bad += o.bad;
        for b in 0..BUCKETS {
            self.breq[b] += o.breq[b];
            self.bbytes[b] += o.bbytes[b];
        }
    }
}

/// Sends the set of key `i` and reads its answer into `c`.
fn set(conn: &mut Conn, k: &[u8], size: usize, pat: &[u8], c: &mut Counts) -> io::Result<()> {
    let t = [tag(k)];
    let mut head = format!("set {} 0 0 {size}\r\n", String::from_utf8_lossy(k)).into_bytes();
    let (first, mid, last): (&[u8], &[u8], &[u8]) = match size {
        0 => (&[], &[], &[]),
        1 => (&t, &[], &[]),
        n => (&t, &pat[..n - 2], &t),
    };
    head.extend_from_slice(first);
    conn.send(&[&head, mid, last, b"\r\n"])?;
    let r = conn.line()?;
    match &conn.buf[r] {
        b"STORED" => {
            c.stored += 1;
            c.bbytes[bucket_of(size)] += size as u64;
        }
        b"SERVER_ERROR out of memory storing object" => c.oom += 1,
        _ => c.error += 1,
    }
    Ok(())
}

/// Whether `v` is the value of `k` (`size` bytes).
fn is_value_of(v: &[u8], k: &[u8], size: usize, pat: &[u8]) -> bool {
    let t = tag(k);
    v.len() == size
        && match size {
            0 => true,
            1 => v[0] == t,
            n => v[0] == t && v[n - 1] == t && v[1..n - 1] == pat[..n - 2],
        }
}

fn client(
    mut conn: Conn,
    args: &Args,
    sizes: &[usize],
    pat: &[u8],
    seed: u64,
    go: &Barrier,
) -> io::Result<Counts> {
    let keys: Vec<Vec<u8>> = (0..sizes.len()).map(key).collect();
    let mut rng = Rng(seed);
    let mut c = Counts::default();
    let mut val = Vec::new();
    // Connected: say so, then wait for the start.
    go.wait();
    go.wait();
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    while Instant::now() < deadline {
        let i = rng.below(sizes.len());
        let (k, size) = (&keys[i][..], sizes[i]);
        let b = bucket_of(size);
        if args.mode != Mode::Set {
            conn.send(&[b"get ", k, b"\r\n"])?;
            c.get += 1;
            c.breq[b] += 1;
            let r = conn.line()?;
            let ln = &conn.buf[r];
            if let Some(rest) = ln.strip_prefix(b"VALUE ") {
                let n: usize = std::str::from_utf8(rest)
                    .ok()
                    .and_then(|s| s.split(' ').nth(2))
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| io::Error::other("bad VALUE line"))?;
                conn.take(n + 2, &mut val)?;
                let end = conn.line()?;
                let ok = val.ends_with(b"\r\n")
                    && &conn.buf[end] == b"END"
                    && is_value_of(&val[..n], k, size, pat);
                c.bad += u64::from(!ok);
                c.hit += 1;
                c.bbytes[b] += n as u64;
                continue;
            }
            if ln != b"END" {
                c.error += 1;
                continue;
            }
            c.miss += 1;
            if args.mode == Mode::Get {
                continue;
            }
        }
        c.breq[b] += 1;
        set(&mut conn, k, size, pat, &mut c)?;
    }
    Ok(c)
}

fn main() -> io::Result<()> {
    let args = Arc::new(Args::parse());
    let sizes: Arc<Vec<usize>> = Arc::new(
        std::fs::read_to_string(&args.sizes)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().parse().map_err(io::Error::other))
            .collect::<io::Result<_>>()?,
    );
    if sizes.is_empty() || sizes.iter().any(|&s| s > PATTERN_LEN) {
        return Err(io::Error::other("sizes must be 1 to 1048576, at least one"));
    }
    let pat = Arc::new(pattern());
    if args.preload {
        let mut conn = Conn::connect(&args.addr)?;
        let mut c = Counts::default();
        for (i, &s) in sizes.iter().enumerate() {
            set(&mut conn, &key(i), s, &pat, &mut c)?;
        }
        if c.stored != sizes.len() as u64 {
            return Err(io::Error::other(format!(
                "preload stored {} of {}",
                c.stored,
                sizes.len()
            )));
        }
    }
    let conns = (0..args.clients)
        .map(|_| Conn::connect(&args.addr))
        .collect::<io::Result<Vec<_>>>()?;
    let go = Arc::new(Barrier::new(args.clients + 1));
    let threads: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(j, conn)| {
            let (args, sizes, pat, go) = (
                Arc::clone(&args),
                Arc::clone(&sizes),
                Arc::clone(&pat),
                Arc::clone(&go),
            );
            std::thread::spawn(move || {
                client(
                    conn,
                    &args,
                    &sizes,
                    &pat,
                    args.seed * 1000 + j as u64 + 1,
                    &go,
                )
            })
        })
        .collect();
    go.wait();
    println!("ready");
    io::stdout().flush()?;
    if !args.no_wait {
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line)?;
    }
    let t0 = Instant::now();
    go.wait();
    let mut total = Counts::default();
    for t in threads {
        let c = t
            .join()
            .map_err(|_| io::Error::other("client panicked"))??;
        total.add(&c);
    }
    let wall = t0.elapsed().as_secs_f64();
    let out = serde_json::json!({
        "counts": {
            "get": total.get, "hit": total.hit, "miss": total.miss, "stored": total.stored,
            "oom": total.oom, "error": total.error, "bad": total.bad,
        },
        "breq": total.breq,
        "bbytes": total.bbytes,
        "wall": wall,
    });
    println!("{out}");
    Ok(())
}
