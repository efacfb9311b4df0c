//! `--plot FILE.svg`: the size histogram on a log-size axis with the recommended class
//! boundaries (blue) and the server's default ones (grey, dashed), and below it the waste
//! of each recommended class as a bar spanning the sizes it holds.

use std::fmt::Write as _;

use crate::hist::Hist;
use crate::report::TargetReport;

const W: f64 = 1000.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP_H: f64 = 300.0;
const BOT_H: f64 = 160.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn human(b: f64) -> String {
    if b >= 1048576.0 {
        format!("{:.0}M", b / 1048576.0)
    } else if b >= 1024.0 {
        format!("{:.0}K", b / 1024.0)
    } else {
        format!("{b:.0}")
    }
}

/// Draws `t` (its histogram `h`) as an SVG document, with the `defaults` class list
/// (called `defaults_name`) for comparison.
pub fn plot(h: &Hist, t: &TargetReport, defaults: &[u64], defaults_name: &str) -> String {
    let mut s = String::new();
    let height = 40.0 + TOP_H + 50.0 + BOT_H + 50.0;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let rec = t.configs.first().filter(|c| c.name == "recommended");
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="20" font-size="14">{} item sizes ({} items): recommended classes (blue) vs {} (grey, dashed)</text>"#,
        esc(t.target.name()),
        t.items,
        esc(defaults_name)
    );
    let e = h.entries();
    if e.is_empty() {
        s.push_str("</svg>\n");
        return s;
    }
    let lo = (e[0].0.max(1) as f64).log2().floor();
    let top_class = rec
        .and_then(|r| r.eval.classes.iter().rev().find(|c| c.items > 0))
        .map_or(0, |c| c.chunk);
    let hi = ((e[e.len() - 1].0.max(top_class).max(2)) as f64)
        .log2()
        .ceil()
        .max(lo + 1.0);
    let pw = W - LEFT - RIGHT;
    let x = |v: f64| LEFT + ((v.max(1.0)).log2() - lo) / (hi - lo) * pw;
    // Histogram: ~1 bin per 2 pixels.
    let bins = 400usize;
    let mut counts = vec![0u64; bins];
    for &(sz, n) in e {
        let b = (((sz.max(1) as f64).log2() - lo) / (hi - lo) * bins as f64) as usize;
        counts[b.min(bins - 1)] += n;
    }
    let maxc = *counts.iter().max().unwrap_or(&1) as f64;
    let y0 = 40.0 + TOP_H;
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let hgt = c as f64 / maxc * (TOP_H - 10.0);
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#e07b39"><title>{c} items</title></rect>"##,
            LEFT + i as f64 * pw / bins as f64,
            y0 - hgt,
            (pw / bins as f64).max(1.0),
            hgt
        );
    }
    for &d in defaults {
        let xv = x(d as f64);
        if xv <= W - RIGHT {
            let _ = writeln!(
                s,
                r##"<line x1="{xv:.1}" y1="40" x2="{xv:.1}" y2="{y0}" stroke="#999" stroke-dasharray="4 3"/>"##
            );
        }
    }
    if let Some(r) = rec {
        for c in &r.eval.classes {
            let xv = x(c.chunk as f64);
            if xv <= W - RIGHT {
                let _ = writeln!(
                    s,
                    r##"<line x1="{xv:.1}" y1="40" x2="{xv:.1}" y2="{y0}" stroke="#1f5fbf"><title>chunk {}</title></line>"##,
                    c.chunk
                );
            }
        }
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{y0}" x2="{}" y2="{y0}" stroke="black"/>"##,
        W - RIGHT
    );
    let _ = writeln!(
        s,
        r#"<text x="12" y="{}" transform="rotate(-90 12 {})">items per bin (max {maxc})</text>"#,
        40.0 + TOP_H / 2.0,
        40.0 + TOP_H / 2.0
    );
    // Axis ticks at powers of two, shared by both panels.
    let y1 = y0 + 50.0 + BOT_H;
    for p in (lo as i32)..=(hi as i32) {
        let v = 2f64.powi(p);
        let xv = x(v);
        let _ = writeln!(
            s,
            r##"<line x1="{xv:.1}" y1="{y0}" x2="{xv:.1}" y2="{:.1}" stroke="black"/>"##,
            y0 + 4.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{xv:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            y0 + 16.0,
            human(v)
        );
        let _ = writeln!(
            s,
            r#"<text x="{xv:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            y1 + 16.0,
            human(v)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{:.1}" text-anchor="middle">stored item size (bytes, log scale)</text>"#,
        LEFT + pw / 2.0,
        y0 + 32.0
    );
    // Waste per class.
    if let Some(r) = rec {
        let maxw = r
            .eval
            .classes
            .iter()
            .map(|c| c.waste)
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let mut prev = 2f64.powf(lo);
        for c in &r.eval.classes {
            let (a, b) = (x(prev), x(c.chunk as f64).min(W - RIGHT));
            let hgt = c.waste as f64 / maxw * (BOT_H - 25.0);
            let _ = writeln!(
                s,
                r##"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="{hgt:.1}" fill="#1f5fbf" fill-opacity="0.6" stroke="#1f5fbf"><title>chunk {}: {} items, waste {} B</title></rect>"##,
                y1 - hgt,
                (b - a).max(1.0),
                c.chunk,
                c.items,
                c.waste
            );
            prev = c.chunk as f64;
        }
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{:.1}">waste per recommended class (max {} B; total {} B)</text>"#,
            y0 + 62.0,
            maxw as u128,
            r.eval.waste
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{y1}" x2="{}" y2="{y1}" stroke="black"/>"##,
        W - RIGHT
    );
    s.push_str("</svg>\n");
    s
}
