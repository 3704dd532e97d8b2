"""The rule of every declared study stage (:class:`cnnrepro.study.Stage`), as
``workflow/rules/stages.smk`` builds it: name, inputs, outputs, params, log, benchmark,
threads and resources all follow from the declaration, so what a stage reads is what its
rule waits for, and adding a stage touches its study's files alone.

Plain functions of the config, testable without Snakemake; the ``.smk`` file only loops.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from . import fingerprint, paths, studies
from .config import departures
from .datasets import SPECS
from .spec import training_spec
from .study import Stage, Study, arguments

SEED_PATTERN = r"\d+"


def outputs(study: Study, stage: Stage) -> dict[str, str]:
    """Each written artifact's path by its name; per run, with ``{model}`` (unless the
    stage is for one model) and ``{seed}`` left as wildcards."""
    if stage.per_run:
        model = stage.model or paths.MODEL
        return {name: study.run_file(name, model=model) for name in stage.writes}
    return {name: study.file(name, **{w: f"{{{w}}}" for w in stage.wildcards})
            for name in stage.writes}


def wildcards(study: Study, stage: Stage) -> list[str]:
    """The wildcards of the stage's outputs, in order of appearance."""
    found = re.findall(r"{(\w+)}", " ".join(outputs(study, stage).values()))
    return list(dict.fromkeys(found))


def _keys(study: Study, stage: Stage) -> list[str]:
    """The log's and benchmark's sub-path: the model and seed of a run, else the outputs'
    wildcards."""
    if stage.per_run:
        return [stage.model or "{model}", "seed{seed}"]
    return [f"{{{w}}}" for w in wildcards(study, stage)]


def log(study: Study, stage: Stage) -> str:
    return paths.log(study.rule(stage), *_keys(study, stage))


def benchmark(study: Study, stage: Stage) -> str:
    return paths.benchmark(study.rule(stage), *_keys(study, stage))


def constraints(study: Study, stage: Stage) -> dict[str, str]:
    found = {"seed": SEED_PATTERN} if stage.per_run else {}
    return {**found, **stage.wildcards}


def data_paths(config: dict[str, Any], study: str, splits: tuple[str, ...] | None = None
               ) -> dict[str, str]:
    """The prepared splits a study's models train and are tested on (``splits``: those)."""
    dataset = config["studies"][study]["dataset"]
    return {split: paths.data(dataset, split) for split in SPECS[dataset].splits
            if splits is None or split in splits}


def inputs(config: dict[str, Any], study: Study, stage: Stage) -> Callable[[Any], dict]:
    """The rule's input function (for ``unpack``): the splits it reads; per run, the run
    files it reads by name; otherwise every file behind its reads; then what it borrows."""
    files, reads = study.study_files(config), stage.reads_for(config)

    def named(w: Any) -> dict[str, str | list[str]]:
        splits = None if stage.data is True else stage.data
        found: dict[str, str | list[str]] = (data_paths(config, study.name, splits)
                                             if stage.data else {})
        if stage.per_run:
            model = stage.model or w.model
            found.update({name: study.run_file(name, model=model, seed=w.seed)
                          for name in reads})
        elif reads:
            found["files"] = files.paths(reads)
        if stage.inputs is not None:
            found.update(stage.inputs(config, w))
        return found
    return named


def params(config: dict[str, Any], study: Study, stage: Stage) -> dict[str, Any]:
    """What the stage function takes beyond its files: the study, stage and declaring
    module (for the adapter, which imports that module alone), a run's spec and seed, the
    accessor to its reads, its settings block, the run's departures and preset (a claims
    table), and its declared extras."""
    found: dict[str, Any] = {"study": study.name, "stage": stage.name,
                             "module": stage.run.__module__}
    reads = stage.reads_for(config)
    if stage.per_run:
        found["spec"] = (lambda w: training_spec(config, study.name, stage.model or w.model))
        if stage.takes("seed"):
            found["seed"] = lambda w: int(w.seed)
    elif reads:
        found["files"] = study.study_files(config).only(reads)
    if stage.settings is not None:
        found["settings"] = config["studies"][study.name][stage.settings]
    if stage.takes("departures"):
        found["departures"] = departures(config, study.name)
    if stage.takes("preset"):
        found["preset"] = config["preset"]
    if stage.params is not None:
        found.update(stage.params(config))
    return found


def code(config: dict[str, Any], scripts: str, script: str, *modules: str
         ) -> dict[str, Any] | None:
    """A rule's ``code`` param: the fingerprint of its script (in ``scripts``) and the
    package modules its job runs, with those entry points, so that Snakemake reruns the job
    when they change and the report can recompute it (:mod:`cnnrepro.fingerprint`); None
    where ``runtime.rerun_on_code_change`` is false."""
    if not config["runtime"]["rerun_on_code_change"]:
        return None
    return fingerprint.entry(scripts, script, modules)


def resources(config: dict[str, Any], stage: Stage) -> dict[str, int]:
    """Memory, runtime and GPUs from config.yaml's ``resources:`` block of its kind."""
    block = config["resources"][stage.resources]
    return {key: block[key] for key in ("mem_mb", "runtime", "gpu") if key in block}


def threads(config: dict[str, Any], stage: Stage) -> int:
    return config["resources"][stage.resources]["threads"]


def all_stages() -> list[tuple[Study, Stage]]:
    """Every stage of every registered study (rules exist for disabled studies too: their
    files are simply never requested)."""
    return [(study, stage) for study in studies.REGISTRY.values()
            for stage in study.stages.values()]


def call(config: dict[str, Any], study: Study, stage: Stage, threads: int | None = None,
         into: str | Path | None = None, **wildcards: str | int) -> dict[str, str]:
    """Run one stage as its rule would, without Snakemake (``benchmarks/gpu_check.py``,
    ``./repro verify``): the same files (relative to the working directory), params and
    ``wildcards`` (a run's model and seed); ``into``: its outputs under that folder instead,
    at the same relative paths. Returns the outputs it wrote, by name."""
    w = SimpleNamespace(**{k: str(v) for k, v in wildcards.items()})
    found = {k: v(w) if callable(v) else v for k, v in params(config, study, stage).items()}
    written = {k: str(Path(into or ".") / v.format(**vars(w)))
               for k, v in outputs(study, stage).items()}
    stage.run(**arguments(inputs(config, study, stage)(w), written, found), threads=threads)
    return written
