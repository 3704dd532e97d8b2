"""What a run says before its first job, after its last, and when a job fails.

The Snakefile's handlers are one line each: :func:`start` (onstart), :func:`preview`
(installed once: Snakemake calls no hook in a dry run), :func:`success` (onsuccess) and
:func:`failure` (onerror); the last two record the size of every job that wrote a
benchmark file, for the next estimate. They turn Snakemake's DAG and scheduler into plain data
(:class:`cnnrepro.estimate.Job` lists, failed jobs as dicts); the functions that decide and
write the messages (:func:`guard`, :func:`summary`, :func:`failure_text`) take only those,
so tests call them without Snakemake.

``./repro run`` sets ``CNNREPRO_COST_GUARD`` (``stop``, or ``go`` with ``--accept-cost``):
on a machine without CUDA, a run whose estimate exceeds ``estimate.guard_hours`` then stops
before any job. Plain ``snakemake`` prints the estimate and runs. ``CNNREPRO_ESTIMATE_JSON``
names a file that receives the estimate job by job (for scripts and tests).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import config as cfg
from . import ledger, paths, studies
from .claims import verdict_counts
from .estimate import (
    Estimate,
    Job,
    describe,
    duration,
    estimate,
    job_work,
    measurements,
    record_sizes,
)
from .io import atomic_path, read_csv, write_json
from .study import Stage

GUARD_ENV = "CNNREPRO_COST_GUARD"
ESTIMATE_JSON_ENV = "CNNREPRO_ESTIMATE_JSON"
LOG_TAIL = 15  # lines of a failed job's log shown


@dataclass
class _Started:
    """What the start said, for the end: the estimate, and the jobs whose sizes are
    recorded beside the benchmark files they wrote."""

    wall: float | None = None
    jobs: list[Job] = field(default_factory=list)
    device: str = "cpu"


_STARTED = _Started()


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def run_device(config: dict[str, Any]) -> str:
    """The device the jobs will train on (config ``device``; auto: CUDA where present)."""
    if config["device"] == "auto":
        return "cuda" if cuda_available() else "cpu"
    return config["device"]


def _declared(job: Any) -> Stage | None:
    """The study stage a job runs (its rule's params name it), if any."""
    study, stage = job.params.get("study"), job.params.get("stage")
    if not (isinstance(study, str) and isinstance(stage, str)):
        return None
    return studies.get(study).stages.get(stage)


def borrowed_work(config: dict[str, Any], params: Any) -> float:
    """The work of a stage on other studies' trained models (its ``targets`` param: lists of
    resolved references, each with its training spec): a forward pass over the test images
    of each, as :func:`job_work` counts a model's own stage."""
    targets = params.get("targets")
    if not isinstance(targets, dict):
        return 0.0
    return sum(job_work(config, ref["spec"], False) for runs in targets.values()
               if isinstance(runs, list) for ref in runs
               if isinstance(ref, dict) and isinstance(ref.get("spec"), dict))


def jobs_of(dag: Any, config: dict[str, Any]) -> list[Job]:
    """The jobs Snakemake will run (its DAG after what is done), dependencies first."""
    pending = set(dag.needrun_jobs())
    ordered = [job for layer in dag.toposorted(pending) for job in layer]
    index = {job: i for i, job in enumerate(ordered)}
    found = []
    for job in ordered:
        spec = job.params.get("spec")
        spec = spec if isinstance(spec, dict) and "arch" in spec else None
        study = job.wildcards.get("study") or job.params.get("study") or (spec or {}).get("study", "")
        model = job.wildcards.get("model") or (spec or {}).get("model", "")
        # A declared stage says whether it trains and how many models one job trains (a
        # vectorised grid: all its points); of the generic rules, training writes weights.
        stage = _declared(job)
        trains = stage.trains if stage else "weights" in job.output.keys()
        runs = stage.runs(config) if stage and stage.runs else 1
        found.append(Job(
            rule=job.rule.name, study=str(study), model=str(model),
            work=runs * job_work(config, spec, trains) + borrowed_work(config, job.params),
            threads=int(job.threads),
            benchmark=str(job.benchmark) if job.benchmark else None,
            after=tuple(sorted(index[d] for d in dag.dependencies[job] if d in index)),
            runs=not job.is_norun))
    return found


def _cores(workflow: Any) -> int:
    try:
        return int(workflow.cores)
    except Exception:  # a dry run without --cores: Snakemake has no number to give
        return os.cpu_count() or 1


def guard(est: Estimate, config: dict[str, Any], cuda: bool, on_gpu: Estimate | None,
          go_ahead: list[str]) -> str | None:
    """Why a run must not start here, and the choices (``go_ahead``: the command that
    runs it anyway); None when it may."""
    limit = config["estimate"]["guard_hours"] * 3600
    if cuda or est.wall <= limit:
        return None
    preset, what = (("quick", "minutes, checks the pipeline") if config["preset"] == "cpu"
                    else ("cpu", "each study in about an hour on 2 cores"))
    gpu = f"about {duration(on_gpu.wall)} there (FLOP model)" if on_gpu is not None else ""
    return (f"cnnrepro: not started: this run would take about {duration(est.wall)} on this "
            f"machine's {est.cores} CPU cores (no CUDA here), more than estimate.guard_hours "
            f"({config['estimate']['guard_hours']:g} h). Choose one:\n"
            f"  the {preset} preset ({what}):\n"
            f"      ./repro run --cores all --configfile config/presets/{preset}.yaml\n"
            f"  a machine with a CUDA GPU: {gpu}\n"
            f"  go ahead anyway:\n"
            f"      {shlex.join(go_ahead)}")


def start(workflow: Any, config: dict[str, Any]) -> None:
    """onstart (and a dry run, through :func:`preview`): say what the run will cost, and
    stop it where ``./repro run`` asks. Writes nothing."""
    from snakemake.logging import logger

    jobs = jobs_of(workflow.dag, config)
    found = measurements()
    device, cluster = run_device(config), not workflow.local_exec
    cores = min(workflow.nodes, len(jobs)) if cluster else _cores(workflow)
    est = estimate(jobs, config["estimate"], cores, device, found, cluster)
    _STARTED.wall, _STARTED.jobs, _STARTED.device = est.wall, jobs, device
    logger.info(describe(est, config))
    if os.environ.get(ESTIMATE_JSON_ENV):
        write_json(os.environ[ESTIMATE_JSON_ENV], est.as_dict())
    mode = os.environ.get(GUARD_ENV)
    if mode == "stop" and not cluster:  # this host's CUDA says nothing of a cluster's nodes
        why = guard(est, config, cuda_available(),
                    estimate(jobs, config["estimate"], cores, "cuda", found),
                    invocation(env={GUARD_ENV: "go"}))
        if why:  # our message alone, not a traceback: the run ends before any job
            logger.error(why)
            raise SystemExit(1)
    if mode == "go":
        logger.info("cnnrepro: going ahead as asked (--accept-cost).")


def _record_sizes(workflow: Any) -> None:
    """The size of every job that wrote its benchmark file during this run."""
    record_sizes(_STARTED.jobs, _STARTED.device, workflow.start_time.timestamp())


def preview(workflow: Any, config: dict[str, Any]) -> None:
    """Say the estimate in a dry run too: Snakemake calls no hook there, but it logs the
    job counts (a RUN_INFO event) once the DAG is known; this handler speaks after it."""
    from snakemake.logging import logger
    from snakemake_interface_logger_plugins.common import LogEvent

    class DryRunEstimate(logging.Handler):
        said = False

        def emit(self, record: logging.LogRecord) -> None:
            if (getattr(record, "event", None) == LogEvent.RUN_INFO and not self.said
                    and workflow.dryrun):
                self.said = True
                start(workflow, config)

    logger.addHandler(DryRunEstimate())


def summary(config: dict[str, Any], root: str | Path, wall: float,
            estimated: float | None = None, latexmk: bool = True,
            recorded: list[str] | None = None) -> str:
    """The end-of-run summary: where the report and the paper are, the verdicts per study,
    the preset in force and the wall time (``wall`` seconds, ending now); ``recorded``:
    what the ledger took (:func:`record`)."""
    root = Path(root).resolve()
    index, pdf, tex = (root / paths.report_index(), root / paths.paper("pdf"),
                       root / paths.paper("tex"))
    started = time.time() - wall

    def earlier(path: Path) -> str:
        return "  (from an earlier run)" if path.stat().st_mtime < started else ""

    said = f" (estimated at start: {duration(estimated)})" if estimated else ""
    lines = [f"cnnrepro: finished in {duration(wall, exact=True)}{said}.",
             f"  preset   '{config['preset']}', seeds {config['seeds']}: "
             f"{len(cfg.run_departures(config))} departures from the documents' settings "
             f"(listed in the report)"]
    lines.append(f"  report   {index.as_uri()}{earlier(index)}" if index.is_file()
                 else "  report   not built: not among this run's targets")
    if pdf.is_file():
        lines.append(f"  paper    {pdf}{earlier(pdf)}")
    elif not latexmk:
        lines.append("  paper    not built: latexmk not found. Install TeX (Debian: apt-get "
                     "install latexmk texlive-latex-recommended texlive-fonts-recommended), "
                     f"then: cd {shlex.quote(str(tex.parent))} && latexmk -pdf paper.tex")
    else:
        lines.append(f"  paper    not built: not among this run's targets ({paths.paper('pdf')})")
    lines.append("  claims   (verdicts per study)")
    for study in studies.enabled(config):
        if not study.has_claims:
            continue
        table = root / paths.study_file("claims", study.name)
        found = verdict_counts(read_csv(table)["verdict"].astype(str).tolist()) if (
            table.is_file()) else {}
        counts = (", ".join(f"{n} {verdict}" for verdict, n in found.items() if n)
                  if table.is_file() else "no claims table: not among this run's targets")
        lines.append(f"    {study.name:8s} {counts}")
    lines += recorded or []
    lines.append(f"  this summary: {root / paths.run_summary()}")
    return "\n".join(lines)


def record(workflow: Any, config: dict[str, Any]) -> list[str]:
    """Add the claims tables this run wrote to the ledger; the summary's lines on it."""
    run = ledger.run_id(config, workflow.start_time)
    new = ledger.records(config, ".", run, datetime.now(timezone.utc),
                         since=workflow.start_time.timestamp(), workflow_dir=workflow.basedir)
    return ledger.summary_lines(paths.ledger(), run, ledger.append(paths.ledger(), new))


def success(workflow: Any, config: dict[str, Any]) -> None:
    """onsuccess: record the jobs' sizes and the claims in the ledger, print the summary
    and keep it in results/report/run-summary.txt."""
    from snakemake.logging import logger

    _record_sizes(workflow)
    text = summary(config, ".", (datetime.now() - workflow.start_time).total_seconds(),
                   _STARTED.wall, shutil.which("latexmk") is not None, record(workflow, config))
    with atomic_path(paths.run_summary()) as tmp:
        tmp.write_text(text + "\n")
    logger.info(text)


def invocation(argv: list[str] | None = None, env: dict[str, str] | None = None) -> list[str]:
    """The command line of this run, as the user typed it (``./repro run`` or snakemake)."""
    argv = sys.argv if argv is None else argv
    env = os.environ if env is None else env
    mode = env.get(GUARD_ENV)
    if mode in ("stop", "go"):
        return ["./repro", "run", *(["--accept-cost"] if mode == "go" else []), *argv[1:]]
    program = (["python", "-m", "snakemake"] if argv[0].endswith("__main__.py")
               else [Path(argv[0]).name])
    return [*program, *argv[1:]]


def failure_text(failed: list[dict[str, Any]], resume: list[str], root: str | Path = ".") -> str:
    """What failed, the end of its log, and the command that resumes the run
    (``failed``: ``{"rule", "wildcards", "logs"}`` per failed job)."""
    lines = ["cnnrepro: the run stopped: "
             + (f"{len(failed)} job{'s' if len(failed) > 1 else ''} failed."
                if failed else "no job failed (interrupted?).")]
    for job in failed:
        where = ", ".join(f"{k}={v}" for k, v in job["wildcards"].items())
        lines.append(f"  rule {job['rule']}" + (f" ({where})" if where else ""))
        logs = [(Path(root) / log).resolve() for log in job["logs"]]
        for log in logs:
            if log.is_file():
                tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL:]
                lines.append(f"  last {len(tail)} lines of {log}:")
                lines += [f"    | {line}" for line in tail]
            else:
                lines.append(f"  its log {log} was not written: see Snakemake's error above")
        if not logs:
            lines.append("  it has no log file: see Snakemake's error above")
    lines.append("  Jobs that finished are kept. To resume after fixing the cause:")
    lines.append(f"    {shlex.join(resume)}")
    return "\n".join(lines)


def failure(workflow: Any, config: dict[str, Any]) -> None:
    """onerror: the failed jobs, the end of their logs and the command that resumes; the
    claims tables the run wrote before it stopped go to the ledger."""
    from snakemake.logging import logger

    _record_sizes(workflow)
    failed = [{"rule": job.rule.name, "wildcards": dict(job.wildcards.items()),
               "logs": [str(log) for log in job.log]}
              for job in workflow.scheduler.failed]
    resume = invocation()
    # Snakemake removes a failed job's outputs unless --keep-incomplete; incomplete ones
    # are then rerun only with --rerun-incomplete (on in profiles/default)
    if not workflow.dag_settings.force_incomplete:
        resume.append("--rerun-incomplete")
    logger.error("\n".join([failure_text(failed, resume), *record(workflow, config)]))
