#!/usr/bin/env python3
"""Line charts as standalone SVG files, with the Python 3 standard library only.

As a module:

    import svgplot
    svgplot.line_chart("rss.svg", "RSS after flush_all", "seconds", "RSS (MB)",
                       {"kvcache-server": [(0, 12.0), (0.25, 180.5)],
                        "memcached": [(0, 3.1), (0.25, 210.0)]})

draws one chart. `more` stacks further charts sharing the x label in one file:

    svgplot.line_chart("out.svg", "title", "s", "RSS (MB)", series,
                       more=[{"title": "items", "y_label": "count", "series": other}])

From the command line, on a CSV with a header row:

    svgplot.py out.svg data.csv --x t --y rss_mb [--y items] [--by server] [--title T]

plots one panel per `--y` column, one line per distinct value of the `--by` column (or a
single line without it). Rows whose x or y cell is empty or not a number are skipped.
"""
import argparse
import csv
import math
import sys
from xml.sax.saxutils import escape

# Colour-blind friendly palette (Okabe-Ito), then a few more distinct ones.
COLOURS = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
    "#000000", "#F0E442", "#8C564B", "#7F7F7F",
]
DASHES = ["", "6,3", "2,2", "8,3,2,3"]

WIDTH = 820
PANEL_HEIGHT = 360
MARGIN_LEFT = 80
MARGIN_RIGHT = 190  # room for the legend
MARGIN_TOP = 40
MARGIN_BOTTOM = 55


def nice_ticks(lo, hi, target=6):
    """Round tick positions covering [lo, hi]: steps of 1, 2 or 5 times a power of ten.

    Returns (ticks, axis_lo, axis_hi) where the axis range is widened to whole steps.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    n = int(round((end - start) / step))
    ticks = [round(start + i * step, 12) for i in range(n + 1)]
    return ticks, start, end


def fmt_tick(v, step):
    """A tick label with as many decimals as the step needs, and thousands as k/M."""
    if abs(v) < step * 1e-6:
        v = 0.0
    if abs(v) >= 1e6 and step >= 1e5:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e4 and step >= 1e3:
        return f"{v / 1e3:g}k"
    decimals = max(0, -int(math.floor(math.log10(step)))) if step > 0 else 0
    return f"{v:.{decimals}f}"


def _panel(out, top, title, x_label, y_label, series, x_range, width, right):
    """Appends the SVG elements of one chart whose top edge is at `top`; `right` is the
    room left for the legend."""
    plot_w = width - MARGIN_LEFT - right
    plot_h = PANEL_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    x0, y0 = MARGIN_LEFT, top + MARGIN_TOP
    ys = [y for pts in series.values() for _, y in pts]
    y_lo = min(ys + [0.0]) if ys else 0.0  # RSS-like data reads best from zero
    y_hi = max(ys) if ys else 1.0
    yticks, ya, yb = nice_ticks(y_lo, y_hi)
    xticks, xa, xb = x_range

    def px(x):
        return x0 + (x - xa) / (xb - xa) * plot_w

    def py(y):
        return y0 + plot_h - (y - ya) / (yb - ya) * plot_h

    out.append(f'<text x="{width / 2:.1f}" y="{top + 24}" text-anchor="middle" '
               f'font-size="16" font-weight="bold">{escape(title)}</text>')
    # Grid and ticks.
    xstep = xticks[1] - xticks[0] if len(xticks) > 1 else 1.0
    ystep = yticks[1] - yticks[0] if len(yticks) > 1 else 1.0
    for t in yticks:
        y = py(t)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + plot_w}" y2="{y:.1f}" '
                   f'stroke="#e0e0e0"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" '
                   f'font-size="11">{fmt_tick(t, ystep)}</text>')
    for t in xticks:
        x = px(t)
        out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + plot_h}" '
                   f'stroke="#f0f0f0"/>')
        out.append(f'<line x1="{x:.1f}" y1="{y0 + plot_h}" x2="{x:.1f}" '
                   f'y2="{y0 + plot_h + 5}" stroke="#333"/>')
        out.append(f'<text x="{x:.1f}" y="{y0 + plot_h + 18}" text-anchor="middle" '
                   f'font-size="11">{fmt_tick(t, xstep)}</text>')
    out.append(f'<rect x="{x0}" y="{y0}" width="{plot_w}" height="{plot_h}" '
               f'fill="none" stroke="#333"/>')
    out.append(f'<text x="{x0 + plot_w / 2:.1f}" y="{y0 + plot_h + 40}" '
               f'text-anchor="middle" font-size="13">{escape(x_label)}</text>')
    cy = y0 + plot_h / 2
    out.append(f'<text x="{x0 - 58}" y="{cy:.1f}" text-anchor="middle" font-size="13" '
               f'transform="rotate(-90 {x0 - 58} {cy:.1f})">{escape(y_label)}</text>')
    # Lines, then the legend.
    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        dash = DASHES[(i // len(COLOURS)) % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        pts = sorted(pts)
        if len(pts) == 1:
            x, y = pts[0]
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        elif pts:
            d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{d}" fill="none" stroke="{colour}" '
                       f'stroke-width="2"{dash_attr}/>')
        ly = y0 + 10 + i * 20
        lx = x0 + plot_w + 14
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 24}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="3"{dash_attr}/>')
        out.append(f'<text x="{lx + 30}" y="{ly + 4}" font-size="12">{escape(str(name))}</text>')


def line_chart(path, title, x_label, y_label, series, more=()):
    """Writes an SVG line chart to `path`.

    `series` maps a legend name to a list of (x, y) numbers. `more` is a list of further
    panels, each a dict with "title", "y_label" and "series" (and optionally "x_label"),
    stacked below the first; all panels share one x range so their time axes line up.
    """
    panels = [{"title": title, "x_label": x_label, "y_label": y_label, "series": series}]
    for p in more:
        panels.append({"x_label": x_label, **p})
    xs = [x for p in panels for pts in p["series"].values() for x, _ in pts]
    x_range = nice_ticks(min(xs), max(xs)) if xs else nice_ticks(0.0, 1.0)
    height = PANEL_HEIGHT * len(panels)
    # The legend gets the room its longest name needs (about 7 px a character at 12 px).
    longest = max((len(str(n)) for p in panels for n in p["series"]), default=0)
    right = max(MARGIN_RIGHT, 60 + 7 * longest)
    width = WIDTH - MARGIN_RIGHT + right
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for i, p in enumerate(panels):
        _panel(out, i * PANEL_HEIGHT, p["title"], p["x_label"], p["y_label"], p["series"],
               x_range, width, right)
    out.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def _number(cell):
    try:
        v = float(cell)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def series_from_csv(path, x, y, by=None):
    """Reads one y column of a CSV as {group: [(x, y), ...]} (one group without `by`)."""
    series = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (x, y, by) if c and c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path}: no column {', '.join(missing)} "
                             f"(columns: {', '.join(reader.fieldnames or [])})")
        for row in reader:
            xv, yv = _number(row[x]), _number(row[y])
            if xv is None or yv is None:
                continue
            series.setdefault(row[by] if by else y, []).append((xv, yv))
    return series


def main(argv=None):
    ap = argparse.ArgumentParser(description="Plot CSV columns as an SVG line chart.")
    ap.add_argument("out", help="SVG file to write")
    ap.add_argument("csv", help="CSV file with a header row")
    ap.add_argument("--x", required=True, help="column for the x axis")
    ap.add_argument("--y", required=True, action="append",
                    help="column for the y axis; repeat for stacked panels")
    ap.add_argument("--by", help="column whose values name the lines")
    ap.add_argument("--title", help="chart title (default: the CSV file name)")
    ap.add_argument("--x-label", help="x axis label (default: the column name)")
    a = ap.parse_args(argv)
    title = a.title or a.csv
    panels = [series_from_csv(a.csv, a.x, y, a.by) for y in a.y]
    more = [{"title": f"{title}: {y}", "y_label": y, "series": s}
            for y, s in zip(a.y[1:], panels[1:])]
    line_chart(a.out, title, a.x_label or a.x, a.y[0], panels[0], more)
    return 0


if __name__ == "__main__":
    sys.exit(main())
