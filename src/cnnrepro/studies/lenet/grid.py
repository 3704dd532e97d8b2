"""Study ``lenet``: the grid search's points and its two picks.

Every point is an ordinary training run (:func:`cnnrepro.train.train` with
:func:`grid_spec`: fresh weights, the grid's epochs, hold-out and subset). :func:`select`
picks the winner two ways (``clean``: best validation accuracy on a split held out from
the training data; ``paper``: best test accuracy, as the original did) and writes the
configured pick as a training-overrides file that final training applies.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from ...config import training_spec
from ...io import write_csv, write_json

STUDY = "lenet"


def logspace(spec: dict[str, Any]) -> list[float]:
    return [float(v) for v in np.logspace(spec["start"], spec["stop"], spec["num"])]


def grid_points(grid: dict[str, Any]) -> list[tuple[int, int]]:
    """(lr index, weight-decay index) of every grid point, row-major."""
    return [(i, j) for i in range(grid["lr"]["num"]) for j in range(grid["weight_decay"]["num"])]


def grid_spec(config: dict[str, Any], model: str, lr_index: int, wd_index: int
              ) -> dict[str, Any]:
    """One grid point's training spec: fresh weights, the grid's epochs, hold-out and subset."""
    grid = config["studies"][STUDY]["grid"]
    spec = copy.deepcopy(training_spec(config, STUDY, model))
    spec["training"].update(lr=logspace(grid["lr"])[lr_index],
                            weight_decay=logspace(grid["weight_decay"])[wd_index],
                            epochs=grid["epochs"], snapshot_epochs=[])
    spec["holdout_fraction"] = grid["holdout_fraction"]
    spec["subset"] = {**spec["subset"], "train": grid["train_subset"] or spec["subset"].get("train")}
    return spec


def select(*, histories: list[str], grid: dict[str, Any], model: str, grid_table: str,
           selection: str, overrides: str, threads: int | None = None) -> None:
    """The grid table (final-epoch validation and test accuracy), both picks, and the
    training overrides of the pick named by ``grid['selection']``. ``histories`` are in
    :func:`grid_points` order."""
    lrs, wds = logspace(grid["lr"]), logspace(grid["weight_decay"])
    rows = []
    for (i, j), path in zip(grid_points(grid), histories):
        last = pd.read_csv(path).iloc[-1]
        rows.append({"model": model, "lr_index": i, "wd_index": j, "lr": lrs[i],
                     "weight_decay": wds[j], "val_acc": float(last["val_acc"]),
                     "test_acc": float(last["test_acc"]),
                     "train_loss": float(last["train_loss"])})
    table = pd.DataFrame(rows).sort_values(["lr_index", "wd_index"], ignore_index=True)
    picks = {}
    for protocol, column in (("clean", "val_acc"), ("paper", "test_acc")):
        best = table.loc[table[column].fillna(-1).idxmax()]  # NaN = a diverged point
        picks[protocol] = {"by": column, **{k: best[k].item() for k in
                                            ("lr_index", "wd_index", "lr", "weight_decay",
                                             "val_acc", "test_acc")}}
    write_csv(grid_table, table)
    write_json(selection, {"model": model, **picks})
    pick = picks[grid["selection"]]
    write_json(overrides, {"training": {"lr": pick["lr"], "weight_decay": pick["weight_decay"]},
                           "selected_by": f"grid, {grid['selection']} protocol ({pick['by']})"})
