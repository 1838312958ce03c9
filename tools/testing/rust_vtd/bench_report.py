#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""bench_report.py OUTDIR [key=value ...]: make bench's report.

Reads OUTDIR/results.tsv (driver, round, name, value; driver "rust" is
rust_vtd, "baseline" the C driver) and writes OUTDIR/results.md, one
Markdown table per scenario with each driver's median and spread (min-max)
and the Rust/C ratio of the medians, OUTDIR/ratios.png, the latency and
throughput ratios, and OUTDIR/results-raw.tsv, every figure of every round
under a header of the key=value arguments (commit, date, host, accel,
versions), which the Markdown header repeats.

OUTDIR/profile.tsv (driver, round, row, function, hits, microseconds), from
ftrace's function profiler over untimed dma_map_benchmark passes, becomes
one table per profiled row: each function's calls and time per DMA
map/unmap pair, medians over the rounds.

A row that misses a figure of some round of either driver (rounds=N says
how many there must be), or a scenario with no row at all, is reported as
missing, and the exit status is then 1.
"""

import statistics
import sys
from collections import defaultdict
from pathlib import Path

# The verdict is "same" when the two drivers' min-max ranges overlap:
# TCG's run-to-run noise is then as large as the difference.

SCENARIOS = [
    ("dmamap_", "dma_map_benchmark (e1000e): average latency per map / unmap, µs"),
    ("block_", "Block I/O: sequential 256 MiB O_DIRECT read (virtio-blk), MB/s"),
    ("iommufd_", "iommufd: IOMMU_IOAS_MAP / IOMMU_IOAS_UNMAP through a VFIO cdev (igb)"),
    ("qi_", "Invalidation cost: queue submissions and descriptors (waits not counted)"),
    ("pagetable_", "Page-table memory for 1 GiB mapped at IOVA 4 GiB, KiB"),
]

# The fewest table pages that can map 1 GiB at a 1 GiB aligned IOVA in a
# fresh 4-level domain (the top level exists already): one level-3 and one
# level-2 table, plus 512 level-1 tables for 4 KiB leaves.
MINIMUM_KIB = {"pagetable_kib_4k": (1 + 1 + 512) * 4, "pagetable_kib_2m": (1 + 1) * 4}

# The profiled rows (plan-bench.sh's profile passes), the function whose
# calls count the map/unmap pairs, and how many functions a table shows.
PROFILES = [
    ("dmamap_strict_t1_g1", "strict domain, 1 thread, 1 page"),
    ("dmamap_strict_t3_g16", "strict domain, 3 threads, 16 pages"),
]
PROFILE_OPS = "dma_map_page_attrs"
PROFILE_TOP = 30


def higher_is_better(name):
    return "_gibps" in name or "_mbps" in name


def fmt(v):
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def overlap(r, c):
    return bool(r) and bool(c) and min(r) <= max(c) and min(c) <= max(r)


def verdict(name, r, c, ratio):
    if ratio is None:
        return ""
    if overlap(r, c):
        return "same"
    better = ratio > 1 if higher_is_better(name) else ratio < 1
    return "**better**" if better else "**worse**"


def main():
    out = Path(sys.argv[1])
    meta = dict(a.split("=", 1) for a in sys.argv[2:])
    rounds = int(meta.get("rounds", "0") or 0)
    data = defaultdict(lambda: defaultdict(list))
    raw = (out / "results.tsv").read_text().splitlines()
    for line in raw:
        drv, _rnd, name, val = line.split("\t")
        try:
            data[name][drv].append(float(val))
        except ValueError:
            pass
    (out / "results-raw.tsv").write_text(
        "".join(f"# {k}: {v}\n" for k, v in meta.items())
        + "# driver\tround\tname\tvalue\n" + "\n".join(raw) + "\n")
    missing = []
    for name, by in sorted(data.items()):
        for drv in ("rust", "baseline"):
            n = len(by.get(drv, []))
            if n != rounds:
                missing.append(f"{name}: {drv} has {n} of {rounds} rounds")
    for prefix, title in SCENARIOS:
        if not any(n.startswith(prefix) for n in data):
            missing.append(f"{prefix}*: no figure at all ({title})")

    rows = {}
    for name, by in data.items():
        r, c = by.get("rust", []), by.get("baseline", [])
        mr = statistics.median(r) if r else None
        mc = statistics.median(c) if c else None
        ratio = mr / mc if mr is not None and mc else None
        rows[name] = (r, c, mr, mc, ratio)

    md = ["# make bench: rust_vtd against the C driver", ""]
    for k in ("date", "commit", "qemu", "kernel", "accel", "host", "vcpus", "rounds"):
        if k in meta:
            md.append(f"- {k}: {meta[k]}")
    md += [
        "",
        "Each figure is the median over the rounds, with the spread (min-max)",
        "in brackets. Ratio is rust_vtd / C driver: for latencies, counts and",
        "memory lower is better, for throughput (MB/s, GiB/s) higher. Where",
        "the two ranges overlap the drivers are reported the same. Under TCG",
        "only the ratios mean anything (Documentation/iommu/rust_vtd-bench.rst).",
        "Counts come from separate, untimed passes; no figure was timed with",
        "a kprobe or tracepoint enabled.",
    ]
    if missing:
        md += ["", "## Missing figures", ""] + [f"- {m}" for m in missing]
    for prefix, title in SCENARIOS:
        names = sorted(n for n in rows if n.startswith(prefix))
        if not names:
            continue
        md += ["", f"## {title}", ""]
        extra = prefix == "pagetable_"
        head = "| | rust_vtd | C driver | Rust/C | |" + (" minimum |" if extra else "")
        md += [head, "|---" * (5 + extra) + "|"]
        for n in names:
            r, c, mr, mc, ratio = rows[n]

            def cell(v, m):
                if m is None:
                    return "-"
                return f"{fmt(m)} ({fmt(min(v))}-{fmt(max(v))})"

            line = (f"| {n} | {cell(r, mr)} | {cell(c, mc)} | "
                    f"{'-' if ratio is None else f'{ratio:.2f}'} | {verdict(n, r, c, ratio)} |")
            if extra:
                line += f" {MINIMUM_KIB.get(n, '-')} |"
            md.append(line)
    md += profile_tables(out, rounds, missing)
    (out / "results.md").write_text("\n".join(md) + "\n")
    plot(out, rows, meta)
    for m in missing:
        print(f"bench_report: missing: {m}", file=sys.stderr)
    return 1 if missing else 0


def profile_tables(out, rounds, missing):
    """The profile section of the report; adds to `missing` a profiled row
    that some round of either driver lacks."""
    path = out / "profile.tsv"
    prof = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for line in (path.read_text().splitlines() if path.exists() else []):
        drv, rnd, row, func, hits, us = line.split("\t")
        prof[row][drv][rnd][func] = (int(hits), float(us))
    md = [
        "",
        "## Profile: where a DMA map/unmap pair spends its time",
        "",
        "ftrace's function profiler (function-graph tracer: a function's time",
        "includes its callees') over one untimed second of dma_map_benchmark.",
        "Every function with an ftrace hook is traced, so the times are",
        "inflated by the tracing itself and only compare like with like; the",
        "calls are exact. rust_vtd's Rust functions have no ftrace hook: their",
        "time shows in the C function that called them. Per map/unmap pair",
        f"(calls of `{PROFILE_OPS}`), medians over the rounds; functions called",
        "at least once per two pairs, the costliest first.",
    ]
    for row, title in PROFILES:
        per = {}
        for drv in ("rust", "baseline"):
            runs = [r for r in prof[row][drv].values() if r.get(PROFILE_OPS, (0,))[0] > 0]
            if len(runs) != rounds:
                missing.append(f"profile {row}: {drv} has {len(runs)} of {rounds} rounds")
            funcs = set().union(*runs) if runs else set()
            per[drv] = {}
            for f in funcs:
                calls = [r[f][0] / r[PROFILE_OPS][0] if f in r else 0.0 for r in runs]
                us = [r[f][1] / r[PROFILE_OPS][0] if f in r else 0.0 for r in runs]
                per[drv][f] = (statistics.median(calls), statistics.median(us))
        names = set(per["rust"]) | set(per["baseline"])
        if not names:
            continue
        cost = {f: max(per[d].get(f, (0, 0))[1] for d in per) for f in names}
        top = sorted(names, key=lambda f: -cost[f])[:PROFILE_TOP]
        md += ["", f"### {row}: {title}", "",
               "| function | rust_vtd calls | rust_vtd µs | C calls | C µs |",
               "|---|---|---|---|---|"]
        for f in top:
            cells = []
            for d in ("rust", "baseline"):
                if f in per[d]:
                    c, u = per[d][f]
                    cells += [f"{c:.2f}", fmt(u)]
                else:
                    cells += ["-", "-"]
            md.append(f"| `{f}` | " + " | ".join(cells) + " |")
    return md


def plot(out, rows, meta):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench_report: no matplotlib, no plot", file=sys.stderr)
        return
    lat = sorted(n for n in rows if "_us" in n and rows[n][4])
    thr = sorted(n for n in rows if higher_is_better(n) and rows[n][4])
    fig, axes = plt.subplots(1, 2, figsize=(13, max(4, 0.32 * max(len(lat), len(thr)) + 1.5)))
    for ax, names, title in (
        (axes[0], lat, "latency, Rust/C (< 1: rust_vtd faster)"),
        (axes[1], thr, "throughput, Rust/C (> 1: rust_vtd faster)"),
    ):
        ratios = [rows[n][4] for n in names]
        good = [(r < 1) if not higher_is_better(n) else (r > 1) for n, r in zip(names, ratios)]
        colours = ["grey" if overlap(rows[n][0], rows[n][1]) else ("tab:green" if g else "tab:red")
                   for n, g in zip(names, good)]
        # Bars from 1 to the ratio, on a log scale: as far left for
        # "twice as fast" as right for "half as fast".
        ax.barh(range(len(names)), [r - 1 for r in ratios], left=1, color=colours)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"rust_vtd vs the C VT-d driver, {meta.get('accel', '?')}, "
                 f"{meta.get('date', '')}, {meta.get('commit', '')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "ratios.png", dpi=90)


if __name__ == "__main__":
    sys.exit(main())
