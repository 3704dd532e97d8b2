"""Job time of two runs of one preset, rule by rule, from their Snakemake benchmark files.

Each results tree holds one ``benchmarks/<rule>/….tsv`` per job (``s``: its wall
seconds). Prints, per rule, the job count and the median and total seconds of each run,
then the totals and their ratio: how a change moved the time of a preset's jobs (e.g. the
quick preset before and after figure jobs stopped importing torch, docs/performance.md).

    python benchmarks/job_times.py BEFORE/results AFTER/results
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

import pandas as pd


def job_seconds(results: Path) -> dict[str, list[float]]:
    """Seconds of every job by rule (the first folder under ``benchmarks/``)."""
    root = results / "benchmarks"
    found: dict[str, list[float]] = defaultdict(list)
    for path in sorted(root.rglob("*.tsv")):
        rule = path.relative_to(root).parts[0].removesuffix(".tsv")
        found[rule].append(float(pd.read_csv(path, sep="\t")["s"].iloc[0]))
    if not found:
        raise SystemExit(f"{root}: no benchmark files (is it a results tree of a finished run?)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = job_seconds(args.before), job_seconds(args.after)
    print(f"{'rule':28s} {'jobs':>5s} {'median before':>14s} {'median after':>13s} "
          f"{'total before':>13s} {'total after':>12s}")
    for rule in sorted(set(before) | set(after)):
        b, a = before.get(rule, []), after.get(rule, [])
        med = [f"{statistics.median(v):.2f}" if v else "-" for v in (b, a)]
        print(f"{rule:28s} {max(len(b), len(a)):5d} {med[0]:>14s} {med[1]:>13s} "
              f"{sum(b):13.1f} {sum(a):12.1f}")
    total_b = sum(map(sum, before.values()))
    total_a = sum(map(sum, after.values()))
    print(f"job time: {total_b:.0f} s before, {total_a:.0f} s after; ratio after/before "
          f"{total_a / total_b:.2f}")


if __name__ == "__main__":
    main()
