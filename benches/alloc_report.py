#!/usr/bin/env python3
"""The allocator comparison as a Markdown table and an SVG chart, from `alloc-compare --json`.

    alloc-compare --json --no-spike > out.json 2> out.txt
    alloc_report.py out.json --svg figures/alloc-ns-per-op.svg > table.md

`alloc-compare --json` prints several JSON arrays one after another (workloads and scaling,
the false-sharing census, metadata); this reads them all. The chart has one group of bars
per workload, one bar per allocator, ns per object on a log scale (the workloads span two
orders of magnitude). Standard library only.
"""
import argparse
import json
import math
import sys
from xml.sax.saxutils import escape

ALLOCATORS = ["slab-core", "glibc", "mimalloc", "jemalloc", "sharded-slab"]
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00"]


def records(text):
    """Every record of every JSON array in `text`."""
    dec = json.JSONDecoder()
    i, out = 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        value, i = dec.raw_decode(text, i)
        out.extend(value if isinstance(value, list) else [value])


def main_rows(recs):
    """{workload: {allocator: ns}} of the main table (records without a scaling ratio)."""
    rows = {}
    for r in recs:
        if "ns_per_op" in r and "scaling" not in r:
            rows.setdefault(r["workload"], {})[r["allocator"]] = r["ns_per_op"]
    return rows


def table(recs):
    rows = main_rows(recs)
    out = ["| workload | " + " | ".join(ALLOCATORS) + " | slab-core / best peer |",
           "|---|" + "---:|" * (len(ALLOCATORS) + 1)]
    for w, by in rows.items():
        cells = [f"{by[a]:.2f}" if by.get(a) is not None else "-" for a in ALLOCATORS]
        peers = [(by[a], a) for a in ALLOCATORS[1:] if by.get(a) is not None]
        s = by.get("slab-core")
        ratio = "-"
        if s is not None and peers:
            b, name = min(peers)
            ratio = f"{s / b:.2f}x ({name})"
        out.append(f"| {w} | " + " | ".join(cells) + f" | {ratio} |")
    scal = {}
    for r in recs:
        if "scaling" in r:
            scal.setdefault(r["workload"], {})[r["allocator"]] = r["scaling"]
    if scal:
        names = ALLOCATORS[:4]
        out += ["", "| scaling 1 -> 2 threads | " + " | ".join(names) + " |",
                "|---|" + "---:|" * len(names)]
        for w, by in scal.items():
            out.append(f"| {w} | " + " | ".join(
                f"{by[a]:.2f}x" if a in by else "-" for a in names) + " |")
    census = {}
    meta = {}
    for r in recs:
        if "shared_line_objects_pct" in r:
            census.setdefault(r["allocator"], {})[r["workload"]] = r["shared_line_objects_pct"]
        if "bytes_per_object" in r:
            meta[r["allocator"]] = r["bytes_per_object"]
    if census:
        out += ["", "| objects sharing a cache line with another thread's | cache-scratch | cache-thrash |",
                "|---|---:|---:|"]
        for a, by in census.items():
            out.append(f"| {a} | {by.get('cache-scratch', '-')}% | {by.get('cache-thrash', '-')}% |")
    if meta:
        out += ["", "| metadata per live 64 B object (10M objects) | " + " | ".join(meta) + " |",
                "|---|" + "---:|" * len(meta),
                "| bytes | " + " | ".join(f"{v:.2f}" for v in meta.values()) + " |"]
    return "\n".join(out) + "\n"


def svg(recs, path):
    rows = main_rows(recs)
    workloads = list(rows)
    bar, gap = 11, 14
    left, top, right = 170, 50, 150
    width = 900
    group_h = bar * len(ALLOCATORS) + gap
    height = top + group_h * len(workloads) + 50
    vals = [v for by in rows.values() for v in by.values() if v]
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    plot_w = width - left - right

    def x(v):
        return left + plot_w * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    p = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="{left}" y="24" font-size="15">alloc-compare: ns per object allocated and '
         f'freed (log scale, lower is better)</text>']
    d = lo
    while d <= hi * 1.0001:
        for m in (1, 2, 5):
            v = d * m
            if v > hi * 1.0001:
                break
            xv = x(v)
            p.append(f'<line x1="{xv:.1f}" y1="{top - 6}" x2="{xv:.1f}" '
                     f'y2="{height - 40}" stroke="#ddd"/>')
            p.append(f'<text x="{xv:.1f}" y="{height - 24}" text-anchor="middle">{v:g}</text>')
        d *= 10
    for wi, w in enumerate(workloads):
        y0 = top + wi * group_h
        p.append(f'<text x="{left - 8}" y="{y0 + group_h / 2:.1f}" text-anchor="end">'
                 f'{escape(w)}</text>')
        for ai, a in enumerate(ALLOCATORS):
            v = rows[w].get(a)
            if not v:
                continue
            y = y0 + ai * bar
            p.append(f'<rect x="{left}" y="{y}" width="{x(v) - left:.1f}" height="{bar - 2}" '
                     f'fill="{COLOURS[ai]}"><title>{escape(a)}: {v} ns</title></rect>')
            p.append(f'<text x="{x(v) + 4:.1f}" y="{y + bar - 3}" font-size="9">{v:g}</text>')
    for ai, a in enumerate(ALLOCATORS):
        y = top + ai * 18
        p.append(f'<rect x="{width - right + 20}" y="{y}" width="12" height="12" '
                 f'fill="{COLOURS[ai]}"/>')
        p.append(f'<text x="{width - right + 38}" y="{y + 10}">{escape(a)}</text>')
    p.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">'
             f'ns per object</text>')
    p.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(p) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", help="alloc-compare --json output")
    ap.add_argument("--svg", help="write the chart here")
    args = ap.parse_args()
    with open(args.json) as f:
        recs = records(f.read())
    sys.stdout.write(table(recs))
    if args.svg:
        svg(recs, args.svg)


if __name__ == "__main__":
    main()
