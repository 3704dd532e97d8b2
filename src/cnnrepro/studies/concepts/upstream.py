"""The trained models the concepts study borrows from the other studies (and its own).

A reference in config is ``{study, model}`` (plus ``layer`` or ``epsilon`` where the stage
needs one). :func:`resolve` turns it into what a stage opens (the training spec, the
weights file and the prepared splits, all from :mod:`cnnrepro.paths`), and :func:`files`
lists the same files for the rule's input: the weights are the training rule's own output,
so enabling this study alone trains just the borrowed models (those seeds only), under the
settings of the study that owns them.

A borrowed model whose study is disabled is still trained that way (its config block is
there and applies); :func:`disabled_note` says so at start-up. A reference to a study or a
model that the config does not have is an error at start-up (:func:`check`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ... import paths
from ...datasets import SPECS
from ...spec import training_spec

STUDY = "concepts"


def resolve(config: dict[str, Any], ref: dict[str, Any], seed: int) -> dict[str, Any]:
    """What a stage needs to open the model ``ref`` names, trained with ``seed``."""
    spec = training_spec(config, ref["study"], ref["model"])
    return {**ref, "seed": int(seed), "spec": spec,
            "weights": paths.run_file("weights", ref["study"], ref["model"], seed),
            "data": {split: paths.data(spec["dataset"], split)
                     for split in SPECS[spec["dataset"]].splits}}


def targets(config: dict[str, Any], kind: str, all_seeds: bool = False
            ) -> dict[str, list[dict[str, Any]]]:
    """``{name: [resolved per seed]}`` of a block's ``targets`` (``kind``: gradcam, fgsm);
    the first seed only unless ``all_seeds``."""
    seeds = config["seeds"] if all_seeds else config["seeds"][:1]
    block = config["studies"][STUDY][kind]["targets"]
    return {name: [resolve(config, ref, s) for s in seeds] for name, ref in block.items()}


def hierarchy_source(config: dict[str, Any]) -> dict[str, Any]:
    """The model whose layers the hierarchy stage shows (first seed)."""
    return resolve(config, config["studies"][STUDY]["hierarchy"], config["seeds"][0])


def references(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every borrowed model by its config key (``gradcam.targets.vgg19``, ``hierarchy``)."""
    block = config["studies"][STUDY]
    found = {f"{kind}.targets.{name}": ref for kind in ("gradcam", "fgsm")
             for name, ref in block[kind]["targets"].items()}
    found["hierarchy"] = block["hierarchy"]
    return found


def shown(kind: str, all_seeds: bool = False) -> Callable[[dict[str, Any]], list[tuple]]:
    """A figure's ``shows``: the borrowed models of ``kind`` (gradcam, fgsm, hierarchy) it
    draws, as (study, model, seed), for their model cards in the report."""
    def models(config: dict[str, Any]) -> list[tuple[str, str, int]]:
        seeds = config["seeds"] if all_seeds else config["seeds"][:1]
        block = config["studies"][STUDY][kind]
        refs = block["targets"].values() if "targets" in block else [block]
        return [(r["study"], r["model"], int(s)) for r in refs for s in seeds]
    return models


def files(resolved: list[dict[str, Any]]) -> list[str]:
    """The weights and splits behind resolved references, once each: a rule's input."""
    found = [r["weights"] for r in resolved]
    found += [p for r in resolved for p in r["data"].values()]
    return list(dict.fromkeys(found))


def studies_used(config: dict[str, Any]) -> list[str]:
    """The studies whose models this one borrows, in config order (itself excluded)."""
    return list(dict.fromkeys(r["study"] for r in references(config).values()
                              if r["study"] != STUDY))


def datasets(config: dict[str, Any]) -> list[str]:
    """The datasets of the borrowed models (prepared when this study is enabled)."""
    return list(dict.fromkeys(config["studies"][s]["dataset"] for s in studies_used(config)))


def disabled_note(config: dict[str, Any]) -> str | None:
    """One start-up line naming the borrowed models of disabled studies, or None."""
    off = sorted({f"{r['study']}/{r['model']}" for r in references(config).values()
                  if not config["studies"][r["study"]]["enabled"]})
    if not off:
        return None
    return (f"cnnrepro: study concepts borrows {', '.join(off)} from studies that are disabled; "
            "those models are trained for it anyway (only the seeds it uses), under their own "
            "study's settings; set their targets to others to avoid that")
