//! Runs the allocator workloads once per allocator, interleaved, and the 512 MiB spike with
//! its RSS timeline for every allocator (each in a child process of its own).
//!
//! ```text
//! alloc-compare [--quick] [--json] [--no-spike]   workloads (+ spikes unless --no-spike)
//! alloc-compare --spikes                          only the spikes
//! alloc-compare --spike NAME                      one spike, in this process (used by the parent)
//! alloc-compare --only NAME[,NAME] --workload W   a subset (for profiling)
//! ```
//!
//! `--json` prints a JSON array of `{"workload", "allocator", "ns_per_op"}` on stdout (the
//! fastest of the repetitions: on a shared machine other processes only ever add time, so the
//! minimum is the estimate least disturbed by them; the table also shows the median); the spike timelines then go to stderr. `--quick` keeps the
//! whole run under a minute.

use std::process::Command;
use std::ptr::NonNull;
use std::time::Duration;

use peer_benches::{
    larson, make, mixed, mixed_sizes, pair64, pair64_sharded, prodcons64, prodcons64_sharded,
    rss_bytes, Allocator, Rng, ALLOCATORS,
};
use serde_json::{json, Value};

const WORKLOADS: [&str; 4] = ["pair64", "mixed10k", "prodcons64", "larson"];

struct Sizes {
    reps: usize,
    pair: usize,
    mixed_rounds: usize,
    prodcons: usize,
    larson_rounds: usize,
    larson_steps: usize,
}

const QUICK: Sizes = Sizes {
    reps: 9,
    pair: 2_000_000,
    mixed_rounds: 20,
    prodcons: 1_000_000,
    larson_rounds: 50,
    larson_steps: 10_000,
};

const FULL: Sizes = Sizes {
    reps: 11,
    pair: 10_000_000,
    mixed_rounds: 100,
    prodcons: 4_000_000,
    larson_rounds: 200,
    larson_steps: 10_000,
};

/// One run of `workload` on allocator `name`: ns per object allocated and freed, or `None`
/// if the workload does not fit the allocator.
fn run_once(
    workload: &str,
    name: &str,
    alloc: Option<&dyn Allocator>,
    slab: &sharded_slab::Slab<[u8; 64]>,
    sizes: &[usize],
    z: &Sizes,
) -> Option<f64> {
    let (d, ops) = match (workload, alloc) {
        ("pair64", Some(a)) => (pair64(a, z.pair), z.pair),
        ("pair64", None) if name == "sharded-slab" => (pair64_sharded(slab, z.pair), z.pair),
        ("mixed10k", Some(a)) => (
            mixed(a, sizes, z.mixed_rounds),
            z.mixed_rounds * sizes.len(),
        ),
        ("prodcons64", Some(a)) => (prodcons64(a, z.prodcons), z.prodcons),
        ("prodcons64", None) if name == "sharded-slab" => {
            (prodcons64_sharded(slab, z.prodcons), z.prodcons)
        }
        ("larson", Some(a)) => (
            larson(a, z.larson_rounds, z.larson_steps),
            2 * z.larson_rounds * z.larson_steps,
        ),
        _ => return None,
    };
    Some(d.as_nanos() as f64 / ops as f64)
}

/// (fastest, median) of the repetitions.
fn min_median(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2])
}

fn workloads(z: &Sizes, json_out: bool, only: Option<&str>, workload: Option<&str>) {
    let allocs: Vec<(&str, Option<Box<dyn Allocator>>)> = ALLOCATORS
        .iter()
        .filter(|n| match only {
            None => true,
            Some(o) => o.split(',').any(|x| x == **n),
        })
        .map(|&n| (n, make(n)))
        .collect();
    let slab = sharded_slab::Slab::new();
    let sizes = mixed_sizes();
    // results[w][a] = ns per op of every repetition.
    let mut results = vec![vec![Vec::new(); allocs.len()]; WORKLOADS.len()];
    // A warm-up pass (not recorded), then the repetitions, interleaving allocators.
    for rep in 0..=z.reps {
        for (wi, w) in WORKLOADS.iter().enumerate() {
            if workload.is_some_and(|x| x != *w) {
                continue;
            }
            // Rotate the order every repetition so no allocator always runs first.
            for k in 0..allocs.len() {
                let ai = (k + rep) % allocs.len();
                let (name, a) = &allocs[ai];
                if let Some(ns) = run_once(w, name, a.as_deref(), &slab, &sizes, z) {
                    if rep > 0 {
                        results[wi][ai].push(ns);
                    }
                }
            }
        }
    }
    let mut rows = Vec::new();
    for (wi, w) in WORKLOADS.iter().enumerate() {
        for (ai, (name, _)) in allocs.iter().enumerate() {
            if !results[wi][ai].is_empty() {
                let (ns, med) = min_median(&mut results[wi][ai]);
                rows.push((w.to_string(), name.to_string(), ns, med));
            }
        }
    }
    if json_out {
        let arr: Vec<Value> = rows
            .iter()
            .map(|(w, a, ns, _)| {
                json!({"workload": w, "allocator": a, "ns_per_op": (ns * 100.0).round() / 100.0})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&arr).expect("json"));
    }
    let mut out = String::new();
    out.push_str(&format!(
        "{:<14} {:>16} {:>16} {:>16} {:>16} {:>16}   {:>14}\n",
        "ns/op min(med)",
        "slab-core",
        "glibc",
        "mimalloc",
        "jemalloc",
        "sharded-slab",
        "slab/mimalloc"
    ));
    for w in WORKLOADS {
        let row = |a: &str| rows.iter().find(|(rw, ra, _, _)| rw == w && ra == a);
        let get = |a: &str| row(a).map(|r| r.2);
        let cell = |a: &str| row(a).map_or("-".to_string(), |r| format!("{:.2} ({:.2})", r.2, r.3));
        let ratio = match (get("slab-core"), get("mimalloc")) {
            (Some(s), Some(m)) => format!("{:.2}x", s / m),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<14} {:>16} {:>16} {:>16} {:>16} {:>16}   {:>14}\n",
            w,
            cell("slab-core"),
            cell("glibc"),
            cell("mimalloc"),
            cell("jemalloc"),
            cell("sharded-slab"),
            ratio
        ));
    }
    if json_out {
        eprint!("{out}");
    } else {
        print!("{out}");
    }
}

/// Objects of the steady working set before the spike, and of the spike.
const BASELINE_OBJECTS: usize = 40_000;
const SPIKE_OBJECT: usize = 1024;
const SPIKE_BYTES: usize = 512 << 20;

/// The spike, in this process, on allocator `name`; prints one JSON object.
fn spike(name: &str) {
    let a = make(name).unwrap_or_else(|| panic!("no byte allocator named {name}"));
    let mut timeline = Vec::new();
    let mut mark = |phase: &str| timeline.push(json!({"phase": phase, "rss_bytes": rss_bytes()}));
    mark("start");
    let mut r = Rng::new(7);
    let baseline: Vec<(NonNull<u8>, usize)> = (0..BASELINE_OBJECTS)
        .map(|_| {
            let s = r.range(16, 1024);
            let p = a.alloc(s);
            // SAFETY: a fresh allocation of `s` bytes.
            unsafe { p.as_ptr().write_bytes(0xab, s) };
            (p, s)
        })
        .collect();
    mark("baseline");
    let n = SPIKE_BYTES / SPIKE_OBJECT;
    let mut spike: Vec<NonNull<u8>> = Vec::with_capacity(n);
    for _ in 0..n {
        let p = a.alloc(SPIKE_OBJECT);
        // SAFETY: a fresh allocation of SPIKE_OBJECT bytes.
        unsafe { p.as_ptr().write_bytes(0xcd, SPIKE_OBJECT) };
        spike.push(p);
    }
    mark("peak");
    for p in spike.drain(..) {
        // SAFETY: allocated above with SPIKE_OBJECT bytes, freed once.
        unsafe { a.free(p, SPIKE_OBJECT) };
    }
    drop(spike);
    mark("freed");
    let reaped = a.reap();
    mark("after_one_reap");
    std::thread::sleep(Duration::from_secs(1));
    mark("after_1s");
    let report = json!({
        "allocator": name,
        "reap_call": reaped,
        "timeline": timeline,
    });
    println!("{report}");
    for (p, s) in baseline {
        // SAFETY: allocated above with size `s`, freed once.
        unsafe { a.free(p, s) };
    }
}

/// Runs the spike of every byte allocator in a child process and prints the timelines.
fn spikes(to_stderr: bool) {
    let exe = std::env::current_exe().expect("own path");
    let mut lines = String::new();
    let mut header = format!("{:<10}", "RSS MiB");
    let phases = [
        "start",
        "baseline",
        "peak",
        "freed",
        "after_one_reap",
        "after_1s",
    ];
    for p in phases {
        header.push_str(&format!(" {p:>15}"));
    }
    lines.push_str(&format!(
        "spike: {} MiB in {} B objects on a {}-object working set (16-1024 B)\n{header}\n",
        SPIKE_BYTES >> 20,
        SPIKE_OBJECT,
        BASELINE_OBJECTS
    ));
    let mut verdict = String::new();
    for name in ALLOCATORS.iter().filter(|n| make(n).is_some()) {
        let out = Command::new(&exe)
            .args(["--spike", name])
            .output()
            .expect("spawn spike child");
        let text = String::from_utf8_lossy(&out.stdout);
        let Ok(v) = serde_json::from_str::<Value>(text.trim()) else {
            lines.push_str(&format!(
                "{name}: spike child failed: {}\n",
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        };
        let rss = |phase: &str| {
            v["timeline"]
                .as_array()
                .and_then(|t| t.iter().find(|e| e["phase"] == phase))
                .and_then(|e| e["rss_bytes"].as_u64())
                .unwrap_or(0)
        };
        let mut row = format!("{name:<10}");
        for p in phases {
            row.push_str(&format!(" {:>15.1}", rss(p) as f64 / (1 << 20) as f64));
        }
        lines.push_str(&row);
        lines.push('\n');
        let (base, after) = (rss("baseline"), rss("after_one_reap"));
        if *name == "slab-core" {
            verdict = format!(
                "slab-core after one reap: {:.1} MiB vs {:.1} MiB before the spike ({:+.1}%; target within 10%)\n",
                after as f64 / (1 << 20) as f64,
                base as f64 / (1 << 20) as f64,
                (after as f64 / base as f64 - 1.0) * 100.0
            );
        }
    }
    lines.push_str(&verdict);
    if to_stderr {
        eprint!("{lines}");
    } else {
        print!("{lines}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    if let Some(i) = args.iter().position(|a| a == "--spike") {
        spike(args.get(i + 1).expect("--spike NAME"));
        return;
    }
    if has("--spikes") {
        spikes(false);
        return;
    }
    let z = if has("--quick") { &QUICK } else { &FULL };
    let json_out = has("--json");
    let value = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    workloads(z, json_out, value("--only"), value("--workload"));
    if !has("--no-spike") {
        spikes(json_out);
    }
}
