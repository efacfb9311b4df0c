//! Recommendations for each target server, and how they are printed.

use std::fmt::Write as _;

use serde::Serialize;

use crate::hist::{Hist, Target};
use crate::issues::Issues;
use crate::optimize::{
    best_memcached_nf, evaluate, memcached_classes, optimize, ClassCount, Evaluation, NfChoice,
    Rules, MEMCACHED_CHUNK_MAX, MEMCACHED_PAGE,
};

/// Options of the computation.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// How many classes.
    pub count: ClassCount,
    /// Count slab tail waste in the objective.
    pub tail: bool,
    /// kvcache-server's slab size (its largest chunk is half of it).
    pub kv_slab: u64,
}

/// A class list with its waste.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// What it is ("recommended", "memcached defaults", "current", "best -n/-f").
    pub name: String,
    /// Its evaluation on the histogram.
    pub eval: Evaluation,
}

/// The recommendation for one server.
#[derive(Clone, Debug, Serialize)]
pub struct TargetReport {
    /// The server.
    pub target: Target,
    /// The rules the list obeys.
    pub rules: Rules,
    /// Items and their stored bytes (all sizes).
    pub items: u64,
    /// Sum of stored sizes.
    pub bytes: u128,
    /// The explicit list to pass with `-o slab_sizes=`.
    pub slab_sizes: Vec<u64>,
    /// The chunk sizes the server makes of it (the implicit class not included).
    pub chunks: Vec<u64>,
    /// Best objective by number of explicit classes.
    pub by_count: Vec<f64>,
    /// The recommendation and what it is compared with (first is the recommendation).
    pub configs: Vec<Config>,
    /// memcached only: the best `-n`/`-f` pair.
    pub nf: Option<NfChoice>,
    /// Command-line flags to paste.
    pub flags: Vec<String>,
}

/// Everything printed.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Where the data came from.
    pub source: String,
    /// Bad input.
    pub issues: Issues,
    /// Extra facts about the input (`lines`, `writes`, ...).
    pub input: Vec<(String, u64)>,
    /// One per target.
    pub targets: Vec<TargetReport>,
}

fn join(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join("-")
}

/// Builds the recommendation for `target` from its histogram; `current` is the class
/// list in use, if known.
pub fn target_report(
    target: Target,
    h: &Hist,
    opts: &Options,
    current: Option<&[u64]>,
) -> TargetReport {
    let (rules, page) = match target {
        Target::Memcached => (Rules::memcached(), MEMCACHED_PAGE),
        Target::Ours => (Rules::kvcache(opts.kv_slab), opts.kv_slab),
    };
    let sol = optimize(h, &rules, opts.count, opts.tail.then_some(page));
    let mut configs = Vec::new();
    let mut flags = Vec::new();
    let mut slab_sizes = Vec::new();
    let mut chunks = Vec::new();
    let mut by_count = Vec::new();
    if let Some(s) = &sol {
        configs.push(Config {
            name: "recommended".into(),
            eval: evaluate(h, &s.classes, page),
        });
        slab_sizes = s.written.clone();
        chunks = s.explicit.clone();
        by_count = s.by_count.clone();
        flags.push(format!(
            "{} -o slab_sizes={}",
            target.name(),
            join(&s.written)
        ));
    }
    let mut nf = None;
    if target == Target::Memcached {
        let d = memcached_classes(48, 1.25, MEMCACHED_CHUNK_MAX);
        configs.push(Config {
            name: "memcached defaults (-n 48 -f 1.25)".into(),
            eval: evaluate(h, &d, page),
        });
        let best = best_memcached_nf(h);
        configs.push(Config {
            name: format!("best -n {} -f {:.2}", best.n, best.factor),
            eval: evaluate(h, &best.classes, page),
        });
        flags.push(format!("memcached -n {} -f {:.2}", best.n, best.factor));
        nf = Some(best);
    }
    if target == Target::Ours {
        let d: Vec<u64> = kvcache_server::store::default_classes(opts.kv_slab as usize, 1 << 20)
            .sizes()
            .iter()
            .map(|&c| c as u64)
            .collect();
        configs.push(Config {
            name: "kvcache-server defaults".into(),
            eval: evaluate(h, &d, page),
        });
    }
    // The optimum with as many classes as the defaults, for a like-for-like comparison.
    if let Some(base) = configs.get(1).map(|c| c.eval.classes.len()) {
        let k = base
            .saturating_sub(usize::from(rules.implicit_top.is_some()))
            .max(1);
        if sol.as_ref().is_some_and(|s| s.explicit.len() != k) {
            if let Some(s) = optimize(h, &rules, ClassCount::Exact(k), opts.tail.then_some(page)) {
                configs.push(Config {
                    name: format!("optimal with {} classes", s.classes.len()),
                    eval: evaluate(h, &s.classes, page),
                });
            }
        }
    }
    if let Some(c) = current {
        if !c.is_empty() {
            configs.push(Config {
                name: "current".into(),
                eval: evaluate(h, c, page),
            });
        }
    }
    TargetReport {
        target,
        rules,
        items: h.items(),
        bytes: h.bytes(),
        slab_sizes,
        chunks,
        by_count,
        configs,
        nf,
        flags,
    }
}

fn pct(a: u128, b: u128) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

/// The human-readable form.
pub fn render_text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "source: {}", r.source);
    for (k, v) in &r.input {
        let _ = writeln!(o, "  {k}: {v}");
    }
    if !r.issues.is_empty() {
        let _ = writeln!(o, "bad input: {} (first ones below)", r.issues.count);
        for e in &r.issues.examples {
            let _ = writeln!(o, "  {e}");
        }
    }
    for t in &r.targets {
        let _ = writeln!(
            o,
            "\n== {} ({} items, {} stored bytes) ==",
            t.target.name(),
            t.items,
            t.bytes
        );
        if let Some(rec) = t.configs.first().filter(|c| c.name == "recommended") {
            let _ = writeln!(
                o,
                "{:>5} {:>8} {:>10} {:>12} {:>7}",
                "class", "chunk", "items", "waste", "waste%"
            );
            for (i, c) in rec.eval.classes.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "{:>5} {:>8} {:>10} {:>12} {:>6.2}%",
                    i + 1,
                    c.chunk,
                    c.items,
                    c.waste,
                    pct(c.waste, u128::from(c.chunk) * u128::from(c.items))
                );
            }
        } else {
            let _ = writeln!(o, "no item fits this server's classes");
        }
        let _ = writeln!(
            o,
            "{:<40} {:>8} {:>14} {:>8} {:>14}",
            "configuration", "classes", "waste", "waste%", "tail waste"
        );
        for c in &t.configs {
            let e = &c.eval;
            let _ = writeln!(
                o,
                "{:<40} {:>8} {:>14} {:>7.2}% {:>14}",
                c.name,
                e.classes.len(),
                e.waste,
                pct(e.waste, e.bytes + e.waste),
                e.tail_waste
            );
        }
        if let Some(e) = t
            .configs
            .first()
            .map(|c| &c.eval)
            .filter(|e| e.oversize_items > 0)
        {
            let _ = writeln!(
                o,
                "({} items larger than the largest class are not counted)",
                e.oversize_items
            );
        }
        if t.configs.len() >= 2 && t.configs[0].name == "recommended" {
            let (a, b) = (&t.configs[0].eval, &t.configs[1].eval);
            let diff = if a.waste <= b.waste {
                format!("{:.1}% less", 100.0 - pct(a.waste, b.waste.max(1)))
            } else {
                format!("{:.1}% more", pct(a.waste, b.waste.max(1)) - 100.0)
            };
            let _ = writeln!(
                o,
                "summary: {} classes waste {} B ({:.2}% of chunk bytes) vs {} B with {}: {diff}",
                a.classes.len(),
                a.waste,
                pct(a.waste, a.bytes + a.waste),
                b.waste,
                t.configs[1].name,
            );
        }
        for f in &t.flags {
            let _ = writeln!(o, "  {f}");
        }
    }
    o
}
