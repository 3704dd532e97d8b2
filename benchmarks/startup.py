"""Start-up of a job that only draws or tabulates: what it imports now against what every
job imported before the study registry loaded its stages lazily (#36).

Each case is a fresh interpreter (as Snakemake starts one per job), timed from launch to
exit, ``--runs`` times; prints the medians and their ratio, and which heavy libraries each
case imported.

    python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "captum", "torchattacks", "sklearn")
# a figure job's imports (workflow/scripts/render_figure.py), then what each job paid
# before: the registry with every study's stage modules
FIGURE_JOB = "from cnnrepro.logs import log_to\nfrom cnnrepro.studies import render\n"
BEFORE = FIGURE_JOB + ("from cnnrepro.studies import REGISTRY\n"
                       "for study in REGISTRY.values():\n    dict(study.stages)\n")
REPORT = f"import sys\nprint([m for m in {HEAVY!r} if m in sys.modules])\n"


def timed(code: str, runs: int) -> tuple[float, str]:
    seconds, imported = [], ""
    for _ in range(runs):
        tic = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code + REPORT], capture_output=True,
                             text=True, check=True)
        seconds.append(time.perf_counter() - tic)
        imported = out.stdout.strip()
    return statistics.median(seconds), imported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    timed(FIGURE_JOB, 1)  # warm the file cache for both cases
    now, now_heavy = timed(FIGURE_JOB, args.runs)
    before, before_heavy = timed(BEFORE, args.runs)
    print(f"figure job start-up, median of {args.runs}: {now:.2f} s (imports {now_heavy}); "
          f"with every stage module, as before: {before:.2f} s (imports {before_heavy}); "
          f"ratio before/now {before / now:.2f}")


if __name__ == "__main__":
    main()
