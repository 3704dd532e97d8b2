"""The studies, one folder each, and the registry the workflow and the report read.

Adding a study: a folder here whose ``__init__`` builds a :class:`cnnrepro.study.Study`,
one line in :data:`REGISTRY` and its block in ``config.yaml``; its stages' rules come
from their declarations (``workflow/rules/stages.smk``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from .. import paths
from ..cards import cards, title_flag
from ..plotting import SHARED, save
from ..study import Figure, Study
from . import caltech, concepts, lenet, mnist, vdk

REGISTRY: dict[str, Study] = {s.name: s for s in (vdk.STUDY, mnist.STUDY, lenet.STUDY,
                                                   caltech.STUDY, concepts.STUDY)}


# The generic rules that write what every study has, with their function as (module,
# name): a figure's lineage names them, and naming is no reason for a figure job to import
# the trainer (torch).
GENERIC_WRITERS: dict[str, tuple[str, str, str]] = {
    **{n: ("train_model", "cnnrepro.train", "train") for n in paths.TRAIN_OUTPUTS},
    **{n: ("evaluate_model", "cnnrepro.evaluate", "evaluate") for n in paths.EVALUATE_OUTPUTS},
    **{n: ("aggregate_study", "cnnrepro.aggregate", "aggregate")
       for n in ("metrics_long", "metrics_summary", "histories")},
}


def code(module: str, name: str) -> str:
    """Where a function is, as a reader looks it up: ``cnnrepro/…/module.py::name`` (the
    module's file is found without importing it)."""
    package = Path(__file__).resolve().parents[1].parent
    origin = Path(importlib.util.find_spec(module).origin).resolve()
    return f"{origin.relative_to(package)}::{name}"


def code_of(function: Callable) -> str:
    return code(function.__module__, function.__name__)


def lineage(study: str, name: str) -> dict[str, Any]:
    """A figure, one hop each: the code that draws it, and per artifact it reads the rule
    and the code that computes it (the study's declared stage, else a generic rule)."""
    figure, owner = figures_for(study)[name], get(study)
    computed = []
    for entry in figure.inputs:
        artifact = entry if isinstance(entry, str) else entry[0]
        stage = owner.producer(artifact)
        if stage:
            rule, where = owner.rule(stage), code_of(stage.run)
        else:
            rule, module, name = GENERIC_WRITERS[artifact]
            where = code(module, name)
        computed.append({"artifact": artifact, "rule": rule, "code": where})
    return {"drawn_by": code_of(figure.draw),
            "computed_by": list({c["artifact"]: c for c in computed}.values())}


def get(name: str) -> Study:
    if name not in REGISTRY:
        raise KeyError(f"unknown study {name!r}; registered: {sorted(REGISTRY)}")
    return REGISTRY[name]


def enabled(config: dict[str, Any]) -> list[Study]:
    return [get(name) for name, spec in config["studies"].items() if spec["enabled"]]


def figures_for(name: str, study_config: dict | None = None) -> dict[str, Figure]:
    """Every figure the report shows for a study (with its config: those that apply); a
    shared figure's caption gains the study's note on it."""
    study = get(name)
    found = {**SHARED, **study.figures}
    found.update({n: replace(found[n], caption=f"{found[n].caption} {note}")
                  for n, note in study.figure_notes.items()})
    return {n: f for n, f in found.items() if study_config is None or f.when(study_config)}


def absent_figures(name: str, study_config: dict) -> dict[str, Figure]:
    """The study's figures its config leaves out (``when`` false), shown as a note."""
    return {n: f for n, f in figures_for(name).items() if not f.when(study_config)}


def seed_figures(name: str, config: dict[str, Any]) -> list[tuple[str, int]]:
    """(figure, seed) of every further seed's drawing of the study's per-seed figures."""
    return [(n, seed) for n, f in figures_for(name, config["studies"][name]).items()
            if f.per_seed for seed in config["seeds"][1:]]


def _drawn_seed(figure: Figure, config: dict[str, Any], seed: int | None) -> int | None:
    """The seed whose files a figure is drawn from: ``seed``; a per-seed figure's first
    seed on the page; None (every seed) otherwise."""
    return config["seeds"][0] if seed is None and figure.per_seed else seed


def figure_inputs(study: str, name: str, config: dict[str, Any], seed: int | None = None
                  ) -> list[str]:
    """The data files a figure reads (``seed``: of that seed only), then the training
    records of the models it shows (their cards: :func:`render`). Its drawing code is
    tracked by the rule's ``code`` param (:attr:`cnnrepro.study.Figure.module`)."""
    figure = figures_for(study)[name]
    files = get(study).study_files(config, seed=_drawn_seed(figure, config, seed))
    return list(dict.fromkeys(files.paths(figure.inputs) + card_files(study, name, config, seed)))


def shown_models(study: str, name: str, config: dict[str, Any], seed: int | None = None
                 ) -> list[tuple[str, str, int]]:
    """(study, model, seed) of every trained model a figure draws: its declared ``shows``,
    else the models whose run files it reads (a per-seed figure: that seed, the first by
    default; any other: every seed it reads)."""
    figure = figures_for(study)[name]
    if figure.shows is not None:
        return [tuple(s) for s in figure.shows(config)]
    files = get(study).study_files(config, seed=_drawn_seed(figure, config, seed))
    return [(study, model, s) for model in files.models_read(figure.inputs) for s in files.seeds]


def card_files(study: str, name: str, config: dict[str, Any], seed: int | None = None
               ) -> list[str]:
    """The training records (``train.json``) behind a figure's model cards."""
    return [paths.run_file("train_meta", owner, model, s)
            for owner, model, s in shown_models(study, name, config, seed)]


def card_inputs(config: dict[str, Any]) -> list[str]:
    """The training records behind every model card of the report."""
    return list(dict.fromkeys(
        path for study in enabled(config)
        for name in figures_for(study.name, config["studies"][study.name])
        for path in card_files(study.name, name, config)))


def render(study: str, name: str, config: dict[str, Any], out_png: str, out_pdf: str,
           seed: int | None = None) -> None:
    """Draw one figure from the study's data files (``seed``: from that seed's alone); PNG
    for HTML, PDF for LaTeX."""
    figure = figures_for(study)[name]
    files = get(study).study_files(config, seed=_drawn_seed(figure, config, seed))
    missing = [p for p in files.paths(figure.inputs) if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"figure {study}/{name} needs missing artifacts: {missing}")
    fig = figure.draw(files)
    flag = title_flag(cards(config, ".", study, shown_models(study, name, config, seed)))
    if flag:  # above everything the figure drew (bbox_inches="tight" keeps it in)
        fig.text(0.5, 1.01, flag, ha="center", va="bottom", color="#c0392b",
                 fontsize=11, fontweight="bold")
    save(fig, out_png, out_pdf)
