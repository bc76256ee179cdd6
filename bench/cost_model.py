#!/usr/bin/env python3
"""The conformance suite's cost model from bench/suite-scaling.sh's measurements.

For each jobs value J, a batch of S scenario runs in one warm guest costs
    batch(S, J) = ready + c_J * S
(ready: the guest's warm start; c_J: seconds per run at J at a time, from the measured batch of
today's runs), and the whole suite
    suite(S, J) = fixed + batch(S, J)
where `fixed` is what does not grow with scenarios (the fault trials, each in a VM of its own).
Linear in S: it assumes new scenarios cost what today's mix costs on average. Writes a
markdown table and an SVG chart (plain SVG text, no plotting library).

usage: cost_model.py runs.csv --fixed SECONDS --svg OUT.svg --md OUT.md
"""
import argparse
import csv
import statistics
from collections import defaultdict


def fit(rows):
    """jobs -> (ready_s, seconds per run, runs, median wall), medians over reps."""
    by_jobs = defaultdict(list)
    for r in rows:
        by_jobs[int(r["jobs"])].append(r)
    out = {}
    for j, rs in sorted(by_jobs.items()):
        ready = statistics.median(float(r["ready_s"]) for r in rs)
        per_run = statistics.median(
            (float(r["wall_s"]) - float(r["ready_s"])) / int(r["runs"]) for r in rs
        )
        wall = statistics.median(float(r["wall_s"]) for r in rs)
        out[j] = (ready, per_run, int(rs[0]["runs"]), wall)
    return out


def svg(model, fixed, today, path):
    w, h, left, right, top, bottom = 720, 420, 70, 170, 30, 50
    s_max = today * 5
    t_max = max(fixed + ready + per * s_max for ready, per, _, _ in model.values()) / 60
    t_max = max(t_max, 8.5)
    x = lambda s: left + (w - left - right) * s / s_max
    y = lambda m: h - bottom - (h - top - bottom) * m / t_max
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="14">Conformance suite time vs scenario runs (model from measured batches; fixed part {fixed:.0f} s)</text>',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
        f'<text x="{(left + w - right) / 2}" y="{h - 12}" text-anchor="middle">scenario runs in the suite (today: {today})</text>',
        f'<text x="16" y="{(top + h - bottom) / 2}" transform="rotate(-90 16 {(top + h - bottom) / 2})" text-anchor="middle">minutes</text>',
    ]
    step = max(1, round(s_max / 10))
    for s in range(0, s_max + 1, step):
        out.append(f'<line x1="{x(s):.1f}" y1="{h - bottom}" x2="{x(s):.1f}" y2="{h - bottom + 4}" stroke="black"/>')
        out.append(f'<text x="{x(s):.1f}" y="{h - bottom + 17}" text-anchor="middle">{s}</text>')
    m = 0
    while m <= t_max:
        out.append(f'<line x1="{left}" y1="{y(m):.1f}" x2="{w - right}" y2="{y(m):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(m) + 4:.1f}" text-anchor="end">{m}</text>')
        m += 2 if t_max > 12 else 1
    out.append(f'<line x1="{left}" y1="{y(8):.1f}" x2="{w - right}" y2="{y(8):.1f}" stroke="#888" stroke-dasharray="6,4"/>')
    out.append(f'<text x="{w - right + 6}" y="{y(8) + 4:.1f}" fill="#555">8 min goal</text>')
    out.append(f'<line x1="{x(today * 4):.1f}" y1="{top}" x2="{x(today * 4):.1f}" y2="{h - bottom}" stroke="#888" stroke-dasharray="2,4"/>')
    out.append(f'<text x="{x(today * 4) + 4:.1f}" y="{top + 12}" fill="#555">4x today</text>')
    label_y = -1e9
    for i, (j, (ready, per, runs, wall)) in enumerate(sorted(model.items())):
        c = colors[i % len(colors)]
        t0, t1 = (fixed + ready) / 60, (fixed + ready + per * s_max) / 60
        out.append(f'<line x1="{x(0):.1f}" y1="{y(t0):.1f}" x2="{x(s_max):.1f}" y2="{y(t1):.1f}" stroke="{c}" stroke-width="2"/>')
        out.append(f'<circle cx="{x(runs):.1f}" cy="{y((fixed + wall) / 60):.1f}" r="4" fill="{c}"/>')
        # Lines that end close together keep their labels apart (jobs ascending: lower lines).
        label_y = max(y(t1) + 4, label_y + 14)
        out.append(f'<text x="{w - right + 6}" y="{label_y:.1f}" fill="{c}">jobs {j}: {per:.1f} s/run</text>')
    out.append(f'<text x="{left + 8}" y="{top + 14}" fill="#555">dots: measured batches (+ fixed part); lines: fixed + ready + per-run cost x runs</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--fixed", type=float, default=0.0)
    ap.add_argument("--svg", required=True)
    ap.add_argument("--md", required=True)
    a = ap.parse_args()
    with open(a.csv) as f:
        rows = list(csv.DictReader(f))
    model = fit(rows)
    today = next(iter(model.values()))[2]
    lines = [
        f"suite(S, J) = fixed + ready + c_J * S, fixed = {a.fixed:.0f} s",
        "",
        "| jobs J | batch of today's runs, wall (s) | ready (s) | c_J, s per run | suite at S = today ({0}) (min) | at 2x (min) | at 4x (min) |".format(today),
        "|---|---|---|---|---|---|---|",
    ]
    for j, (ready, per, runs, wall) in sorted(model.items()):
        at = lambda s: (a.fixed + ready + per * s) / 60
        lines.append(
            f"| {j} | {wall:.1f} | {ready:.1f} | {per:.2f} | {at(today):.1f} | {at(2 * today):.1f} | {at(4 * today):.1f} |"
        )
    with open(a.md, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    svg(model, a.fixed, today, a.svg)


if __name__ == "__main__":
    main()
