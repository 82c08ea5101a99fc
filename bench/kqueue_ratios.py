#!/usr/bin/env python3
"""Ratio table for //io:kqueue_benchmark, from its JSON output.

    bazel-bin/io/kqueue_benchmark --benchmark_out=/tmp/kq1.json
    python3 bench/kqueue_ratios.py [--cpu] /tmp/kq1.json [/tmp/kq2.json ...]

Benchmarks come in pairs, "<Case>/raw/..." and "<Case>/kqio/...".  For each
file and pair this prints the median and the minimum over the repetitions of
the real time per operation (wakeup, event or change: the benchmark's
ops_per_iter counter) of each side, and the ratios kqio/raw (> 1: kqio is
slower).  Given several files (several runs), it then prints the median over
the runs and the range of each ratio.  Standard library only.

--cpu uses the CPU time of the benchmark thread instead of the real time.
On a machine shared with other work it is much steadier for Sockets and
Changes (single-threaded: time spent waiting for a CPU is left out).  For
PingPong it counts only the measuring thread's own work per wakeup (its
system calls and user code), not the wakeup latency.
"""

import argparse
import json
import os
import statistics

NS_PER_UNIT = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def split_impl(name):
    """'Sockets/kqio/k:1000/real_time' -> ('Sockets/k:1000', 'kqio')."""
    parts = name.split("/")
    for impl in ("raw", "kqio"):
        if impl in parts:
            parts.remove(impl)
            if parts[-1] == "real_time":
                parts.pop()
            return "/".join(parts), impl
    return name, None


def unit_of(key):
    if key.startswith("PingPong"):
        return "wakeup"
    if key.startswith("Sockets"):
        return "event"
    return "change"


TIME_FIELD = "real_time"


def ns_per_op(b):
    return b[TIME_FIELD] * NS_PER_UNIT[b["time_unit"]] / b["ops_per_iter"]


def load(path):
    """{key: {impl: {"median": ns/op, "min": ns/op}}}: the library's median and
    min aggregates, else computed from the repetitions."""
    with open(path) as f:
        benchmarks = json.load(f)["benchmarks"]
    stats, reps = {}, {}
    for b in benchmarks:
        if b.get("error_occurred") or "ops_per_iter" not in b:
            continue
        key, impl = split_impl(b["run_name"])
        if impl is None:
            continue
        if b.get("run_type") == "aggregate" and TIME_FIELD == "real_time":
            if b.get("aggregate_name") in ("median", "min"):
                side = stats.setdefault(key, {}).setdefault(impl, {})
                side[b["aggregate_name"]] = ns_per_op(b)
        elif b.get("run_type") != "aggregate":
            reps.setdefault(key, {}).setdefault(impl, []).append(ns_per_op(b))
    for key, sides in reps.items():
        for impl, values in sides.items():
            side = stats.setdefault(key, {}).setdefault(impl, {})
            side.setdefault("median", statistics.median(values))
            side.setdefault("min", min(values))
    return {k: v for k, v in stats.items() if "raw" in v and "kqio" in v}


def print_table(title, rows):
    print(title)
    header = "%-40s | %-6s | %9s %9s %-19s | %9s %9s %-19s" % (
        "benchmark", "op", "raw med", "kqio med", "ratio", "raw min",
        "kqio min", "ratio")
    print(header)
    print("-" * len(header))
    for key, raw, kqio, ratio, raw_min, kqio_min, ratio_min in rows:
        print("%-40s | %-6s | %9.1f %9.1f %-19s | %9.1f %9.1f %-19s" % (
            key, unit_of(key), raw, kqio, ratio, raw_min, kqio_min,
            ratio_min))
    print()


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true",
                        help="use the CPU time of the benchmark thread "
                        "instead of the real time")
    parser.add_argument("paths", nargs="+", metavar="JSON",
                        help="--benchmark_out files of //io:kqueue_benchmark")
    args = parser.parse_args(argv)
    for path in args.paths:
        if not os.path.isfile(path):
            parser.error("no such file: %s" % path)
    return args


def main(argv):
    global TIME_FIELD
    args = parse_args(argv)
    if args.cpu:
        TIME_FIELD = "cpu_time"
    paths = args.paths
    runs = [load(p) for p in paths]
    for path, run in zip(paths, runs):
        rows = []
        for key, v in sorted(run.items()):
            raw, kqio = v["raw"], v["kqio"]
            rows.append((key, raw["median"], kqio["median"],
                         "%.3f" % (kqio["median"] / raw["median"]),
                         raw["min"], kqio["min"],
                         "%.3f" % (kqio["min"] / raw["min"])))
        print_table("%s: %s ns per op; median and min over the repetitions, "
                    "ratio = kqio/raw" % (path, TIME_FIELD), rows)
    if len(runs) > 1:
        rows = []
        for key in sorted(set().union(*runs)):
            present = [r[key] for r in runs if key in r]
            cols = [key]
            for stat in ("median", "min"):
                ratios = [v["kqio"][stat] / v["raw"][stat] for v in present]
                cols += [statistics.median(v["raw"][stat] for v in present),
                         statistics.median(v["kqio"][stat] for v in present),
                         "%.3f [%.3f-%.3f]" % (statistics.median(ratios),
                                               min(ratios), max(ratios))]
            rows.append(tuple(cols))
        print_table("over %d runs: median of each run's value; ratio: median "
                    "[min-max] over the runs" % len(runs), rows)


if __name__ == "__main__":
    main(None)
