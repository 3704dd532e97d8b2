"""The results tree: the one module that knows where every artifact lives.

::

    results/data/<dataset>/<split>.npz|.json          prepared datasets
    results/<study>/<model>/seed<k>/                  one run: model.pt, history.csv, train.json,
                                                      snapshots/, eval/…, and the study's own
                                                      per-run files (its registry entry names them)
    results/<study>/<file>                            the study's own files (summary/…, grid/…)
    results/report/…                                  pages, figures, the paper, run-summary.txt
    results/logs/<rule>/…, results/benchmarks/<rule>/…, results/benchmarks/sizes.json

``results`` is the config key ``results`` (:func:`use`): one folder per configuration keeps
runs side by side; ``ledger/claims.jsonl`` beside it is shared by all of them.
Rules and the package both ask this module; nothing else spells a path. Every function
returns a string and takes Snakemake wildcards as defaults (``"{study}"``, ``"{model}"``,
``"{seed}"``), so the same call gives a rule's pattern or one job's file.
Studies name their own files (relative to a run or to ``results/<study>``) in their
registry entry; :class:`StudyFiles` resolves those names for stages and figures.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

# The results tree's folder: config key ``results`` (:func:`use`), "results" by default. A
# job's own process learns it from the environment its Snakemake sets.
RESULTS_ENV = "CNNREPRO_RESULTS"
RESULTS = os.environ.get(RESULTS_ENV, "results")
STUDY, MODEL, SEED = "{study}", "{model}", "{seed}"
# In a figure's inputs, ``(name, FIRST)``: the run files of the config's first model only
# (a figure that shows one model declares just what it opens).
FIRST = "<first model>"

# Every run of every study has these (training and evaluation).
RUN_FILES = {
    "weights": "model.pt",
    "history": "history.csv",
    "train_meta": "train.json",
    "snapshots": "snapshots",
    "checkpoint": "work/checkpoint.pt",
    "metrics": "eval/metrics.json",   # deterministic: equal across runs of one config and seed
    "cost": "eval/cost.json",         # measured: latency and training time, never equal twice
    "predictions": "eval/predictions.npz",
    "confusion": "eval/confusion.csv",
    "roc": "eval/roc.csv",
    "layers": "eval/layers.csv",
}
# Every study has these (aggregation over seeds, and the claims table where it has one).
STUDY_FILES = {
    "metrics_long": "summary/metrics_long.csv",
    "metrics_summary": "summary/metrics_summary.csv",
    "histories": "summary/history.csv",
    "claims": "claims/claims.csv",     # the claims stage's (studies that have one)
}


def use(results: str) -> None:
    """Put the results tree in ``results`` (relative to the working directory), for this
    process and the jobs it starts (config key ``results``: runs side by side)."""
    global RESULTS
    RESULTS = os.environ[RESULTS_ENV] = results.rstrip("/") or "/"


def data_dir() -> str:
    """The prepared datasets (copies of public data: a bundle leaves their arrays out)."""
    return f"{RESULTS}/data"


def data(dataset: str = "{dataset}", split: str = "{split}", ext: str = "npz") -> str:
    return f"{data_dir()}/{dataset}/{split}.{ext}"


def run_dir(study: str = STUDY, model: str = MODEL, seed: int | str = SEED) -> str:
    return f"{RESULTS}/{study}/{model}/seed{seed}"


# What the training and the evaluation job write, by name (the rules' output names).
TRAIN_OUTPUTS = ("weights", "history", "train_meta", "snapshots")
EVALUATE_OUTPUTS = ("metrics", "cost", "predictions", "confusion", "roc", "layers")


def outputs_in(folder: str | Path, names: Iterable[str]) -> dict[str, Path]:
    """A job's outputs by name, laid out in ``folder`` as in a run's folder (tests and
    benchmarks train into a temporary folder; the workflow passes the rule's outputs)."""
    return {name: Path(folder) / RUN_FILES[name] for name in names}


def run_file(name: str, study: str = STUDY, model: str = MODEL, seed: int | str = SEED,
             names: Mapping[str, str] = RUN_FILES) -> str:
    """A run's artifact by name (``names``: the generic table, or a study's own)."""
    return f"{run_dir(study, model, seed)}/{names[name]}"


def study_file(name: str, study: str = STUDY, names: Mapping[str, str] = STUDY_FILES,
               **fields: str | int) -> str:
    """A study-level artifact by name; ``fields`` fill placeholders such as ``{model}``."""
    return f"{RESULTS}/{study}/" + names[name].format(**({"model": MODEL} | fields))


def report_dir() -> str:
    return f"{RESULTS}/report"


def report_index() -> str:
    return f"{report_dir()}/index.html"


def report_page(study: str = STUDY) -> str:
    return f"{report_dir()}/{study}.html"


def figure(study: str = STUDY, name: str = "{figure}", ext: str = "png",
           seed: int | str | None = None) -> str:
    """A report figure; ``seed``: its drawing from one further seed's files."""
    suffix = f"-seed{seed}" if seed is not None else ""
    return f"{report_dir()}/{study}/{name}{suffix}.{ext}"


def paper(ext: str = "tex") -> str:
    return f"{report_dir()}/paper.{ext}"


def run_config() -> str:
    """The merged config the report shows, as the run used it (``./repro bundle`` takes it
    along, and ``./repro verify`` judges the claims again under it)."""
    return f"{report_dir()}/config.yaml"


def report_across() -> str:
    """The page of every recorded run's verdicts (from the ledger, after each run)."""
    return f"{report_dir()}/across-runs.html"


def run_summary() -> str:
    """What the last successful run made (written at its end, for runs in the background)."""
    return f"{report_dir()}/run-summary.txt"


def ledger() -> str:
    """Every run's verdicts, kept across runs and presets (:mod:`cnnrepro.ledger`): beside
    ``results/``, not in it, so that removing a results tree keeps the history."""
    return "ledger/claims.jsonl"


def log(rule: str, *keys: str) -> str:
    return f"{RESULTS}/logs/{rule}" + ("/" + "/".join(keys) if keys else "") + ".log"


def benchmark(rule: str, *keys: str) -> str:
    return f"{RESULTS}/benchmarks/{rule}" + ("/" + "/".join(keys) if keys else "") + ".tsv"


def benchmarks_dir() -> str:
    return f"{RESULTS}/benchmarks"


def benchmark_sizes() -> str:
    """The size of the job behind every benchmark file (for the calibrated estimate)."""
    return f"{benchmarks_dir()}/sizes.json"


def benchmark_rule(path: str) -> str:
    """The rule a benchmark file (relative to the workflow's directory) belongs to."""
    return path.removeprefix(benchmarks_dir() + "/").split("/")[0].removesuffix(".tsv")


class UndeclaredRead(KeyError):
    """A stage or figure opened a file it did not declare (its rule would not wait for it)."""


@dataclass(frozen=True)
class StudyFiles:
    """One study's artifacts by name, for a configuration's models and seeds.

    Stages and figures read through this (``runs("metrics")`` is the
    ``{(model, seed): path}`` mapping of every run), and the rules list the same files as
    inputs (:meth:`paths`), so what a function reads is what its rule waits for.
    """

    study: str
    models: tuple[str, ...]
    seeds: tuple[int, ...]
    run_names: Mapping[str, str] = field(default_factory=dict)    # the study's own run files
    study_names: Mapping[str, str] = field(default_factory=dict)  # the study's own files
    root: str = "."  # where results/ lies (the working directory of the workflow)
    # The names it may open (:meth:`only`); None: every name. A stage or figure reads
    # through an accessor limited to what it declares, so an undeclared read is an error.
    allowed: frozenset[str] | None = None

    def only(self, names: Iterable[str | tuple[str, str]]) -> StudyFiles:
        """This accessor limited to ``names`` (entries as :meth:`paths` takes them)."""
        return replace(self, allowed=frozenset(self._entry(e)[0] for e in names))

    def _check(self, name: str) -> None:
        if self.allowed is not None and name not in self.allowed:
            raise UndeclaredRead(f"{self.study}: {name!r} is not among the files declared "
                                 f"for this reader ({sorted(self.allowed)}): declare it, so "
                                 "that its rule waits for it")

    def _run_names(self) -> dict[str, str]:
        return {**RUN_FILES, **self.run_names}

    def _study_names(self) -> dict[str, str]:
        return {**STUDY_FILES, **self.study_names}

    def is_run_file(self, name: str) -> bool:
        return name in self._run_names()

    def run(self, name: str, model: str, seed: int) -> Path:
        self._check(name)
        return Path(self.root) / run_file(name, self.study, model, seed, self._run_names())

    def runs(self, name: str, models: Iterable[str] | None = None) -> dict[tuple[str, int], Path]:
        """``{(model, seed): path}`` of a per-run artifact, models then seeds in order."""
        return {(m, s): self.run(name, m, s) for m in (models or self.models) for s in self.seeds}

    def by_model(self, name: str, models: Iterable[str] | None = None) -> dict[str, list[Path]]:
        """``{model: [path per seed]}``."""
        return {m: [self.run(name, m, s) for s in self.seeds] for m in (models or self.models)}

    def file(self, name: str, **fields: str | int) -> Path:
        self._check(name)
        return Path(self.root) / study_file(name, self.study, self._study_names(), **fields)

    def _entry(self, entry: str | tuple[str, str]) -> tuple[str, list[str]]:
        """An input entry as (name, models): every model, one named, or :data:`FIRST`."""
        if isinstance(entry, str):
            return entry, list(self.models)
        name, only = entry
        return name, [self.models[0] if only == FIRST else only]

    def models_read(self, names: Iterable[str | tuple[str, str]]) -> list[str]:
        """The models whose run files ``names`` read (see :meth:`paths`)."""
        found: list[str] = []
        for entry in names:
            name, models = self._entry(entry)
            if self.is_run_file(name):
                found += models
        return list(dict.fromkeys(found))

    def paths(self, names: Iterable[str | tuple[str, str]]) -> list[str]:
        """The files behind ``names`` as strings, for a rule's input: a run file for every
        (model, seed); ``(name, model)`` for one model's runs (``(name, FIRST)``: the first
        model's); a study file once (a ``{model}`` in its name is filled with every model)."""
        found: list[str] = []
        for entry in names:
            name, models = self._entry(entry)
            if self.is_run_file(name):
                found += [str(p) for p in self.runs(name, models).values()]
            elif "{model}" in self._study_names()[name]:
                found += [str(self.file(name, model=m)) for m in models]
            else:
                found.append(str(self.file(name)))
        return list(dict.fromkeys(found))
