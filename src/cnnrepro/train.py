"""Training of one (study, model, seed): resumable, deterministic, device-resident data.

The dataset sits on the device as uint8 tensors and is batched by slicing a seeded
permutation (the airbench habit: no DataLoader workers, no per-sample PIL transforms).
After every epoch a checkpoint (model, optimizer, epoch, data-order generator and torch
RNG states, history) is written atomically to ``<out>/work/checkpoint.pt``; a job run
again after a kill resumes from it and ends bit-identical to an uninterrupted run on the
same device. Outputs appear only at the end, atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .datasets import Split, holdout_split, load_split, per_class_subset
from .io import write_csv, write_json, write_torch
from .models import build_model
from .provenance import stamp
from .runtime import (batches, normalizer, predict_logits, seed_everything, select_device,
                      set_determinism)

log = logging.getLogger(__name__)
HOLDOUT_SEED = 0  # the validation hold-out is the same for every training seed


class CheckpointError(RuntimeError):
    """A weights or checkpoint file is missing, unreadable or does not match its spec."""


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


def make_optimizer(model: nn.Module, training: dict[str, Any]) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if training["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=training["lr"], momentum=training.get("momentum", 0.0),
                               weight_decay=training.get("weight_decay", 0.0))
    return torch.optim.Adam(params, lr=training["lr"],
                            weight_decay=training.get("weight_decay", 0.0))


def spec_digest(spec: dict[str, Any], seed: int) -> str:
    """Identifies what a checkpoint was made for; a changed config never resumes."""
    keep = {k: v for k, v in spec.items() if k not in ("device",)}
    return hashlib.sha256(json.dumps([keep, seed], sort_keys=True).encode()).hexdigest()[:16]


def _score(model: nn.Module, split: Split, normalize, batch_size: int) -> tuple[float, float]:
    logits = predict_logits(model, split, normalize, batch_size)
    loss = nn.functional.cross_entropy(logits, split.labels).item()
    acc = (logits.argmax(1) == split.labels).float().mean().item()
    return loss, acc


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    state = {"data_order": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    generator.set_state(state["data_order"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _load_checkpoint(path: Path, digest: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a torn file is impossible (atomic writes) but a foreign one is not
        log.warning("ignoring unreadable checkpoint %s (%s); training from scratch", path, err)
        return None
    if ckpt.get("digest") != digest:
        log.warning("checkpoint %s was made for another config or seed; training from scratch",
                    path)
        return None
    return ckpt


def train(spec: dict[str, Any], seed: int, data: dict[str, str | Path], out_dir: str | Path,
          threads: int | None = None,
          on_epoch_end: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train one model; write ``model.pt``, ``history.csv``, ``train.json``, ``snapshots/``.

    ``data`` maps split names (train, test, optionally val) to prepared ``.npz`` files.
    ``on_epoch_end(epoch, row)`` runs after each epoch's checkpoint is on disk.
    """
    out_dir = Path(out_dir)
    work = out_dir / "work"
    if threads:
        torch.set_num_threads(threads)
    set_determinism(spec["deterministic"])
    device = select_device(spec["device"])
    training = spec["training"]
    digest = spec_digest(spec, seed)

    splits = {k: v.to(device) for k, v in load_study_splits(spec, data).items()}
    train_split = splits["train"]
    normalize = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)

    generator = seed_everything(seed)
    model = make_model(spec, train_split).to(device)
    optimizer = make_optimizer(model, training)
    loss_fn = nn.CrossEntropyLoss()
    snapshot_epochs = set(training.get("snapshot_epochs", []))
    history: list[dict[str, float]] = []
    start_epoch = 0

    ckpt = _load_checkpoint(work / "checkpoint.pt", digest)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        _restore_rng(ckpt["rng"], generator)
        history, start_epoch = ckpt["history"], ckpt["epoch"]
        log.info("resuming %s/%s seed %d from epoch %d", spec["study"], spec["model"], seed,
                 start_epoch)
    elif 0 in snapshot_epochs:
        write_torch(work / "snapshots" / "epoch_000.pt", model.state_dict())

    n, batch_size = len(train_split), training["batch_size"]
    bar = tqdm(range(start_epoch, training["epochs"]), initial=start_epoch,
               total=training["epochs"], desc=f"{spec['study']}/{spec['model']}/seed{seed}",
               unit="epoch", mininterval=5)
    for epoch in bar:
        model.train()
        tic = time.perf_counter()
        order = torch.randperm(n, generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for index in batches(n, batch_size, order):
            x, y = normalize(train_split.images[index]), train_split.labels[index]
            optimizer.zero_grad(set_to_none=True)
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_seconds = time.perf_counter() - tic
        row = {"epoch": epoch + 1, "train_loss": loss_sum.item() / n,
               "train_acc": correct.item() / n, "seconds": train_seconds}
        tic = time.perf_counter()
        for name in ("val", "test"):
            if name in splits:
                row[f"{name}_loss"], row[f"{name}_acc"] = _score(
                    model, splits[name], normalize, max(batch_size, 500))
        row["eval_seconds"] = time.perf_counter() - tic
        history.append(row)
        if epoch + 1 in snapshot_epochs:
            write_torch(work / "snapshots" / f"epoch_{epoch + 1:03d}.pt", model.state_dict())
        write_torch(work / "checkpoint.pt", {
            "digest": digest, "epoch": epoch + 1, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "rng": _rng_state(generator),
            "history": history})
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_acc']:.3f}",
                        test=f"{row.get('test_acc', float('nan')):.3f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)
    bar.close()

    frame = pd.DataFrame(history)
    train_seconds = float(frame["seconds"].sum())
    meta = {
        "study": spec["study"], "model": spec["model"], "seed": seed,
        "epochs": training["epochs"], "resumed_from_epoch": start_epoch,
        "train_images": n, "classes": train_split.classes,
        "splits": {k: len(v) for k, v in splits.items()},
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "weights_used": getattr(model, "weights_used", None),
        "train_seconds": train_seconds,
        "eval_seconds": float(frame["eval_seconds"].sum()),
        "train_images_per_second": n * len(frame) / train_seconds if train_seconds else None,
        "final": {k: v for k, v in history[-1].items() if k.endswith(("_acc", "_loss"))},
        "provenance": stamp(spec, seed, device),
    }
    snapshots = out_dir / "snapshots"
    shutil.rmtree(snapshots, ignore_errors=True)
    snapshots.mkdir(parents=True)
    for path in sorted((work / "snapshots").glob("epoch_*.pt")):
        shutil.copyfile(path, snapshots / path.name)
    write_csv(out_dir / "history.csv", frame)
    write_torch(out_dir / "model.pt", {"state_dict": model.state_dict(), "spec": spec,
                                       "seed": seed, "digest": digest,
                                       "epochs": training["epochs"]})
    write_json(out_dir / "train.json", meta)
    shutil.rmtree(work, ignore_errors=True)  # finished: the checkpoint has served its purpose
    return meta


def load_trained(path: str | Path, spec: dict[str, Any], split: Split,
                 device: torch.device) -> nn.Module:
    """Rebuild a trained model from ``model.pt``; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: trained weights are missing (run the train_model rule)")
    try:
        payload = torch.load(path, map_location=device, weights_only=False)
        state = payload["state_dict"]
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable cnnrepro weights file ({err})") from err
    if payload.get("spec", {}).get("arch") != spec["arch"]:
        raise CheckpointError(f"{path}: holds a {payload.get('spec', {}).get('arch')!r} model, "
                              f"the config says {spec['arch']!r}")
    model = make_model(spec, split).to(device)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the configured {spec['arch']} "
                              f"({err})") from err
    model.eval()
    return model



def open_trained(spec: dict[str, Any], weights: str | Path, data: dict[str, str | Path],
                 threads: int | None = None) -> tuple[nn.Module, dict[str, Split], torch.device]:
    """Everything an analysis stage starts from: the trained model in eval mode and the
    study's splits on the device (subsets and hold-out as in training)."""
    if threads:
        torch.set_num_threads(threads)
    set_determinism(spec["deterministic"])
    device = select_device(spec["device"])
    splits = {k: v.to(device) for k, v in load_study_splits(spec, data).items()}
    return load_trained(weights, spec, splits["train"], device), splits, device
