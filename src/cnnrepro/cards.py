"""Model cards: how good each trained model behind a figure was.

A saliency map or an attack on a model at chance shows an untrained network, whatever its
caption says. So every figure drawn from trained models carries, per model, its clean
test accuracy (mean over the seeds shown, from each run's ``train.json``), the chance
level (1 / classes) and the weights it used: trained here, borrowed from another study
(trained under that study's settings), or the VGG19 fallback backbone. A model within
``report.chance_margin`` of chance is flagged, in the caption (HTML and PDF, by the
report) and in the figure's title (by the figure job).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

from . import paths
from .io import read_json

CHANCE_FLAG = "AT CHANCE: this shows an untrained network, not what the document's model learned"


@dataclass(frozen=True)
class Card:
    study: str
    model: str
    seeds: tuple[int, ...]
    accuracy: float
    chance: float
    weights: str  # how it was made, in words
    at_chance: bool

    @property
    def text(self) -> str:
        which = (f"seed {self.seeds[0]}" if len(self.seeds) == 1
                 else f"mean of seeds {list(self.seeds)}")
        flag = f" {CHANCE_FLAG}." if self.at_chance else ""
        return (f"{self.study}/{self.model}: test accuracy {100 * self.accuracy:.1f} % "
                f"({which}; chance {100 * self.chance:.1f} %), {self.weights}.{flag}")


def cards(config: dict[str, Any], root: str | Path, study: str,
          shown: list[tuple[str, str, int]]) -> list[Card]:
    """The card of each model in ``shown`` ((study, model, seed), consecutive seeds of one
    model grouped), for a figure of ``study``."""
    found = []
    for (owner, model), runs in groupby(shown, key=lambda s: s[:2]):
        seeds = tuple(seed for *_, seed in runs)
        metas = [read_json(Path(root) / paths.run_file("train_meta", owner, model, s))
                 for s in seeds]
        accuracy = sum(m["final"]["test_acc"] for m in metas) / len(metas)
        chance = 1 / len(metas[0]["classes"])
        used = metas[0].get("weights_used") or ""
        weights = (f"VGG19 {used}: ImageNet weights unavailable, a random frozen backbone"
                   if used.startswith("fallback") else "trained here" if owner == study
                   else f"borrowed from study {owner}, trained under its settings")
        found.append(Card(owner, model, seeds, accuracy, chance, weights,
                          accuracy - chance <= config["report"]["chance_margin"]))
    return found


def caption(found: list[Card]) -> str:
    """The sentence a figure's caption gains ("" for a figure without trained models)."""
    return ("Model card. " + " ".join(c.text for c in found)) if found else ""


def title_flag(found: list[Card]) -> str:
    """The line a figure's title gains when a model it shows is at chance ("" if none)."""
    low = [f"{c.study}/{c.model}" for c in found if c.at_chance]
    return f"AT CHANCE ({', '.join(low)}): an untrained network" if low else ""
