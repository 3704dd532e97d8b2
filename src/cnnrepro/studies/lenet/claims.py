"""Study ``lenet``: the claims table (Table 2, confusion counts, AUC ranking, plateau, the
grid's picks against the original's winners) and the grid of every model in one table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...claims import INCONCLUSIVE, ClaimTable, threshold_verdict
from ...io import read_json, write_csv
from ...paths import StudyFiles
from .probes import CNN

PAPER_WINNERS = {"cnn": {"lr": 2.683e-3, "weight_decay": 5.18e-4},
                 "ffnn": {"lr": 1e-4, "weight_decay": 2.683e-3}}
PAPER_TABLE2 = {  # (model, split) -> accuracy, precision, recall, F1
    ("cnn", "test"): (0.710, 0.708, 0.710, 0.706), ("cnn", "train"): (0.832, 0.833, 0.832, 0.829),
    ("ffnn", "test"): (0.520, 0.518, 0.520, 0.518), ("ffnn", "train"): (0.589, 0.587, 0.589, 0.587)}
PAPER_CONFUSION = {("cat", "dog"): {"cnn": 152, "ffnn": 200},
                   ("cat", "automobile"): {"cnn": 18, "ffnn": 20}}


def claims(*, files: StudyFiles, settings: dict[str, Any], grid_seed: int | None,
           claims: str, grid_summary: str, threads: int | None = None) -> None:
    """Table 2, the confusion counts, the AUC ranking, the plateau and (``grid_seed`` not
    None: the grid ran) the grid's picks against the original's winners; ``grid_summary``
    is the grid of every model in one table for the report."""
    models, seeds = list(files.models), list(files.seeds)
    table = ClaimTable(seeds)
    metrics = {m: [read_json(p) for p in paths] for m, paths in files.by_model("metrics").items()}
    for (model, split), paper in PAPER_TABLE2.items():
        if model not in models:
            continue
        for name, value in zip(("accuracy", "precision", "recall", "f1"), paper):
            table.numeric(f"lenet.tab2.{model}.{split}.{name}", f"{model} {split} {name}",
                          "paper", value, [r["splits"][split][name] for r in metrics[model]],
                          settings["metric_abs"])
    confusions = files.by_model("confusion")
    for (true, pred), paper in PAPER_CONFUSION.items():
        for model in [m for m in paper if m in models]:
            counts = [float(pd.read_csv(p, index_col=0).loc[true, pred])
                      for p in confusions[model]]
            table.numeric(f"lenet.fig13.{model}.{true}_{pred}", f"{model}: test images of "
                          f"{true} predicted as {pred}", "paper", paper[model], counts,
                          settings["count_rel"] * paper[model])
    for model in models:
        aucs = pd.DataFrame([r["auc"] for r in metrics[model]])
        for which, cls, pick in (("easiest", "automobile", "idxmax"),
                                 ("hardest", "cat", "idxmin")):
            per_seed = [getattr(row, pick)() for _, row in aucs.iterrows()]
            table.threshold(f"lenet.fig14.{model}.{which}", f"{model}: {cls} is the {which} "
                            f"class by AUC (1 = yes; seeds' picks: {', '.join(per_seed)})",
                            "paper", cls, [float(c == cls) for c in per_seed], 0.5,
                            below=False)
    if CNN in models:
        after = settings["plateau_epoch"]
        gains = []
        for path in files.by_model("history", [CNN])[CNN]:
            acc = pd.read_csv(path).set_index("epoch")["test_acc"]
            gains.append(float(acc[acc.index > after].max() - acc.loc[after])
                         if acc.index.max() > after else float("nan"))
        verdict, rule = threshold_verdict(gains, settings["plateau_gain"])
        if any(np.isnan(gains)):
            verdict, rule = INCONCLUSIVE, rule + f" (needs more than {after} epochs)"
        table.add("lenet.fig7.plateau", f"CNN test accuracy plateaus after epoch {after}: best "
                  "later gain (fraction)", "paper", f"plateau after ~{after}", gains, verdict,
                  rule)
    grids = ([pd.read_csv(files.file("grid_table", model=m)) for m in models]
             if grid_seed is not None else [])
    write_csv(grid_summary, pd.concat(grids) if grids else pd.DataFrame(
        {"note": ["grid search disabled (studies.lenet.grid.enabled)"]}))
    if grid_seed is not None:
        for model, points in zip(models, grids):
            pick = read_json(files.file("selection", model=model))
            winner = PAPER_WINNERS[model]
            # A shrunken grid (a preset) may not contain the original's winner at all:
            # then "not picked" says nothing about the claim.
            on_grid = bool((np.isclose(points["lr"], winner["lr"], rtol=0.01)
                            & np.isclose(points["weight_decay"], winner["weight_decay"],
                                         rtol=0.01)).any())
            for protocol in ("paper", "clean"):
                chosen = pick[protocol]
                same = [float(np.isclose(chosen["lr"], winner["lr"], rtol=0.01)
                              and np.isclose(chosen["weight_decay"], winner["weight_decay"],
                                             rtol=0.01))]
                verdict, rule = threshold_verdict(same, 0.5, below=False)
                if not on_grid:
                    verdict = INCONCLUSIVE
                    rule += "; inconclusive when the original's winner is not a grid point"
                table.add(f"lenet.grid.{model}.{protocol}", f"{model}: the grid's {protocol} "
                          f"pick (by {chosen['by']}) is the original's winner (1 = yes; ours: "
                          f"lr {chosen['lr']:.4g}, weight decay {chosen['weight_decay']:.4g})",
                          protocol, f"lr {winner['lr']:g}, wd {winner['weight_decay']:g}", same,
                          verdict, rule, seeds=[grid_seed])
    write_csv(claims, table.frame())
