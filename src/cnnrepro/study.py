"""What a study declares about itself: its files, stages, figures, tables and checks.

A study is a folder ``cnnrepro/studies/<name>/`` whose ``__init__`` builds one
:class:`Study`; :mod:`cnnrepro.studies` collects them into the registry that the
workflow, the figure rule and the report read. Generic code looks a study up there and
never names one.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from . import paths


def _always(_study_config: dict) -> bool:
    return True


@dataclass(frozen=True)
class Figure:
    """One report figure: ``draw(files)`` returns a matplotlib figure.

    Its name is the drawing function's name, the file name
    (``results/report/<study>/<name>.png``) and the report entry. ``inputs`` names the
    artifacts it reads (run files are read for every model and seed; ``(name, model)``
    for one model). ``caption`` may use the study's config keys (``{fgsm[paper_epsilon]}``).
    """

    draw: Callable
    caption: str
    reproduces: str
    inputs: tuple[str | tuple[str, str], ...]
    when: Callable[[dict], bool] = _always  # drawn only if true of the study's config
    # What the page says in its place where ``when`` is false ("not run in this preset: …"),
    # so that a figure the run left out is seen to be left out; ``caption_for``'s keys.
    absent: str = ""
    # Drawn again for every further seed (from that seed's files alone; linked from the
    # page): for figures that show one seed's maps, so no seed hides behind the first.
    per_seed: bool = False
    # The trained models it draws, as (study, model, seed), where its inputs do not say
    # (a study file made from borrowed models); else the models whose run files it reads.
    # Their model card (accuracy, chance, weights) goes into the caption.
    shows: Callable[[dict], list[tuple[str, str, int]]] | None = None
    # The sanity claims that test what it shows (claim-id prefixes, e.g.
    # "vdk.sanity.randomisation."): the report lists them, with their verdicts, under it.
    checks: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.draw.__name__

    @property
    def module(self) -> str:
        """The module of the drawing code: its fingerprint is the figure rule's ``code``
        param, so restyling a figure (or plotting.py) redraws the figures it draws."""
        return self.draw.__module__

    def caption_for(self, study_config: dict) -> str:
        return self.caption.format(**study_config)

    def absent_for(self, study_config: dict) -> str:
        return self.absent.format(**study_config)


class Figures(dict):
    """A study's figures by name, filled by the :meth:`register` decorator beside each
    drawing function (so caption and code sit together)."""

    def register(self, caption: str, reproduces: str, inputs: tuple = (),
                 when: Callable[[dict], bool] = _always, per_seed: bool = False,
                 absent: str = "", shows: Callable[[dict], list] | None = None,
                 checks: tuple[str, ...] = ()) -> Callable:
        def add(draw: Callable) -> Callable:
            self[draw.__name__] = Figure(draw, caption, reproduces, tuple(inputs), when=when,
                                         per_seed=per_seed, absent=absent, shows=shows,
                                         checks=tuple(checks))
            return draw
        return add


@dataclass(frozen=True)
class Stage:
    """One step of a study, declared beside its function by :meth:`Stages.register`.

    Its name is the function's name, the stage key, the folder of the files it writes and,
    with the study's, its rule's name (``fgsm_vdk``), log and benchmark. The workflow builds
    the rule from this declaration alone (``workflow/rules/stages.smk``): its inputs are
    what the stage reads, its outputs what it writes, its params its settings. The function
    is called with keyword arguments: each written artifact's path by its name; per run,
    ``spec`` and ``seed`` and each read run file by its name; otherwise ``files``, an
    accessor limited to ``reads``; ``data`` (the splits), ``settings`` where declared, and
    ``departures`` and ``preset`` where it takes them (a claims table).
    """

    run: Callable
    writes: tuple[str, ...]                  # artifact names (the study's files or run files)
    # artifact names, as Figure.inputs; or (config) -> names, where the config decides
    reads: tuple[str | tuple[str, str], ...] | Callable[[dict], tuple] = ()
    data: bool | tuple[str, ...] = False     # the study's dataset splits it reads (True: all)
    settings: str | None = None              # its block of the study's config
    per_run: bool = False                    # one job per trained (model, seed)
    model: str | None = None                 # per run of this model only
    wildcards: Mapping[str, str] = field(default_factory=dict)  # more, with their patterns
    resources: str = "analyse"               # the block of config.yaml's resources:
    trains: bool = False                     # trains models (the estimate's work)
    runs: Callable[[dict], int] | None = None  # models one job trains (config); None: one
    local: bool = False                      # runs on the submitting machine (a cluster)
    # Further params, (config) -> {name: value or (wildcards) -> value}: slices of the
    # config beyond ``settings``, a borrowed model's reference, a job's own spec.
    params: Callable[[dict], dict] | None = None
    # Further named inputs, (config, wildcards) -> {name: path(s)}: other studies' files
    # it borrows (under ``files``: waited for, opened through its params), or its own
    # files by wildcard where ``reads`` cannot say which (lenet's select).
    inputs: Callable[[dict, Any], dict] | None = None

    @property
    def name(self) -> str:
        return self.run.__name__

    def reads_for(self, config: dict) -> tuple[str | tuple[str, str], ...]:
        return tuple(self.reads(config)) if callable(self.reads) else self.reads

    def takes(self, argument: str) -> bool:
        return argument in inspect.signature(self.run).parameters


class Stages(dict):
    """A study's stages by name, filled by the :meth:`register` decorator beside each
    function (so what it reads and writes sits with the code that does it)."""

    def register(self, writes: tuple[str, ...], **declared: Any) -> Callable:
        def add(run: Callable) -> Callable:
            self[run.__name__] = Stage(run, tuple(writes), **declared)
            return run
        return add


class LazyStages(Mapping):
    """A study's stages, from the ``STAGES`` of its stage modules, imported on first use.

    The modules that compute import torch, Captum and torchattacks (seconds of start-up);
    the registry is imported by every job, and most jobs (figures, the report) never run a
    stage. So a study names its stage modules here instead of importing them."""

    def __init__(self, *modules: str):
        self.modules = modules
        self._stages: dict[str, Stage] | None = None

    def _loaded(self) -> dict[str, Stage]:
        if self._stages is None:
            self._stages = {name: stage for module in self.modules
                            for name, stage in importlib.import_module(module).STAGES.items()}
        return self._stages

    def __getitem__(self, name: str) -> Stage:
        return self._loaded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


def later(module: str, name: str) -> Callable:
    """``module.name``, imported when first called (for a study's hooks that need torch,
    such as config checks that build a model on the meta device: :class:`LazyStages`)."""
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)
    call.__name__ = call.__qualname__ = name
    return call


def arguments(inputs: Mapping[str, Any], outputs: Mapping[str, Any],
              params: Mapping[str, Any]) -> dict[str, Any]:
    """The stage function's keyword arguments from its rule's resolved inputs, outputs and
    params: the splits gathered as ``data``; ``files`` dropped from the inputs (the
    accessor in the params opens them); the adapter's ``study``, ``stage``, ``module`` and
    ``code`` left out."""
    inputs = {k: v for k, v in inputs.items() if k != "files"}
    splits = {k: inputs.pop(k) for k in ("train", "val", "test") if k in inputs}
    params = {k: v for k, v in params.items() if k not in ("study", "stage", "module", "code")}
    return {**inputs, **({"data": splits} if splits else {}), **outputs, **params}


def declared(module: str, name: str) -> Stage:
    """A stage from the module that declares it (its rule's params name both): a job
    imports that module alone, so a claims job imports no torch (:class:`LazyStages`)."""
    stages = importlib.import_module(module).STAGES
    if name not in stages:
        raise KeyError(f"{module} declares no stage {name!r}; it declares {sorted(stages)}")
    return stages[name]


@dataclass(frozen=True)
class Table:
    """A study file shown as a table in the report."""

    file: str      # a name in the study's files
    caption: str


@dataclass(frozen=True)
class Study:
    name: str
    run_files: Mapping[str, str] = field(default_factory=dict)    # per-run artifacts
    files: Mapping[str, str] = field(default_factory=dict)        # study-level artifacts
    stages: Mapping[str, Stage] = field(default_factory=dict)     # each a rule of its own
    figures: Mapping[str, Figure] = field(default_factory=dict)   # beyond the shared three
    figure_notes: Mapping[str, str] = field(default_factory=dict)  # added to a shared caption
    animations: Mapping[str, str] = field(default_factory=dict)   # name -> caption (GIFs)
    tables: tuple[Table, ...] = ()
    has_claims: bool = False
    schema: Path | None = None          # the study's config keys (JSON schema, YAML)
    check_config: Callable[[dict, dict], None] | None = None  # (study config, config)
    training_overrides: Callable[[dict, str], str | None] | None = None  # (config, model)
    # datasets it reads beyond its own `dataset` (config) -> names; prepared when it is enabled
    extra_datasets: Callable[[dict], list[str]] | None = None
    # studies whose trained models it borrows (config) -> names; their departures are its own
    borrows: Callable[[dict], list[str]] | None = None
    # a line for the start of a run (config) -> text or None, e.g. what it must leave out
    start_note: Callable[[dict], str | None] | None = None

    def study_files(self, config: dict[str, Any], root: str = ".",
                    seed: int | None = None) -> paths.StudyFiles:
        """This study's artifacts for ``config``'s models and seeds (``seed``: that one)."""
        seeds = tuple(config["seeds"]) if seed is None else (int(seed),)
        return paths.StudyFiles(self.name, tuple(config["studies"][self.name]["models"]),
                                seeds, self.run_files, self.files, root)

    def run_file(self, name: str, model: str = paths.MODEL, seed: int | str = paths.SEED) -> str:
        names = {**paths.RUN_FILES, **self.run_files}
        return paths.run_file(name, self.name, model, seed, names)

    def file(self, name: str, **fields: str | int) -> str:
        return paths.study_file(name, self.name, {**paths.STUDY_FILES, **self.files}, **fields)

    def rule(self, stage: Stage) -> str:
        """The rule of one of its stages: ``<stage>_<study>``."""
        return f"{stage.name}_{self.name}"

    def producer(self, artifact: str) -> Stage | None:
        """The stage that writes ``artifact`` (None: a generic rule does: training,
        evaluation, aggregation)."""
        return next((s for s in self.stages.values() if artifact in s.writes), None)
