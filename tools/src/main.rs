//! slabtune: recommends size classes from what a cache stores.
#![warn(missing_docs)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use tools::hist::Target;
use tools::issues::Issues;
use tools::optimize::{memcached_classes, ClassCount, MEMCACHED_CHUNK_MAX};
use tools::report::{render_text, target_report, Options, Report};
use tools::{live, pcap, svg, trace};

#[derive(Parser, Debug)]
#[command(
    name = "slabtune",
    about = "Recommend slab size classes from observed cache traffic"
)]
struct Cli {
    #[command(subcommand)]
    input: Input,
    /// Number of classes (default: add classes while one more saves at least --min-gain).
    #[arg(long, global = true)]
    classes: Option<usize>,
    /// Stop adding classes when one more cuts the waste by less than this percentage.
    #[arg(long, global = true, default_value_t = 0.5)]
    min_gain: f64,
    /// Count slab tail waste (the unused end of each slab page) in the objective.
    #[arg(long, global = true)]
    tail: bool,
    /// Which server(s) to recommend for.
    #[arg(long, global = true, value_enum, default_value_t = Which::Both)]
    target: Which,
    /// Items are stored without CAS (`-C`).
    #[arg(long, global = true)]
    no_cas: bool,
    /// kvcache-server's slab size (a power of two; its largest chunk is half of it).
    #[arg(long, global = true, default_value_t = kvcache_server::store::DEFAULT_SLAB_SIZE as u64)]
    kv_slab: u64,
    /// Print JSON instead of the table.
    #[arg(long, global = true)]
    json: bool,
    /// Draw the histogram, class boundaries and waste per class to this SVG file (for
    /// memcached with `--target both`).
    #[arg(long, global = true)]
    plot: Option<PathBuf>,
    /// Treat bad input as an error.
    #[arg(long, global = true)]
    strict: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Which {
    Ours,
    Memcached,
    Both,
}

#[derive(Subcommand, Debug)]
enum Input {
    /// Read the size histogram of a running kvcache-server or memcached (-o track_sizes).
    Live {
        /// HOST:PORT
        addr: String,
    },
    /// Read a Twitter cache trace (CSV, plain or zstd).
    Trace {
        /// The trace file.
        file: PathBuf,
        /// Count every write instead of the latest size per key.
        #[arg(long)]
        per_request: bool,
    },
    /// Read a tcpdump capture of memcached text traffic.
    Pcap {
        /// The capture (pcap or pcapng).
        file: PathBuf,
        /// The server port.
        #[arg(long, default_value_t = 11211)]
        port: u16,
        /// Count every write and VALUE reply instead of the latest size per key.
        #[arg(long)]
        per_request: bool,
    },
    /// Measure trace parsing speed on generated lines.
    #[command(hide = true)]
    BenchTrace {
        /// Lines to generate.
        #[arg(long, default_value_t = 10_000_000)]
        lines: usize,
        /// Distinct keys.
        #[arg(long, default_value_t = 1_000_000)]
        keys: usize,
        /// Count every write.
        #[arg(long)]
        per_request: bool,
    },
}

fn run(cli: Cli) -> Result<(), String> {
    let cas = !cli.no_cas;
    if !cli.kv_slab.is_power_of_two() || !(4096..=1 << 30).contains(&cli.kv_slab) {
        return Err("--kv-slab must be a power of two between 4096 and 2^30".into());
    }
    let opts = Options {
        count: match cli.classes {
            Some(k) => ClassCount::Exact(k.max(1)),
            None => ClassCount::Auto {
                min_gain: cli.min_gain / 100.0,
            },
        },
        tail: cli.tail,
        kv_slab: cli.kv_slab,
    };
    let targets: Vec<Target> = match cli.target {
        Which::Ours => vec![Target::Ours],
        Which::Memcached => vec![Target::Memcached],
        Which::Both => vec![Target::Ours, Target::Memcached],
    };
    let mut input = Vec::new();
    let (source, issues, hists, current) = match &cli.input {
        Input::BenchTrace {
            lines,
            keys,
            per_request,
        } => {
            let data = trace::synthetic(*lines, *keys);
            let mut t = trace::TraceReader::new(*per_request, false);
            let start = Instant::now();
            t.read_all(&data[..], |_| {}).map_err(|e| e.to_string())?;
            let secs = start.elapsed().as_secs_f64();
            let items = t.observed().count();
            println!(
                "{} lines ({} MB) in {:.3} s: {:.2} M lines/s, {:.0} MB/s ({} items)",
                t.lines,
                data.len() / 1_000_000,
                secs,
                t.lines as f64 / secs / 1e6,
                data.len() as f64 / secs / 1e6,
                items
            );
            return Ok(());
        }
        Input::Live { addr } => {
            let d = live::read(addr)?;
            input.push((
                "server is kvcache-server".to_string(),
                u64::from(d.server == Target::Ours),
            ));
            let hists: Vec<_> = targets.iter().map(|&t| (t, d.hist_for(t))).collect();
            (
                format!("live {addr} ({})", d.server.name()),
                Issues::default(),
                hists,
                Some((d.server, d.current)),
            )
        }
        Input::Trace { file, per_request } => {
            let (r, len) = trace::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let pb = std::io::stderr().is_terminal().then(|| {
                let pb = indicatif::ProgressBar::new(len);
                pb.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .expect("valid template"),
                );
                pb
            });
            let mut t = trace::TraceReader::new(*per_request, cli.strict);
            // Progress counts the bytes after decompression against the file's size, so a
            // compressed trace overshoots its bar: it is only a sign of life.
            let counted = trace::Counting::new(r, |n| {
                if let Some(pb) = &pb {
                    pb.inc(n as u64);
                }
            });
            t.read_all(counted, |_| {}).map_err(|e| e.to_string())?;
            if let Some(pb) = &pb {
                pb.finish_and_clear();
            }
            input.push(("lines".into(), t.lines));
            input.push(("writes".into(), t.writes));
            let o = t.observed();
            input.push(("items".into(), o.count()));
            let hists = targets.iter().map(|&tg| (tg, o.hist(tg, cas))).collect();
            (format!("trace {}", file.display()), t.issues, hists, None)
        }
        Input::Pcap {
            file,
            port,
            per_request,
        } => {
            let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let r =
                pcap::read_capture(&data, *port).map_err(|e| format!("{}: {e}", file.display()))?;
            if cli.strict && !r.issues.is_empty() {
                return Err(r.issues.examples[0].clone());
            }
            input.push(("events".into(), r.events.len() as u64));
            input.push(("retransmitted segments".into(), r.retransmitted));
            input.push(("out-of-order segments".into(), r.out_of_order));
            let o = pcap::observe(&r.events, *per_request);
            input.push(("items".into(), o.count()));
            let hists = targets.iter().map(|&tg| (tg, o.hist(tg, cas))).collect();
            (
                format!("pcap {} port {port}", file.display()),
                r.issues,
                hists,
                None,
            )
        }
    };
    if cli.strict && !issues.is_empty() {
        return Err(issues.examples.first().cloned().unwrap_or_default());
    }
    let reports: Vec<_> = hists
        .iter()
        .map(|(t, h)| {
            let cur = current
                .as_ref()
                .filter(|c| c.0 == *t)
                .map(|c| c.1.as_slice());
            target_report(*t, h, &opts, cur)
        })
        .collect();
    let report = Report {
        source,
        issues,
        input,
        targets: reports,
    };
    if let Some(path) = &cli.plot {
        let i = report.targets.len() - 1;
        let (defaults, name) = match hists[i].0 {
            Target::Memcached => (
                memcached_classes(48, 1.25, MEMCACHED_CHUNK_MAX),
                "memcached defaults",
            ),
            Target::Ours => (
                kvcache_server::store::default_classes(cli.kv_slab as usize, 1 << 20)
                    .sizes()
                    .iter()
                    .map(|&c| c as u64)
                    .collect(),
                "kvcache-server defaults",
            ),
        };
        let doc = svg::plot(&hists[i].1, &report.targets[i], &defaults, name);
        std::fs::write(path, doc).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", render_text(&report));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slabtune: {e}");
            ExitCode::FAILURE
        }
    }
}
