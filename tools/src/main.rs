//! slabtune: recommends size classes from what a cache stores.
#![warn(missing_docs)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use slabtune::hist::Target;
use slabtune::issues::Issues;
use slabtune::optimize::{memcached_classes, ClassCount, MEMCACHED_CHUNK_MAX};
use slabtune::report::{render_text, target_report, Options, Report};
use slabtune::{apply, live, pcap, svg, trace};

const DEFAULT_KV_SLAB: u64 = kvcache_server::store::DEFAULT_SLAB_SIZE as u64;

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
    /// Default: what a live kvcache-server reports, else 65536.
    #[arg(long, global = true)]
    kv_slab: Option<u64>,
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
    /// Read a running kvcache-server's histogram, recommend classes for it (as `live`) and
    /// re-class it live with `slabs classes <list>`. Fails on an error reply, and for
    /// memcached (which cannot re-class while running: the restart flags are printed).
    Apply {
        /// HOST:PORT
        addr: String,
        /// Print the recommendation and the command without sending it.
        #[arg(long)]
        dry_run: bool,
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

fn check_kv_slab(kv_slab: u64) -> Result<u64, String> {
    if !kv_slab.is_power_of_two() || !(4096..=1 << 30).contains(&kv_slab) {
        return Err(format!(
            "slab size {kv_slab}: must be a power of two between 4096 and 2^30"
        ));
    }
    Ok(kv_slab)
}

fn options(cli: &Cli, kv_slab: u64) -> Options {
    Options {
        count: match cli.classes {
            Some(k) => ClassCount::Exact(k.max(1)),
            None => ClassCount::Auto {
                min_gain: cli.min_gain / 100.0,
            },
        },
        tail: cli.tail,
        kv_slab,
    }
}

/// `slabtune apply`: recommend for the live server and send `slabs classes`.
fn apply(cli: &Cli, addr: &str, dry_run: bool) -> Result<(), String> {
    let d = live::read(addr).map_err(|e| {
        if e.contains("track_sizes") {
            format!("{e}; note that memcached cannot change its classes while running anyway")
        } else {
            e
        }
    })?;
    let kv_slab = match d.server {
        Target::Ours => cli.kv_slab.or(d.slab_page_size),
        Target::Memcached => cli.kv_slab,
    };
    let opts = options(cli, check_kv_slab(kv_slab.unwrap_or(DEFAULT_KV_SLAB))?);
    let t = target_report(d.server, &d.hist, &opts, Some(&d.current));
    let change = apply::waste_change(&t);
    let command = match d.server {
        Target::Ours if !t.slab_sizes.is_empty() => Some(apply::classes_command(&t.slab_sizes)?),
        _ => None,
    };
    let report = Report {
        source: format!("live {addr} ({})", d.server.name()),
        issues: Issues::default(),
        input: vec![],
        targets: vec![t],
    };
    let flags = report.targets[0].flags.join("\n  ");
    let shown = command.as_deref().map(str::trim_end);
    if !cli.json {
        print!("{}", render_text(&report));
        if let Some(c) = &change {
            println!("{}", c.describe());
        }
    }
    // The command is sent (unless this is a dry run) before the JSON form is printed, so
    // that it can carry the reply.
    let reply = match (&command, dry_run) {
        (Some(c), false) => {
            if !cli.json {
                println!("sending: {}", c.trim_end());
            }
            let line = apply::send(addr, c).map_err(|e| format!("{addr}: {e}"))?;
            if !cli.json {
                println!("server: {line}");
            }
            Some(line)
        }
        (Some(c), true) => {
            if !cli.json {
                println!("dry run: not sending `{}`", c.trim_end());
            }
            None
        }
        (None, _) => None,
    };
    if cli.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            report: &'a Report,
            waste_change: &'a Option<apply::WasteChange>,
            command: Option<&'a str>,
            reply: Option<&'a str>,
        }
        let out = Out {
            report: &report,
            waste_change: &change,
            command: shown,
            reply: reply.as_deref(),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    }
    if d.server == Target::Memcached {
        return Err(format!(
            "{addr} is memcached, which cannot change its slab classes while running; \
             restart it with:\n  {flags}"
        ));
    }
    if command.is_none() {
        return Err(format!(
            "{addr} stores no items that fit a class: nothing to recommend from"
        ));
    }
    let Some(line) = reply else {
        return Ok(()); // dry run
    };
    match apply::parse_reply(&line) {
        apply::Reply::Ok => Ok(()),
        apply::Reply::Unknown => Err(format!(
            "{addr} does not know `slabs classes` (this kvcache-server cannot re-class \
             live); restart it with:\n  {flags}"
        )),
        apply::Reply::Refused(r) => Err(format!("{addr} refused the list: {r}")),
        apply::Reply::Other(r) => Err(format!("{addr} answered {r:?}")),
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let cas = !cli.no_cas;
    if let Input::Apply { addr, dry_run } = &cli.input {
        return apply(&cli, addr, *dry_run);
    }
    let kv_slab = check_kv_slab(cli.kv_slab.unwrap_or(DEFAULT_KV_SLAB))?;
    let mut opts = options(&cli, kv_slab);
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
        Input::Apply { .. } => unreachable!("handled above"),
        Input::Live { addr } => {
            let d = live::read(addr)?;
            if d.server == Target::Ours && cli.kv_slab.is_none() {
                if let Some(s) = d.slab_page_size {
                    opts.kv_slab = check_kv_slab(s)?;
                }
            }
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
                kvcache_server::store::default_classes(opts.kv_slab as usize, 1 << 20)
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
