//! Runs the allocator workloads once per allocator, interleaved; the scaling of every
//! threaded workload from one thread to two; the allocator's metadata per live 64-byte
//! object; and the 512 MiB spike with its RSS timeline for every allocator (metadata and
//! spikes each in a child process of their own, so RSS is the allocator's alone).
//!
//! ```text
//! alloc-compare [--quick] [--json] [--no-spike] [--no-scaling] [--no-metadata]
//! alloc-compare --spikes                          only the spikes
//! alloc-compare --census                          only the false-sharing census
//! alloc-compare --spike NAME                      one spike, in this process (used by the parent)
//! alloc-compare --metadata-of NAME                metadata of one allocator, in this process
//! alloc-compare --only NAME[,NAME] --workload W   a subset (for profiling)
//! ```
//!
//! `--json` prints a JSON array on stdout: `{"workload", "allocator", "threads", "ns_per_op"}`
//! for every workload and every allocator (`ns_per_op` null where the workload does not fit
//! the allocator: sharded-slab stores 64-byte values only), the same with `"threads"` 1 and 2
//! for the scaling runs (`"scaling"` is the ratio of their throughputs), and
//! `{"workload": "metadata64", "allocator", "bytes_per_object"}`. Times are the fastest of the
//! repetitions: on a shared machine other processes only ever add time, so the minimum is
//! the estimate least disturbed by them; the table also shows the median. The tables then go
//! to stderr. `--quick` keeps the whole run to a few minutes.
use std::process::Command;
use std::ptr::NonNull;
use std::time::Duration;

use peer_benches::shapes::{handoff, larson_n, scratch, sh6, Run, Sharing};
use peer_benches::{
    larson, make, mixed, mixed_sizes, pair64, pair64_sharded, prodcons64, prodcons64_sharded,
    rss_bytes, Allocator, Rng, ALLOCATORS,
};
use serde_json::{json, Value};

/// Every workload, in the order printed. The `-pad64` runs are the false-sharing shapes with
/// every object padded to 64 bytes: the reference without false sharing.
const WORKLOADS: [&str; 10] = [
    "pair64",
    "mixed10k",
    "prodcons64",
    "larson",
    "xmalloc",
    "sh6bench",
    "cache-scratch",
    "cache-scratch-pad64",
    "cache-thrash",
    "cache-thrash-pad64",
];

/// The threaded workloads, run on one thread and on two for the scaling figures.
const SCALED: [&str; 6] = [
    "prodcons64",
    "larson",
    "xmalloc",
    "sh6bench",
    "cache-scratch",
    "cache-thrash",
];

struct Sizes {
    reps: usize,
    scaling_reps: usize,
    pair: usize,
    mixed_rounds: usize,
    prodcons: usize,
    larson_rounds: usize,
    larson_steps: usize,
    xmalloc: usize,
    sh6_rounds: usize,
    scratch_iters: usize,
    metadata_objects: usize,
}

const QUICK: Sizes = Sizes {
    reps: 9,
    scaling_reps: 5,
    pair: 2_000_000,
    mixed_rounds: 20,
    prodcons: 1_000_000,
    larson_rounds: 50,
    larson_steps: 10_000,
    xmalloc: 1_000_000,
    sh6_rounds: 300,
    scratch_iters: 50_000,
    metadata_objects: 10_000_000,
};

const FULL: Sizes = Sizes {
    reps: 11,
    scaling_reps: 9,
    pair: 10_000_000,
    mixed_rounds: 100,
    prodcons: 4_000_000,
    larson_rounds: 200,
    larson_steps: 10_000,
    xmalloc: 4_000_000,
    sh6_rounds: 1_000,
    scratch_iters: 200_000,
    metadata_objects: 10_000_000,
};

/// Threads of a threaded workload in the main table.
const THREADS: usize = 2;

/// Checks a shape's counts (every object allocated was freed once) and returns its ns/op.
fn checked(w: &str, r: Run) -> f64 {
    assert_eq!(r.objects, r.freed, "{w}: objects allocated vs freed");
    r.ns_per_op()
}

/// One run of `workload` on allocator `name` with `threads` threads (the single-thread
/// workloads ignore it): ns per object allocated and freed, or `None` if the workload does
/// not fit the allocator.
fn run_once(
    workload: &str,
    threads: usize,
    name: &str,
    alloc: Option<&dyn Allocator>,
    slab: &sharded_slab::Slab<[u8; 64]>,
    sizes: &[usize],
    z: &Sizes,
) -> Option<f64> {
    let ns = |d: Duration, ops: usize| d.as_nanos() as f64 / ops as f64;
    let two = threads == THREADS;
    Some(match (workload, alloc) {
        ("pair64", Some(a)) => ns(pair64(a, z.pair), z.pair),
        ("pair64", None) if name == "sharded-slab" => ns(pair64_sharded(slab, z.pair), z.pair),
        ("mixed10k", Some(a)) => ns(
            mixed(a, sizes, z.mixed_rounds),
            z.mixed_rounds * sizes.len(),
        ),
        // The main table keeps the long-standing two-thread shapes; the scaling runs use the
        // shapes that take a thread count.
        ("prodcons64", Some(a)) if two => ns(prodcons64(a, z.prodcons), z.prodcons),
        ("prodcons64", None) if two && name == "sharded-slab" => {
            ns(prodcons64_sharded(slab, z.prodcons), z.prodcons)
        }
        ("prodcons64", Some(a)) => checked(workload, handoff(a, threads, z.prodcons, Some(64))),
        ("larson", Some(a)) if two => ns(
            larson(a, z.larson_rounds, z.larson_steps),
            2 * z.larson_rounds * z.larson_steps,
        ),
        ("larson", Some(a)) => checked(
            workload,
            larson_n(a, threads, z.larson_rounds, z.larson_steps),
        ),
        ("xmalloc", Some(a)) => checked(workload, handoff(a, threads, z.xmalloc, None)),
        ("sh6bench", Some(a)) => checked(workload, sh6(a, threads, z.sh6_rounds)),
        ("cache-scratch" | "cache-scratch-pad64", Some(a)) => checked(
            workload,
            scratch(
                a,
                Sharing::Passive,
                threads,
                z.scratch_iters,
                workload.ends_with("pad64"),
            ),
        ),
        ("cache-thrash" | "cache-thrash-pad64", Some(a)) => checked(
            workload,
            scratch(
                a,
                Sharing::Active,
                threads,
                z.scratch_iters,
                workload.ends_with("pad64"),
            ),
        ),
        _ => return None,
    })
}

/// (fastest, median) of the repetitions.
fn min_median(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2])
}

/// A result: workload, allocator, threads, fastest and median ns/op (`None`: does not fit).
type Row = (String, String, usize, Option<(f64, f64)>);

/// Runs `workloads` with every thread count of `threads` on every allocator: a warm-up pass
/// (not recorded), then `reps` repetitions, interleaving allocators and thread counts.
fn measure(
    allocs: &[(&str, Option<Box<dyn Allocator>>)],
    workloads: &[&str],
    threads: &[usize],
    reps: usize,
    z: &Sizes,
) -> Vec<Row> {
    let slab = sharded_slab::Slab::new();
    let sizes = mixed_sizes();
    let mut results = vec![vec![vec![Vec::new(); threads.len()]; allocs.len()]; workloads.len()];
    for rep in 0..=reps {
        for (wi, w) in workloads.iter().enumerate() {
            // Rotate the order every repetition so no allocator always runs first.
            for k in 0..allocs.len() {
                let ai = (k + rep) % allocs.len();
                let (name, a) = &allocs[ai];
                for (ti, &t) in threads.iter().enumerate() {
                    if let Some(ns) = run_once(w, t, name, a.as_deref(), &slab, &sizes, z) {
                        if rep > 0 {
                            results[wi][ai][ti].push(ns);
                        }
                    }
                }
            }
        }
    }
    let mut rows = Vec::new();
    for (wi, w) in workloads.iter().enumerate() {
        for (ai, (name, _)) in allocs.iter().enumerate() {
            for (ti, &t) in threads.iter().enumerate() {
                let r = &mut results[wi][ai][ti];
                let v = (!r.is_empty()).then(|| min_median(r));
                rows.push((w.to_string(), name.to_string(), t, v));
            }
        }
    }
    rows
}

fn find(rows: &[Row], w: &str, a: &str, t: usize) -> Option<(f64, f64)> {
    rows.iter()
        .find(|r| r.0 == w && r.1 == a && r.2 == t)
        .and_then(|r| r.3)
}

/// Threads a workload runs with in the main table.
fn table_threads(w: &str) -> usize {
    if SCALED.iter().any(|s| w.starts_with(s)) {
        THREADS
    } else {
        1
    }
}

/// The main table: ns/op per workload and allocator, and slab-core against the best peer.
fn main_table(rows: &[Row], names: &[&str]) -> String {
    let mut out = format!("{:<20}", "ns/op min(med)");
    for n in names {
        out.push_str(&format!(" {n:>16}"));
    }
    out.push_str(&format!("   {:>22}\n", "slab / best peer"));
    for w in WORKLOADS {
        let t = table_threads(w);
        out.push_str(&format!("{w:<20}"));
        for n in names {
            let c =
                find(rows, w, n, t).map_or("-".to_string(), |(a, b)| format!("{a:.2} ({b:.2})"));
            out.push_str(&format!(" {c:>16}"));
        }
        let best = names
            .iter()
            .filter(|n| **n != "slab-core")
            .filter_map(|n| find(rows, w, n, t).map(|v| (v.0, *n)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let ratio = match (find(rows, w, "slab-core", t), best) {
            (Some(s), Some((b, n))) => format!("{:.2}x {n}", s.0 / b),
            _ => "-".into(),
        };
        out.push_str(&format!("   {ratio:>22}\n"));
    }
    // The false-sharing shapes against their padded runs.
    out.push_str("false sharing: unpadded / padded-to-64 B run (1.00x = no cost)\n");
    for w in ["cache-scratch", "cache-thrash"] {
        let mut line = format!("{w:<20}");
        let pad = format!("{w}-pad64");
        for n in names {
            let c = match (find(rows, w, n, THREADS), find(rows, &pad, n, THREADS)) {
                (Some(u), Some(p)) => format!("{:.2}x", u.0 / p.0),
                _ => "-".into(),
            };
            line.push_str(&format!(" {c:>16}"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`): a two-thread run on a 2-core
/// machine only scales when no other process wants the cores.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The scaling table: throughput on two threads over throughput on one.
fn scaling_table(rows: &[Row], names: &[&str]) -> String {
    let mut out = format!("{:<20}", "scaling 1->2 thr");
    for n in names {
        out.push_str(&format!(" {n:>16}"));
    }
    out.push('\n');
    for w in SCALED {
        out.push_str(&format!("{w:<20}"));
        for n in names {
            let c = match (find(rows, w, n, 1), find(rows, w, n, 2)) {
                (Some(one), Some(two)) => format!("{:.2}x", scaling(one.0, two.0)),
                _ => "-".into(),
            };
            out.push_str(&format!(" {c:>16}"));
        }
        out.push('\n');
    }
    out.push_str("(throughput on 2 threads / on 1, from ns per object; 2.00x is linear)\n");
    out
}

/// Throughput ratio from ns per object on one thread and on two. The hand-off shapes do the
/// same objects on either count (one thread allocates and frees, or one allocates and the
/// other frees); the others do twice the objects on two threads; either way ns per object
/// counts the objects of all threads, so its ratio is the throughput ratio.
fn scaling(one: f64, two: f64) -> f64 {
    one / two
}

fn workloads(z: &Sizes, json_out: bool, only: Option<&str>, workload: Option<&str>, scale: bool) {
    let allocs: Vec<(&str, Option<Box<dyn Allocator>>)> = ALLOCATORS
        .iter()
        .filter(|n| match only {
            None => true,
            Some(o) => o.split(',').any(|x| x == **n),
        })
        .map(|&n| (n, make(n)))
        .collect();
    let names: Vec<&str> = allocs.iter().map(|a| a.0).collect();
    let load_before = load_average();
    let mut rows = Vec::new();
    for w in WORKLOADS
        .iter()
        .filter(|w| workload.is_none_or(|x| x == **w))
    {
        // One workload at a time, every allocator interleaved within it.
        rows.extend(measure(&allocs, &[w], &[table_threads(w)], z.reps, z));
    }
    let mut scaled = Vec::new();
    if scale {
        for w in SCALED.iter().filter(|w| workload.is_none_or(|x| x == **w)) {
            // sharded-slab has no one-thread form of these shapes.
            let byte: Vec<(&str, Option<Box<dyn Allocator>>)> = names
                .iter()
                .filter(|n| **n != "sharded-slab")
                .map(|&n| (n, make(n)))
                .collect();
            scaled.extend(measure(&byte, &[w], &[1, 2], z.scaling_reps, z));
        }
    }
    let mut text = format!(
        "load average before: {load_before}, after: {}\n",
        load_average()
    );
    text.push_str(&main_table(&rows, &names));
    if scale {
        text.push('\n');
        text.push_str(&scaling_table(&scaled, &names));
    }
    if json_out {
        let round = |v: f64| (v * 100.0).round() / 100.0;
        let mut arr: Vec<Value> = rows
            .iter()
            .map(|(w, a, t, v)| {
                json!({"workload": w, "allocator": a, "threads": t,
                       "ns_per_op": v.map(|x| round(x.0))})
            })
            .collect();
        for w in SCALED {
            for n in names.iter().filter(|n| **n != "sharded-slab") {
                if let (Some(one), Some(two)) = (find(&scaled, w, n, 1), find(&scaled, w, n, 2)) {
                    arr.push(json!({"workload": w, "allocator": n, "threads": 1,
                                    "ns_per_op": round(one.0), "scaling": round(scaling(one.0, two.0))}));
                    arr.push(json!({"workload": w, "allocator": n, "threads": 2,
                                    "ns_per_op": round(two.0), "scaling": round(scaling(one.0, two.0))}));
                }
            }
        }
        println!("{}", serde_json::to_string_pretty(&arr).expect("json"));
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// The false-sharing census: per allocator, the share of objects of cache-scratch and
/// cache-thrash (two threads, unpadded) allocated in a cache line that held the other
/// thread's live object at that moment. One run each: it counts addresses, not time.
fn census(z: &Sizes, json_out: bool) {
    let mut text = format!(
        "{:<20} {:>16} {:>16}\n",
        "objects in a line", "cache-scratch", "cache-thrash"
    );
    text.push_str(&format!(
        "{:<20} {:>16} {:>16}\n",
        "shared by threads", "", ""
    ));
    let mut records = Vec::new();
    for name in ALLOCATORS {
        let Some(a) = make(name) else { continue };
        let mut line = format!("{name:<20}");
        for (w, sharing) in [
            ("cache-scratch", Sharing::Passive),
            ("cache-thrash", Sharing::Active),
        ] {
            let r = scratch(&*a, sharing, THREADS, z.scratch_iters, false);
            let pct = 100.0 * r.shared_objects as f64 / r.objects as f64;
            line.push_str(&format!(" {:>15.1}%", pct));
            records.push(json!({"workload": w, "allocator": name, "threads": THREADS,
                                "shared_line_objects_pct": (pct * 10.0).round() / 10.0}));
        }
        text.push_str(&line);
        text.push('\n');
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&records).expect("json"));
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// Metadata of allocator `name`, in this process: RSS before and after allocating
/// `objects` 64-byte objects (each written), minus their payload, per object. The pointer
/// array is allocated and written before the first RSS reading, so it is not counted.
fn metadata_of(name: &str, objects: usize) {
    let mut ptrs: Vec<usize> = Vec::with_capacity(objects);
    ptrs.resize(objects, 1);
    let before;
    if name == "sharded-slab" {
        let slab = sharded_slab::Slab::<[u8; 64]>::new();
        before = rss_bytes();
        for (i, p) in ptrs.iter_mut().enumerate() {
            *p = slab.insert([i as u8; 64]).expect("slab capacity");
        }
        report_metadata(name, objects, before, rss_bytes());
        for &k in &ptrs {
            slab.remove(k);
        }
        return;
    }
    let a = make(name).unwrap_or_else(|| panic!("no allocator named {name}"));
    before = rss_bytes();
    for (i, p) in ptrs.iter_mut().enumerate() {
        let q = a.alloc(64);
        // SAFETY: a fresh allocation of 64 bytes.
        unsafe { q.as_ptr().write_bytes(i as u8, 64) };
        *p = q.as_ptr() as usize;
    }
    report_metadata(name, objects, before, rss_bytes());
    for &p in &ptrs {
        // SAFETY: allocated above with 64 bytes, freed once.
        unsafe { a.free(NonNull::new(p as *mut u8).expect("live"), 64) };
    }
}

fn report_metadata(name: &str, objects: usize, before: usize, after: usize) {
    let grown = after.saturating_sub(before);
    let per = (grown as f64 - (objects * 64) as f64) / objects as f64;
    println!(
        "{}",
        json!({"workload": "metadata64", "allocator": name, "objects": objects,
               "rss_grown_bytes": grown, "bytes_per_object": (per * 100.0).round() / 100.0})
    );
}

/// Runs [`metadata_of`] for every allocator in a child process; prints the table (and the
/// JSON records, with `--json`).
fn metadata(objects: usize, json_out: bool) {
    let exe = std::env::current_exe().expect("own path");
    let mut text = format!("metadata: RSS minus payload per live 64 B object, {objects} objects\n");
    let mut records = Vec::new();
    for name in ALLOCATORS {
        let out = Command::new(&exe)
            .args(["--metadata-of", name, "--objects", &objects.to_string()])
            .output()
            .expect("spawn metadata child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        match serde_json::from_str::<Value>(stdout.trim()) {
            Ok(v) => {
                text.push_str(&format!(
                    "{name:<14} {:>8.2} B\n",
                    v["bytes_per_object"].as_f64().unwrap_or(f64::NAN)
                ));
                records.push(v);
            }
            Err(_) => text.push_str(&format!(
                "{name}: metadata child failed: {}\n",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&records).expect("json"));
        eprint!("{text}");
    } else {
        print!("{text}");
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
    let value = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    if let Some(name) = value("--spike") {
        spike(name);
        return;
    }
    let z = if has("--quick") { &QUICK } else { &FULL };
    if let Some(name) = value("--metadata-of") {
        let n = value("--objects").map_or(z.metadata_objects, |v| v.parse().expect("--objects N"));
        metadata_of(name, n);
        return;
    }
    if has("--spikes") {
        spikes(false);
        return;
    }
    if has("--census") {
        census(z, has("--json"));
        return;
    }
    let json_out = has("--json");
    workloads(
        z,
        json_out,
        value("--only"),
        value("--workload"),
        !has("--no-scaling"),
    );
    if value("--only").is_none() && value("--workload").is_none() {
        census(z, json_out);
    }
    if !has("--no-metadata") && value("--only").is_none() && value("--workload").is_none() {
        metadata(z.metadata_objects, json_out);
    }
    if !has("--no-spike") {
        spikes(json_out);
    }
}
