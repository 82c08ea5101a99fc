#!/usr/bin/env python3
"""Draws the JSON of //bench:aio_engines_benchmark as one PNG.

    python3 bench/aio_chart.py /tmp/aio_engines.json /tmp/aio_engines.png

One panel per workload and cache state (rand4k against queue depth, the
pool-size sweep at rand4k/qd32, seq128k, small files), ops/s per engine,
hot on the top row and cold below; p99 latency is written over each bar of
the bar panels.  Needs matplotlib: `apt-get install python3-matplotlib`
(Debian's package; no pip needed); run with another python3 (pyenv, venv)
the script re-runs itself with /usr/bin/python3.
"""

import collections
import json
import os
import sys

DEBIAN_PYTHON = "/usr/bin/python3"

try:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
except ImportError:
    # Debian's package serves Debian's interpreter, not a pyenv/venv one.
    if os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON) and \
            os.path.exists(DEBIAN_PYTHON):
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON] + sys.argv)
    sys.exit("aio_chart.py needs matplotlib: apt-get install python3-matplotlib")

ENGINE_ORDER = ["kqio-uring", "kqio-auto", "kqio-pool", "libuv", "posix-aio", "fio"]
COLORS = {
    "kqio-uring": "#1f77b4",
    "kqio-auto": "#17becf",
    "kqio-pool": "#2ca02c",
    "libuv": "#d62728",
    "posix-aio": "#9467bd",
    "fio": "#7f7f7f",
}


def label(r):
    return r["engine"] + ("/t%d" % r["threads"] if r["threads"] else "")


def ladder_panel(ax, rows, default_threads):
    """rand4k ops/s against queue depth, one line per engine."""
    lines = collections.defaultdict(list)
    for r in rows:
        if r["threads"] in (0, default_threads):
            lines[r["engine"]].append((r["qd"], r["ops_per_s"]))
    for engine in ENGINE_ORDER:
        pts = sorted(lines.get(engine, []))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    label=engine, color=COLORS.get(engine))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("queue depth")
    ax.legend(fontsize=7)


def sweep_panel(ax, rows):
    """rand4k/qd32 ops/s against pool size, kqio-pool and libuv."""
    lines = collections.defaultdict(list)
    for r in rows:
        if r["qd"] == 32 and r["engine"] in ("kqio-pool", "libuv"):
            lines[r["engine"]].append((r["threads"], r["ops_per_s"]))
    for engine, pts in sorted(lines.items()):
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                label=engine, color=COLORS.get(engine))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("pool threads (qd 32)")
    ax.legend(fontsize=7)


def bar_panel(ax, rows):
    rows = sorted(rows, key=lambda r: (ENGINE_ORDER.index(r["engine"])
                                       if r["engine"] in ENGINE_ORDER else 99))
    xs = range(len(rows))
    bars = ax.bar(xs, [r["ops_per_s"] for r in rows],
                  color=[COLORS.get(r["engine"], "#bcbd22") for r in rows])
    for bar, r in zip(bars, rows):
        ax.annotate("p99 %.0f us" % r["p99_us"],
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=6)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([label(r) for r in rows], rotation=30, ha="right",
                       fontsize=7)


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: aio_chart.py RESULTS.json OUT.png")
    with open(argv[1]) as f:
        doc = json.load(f)
    rows = [r for r in doc["results"] if not r.get("error") and r["ops"] > 0]
    threads = collections.Counter(r["threads"] for r in rows
                                  if r["engine"] == "kqio-pool")
    default_threads = threads.most_common(1)[0][0] if threads else 4
    panels = [
        ("rand4k, qd ladder", lambda ax, rs: ladder_panel(ax, rs, default_threads),
         lambda r: r["workload"] == "rand4k"),
        ("rand4k, pool sizes", sweep_panel, lambda r: r["workload"] == "rand4k"),
        ("seq128k", bar_panel, lambda r: r["workload"] == "seq128k"),
        ("small files", bar_panel, lambda r: r["workload"] == "smallfiles"),
    ]
    fig, axes = plt.subplots(2, len(panels), figsize=(5 * len(panels), 8.5),
                             squeeze=False)
    for row, cache in enumerate(["hot", "cold"]):
        for col, (title, draw, keep) in enumerate(panels):
            ax = axes[row][col]
            sel = [r for r in rows if r["cache"] == cache and keep(r)]
            ax.set_title("%s, cache %s" % (title, cache), fontsize=9)
            ax.set_ylabel("ops/s")
            ax.grid(True, alpha=0.3)
            if sel:
                draw(ax, sel)
            else:
                ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
    m = doc.get("machine", {})
    rounds = doc.get("rounds", 1)
    fig.suptitle("kqio file engines vs peers: %s CPUs, kernel %s, libuv %s, "
                 "%.1f s per cell%s, cold = %s" % (
                     m.get("cpus"), m.get("kernel"), m.get("libuv"),
                     doc.get("seconds_per_cell", 0),
                     ", median of %d rounds" % rounds if rounds > 1 else "",
                     "O_DIRECT" if doc.get("direct_io") else "fadvise"),
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    # 80 dpi and an optimised PNG keep the chart under 150 KB (README).
    fig.savefig(argv[2], dpi=80, pil_kwargs={"optimize": True})
    print("wrote", argv[2])


if __name__ == "__main__":
    main(sys.argv)
