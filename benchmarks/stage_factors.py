"""The FLOP model's constants (config.yaml ``estimate:``) measured from a finished run.

Take a results tree whose jobs all ran on this machine, list its jobs with a forced dry run
that writes the estimate job by job, then read each job's benchmark seconds against its work:

    CNNREPRO_ESTIMATE_JSON=/tmp/jobs.json snakemake -n --forceall --cores 2 --configfile ...
    python benchmarks/stage_factors.py /tmp/jobs.json [--root .]

Prints ``job_seconds`` (the median seconds of the jobs without a model) and, per rule with a
model and per rule and study (``rule/study``), Σ(seconds − job_seconds) × cpu_gflops / Σ work:
the ``stage_factors`` entries with which the FLOP model gives those jobs' summed time (a
median per job would let the many small jobs set the factor of the few long ones). A job
without a benchmark is left out.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from cnnrepro import config as cfg
from cnnrepro.estimate import measurements

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("jobs", type=Path, help="the estimate JSON of a forced dry run")
    parser.add_argument("--root", type=Path, default=Path("."), help="where results/ lies")
    args = parser.parse_args()
    settings = cfg.load(ROOT / "config.yaml")["estimate"]
    seconds = {m.benchmark: m.seconds for m in measurements(args.root)}
    jobs = [j for j in json.loads(args.jobs.read_text())["jobs"] if j["benchmark"] in seconds]
    start_up = statistics.median(seconds[j["benchmark"]] for j in jobs if not j["work"])
    print(f"job_seconds: {start_up:.1f}   # median of {sum(not j['work'] for j in jobs)} "
          f"jobs without a model")
    # (excess seconds, work) per job, under its rule and under rule/study
    found: dict[str, list[tuple[float, float]]] = {}
    for job in jobs:
        if job["work"]:
            excess = max(seconds[job["benchmark"]] - start_up, 0.0)
            for key in (job["rule"], f"{job['rule']}/{job['study']}"):
                found.setdefault(key, []).append((excess, job["work"]))
    print("stage_factors:")
    gflops = settings["cpu_gflops"] * 1e9
    for key, pairs in found.items():
        per_job = [e * gflops / w for e, w in pairs]
        total = sum(e for e, _ in pairs) * gflops / sum(w for _, w in pairs)
        print(f"  {key}: {total:.3g}   # {len(pairs)} jobs (their summed time); per job "
              f"{min(per_job):.3g} to {max(per_job):.3g}, median {statistics.median(per_job):.3g}")

if __name__ == "__main__":
    main()
