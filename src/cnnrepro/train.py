"""Training of one (study, model, seed): resumable, deterministic, device-resident data.

The dataset sits on the device as uint8 tensors and is batched by slicing a seeded
permutation (the airbench habit: no DataLoader workers, no per-sample PIL transforms).
A checkpoint (model, optimizer, epoch, data-order generator and torch RNG states,
history) is written atomically to ``<out>/work/checkpoint.pt`` after the first epoch that
ends ``checkpoint_seconds`` after the last one (by time, not every epoch: a 374-epoch run
of a fast model would otherwise write hundreds of them) and after the last epoch; a job
run again after a kill resumes from it and ends bit-identical to an uninterrupted run on
the same device. Outputs appear only at the end, atomically. The job holds the folder's
lock (``<out>/.writer``, :func:`cnnrepro.locks.exclusive`) while it trains: a second job
into the same folder is refused, naming the first.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .datasets.prepared import Split
from .io import read_json, write_csv, write_json, write_torch
from .locks import exclusive
from .models import ModelError, frozen_split
from .paths import RUN_FILES, TRAIN_OUTPUTS, outputs_in
from .provenance import stamp
from .runtime import (
    batches,
    normalizer,
    predict_logits,
    seed_everything,
    select_device,
    set_numerics,
)
from .spec import deep_update
from .trained import load_study_splits, make_model, read_weights

log = logging.getLogger(__name__)
WRITER_LOCK = ".writer"  # in the training folder; kept (a lock file is never unlinked)


class Stopped(RuntimeError):
    """Training reached its deadline (``train(stop_at=...)``) before its last epoch; the
    state after ``epoch`` is in the checkpoint, and the same call again resumes from it."""

    def __init__(self, epoch: int, epochs: int, checkpoint: Path):
        super().__init__(f"stopped at its deadline after epoch {epoch} of {epochs}; "
                         f"the state is saved in {checkpoint} and a second call resumes")
        self.epoch, self.epochs, self.checkpoint = epoch, epochs, checkpoint


def check_last_batch(model: nn.Module, n: int, batch_size: int) -> None:
    """A model with BatchNorm cannot train on a batch of one image (PyTorch raises in the
    middle of the first epoch, e.g. the VGG19 fallback's standardised head); say so before
    training, with the fix."""
    if n % batch_size == 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                   for m in model.modules()):
        raise ModelError(f"{n} training images in batches of {batch_size} leave a last batch "
                         f"of 1 image, which this model's BatchNorm cannot train on; change "
                         f"training.batch_size or the split/subset sizes")


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


def apply_overrides(spec: dict[str, Any], overrides: str | Path | None) -> dict[str, Any]:
    """The spec with a training-overrides file merged in (a partial spec, e.g. the lenet
    grid's pick of learning rate and weight decay); ``None`` leaves it as it is."""
    if overrides is None:
        return spec
    return deep_update(copy.deepcopy(spec), read_json(overrides))


@dataclass
class Run:
    """Everything one training run works with, built by :func:`setup`."""

    spec: dict[str, Any]
    seed: int
    device: torch.device
    splits: dict[str, Split]
    normalize: Callable[[torch.Tensor], torch.Tensor]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # the data order
    digest: str
    # What training feeds and steps through: the splits and the model, or for a model with
    # a frozen stem (models.frozen_split) the stem's outputs, computed once, and its head.
    inputs: dict[str, Split]
    net: nn.Module
    prepare: Callable[[torch.Tensor], torch.Tensor]


# no_grad, not inference_mode: the head trains on these outputs, and autograd refuses to
# save an inference tensor for backward (a head that starts with a Linear would fail)
@torch.no_grad()
def stem_outputs(stem: nn.Module, split: Split, normalize: Callable[[torch.Tensor], torch.Tensor],
                 batch_size: int) -> Split:
    """A frozen stem's output for every image of ``split``, as a split of feature vectors."""
    stem.eval()
    out = [stem(normalize(split.images[index])) for index in batches(len(split), batch_size)]
    return Split(torch.cat(out), split.labels, split.classes)


def setup(spec: dict[str, Any], seed: int, data: dict[str, str | Path],
          threads: int | None = None, cache_frozen: bool = True) -> Run:
    """Seeded model, optimizer and data order; the splits on the device. A frozen stem's
    outputs are computed once (``cache_frozen``; False runs the whole model on every batch,
    as the tests compare): its output on an image cannot change, and no data augmentation
    is applied, so the head trains on the same numbers."""
    if threads:
        torch.set_num_threads(threads)
    set_numerics(spec["deterministic"], spec["precision"])
    device = select_device(spec["device"])
    splits = {k: v.to(device) for k, v in load_study_splits(spec, data).items()}
    normalize = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)
    generator = seed_everything(seed)
    model = make_model(spec, splits["train"]).to(device)
    check_last_batch(model, len(splits["train"]), spec["training"]["batch_size"])
    split = frozen_split(model) if cache_frozen else None
    if split is None:
        inputs, net, prepare = splits, model, normalize
    else:
        stem, net = split
        batch = max(spec["training"]["batch_size"], 64)
        inputs = {k: stem_outputs(stem, v, normalize, batch) for k, v in splits.items()}
        prepare = _identity
    return Run(spec, seed, device, splits, normalize, model,
               make_optimizer(model, spec["training"]), generator, spec_digest(spec, seed),
               inputs, net, prepare)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def train_one_epoch(run: Run, loss_fn: nn.Module) -> dict[str, float]:
    """One pass over the training split in a seeded order; loss, accuracy and seconds."""
    net, split, device = run.net, run.inputs["train"], run.device
    run.model.train()
    tic = time.perf_counter()
    n = len(split)
    order = torch.randperm(n, generator=run.generator).to(device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for index in batches(n, run.spec["training"]["batch_size"], order):
        x, y = run.prepare(split.images[index]), split.labels[index]
        run.optimizer.zero_grad(set_to_none=True)
        logits = net(x)
        loss = loss_fn(logits, y)
        loss.backward()
        run.optimizer.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"train_loss": loss_sum.item() / n, "train_acc": correct.item() / n,
            "seconds": time.perf_counter() - tic}


def score_splits(run: Run) -> dict[str, float]:
    """Loss and accuracy on the validation and test splits, and the seconds it took."""
    tic = time.perf_counter()
    row = {}
    for name in ("val", "test"):
        if name in run.inputs:
            row[f"{name}_loss"], row[f"{name}_acc"] = _score(
                run.net, run.inputs[name], run.prepare,
                max(run.spec["training"]["batch_size"], 500))
    row["eval_seconds"] = time.perf_counter() - tic
    return row


def save_checkpoint(path: Path, run: Run, epoch: int, history: list[dict[str, float]]) -> None:
    """Everything a resumed run needs to end bit-identical: model, optimizer, epoch, the
    data-order and torch RNG states, the history so far."""
    write_torch(path, {"digest": run.digest, "epoch": epoch, "model": run.model.state_dict(),
                       "optimizer": run.optimizer.state_dict(),
                       "rng": _rng_state(run.generator), "history": history})


def checkpoint_due(epoch: int, epochs: int, since_last: float, interval: float) -> bool:
    """Whether the checkpoint is written after ``epoch`` (1-based) of ``epochs``:
    ``interval`` seconds have passed since the last one, or training is over (the state is
    kept until the outputs are written)."""
    return epoch == epochs or since_last >= interval


def load_checkpoint(path: Path, digest: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it was made for this spec and seed, else None."""
    if not path.exists():
        return None
    # a torn file is impossible (atomic writes) but a foreign one is not: stop, never run it
    ckpt = read_weights(path, f"Delete it and run the job again, which then trains from "
                              f"scratch: rm '{path}'")
    if not isinstance(ckpt, dict) or ckpt.get("digest") != digest:
        log.warning("checkpoint %s was made for another config or seed; training from scratch",
                    path)
        return None
    return ckpt


def resume(run: Run, ckpt: dict[str, Any]) -> tuple[list[dict[str, float]], int]:
    """Restore a run from its checkpoint; return the history and the next epoch."""
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    _restore_rng(ckpt["rng"], run.generator)
    return ckpt["history"], ckpt["epoch"]


def write_outputs(run: Run, history: list[dict[str, float]], start_epoch: int,
                  outputs: Mapping[str, Path], work: Path) -> dict[str, Any]:
    """The history, snapshots, weights and training record (last: the rule's completion
    marker), each atomic; then the ``work`` folder goes."""
    spec, seed, model, training = run.spec, run.seed, run.model, run.spec["training"]
    frame = pd.DataFrame(history)
    train_seconds = float(frame["seconds"].sum())
    n = len(run.splits["train"])
    meta = {
        "study": spec["study"], "model": spec["model"], "seed": seed,
        "epochs": training["epochs"], "resumed_from_epoch": start_epoch,
        "train_images": n, "classes": run.splits["train"].classes,
        "splits": {k: len(v) for k, v in run.splits.items()},
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "weights_used": getattr(model, "weights_used", None),
        "train_seconds": train_seconds,
        "eval_seconds": float(frame["eval_seconds"].sum()),
        "train_images_per_second": n * len(frame) / train_seconds if train_seconds else None,
        "final": {k: v for k, v in history[-1].items() if k.endswith(("_acc", "_loss"))},
        "provenance": stamp(spec, seed, run.device),
    }
    snapshots = outputs["snapshots"]
    shutil.rmtree(snapshots, ignore_errors=True)
    snapshots.mkdir(parents=True)
    for path in sorted((work / "snapshots").glob("epoch_*.pt")):
        shutil.copyfile(path, snapshots / path.name)
    write_csv(outputs["history"], frame)
    write_torch(outputs["weights"], {"state_dict": model.state_dict(), "spec": spec,
                                     "seed": seed, "digest": run.digest,
                                     "epochs": training["epochs"]})
    write_json(outputs["train_meta"], meta)
    shutil.rmtree(work, ignore_errors=True)  # finished: the checkpoint has served its purpose
    return meta


def train(spec: dict[str, Any], seed: int, data: dict[str, str | Path],
          outputs: Mapping[str, str | Path] | str | Path, threads: int | None = None,
          overrides: str | Path | None = None,
          on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
          checkpoint_seconds: float = 0, stop_at: float | None = None) -> dict[str, Any]:
    """Train one model; write ``outputs`` (:data:`cnnrepro.paths.TRAIN_OUTPUTS`: the
    rule's, or a folder to lay them out in as a run's folder). The checkpoint and the lock
    live in the folder of the weights.

    ``data`` maps split names (train, test, optionally val) to prepared ``.npz`` files;
    ``overrides`` is an optional training-overrides file (:func:`apply_overrides`).
    ``checkpoint_seconds``: the least time between checkpoints (:func:`checkpoint_due`; 0:
    after every epoch; the pipeline passes ``runtime.checkpoint_seconds``).
    ``on_epoch_end(epoch, row)`` runs after each epoch and its checkpoint, if one was due.
    ``stop_at``: a ``time.monotonic()`` deadline; the first epoch that ends past it saves
    the checkpoint and raises :class:`Stopped` (a lease or a batch job's time limit ends
    with the work kept, not lost since the last checkpoint).
    """
    if not isinstance(outputs, Mapping):
        outputs = outputs_in(outputs, TRAIN_OUTPUTS)
    outputs = {name: Path(outputs[name]) for name in TRAIN_OUTPUTS}
    out_dir = outputs["weights"].parent
    with exclusive(out_dir / WRITER_LOCK, f"the training folder {out_dir}"):
        work = (out_dir / RUN_FILES["checkpoint"]).parent
        run = setup(apply_overrides(spec, overrides), seed, data, threads)
        training = run.spec["training"]
        snapshot_epochs = set(training.get("snapshot_epochs", []))
        history: list[dict[str, float]] = []
        start_epoch = 0
        ckpt = load_checkpoint(out_dir / RUN_FILES["checkpoint"], run.digest)
        if ckpt is not None:
            history, start_epoch = resume(run, ckpt)
            log.info("resuming %s/%s seed %d from epoch %d", run.spec["study"],
                     run.spec["model"], seed, start_epoch)
        elif 0 in snapshot_epochs:
            write_torch(work / "snapshots" / "epoch_000.pt", run.model.state_dict())

        loss_fn = nn.CrossEntropyLoss()
        bar = tqdm(range(start_epoch, training["epochs"]), initial=start_epoch,
                   total=training["epochs"], unit="epoch", mininterval=5,
                   desc=f"{run.spec['study']}/{run.spec['model']}/seed{seed}")
        last_checkpoint = time.monotonic()
        for epoch in bar:
            row = {"epoch": epoch + 1, **train_one_epoch(run, loss_fn), **score_splits(run)}
            history.append(row)
            if epoch + 1 in snapshot_epochs:
                write_torch(work / "snapshots" / f"epoch_{epoch + 1:03d}.pt",
                            run.model.state_dict())
            stopping = (stop_at is not None and time.monotonic() >= stop_at
                        and epoch + 1 < training["epochs"])
            if stopping or checkpoint_due(epoch + 1, training["epochs"],
                                          time.monotonic() - last_checkpoint, checkpoint_seconds):
                save_checkpoint(out_dir / RUN_FILES["checkpoint"], run, epoch + 1, history)
                last_checkpoint = time.monotonic()
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_acc']:.3f}",
                            test=f"{row.get('test_acc', float('nan')):.3f}")
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
            if stopping:
                bar.close()
                raise Stopped(epoch + 1, training["epochs"], out_dir / RUN_FILES["checkpoint"])
        bar.close()
        return write_outputs(run, history, start_epoch, outputs, work)
