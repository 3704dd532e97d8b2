"""A trained model as the analysis stages open it: weights read safely, the study's splits
with the same subsets and hold-out as in training, errors that name the file and the remedy.

Apart from :mod:`cnnrepro.train` so that evaluation and the studies' stages depend on what
training wrote, not on the trainer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .datasets.prepared import Split, holdout_split, load_split, per_class_subset
from .models import build_model
from .runtime import select_device, set_numerics

HOLDOUT_SEED = 0  # the validation hold-out is the same for every training seed




class CheckpointError(RuntimeError):
    """A weights or checkpoint file is missing, unreadable or does not match its spec."""


def _load_reason(err: Exception) -> str:
    """The one useful sentence of a failed ``torch.load`` (its message for a refused
    pickle suggests ``weights_only=False``, the one thing never to do with a foreign file)."""
    found = re.search(r"WeightsUnpickler error: (.+?)(?= Please use|$)", str(err), re.M)
    if found:
        return (f"it holds Python objects, not only tensors and plain data ({found.group(1)}); "
                f"unpickling them could run code, so it is refused")
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")


def read_weights(path: str | Path, remedy: str, map_location: Any = "cpu") -> Any:
    """A weights, checkpoint or snapshot file, loaded with ``weights_only=True``: tensors,
    plain containers and numbers only (all this pipeline writes), so a crafted file cannot
    run code. A file that fails is a :class:`CheckpointError` naming it and ``remedy``."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable cnnrepro weights file ({_load_reason(err)}). "
                              f"It is damaged or was not written by this pipeline. {remedy}") from err


def retrain_hint(path: str | Path) -> str:
    """What to do about a bad training output: Snakemake retrains a missing output."""
    return (f"Delete it and run the workflow again, which retrains it (this job deletes "
            f"nothing): rm -r '{path}'")


def load_study_splits(spec: dict[str, Any], paths: dict[str, str | Path]) -> dict[str, Split]:
    """The train/val/test splits a spec trains on: subsets and hold-out applied."""
    splits = {name: load_split(path) for name, path in paths.items() if path}
    subset = spec.get("subset", {})
    for name in ("train", "test"):
        if subset.get(name):
            splits[name] = splits[name].take(per_class_subset(splits[name].labels, subset[name]))
    if spec.get("holdout_fraction", 0) > 0 and "val" not in splits:
        train_idx, val_idx = holdout_split(splits["train"].labels, spec["holdout_fraction"],
                                           HOLDOUT_SEED)
        splits["val"] = splits["train"].take(val_idx)
        splits["train"] = splits["train"].take(train_idx)
    return splits


def make_model(spec: dict[str, Any], split: Split) -> nn.Module:
    _, channels, height, _ = split.images.shape
    return build_model(spec["arch"], spec["options"], len(split.classes), channels, height)


def load_trained(path: str | Path, spec: dict[str, Any], split: Split,
                 device: torch.device) -> nn.Module:
    """Rebuild a trained model from ``model.pt``; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: trained weights are missing (run the train_model rule)")
    payload = read_weights(path, retrain_hint(path), device)
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise CheckpointError(f"{path}: not a cnnrepro weights file (no state_dict). "
                              f"{retrain_hint(path)}")
    state = payload["state_dict"]
    if payload.get("spec", {}).get("arch") != spec["arch"]:
        raise CheckpointError(f"{path}: holds a {payload.get('spec', {}).get('arch')!r} model, "
                              f"the config says {spec['arch']!r}. {retrain_hint(path)}")
    model = make_model(spec, split).to(device)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the configured {spec['arch']} "
                              f"({err}). {retrain_hint(path)}") from err
    model.eval()
    return model


def open_trained(spec: dict[str, Any], weights: str | Path, data: dict[str, str | Path],
                 threads: int | None = None) -> tuple[nn.Module, dict[str, Split], torch.device]:
    """Everything an analysis stage starts from: the trained model in eval mode and the
    study's splits on the device (subsets and hold-out as in training)."""
    if threads:
        torch.set_num_threads(threads)
    set_numerics(spec["deterministic"], spec["precision"])
    device = select_device(spec["device"])
    splits = {k: v.to(device) for k, v in load_study_splits(spec, data).items()}
    return load_trained(weights, spec, splits["train"], device), splits, device
