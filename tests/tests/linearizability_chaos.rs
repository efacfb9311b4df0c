//! Linearizability of the real binary while a chaos thread forces every way the server
//! moves items.
//!
//! Six clients (two each on text, meta and binary connections) issue set, add, replace,
//! cas, append, prepend, incr, decr, delete, get/gets/mg and touch on a small key space
//! (10 blob keys, 6 counter keys per round, some stores with a 1-2 s TTL so items expire
//! mid-round). Every operation's invocation and response times are recorded; after each
//! round each key's history is checked against memcached's sequential semantics
//! (`integration_tests::kv_model`) by the Wing & Gong / Lowe checker
//! (`integration_tests::linearizability`). Meanwhile a chaos thread keeps sending
//! `slabs reassign -1 <n>`, `slabs classes <random list>` (live re-classing, retired
//! classes migrating), mass sets then deletes of filler keys (compaction) and
//! `slabs automove 0|1|2`, while the value sizes shift from round to round.
//!
//! Two servers: `-m 1024`, where nothing may be evicted (the model allows no miss of an
//! item that has not possibly expired, and the run checks `evictions` stays 0), and
//! `-m 10`, where the filler forces evictions (an item may then read as missing at any
//! time, but a wrong, stale or resurrected value is still a violation).
//!
//! `LIN_ROUNDS` sets the rounds per server (default 4: 128 histories); the bounded script
//! run (`scripts/chaos.sh`) uses 36 (1,152 histories), `scripts/test-all.sh` 16 (512).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::kv_client::{Bytes, KvClient, Proto};
use integration_tests::kv_model::{Cmd, KvModel, KvOp, Val, Write};
use integration_tests::linearizability::{check, Event, Verdict};
use integration_tests::rng::Rng;
use integration_tests::{stat_u64, Client, ServerProc};

const BLOB_KEYS: usize = 10;
const COUNTER_KEYS: usize = 6;
const CLIENTS: usize = 6;
/// Operations per client per round.
const OPS: usize = 300;
/// Most microseconds a client waits between operations (rounds last about a second, so
/// TTLs run out and the chaos thread acts within them).
const PAUSE_US: u64 = 6000;
/// Search steps per history before the checker gives up (counted as a failure).
const BUDGET: u64 = 5_000_000;

/// A piece length for round `round`: the size mix shifts from round to round, and one
/// store in fifty is a chained value (over the 32 KiB largest chunk).
fn piece_len(rng: &mut Rng, round: usize) -> usize {
    if rng.below(50) == 0 {
        return 33_000 + rng.below(8000) as usize;
    }
    let base = [24, 300, 1800, 90, 5000][round % 5];
    base / 2 + rng.below(base as u64 * 3 / 2) as usize
}

type History = Vec<Event<KvOp>>;

/// One client's round: `OPS` operations on random keys of the round.
fn client(
    addr: SocketAddr,
    proto: Proto,
    round: usize,
    seed: u64,
    t0: Instant,
    ids: &AtomicU32,
) -> HashMap<String, History> {
    let mut c = KvClient::connect(addr, proto);
    let mut rng = Rng(seed);
    let mut out: HashMap<String, History> = HashMap::new();
    let mut tokens: HashMap<String, u64> = HashMap::new();
    for _ in 0..OPS {
        let counter = rng.below((BLOB_KEYS + COUNTER_KEYS) as u64) >= BLOB_KEYS as u64;
        let key = if counter {
            format!("r{round}:n{}", rng.below(COUNTER_KEYS as u64))
        } else {
            format!("r{round}:b{}", rng.below(BLOB_KEYS as u64))
        };
        let ttl = if rng.below(8) == 0 {
            1 + rng.below(2) as u32
        } else {
            0
        };
        let flags = [0, 1, 0xdead_beef][rng.below(3) as usize];
        let len = piece_len(&mut rng, round);
        let fresh = |rng: &mut Rng| {
            if counter {
                Val::Num(rng.below(1000))
            } else {
                Val::Pieces(vec![ids.fetch_add(1, Ordering::Relaxed)])
            }
        };
        let w = |val: Val| Write { val, flags, ttl };
        let token = tokens
            .get(&key)
            .copied()
            .unwrap_or_else(|| rng.below(1 << 20));
        let dice = rng.below(100);
        let cmd = match dice {
            0..=29 => Cmd::Get,
            30..=44 => Cmd::Set(w(fresh(&mut rng))),
            45..=49 => Cmd::Add(w(fresh(&mut rng))),
            50..=54 => Cmd::Replace(w(fresh(&mut rng))),
            55..=64 => Cmd::Cas(token, w(fresh(&mut rng))),
            65..=71 if !counter => Cmd::Append(ids.fetch_add(1, Ordering::Relaxed)),
            72..=75 if !counter => Cmd::Prepend(ids.fetch_add(1, Ordering::Relaxed)),
            65..=71 => Cmd::Incr(rng.below(100)),
            72..=75 => Cmd::Decr(rng.below(100)),
            76..=78 => Cmd::Incr(1 + rng.below(5)),
            79..=88 => Cmd::Delete,
            _ => Cmd::Touch(if rng.below(3) == 0 {
                0
            } else {
                1 + rng.below(2) as u32
            }),
        };
        let data = match &cmd {
            Cmd::Set(w) | Cmd::Add(w) | Cmd::Replace(w) | Cmd::Cas(_, w) => Bytes::of(&w.val, len),
            // Appends stay short so values do not grow without bound.
            Cmd::Append(id) | Cmd::Prepend(id) => Bytes::of(&Val::Pieces(vec![*id]), len % 200),
            _ => Bytes(Vec::new()),
        };
        let call = t0.elapsed().as_micros() as u64;
        let reply = c.run(&key, &cmd, &data);
        let ret = t0.elapsed().as_micros() as u64;
        if let integration_tests::kv_model::Reply::Value { cas: Some(t), .. } = &reply {
            tokens.insert(key.clone(), *t);
        }
        out.entry(key).or_default().push(Event {
            call,
            ret,
            op: KvOp { cmd, reply },
        });
        std::thread::sleep(Duration::from_micros(rng.below(PAUSE_US)));
    }
    out
}

/// Sends `cmd` and reads one reply line.
fn ask(c: &mut Client, cmd: &str) -> String {
    c.send(format!("{cmd}\r\n").as_bytes());
    String::from_utf8_lossy(&c.read_line())
        .trim_end()
        .to_owned()
}

/// What the chaos thread did.
#[derive(Debug, Default)]
struct Chaos {
    reassigns: u64,
    reclasses: u64,
    mass_deletes: u64,
    automove_changes: u64,
}

/// Forces moves until `stop`: reassigns, re-classes, mass deletes, automove changes.
fn chaos(addr: SocketAddr, stop: &AtomicBool, seed: u64) -> Chaos {
    let mut c = Client::connect(addr);
    let mut rng = Rng(seed);
    let mut done = Chaos::default();
    let mut fill = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match rng.below(10) {
            0..=3 => {
                let n = 1 + rng.below(60);
                let r = ask(&mut c, &format!("slabs reassign -1 {n}"));
                assert!(
                    ["OK", "BUSY", "NOSPARE", "BADCLASS", "SAME"]
                        .iter()
                        .any(|p| r.starts_with(p)),
                    "slabs reassign: {r}"
                );
                done.reassigns += u64::from(r == "OK");
            }
            4..=5 => {
                let mut sizes: Vec<u64> = (0..3 + rng.below(40))
                    .map(|_| 8 * (2 + rng.below(4000)))
                    .collect();
                sizes.sort_unstable();
                sizes.dedup();
                let list: Vec<String> = sizes.iter().map(u64::to_string).collect();
                let r = ask(&mut c, &format!("slabs classes {}", list.join("-")));
                assert_eq!(r, "OK", "slabs classes {list:?}");
                done.reclasses += 1;
            }
            6..=8 => {
                // Fill, then delete nine in ten: sparse slabs for compaction.
                let size = 40 + rng.below(600) as usize;
                let v = "f".repeat(size);
                let n = 2000;
                let mut req = String::new();
                for i in fill..fill + n {
                    req.push_str(&format!("set fill:{i} 0 0 {size} noreply\r\n{v}\r\n"));
                }
                c.send(req.as_bytes());
                // The last batch's survivors go too: a random class list may put each
                // filler in a chunk of 30 KB, so they must not pile up.
                let mut req = String::new();
                let last = fill.saturating_sub(n)..fill;
                for i in last.filter(|i| i % 10 == 0).chain(fill..fill + n) {
                    if i < fill || i % 10 != 0 {
                        req.push_str(&format!("delete fill:{i} noreply\r\n"));
                    }
                }
                c.send(req.as_bytes());
                assert!(ask(&mut c, "version").starts_with("VERSION"));
                fill += n;
                done.mass_deletes += 1;
            }
            _ => {
                let r = ask(&mut c, &format!("slabs automove {}", rng.below(3)));
                assert_eq!(r, "OK");
                done.automove_changes += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(20 + rng.below(80)));
    }
    done
}

/// Totals of one server's run.
#[derive(Debug, Default)]
struct Totals {
    histories: u64,
    ops: u64,
    violations: Vec<String>,
    unknown: u64,
}

fn run_server(args: &[&str], may_evict: bool, rounds: usize, seed: u64) -> Totals {
    let s = ServerProc::start(args);
    let addr = s.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let chaos_thread = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || chaos(addr, &stop, seed ^ 0xC4A0_5000))
    };
    let ids = Arc::new(AtomicU32::new(1));
    let model = KvModel { may_evict };
    let totals = Arc::new(Mutex::new(Totals::default()));
    let t0 = Instant::now();
    for round in 0..rounds {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let ids = Arc::clone(&ids);
                let proto = [Proto::Text, Proto::Meta, Proto::Binary][i % 3];
                let seed = seed ^ ((round * CLIENTS + i) as u64 + 1).wrapping_mul(0x9E37_79B9);
                std::thread::spawn(move || client(addr, proto, round, seed, t0, &ids))
            })
            .collect();
        let mut per_key: HashMap<String, History> = HashMap::new();
        for h in handles {
            for (k, mut evs) in h.join().expect("client") {
                per_key.entry(k).or_default().append(&mut evs);
            }
        }
        let mut t = totals.lock().unwrap();
        for (key, h) in per_key {
            t.histories += 1;
            t.ops += h.len() as u64;
            match check(&model, &h, BUDGET) {
                Verdict::Linearizable => {}
                Verdict::Unknown => t.unknown += 1,
                Verdict::Violation { longest } => {
                    let mut h2: Vec<(usize, &Event<KvOp>)> = h.iter().enumerate().collect();
                    h2.sort_by_key(|(_, e)| e.call);
                    let dump: Vec<String> = h2
                        .iter()
                        .map(|(i, e)| format!("  #{i} [{}, {}] {:?}", e.call, e.ret, e.op))
                        .collect();
                    t.violations.push(format!(
                        "{key}: not linearizable (longest prefix {longest:?})\n{}",
                        dump.join("\n")
                    ));
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let done = chaos_thread.join().expect("chaos");
    let mut c = s.connect();
    let st = c.stats("");
    let g = |n: &str| stat_u64(&st, n);
    let t = std::mem::take(&mut *totals.lock().unwrap());
    eprintln!(
        "{args:?}: {} histories ({} operations), {} violations, {} undecided; chaos {done:?}; \
         slabs_moved {}, slab_reassign_rescues {}, slab_reassign_evictions_nomem {}, \
         items_moved {}, items_migrated {}, slab_reclasses {}, evictions {}, expired_unfetched {}; \
         bytes {}, mapped_bytes {}",
        t.histories,
        t.ops,
        t.violations.len(),
        t.unknown,
        g("slabs_moved"),
        g("slab_reassign_rescues"),
        g("slab_reassign_evictions_nomem"),
        g("items_moved"),
        g("items_migrated"),
        g("slab_reclasses"),
        g("evictions"),
        g("expired_unfetched"),
        g("bytes"),
        g("mapped_bytes"),
    );
    for v in t.violations.iter().take(3) {
        eprintln!("{v}");
    }
    // The chaos did what it is there for (else the run proves little); a run of a round
    // or two may be too short for every kind of move.
    assert!(done.reassigns > 0 && done.reclasses > 0 && done.mass_deletes > 0);
    if rounds >= 3 {
        assert!(g("slabs_moved") > 0, "no slab moved");
        assert!(
            g("items_moved") + g("items_migrated") > 0,
            "no item was compacted or migrated"
        );
        assert!(
            !may_evict || g("evictions") > 0,
            "the small server never evicted"
        );
    }
    if !may_evict {
        assert_eq!(g("evictions"), 0, "the large server evicted");
        assert_eq!(g("slab_reassign_evictions_nomem"), 0);
    }
    // A clean stop (under valgrind this is when the leak check runs).
    drop(c);
    let status = s.signal_and_wait(15);
    assert!(status.success(), "SIGTERM: {status:?}");
    t
}

#[test]
fn histories_are_linearizable_under_chaos() {
    let rounds: usize = std::env::var("LIN_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let runs = [
        (vec!["-m", "1024", "-t", "2"], false, 0x5EED_0001u64),
        (vec!["-m", "10", "-t", "2"], true, 0x5EED_0002u64),
    ];
    let mut histories = 0;
    let mut violations = Vec::new();
    let mut unknown = 0;
    for (args, may_evict, seed) in runs {
        let t = run_server(&args, may_evict, rounds, seed);
        histories += t.histories;
        unknown += t.unknown;
        violations.extend(t.violations);
    }
    eprintln!(
        "linearizability: {histories} histories checked, {} violations, {unknown} undecided",
        violations.len()
    );
    assert!(violations.is_empty(), "{} violations", violations.len());
    assert_eq!(unknown, 0, "histories the checker could not decide");
    assert!(histories as usize >= rounds * 2 * 12, "too few histories");
}
