"""What a run will cost, said before any job starts.

The estimate covers the jobs Snakemake will actually run for the requested targets (its DAG
after what is already done), every stage. Each job's seconds come from one of two sources,
and the printout says which, stage by stage:

* **measured**: this machine's Snakemake ``benchmark:`` files under ``results/benchmarks/``,
  each paired with the size of the job it measured (``sizes.json`` beside them, written at
  the end of every run for the files it wrote). A job takes the seconds measured for its
  rule (for the same study and model where there are such), scaled by its work over the
  measured job's work; the start-up part (``job_seconds``) is not scaled.
* **FLOP model**: the job's start-up (:func:`start_up`: ``job_seconds`` for a job that
  imports torch, ``light_job_seconds`` for one of ``light_rules``, which import none) +
  ``stage_factors[rule/study]`` (else ``[rule]``) × work / the device's GFLOP/s
  (the ``estimate:`` block of ``config.yaml``; the factors were measured once with
  ``benchmarks/stage_factors.py``).

A job's work, in FLOPs: a job that writes weights trains (:func:`run_cost`); a job with a
trained model's spec among its params does one forward pass over its test images (its
stage factor says how many such passes the stage costs); any other job (datasets, claims,
figures, the report) is its start-up alone. Forward FLOPs are counted on the real
architectures with ``torch.utils.flop_counter`` on the meta device (no memory, no weights).

The wall time on N cores is the larger of the job time spread over the cores (each job
holding min(threads, N) of them) and the longest chain of jobs that wait for each other.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import torch

from . import paths
from .cost import count_flops
from .datasets import estimate_sizes, input_shape
from .io import read_benchmark, read_json, write_json
from .models import build_model, frozen_split


@lru_cache(maxsize=None)
def _forward_flops(arch: str, options: str, shape: tuple[int, int, int]) -> tuple[int, bool]:
    channels, size, classes = shape
    kwargs = json.loads(options)
    if "weights" in kwargs:
        kwargs["weights"] = None  # the estimate never fetches weights
    with torch.device("meta"):
        model = build_model(arch, kwargs, classes, channels, size).eval()
        flops = count_flops(model, torch.zeros(1, channels, size, size))
    return flops, frozen_split(model) is not None


def forward_flops(spec: dict[str, Any], shape: tuple[int, int, int]) -> int:
    """FLOPs of one forward pass of one image (counted once per architecture and options)."""
    return _forward_flops(spec["arch"], json.dumps(spec["options"], sort_keys=True), shape)[0]


def has_frozen_stem(spec: dict[str, Any], shape: tuple[int, int, int]) -> bool:
    return _forward_flops(spec["arch"], json.dumps(spec["options"], sort_keys=True), shape)[1]


def run_cost(spec: dict[str, Any], shape: tuple[int, int, int], sizes: tuple[int, int]
             ) -> float:
    """FLOPs of one training run: each epoch trains on the (subset of the) training split
    (3 × forward: forward and backward) and scores the validation and test images; one last
    pass over the training images. A model with a frozen stem runs it once per image (the
    trainer keeps its outputs, ``train.setup``) and its small head not at all here."""
    n_train, n_test = sizes
    n_train = min(n_train, spec["subset"].get("train") or n_train)
    n_test = min(n_test, spec["subset"].get("test") or n_test)
    n_val = round(spec.get("holdout_fraction", 0) * n_train)
    if has_frozen_stem(spec, shape):
        return forward_flops(spec, shape) * (2 * n_train + n_test)
    return forward_flops(spec, shape) * (
        spec["training"]["epochs"] * (3 * (n_train - n_val) + n_val + n_test) + n_train)


def job_work(config: dict[str, Any], spec: dict[str, Any] | None, trains: bool) -> float:
    """A job's work in FLOPs: a training run, one forward pass over the test images of a
    trained model, or nothing (a job without a model)."""
    if spec is None:
        return 0.0
    dataset = spec["dataset"]
    shape, sizes = input_shape(config, dataset), estimate_sizes(config, dataset)
    if trains:
        return run_cost(spec, shape, sizes)
    return float(forward_flops(spec, shape) * min(sizes[1], spec["subset"].get("test") or sizes[1]))


@dataclass(frozen=True)
class Job:
    """One job Snakemake will run, as the estimate sees it."""

    rule: str
    study: str = ""                # "" for jobs of no study (datasets, the report)
    model: str = ""                # "" where the job has no model
    work: float = 0.0              # FLOPs (module docstring)
    threads: int = 1
    benchmark: str | None = None   # the benchmark file it will write
    after: tuple[int, ...] = ()    # the listed jobs (earlier in the list) it waits for
    runs: bool = True              # False for a target rule that runs nothing (rule all)


@dataclass(frozen=True)
class Measurement:
    """The seconds of one benchmark file, and the size of the job it measured if known."""

    rule: str
    seconds: float
    benchmark: str = ""            # the file, relative to the workflow's directory
    study: str = ""
    model: str = ""
    work: float | None = None      # None: measured before its size was recorded
    device: str | None = None


def record_sizes(jobs: Iterable[Job], device: str, since: float, root: str | Path = ".") -> None:
    """Remember the size of every job that wrote its benchmark file at ``since`` (epoch
    seconds) or later, under that file and its time stamp, so that a later estimate can
    scale its seconds (merged into ``sizes.json``)."""
    root = Path(root)
    ledger = root / paths.benchmark_sizes()
    sizes = read_json(ledger) if ledger.is_file() else {}
    for job in jobs:
        tsv = root / job.benchmark if job.benchmark else None
        if tsv is not None and tsv.is_file() and tsv.stat().st_mtime >= since:
            sizes[job.benchmark] = {"rule": job.rule, "study": job.study, "model": job.model,
                                    "work": job.work, "device": device,
                                    "written": tsv.stat().st_mtime}
    write_json(ledger, sizes)


def measurements(root: str | Path = ".") -> list[Measurement]:
    """Every benchmark file under ``results/benchmarks``, with the size of the job it
    measured where ``sizes.json`` knows it (an entry made for the file as it is now). A
    file without one (older than the ledger, or rewritten by a run that was killed) still
    gives the seconds of its rule."""
    root = Path(root)
    folder, ledger = root / paths.benchmarks_dir(), root / paths.benchmark_sizes()
    sizes = read_json(ledger) if ledger.is_file() else {}
    found = []
    for tsv in sorted(folder.rglob("*.tsv")):
        name = tsv.relative_to(root).as_posix()
        seconds = read_benchmark(tsv)
        if seconds is None:
            continue
        e = sizes.get(name)
        if e is not None and e["written"] == tsv.stat().st_mtime:
            found.append(Measurement(e["rule"], seconds, name, e["study"], e["model"], e["work"],
                                     e["device"]))
        else:
            found.append(Measurement(paths.benchmark_rule(name), seconds, name))
    return found


def _scaled(measured: Measurement, work: float, start_up: float) -> float:
    fixed = min(start_up, measured.seconds)
    return fixed + (measured.seconds - fixed) * work / measured.work


def measured_seconds(job: Job, found: list[Measurement], device: str, start_up: float
                     ) -> float | None:
    """The job's seconds from this machine's benchmarks; None where none applies. A job
    without a model takes its own file's last seconds, else its rule's median."""
    same_rule = [m for m in found if m.rule == job.rule]
    if not job.work:
        own = [m.seconds for m in found if job.benchmark and m.benchmark == job.benchmark]
        times = own or [m.seconds for m in same_rule]
        return statistics.median(times) if times else None
    sized = [m for m in same_rule if m.work and m.device == device]
    own = [m for m in sized if (m.study, m.model) == (job.study, job.model)]
    refs = own or sized
    return statistics.median(_scaled(m, job.work, start_up) for m in refs) if refs else None


def start_up(job: Job, settings: dict[str, Any]) -> float:
    """A job's seconds besides its FLOPs: a rule of ``light_rules`` (by its name, or for a
    study stage's rule ``<stage>_<study>`` by its stage) imports no torch."""
    light = settings["light_rules"]
    is_light = job.rule in light or (job.study and job.rule.removesuffix(f"_{job.study}") in light)
    return settings["light_job_seconds"] if is_light else settings["job_seconds"]


def model_seconds(job: Job, settings: dict[str, Any], device: str) -> float:
    """The job's seconds by the FLOP model (``settings``: the config's ``estimate`` block)."""
    gflops = settings["gpu_gflops"] if device == "cuda" else settings["cpu_gflops"]
    factors = settings["stage_factors"]  # "rule/study" first: one factor per rule misfits
    factor = factors.get(f"{job.rule}/{job.study}", factors.get(job.rule, 1.0))
    return start_up(job, settings) + factor * job.work / (gflops * 1e9)


@dataclass(frozen=True)
class Estimate:
    jobs: tuple[Job, ...]
    seconds: tuple[float, ...]
    measured: tuple[bool, ...]     # from this machine's benchmarks (else the FLOP model)
    cores: int                     # local cores, or jobs at once on a cluster
    device: str
    cluster: bool = False          # each job on its own node (threads hold no local cores)

    @property
    def job_time(self) -> float:
        """Seconds of every job one after the other."""
        return sum(self.seconds)

    @property
    def wall(self) -> float:
        """Seconds from the first job to the last on ``cores`` cores."""
        held = [1 if self.cluster else min(j.threads, self.cores) for j in self.jobs]
        spread = sum(s * h for s, h in zip(self.seconds, held))
        done: list[float] = []
        for job, seconds in zip(self.jobs, self.seconds):
            done.append(max((done[i] for i in job.after), default=0.0) + seconds)
        return max(spread / max(self.cores, 1), max(done, default=0.0))

    def stages(self) -> dict[str, tuple[int, float, int]]:
        """{rule: (jobs, seconds, jobs measured)} in the order the rules first appear."""
        rows: dict[str, tuple[int, float, int]] = {}
        for job, seconds, measured in zip(self.jobs, self.seconds, self.measured):
            if job.runs:
                n, s, m = rows.get(job.rule, (0, 0.0, 0))
                rows[job.rule] = (n + 1, s + seconds, m + measured)
        return rows

    def studies(self) -> dict[str, float]:
        """Job seconds per study ("" for jobs of no study)."""
        totals: dict[str, float] = {}
        for job, seconds in zip(self.jobs, self.seconds):
            totals[job.study] = totals.get(job.study, 0.0) + seconds
        return totals

    def as_dict(self) -> dict[str, Any]:
        return {"cores": self.cores, "device": self.device, "cluster": self.cluster,
                "job_time": self.job_time,
                "wall": self.wall,
                "jobs": [{**asdict(job), "seconds": s, "measured": m}
                         for job, s, m in zip(self.jobs, self.seconds, self.measured)]}


def estimate(jobs: list[Job], settings: dict[str, Any], cores: int, device: str,
             found: list[Measurement] = (), cluster: bool = False) -> Estimate:
    """Each job's seconds: measured where this machine has a benchmark for its rule, else
    the FLOP model (``settings``: the config's ``estimate`` block)."""
    seconds, measured = [], []
    for job in jobs:
        s = (measured_seconds(job, list(found), device, start_up(job, settings)) if job.runs
             else 0.0)
        measured.append(s is not None and job.runs)
        seconds.append(s if s is not None else model_seconds(job, settings, device))
    return Estimate(tuple(jobs), tuple(seconds), tuple(measured), cores, device, cluster)


def duration(seconds: float, exact: bool = False) -> str:
    """A duration for people: an estimate rounded to what it can promise ("10 min",
    "5.0 h", "4.0 days"), or with ``exact`` a measured one to the second ("9 min 43 s",
    "2 h 05 min")."""
    if exact:
        s = round(seconds)
        if s < 60:
            return f"{s} s"
        if s < 3600:
            return f"{s // 60} min {s % 60:02d} s"
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def describe(est: Estimate, config: dict[str, Any]) -> str:
    """The estimate as printed at the start of a run (and of a dry run)."""
    stages = est.stages()
    n_jobs, n_runs = len(est.jobs), sum(n for n, _, _ in stages.values())
    n_measured = sum(m for _, _, m in stages.values())
    source = ("all from this machine's benchmarks" if n_measured == n_runs else
              "all from the FLOP model: no benchmarks here yet" if n_measured == 0 else
              f"{n_measured} jobs from this machine's benchmarks, "
              f"{n_runs - n_measured} from the FLOP model")
    where = (f"a cluster, {est.cores} jobs at once" if est.cluster else
             f"{est.cores} core{'s' if est.cores > 1 else ''}") + (
        " with CUDA" if est.device == "cuda" else "")
    lines = [f"cnnrepro: preset '{config['preset']}', seeds {config['seeds']}: {n_jobs} "
             f"job{'s' if n_jobs > 1 else ''} to run, about {duration(est.wall)} on {where}",
             f"  ({duration(est.job_time)} of job time; {source})",
             f"  {'stage':22s} {'jobs':>4s}  {'time':>8s}  from"]
    for rule, (n, seconds, measured) in stages.items():
        origin = ("measured" if measured == n else "FLOP model" if measured == 0
                  else f"measured {measured}/{n}, FLOP model {n - measured}/{n}")
        lines.append(f"  {rule:22s} {n:4d}  {duration(seconds):>8s}  {origin}")
    per_study = ", ".join(f"{study or 'data and report'} {duration(s)}"
                          for study, s in est.studies().items() if s)
    lines.append(f"  by study: {per_study}")
    return "\n".join(lines)
