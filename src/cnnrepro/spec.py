"""Config slices and the checks a study's hook uses: below the studies, above nothing
but the dataset catalogue, so a study can import them (the composition root,
:mod:`cnnrepro.config`, imports the studies).

:func:`training_spec` is everything that determines one training job (the slice it
records); :func:`block_departures` is what a study block sets differently from the full
settings; :func:`check_counts` and :func:`check_images` refuse more images than a split
has (a stage would silently use fewer).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from .datasets import input_shape, split_sizes


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


def deep_update(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Merge like Snakemake merges ``--configfile`` overlays: dicts recursively."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def enabled_studies(config: dict[str, Any]) -> list[str]:
    return [name for name, spec in config["studies"].items() if spec["enabled"]]


def training_spec(config: dict[str, Any], study: str, model: str) -> dict[str, Any]:
    """Everything that determines one training job: the config slice it records."""
    sspec = config["studies"][study]
    mspec = sspec["models"][model]
    training = deep_update(copy.deepcopy(sspec["training"]), mspec.get("training", {}))
    return {
        "study": study,
        "model": model,
        "dataset": sspec["dataset"],
        "arch": mspec["arch"],
        "options": copy.deepcopy(mspec.get("options", {})),
        "normalize": copy.deepcopy(sspec["normalize"]),
        "subset": copy.deepcopy(sspec["subset"]),
        "holdout_fraction": sspec["holdout_fraction"],
        "training": training,
        "device": config["device"],
        "deterministic": config["deterministic"],
        "precision": config["runtime"]["precision"],
    }


# Keys of a study block that say nothing about how a number was produced (which epochs'
# weights are kept is not how they were trained; how many grid points train together in one
# vectorised pass moves a number only by floating-point summation order). A study's own
# `enabled` is not a setting of its numbers; a part of a study switched off (lenet's
# `grid.enabled`) is: the claims about that part were not run.
NOT_SETTINGS = {"title", "document", "description", "claims", "snapshot_epochs", "chunk_size"}


def _flatten(block: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(block, dict) or not block:
        return {prefix: block}
    flat: dict[str, Any] = {}
    for key, value in block.items():
        if key not in NOT_SETTINGS:
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
    return flat


def evaluation_spec(config: dict[str, Any], study: str, model: str) -> dict[str, Any]:
    spec = training_spec(config, study, model)
    spec["evaluation"] = copy.deepcopy(config["evaluation"])
    return spec


def block_departures(ours: dict[str, Any], full: dict[str, Any]) -> dict[str, str]:
    """The settings of a study block ``ours`` that differ from ``full`` (the same study's
    block in the full settings): ``{"training.epochs": "10 instead of 374", …}``, keys
    relative to the study block. Seeds are not study settings: more or fewer seeds never
    make a number incomparable."""
    def settings(block: dict[str, Any]) -> dict[str, Any]:
        return _flatten({k: v for k, v in block.items() if k != "enabled"})

    ours, full = settings(ours), settings(full)

    def text(value: Any) -> str:
        if isinstance(value, list) and len(value) > 6:  # keeps the reason one sentence
            return f"[{', '.join(map(str, value[:3]))}, …, {value[-1]}] ({len(value)} values)"
        return "all" if value is None else json.dumps(value) if isinstance(
            value, (list, dict, bool)) else str(value)

    return {key: f"{text(ours.get(key))} instead of {text(full.get(key))}"
            for key in sorted(set(ours) | set(full)) if ours.get(key) != full.get(key)}


def _at_most(key: str, n: int | None, have: int | None, of: str, hint: str = "") -> None:
    """More images asked than there are is an error, not silently all of them."""
    if n is not None and have is not None and n > have:
        raise ConfigError(f"config key {key}: {n} images asked, but {of} has {have}{hint}")


def check_images(config: dict[str, Any], key: str, n: int | None, dataset: str, split: str,
                 mirror: Path | None = None) -> None:
    """``n`` images of a dataset's split asked for under ``key``. Sizes that depend on the
    source (Caltech's) are checked only with the ``mirror`` at hand."""
    _at_most(key, n, (split_sizes(config, dataset, mirror) or {}).get(split),
             f"{dataset}'s {split} split", " (null keeps them all)")


def check_counts(config: dict[str, Any], study: str, split: str,
                 counts: dict[str, int | None]) -> None:
    """Images a study's analyses take from one of its splits (its subset applied), by
    config key relative to the study (a stage would silently use fewer)."""
    have = _split_images(config, study, split)
    for key, n in counts.items():
        _at_most(f"studies.{study}.{key}", n, have, f"the study's {split} split")


def _split_images(config: dict[str, Any], study: str, split: str) -> int | None:
    """Images of a study's split, its subset applied (None: only the source can tell)."""
    block = config["studies"][study]
    return block["subset"].get(split) or (split_sizes(config, block["dataset"]) or {}).get(split)


def test_images_per_class(config: dict[str, Any], study: str) -> int | None:
    """Test images per class of a study (its subset is class-balanced; None: unknown)."""
    have = _split_images(config, study, "test")
    return None if have is None else have // input_shape(config, config["studies"][study]["dataset"])[2]
