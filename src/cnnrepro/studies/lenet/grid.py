"""Study ``lenet``: the grid searches and their picks.

Two grids per model, one per protocol (``grid.protocols``):

* ``clean``: the final architecture and batch size, a validation split held out from the
  training images (``grid.holdout_fraction``); its pick is the best validation accuracy.
* ``paper``: the grid as the original ran it (``grid.paper_models``: the CNN with 3x3
  kernels, padding 1, at batch 200; the FFNN at batch 100), all training images; its pick
  is the best test accuracy, as the original's. The original's FFNN grid went on training
  one model from point to point (a bug); every point here starts from fresh weights.

Every point of a grid shares the seed, hence the initialisation and the data order, so
:func:`train_points` trains them together, ``grid.chunk_size`` points at a time, through
:class:`cnnrepro.ensemble.Stacked` (one vectorised job per grid). A point's numbers equal a
separate :func:`cnnrepro.train.train` run of :func:`point_spec` up to floating-point
summation order (tested), not bit for bit. :func:`select` writes the grid table, both
picks and the training overrides of the pick named by ``grid.selection``.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ... import paths
from ...datasets.prepared import Split
from ...ensemble import Stacked, mean_losses
from ...io import read_csv, write_csv, write_json
from ...provenance import stamp
from ...runtime import batches, normalizer, seed_everything, select_device, set_numerics
from ...spec import deep_update, training_spec
from ...study import Stages
from ...train import check_last_batch
from ...trained import load_study_splits, make_model
from .names import FILES

STUDY = "lenet"
STAGES = Stages()
PICK_BY = {"clean": "val_acc", "paper": "test_acc"}  # protocol -> what its pick maximises


def logspace(spec: dict[str, Any]) -> list[float]:
    return [float(v) for v in np.logspace(spec["start"], spec["stop"], spec["num"])]


def grid_runs(grid: dict[str, Any]) -> list[dict[str, Any]]:
    """Every point of the grid, row-major: its indices, learning rate and weight decay."""
    lrs, wds = logspace(grid["lr"]), logspace(grid["weight_decay"])
    return [{"lr_index": i, "wd_index": j, "lr": lr, "weight_decay": wd}
            for i, lr in enumerate(lrs) for j, wd in enumerate(wds)]


def grid_spec(config: dict[str, Any], model: str, protocol: str) -> dict[str, Any]:
    """What every point of one grid shares: the model's training spec with the grid's
    epochs and subset, the protocol's hold-out (clean) or the original's grid settings
    (paper: ``grid.paper_models``). The points' learning rate and weight decay are not in
    it (:func:`grid_runs`)."""
    grid = config["studies"][STUDY]["grid"]
    spec = copy.deepcopy(training_spec(config, STUDY, model))
    if protocol == "paper":
        deep_update(spec, grid["paper_models"].get(model, {}))
    for key in ("lr", "weight_decay"):
        del spec["training"][key]
    spec["training"].update(epochs=grid["epochs"], snapshot_epochs=[])
    spec["holdout_fraction"] = grid["holdout_fraction"] if protocol == "clean" else 0.0
    spec["subset"] = {**spec["subset"], "train": grid["train_subset"] or spec["subset"].get("train")}
    spec["grid_protocol"] = protocol
    return spec


def point_spec(spec: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """One point as an ordinary training spec (:func:`cnnrepro.train.train`): the
    separately trained reference of a vectorised point."""
    point = copy.deepcopy(spec)
    point["training"].update(lr=run["lr"], weight_decay=run["weight_decay"])
    return point


@torch.no_grad()
def _score(stacked: Stacked, split: Split, normalize, batch_size: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every copy's mean loss and accuracy on a split."""
    loss = torch.zeros(stacked.size, dtype=torch.float64, device=split.labels.device)
    correct = torch.zeros(stacked.size, dtype=torch.long, device=split.labels.device)
    for index in batches(len(split), batch_size):
        logits, y = stacked(normalize(split.images[index])), split.labels[index]
        loss += mean_losses(logits, y).double() * len(y)
        correct += (logits.argmax(2) == y).sum(1)
    return loss / len(split), correct.double() / len(split)


def train_points(spec: dict[str, Any], runs: list[dict[str, Any]], seed: int,
                 splits: dict[str, Split], device: torch.device, chunk_size: int | None
                 ) -> tuple[pd.DataFrame, list[nn.Module]]:
    """Train every point of ``runs`` from the same seeded initialisation and data order,
    ``chunk_size`` points at a time (None: all at once). Returns the history (one row per
    point and epoch: losses, accuracies and the chunk's seconds) and the trained models."""
    training, train = spec["training"], splits["train"]
    normalize = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)
    chunk_size = chunk_size or len(runs)
    rows, models = [], []
    bar = tqdm(total=-(-len(runs) // chunk_size) * training["epochs"], unit="epoch",
               desc=f"{STUDY}/{spec['model']} {spec['grid_protocol']} grid, {len(runs)} points "
                    f"in chunks of {chunk_size}", mininterval=5)
    for start in range(0, len(runs), chunk_size):
        chunk = runs[start:start + chunk_size]
        # as cnnrepro.train.setup: seed, then the model, so each point starts from the
        # weights and data order a separate run of it would have
        generator = seed_everything(seed)
        model = make_model(spec, train).to(device)
        check_last_batch(model, len(train), training["batch_size"])
        stacked = Stacked([model] * len(chunk))
        optimizer = stacked.optimizer(training, chunk)
        for epoch in range(training["epochs"]):
            tic = time.perf_counter()
            order = torch.randperm(len(train), generator=generator).to(device)
            loss_sum = torch.zeros(len(chunk), dtype=torch.float64, device=device)
            correct = torch.zeros(len(chunk), dtype=torch.long, device=device)
            for index in batches(len(train), training["batch_size"], order):
                x, y = normalize(train.images[index]), train.labels[index]
                stacked.zero_grad()
                logits = stacked(x)
                losses = mean_losses(logits, y)
                losses.sum().backward()  # each point's gradient is that of its own mean loss
                stacked.share_grads()
                optimizer.step()
                loss_sum += losses.detach().double() * len(y)
                correct += (logits.argmax(2) == y).sum(1)
            scores = {"train_loss": loss_sum / len(train), "train_acc": correct.double() / len(train)}
            for name in ("val", "test"):
                if name in splits:
                    scores[f"{name}_loss"], scores[f"{name}_acc"] = _score(
                        stacked, splits[name], normalize, max(training["batch_size"], 500))
            seconds = time.perf_counter() - tic
            values = {k: v.tolist() for k, v in scores.items()}
            rows += [{**run, "epoch": epoch + 1, **{k: v[p] for k, v in values.items()},
                      "chunk_seconds": seconds} for p, run in enumerate(chunk)]
            bar.update()
            bar.set_postfix(points=f"{start + 1}-{start + len(chunk)}",
                            best_train_acc=f"{max(values['train_acc']):.3f}")
        models += [stacked.module(p) for p in range(len(chunk))]
    bar.close()
    return pd.DataFrame(rows), models


def _grid_params(config: dict[str, Any]) -> dict[str, Any]:
    grid = config["studies"][STUDY]["grid"]
    return {"spec": lambda w: grid_spec(config, w.model, w.protocol), "runs": grid_runs(grid),
            "seed": grid["seed"], "chunk_size": grid["chunk_size"]}


# One job per model and protocol trains all its points together: the estimate counts its
# training runs.
@STAGES.register(writes=("grid_history", "grid_meta"), data=True, resources="train",
                 wildcards={"protocol": "clean|paper"}, trains=True,
                 runs=lambda config: len(grid_runs(config["studies"][STUDY]["grid"])),
                 params=_grid_params)
def grid(*, data: dict[str, str], spec: dict[str, Any], runs: list[dict[str, Any]],
         seed: int, chunk_size: int | None, grid_history: str, grid_meta: str,
         threads: int | None = None) -> None:
    """One grid of one model: every point trained (:func:`train_points`); ``grid_history``
    (one row per point and epoch) and ``grid_meta`` (sizes, seconds, provenance). The
    points' weights are not kept: the final models are trained again with the pick."""
    if threads:
        torch.set_num_threads(threads)
    set_numerics(spec["deterministic"], spec["precision"])
    device = select_device(spec["device"])
    splits = {k: v.to(device) for k, v in load_study_splits(spec, data).items()}
    tic = time.perf_counter()
    frame, _ = train_points(spec, runs, seed, splits, device, chunk_size)
    write_csv(grid_history, frame)
    write_json(grid_meta, {"study": STUDY, "model": spec["model"], "protocol": spec["grid_protocol"],
                      "points": len(runs), "chunk_size": chunk_size or len(runs),
                      "epochs": spec["training"]["epochs"],
                      "splits": {k: len(v) for k, v in splits.items()},
                      "seconds": time.perf_counter() - tic,
                      "provenance": stamp(spec, seed, device)})


def _histories(config: dict[str, Any], w: Any) -> dict[str, list[str]]:
    protocols = config["studies"][STUDY]["grid"]["protocols"]
    return {"histories": [paths.study_file("grid_history", STUDY, FILES, model=w.model,
                                           protocol=p) for p in protocols]}


@STAGES.register(writes=("grid_table", "selection", "overrides"), settings="grid", local=True,
                 inputs=_histories, params=lambda config: {"model": lambda w: w.model})
def select(*, histories: list[str], settings: dict[str, Any], model: str, grid_table: str,
           selection: str, overrides: str, threads: int | None = None) -> None:
    """The grid table (every point's final-epoch accuracies, both grids), each protocol's
    pick from its own grid (clean: best validation accuracy; paper: best test accuracy) and
    the training overrides of the pick named by ``settings['selection']`` (the grid
    block). ``histories`` are the grids' histories in ``protocols`` order."""
    grid, protocols = settings, settings["protocols"]
    tables = []
    for protocol, path in zip(protocols, histories):
        frame = read_csv(path)
        last = frame[frame["epoch"] == frame["epoch"].max()]
        tables.append(last.assign(model=model, protocol=protocol).reindex(
            columns=["model", "protocol", "lr_index", "wd_index", "lr", "weight_decay",
                     "val_acc", "test_acc", "train_loss"]))
    table = pd.concat(tables).sort_values(["protocol", "lr_index", "wd_index"], ignore_index=True)
    picks = {}
    for protocol in protocols:
        column, rows = PICK_BY[protocol], table[table["protocol"] == protocol]
        best = rows.loc[rows[column].fillna(-1).idxmax()]  # NaN = a diverged point
        picks[protocol] = {"by": column, **{  # the paper grid has no validation split
            k: None if pd.isna(best[k]) else best[k].item()
            for k in ("lr_index", "wd_index", "lr", "weight_decay", "val_acc", "test_acc")}}
    write_csv(grid_table, table)
    write_json(selection, {"model": model, **picks})
    pick = picks[grid["selection"]]
    write_json(overrides, {"training": {"lr": pick["lr"], "weight_decay": pick["weight_decay"]},
                           "selected_by": f"grid, {grid['selection']} protocol ({pick['by']})"})
