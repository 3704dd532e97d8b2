"""Study ``lenet``: the claims table (Table 2, confusion rates, AUC ranking, plateau, the
grid's picks against the original's winners) and the grid of every model in one table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...claims import INCONCLUSIVE, ClaimTable, threshold_verdict, training_keys
from ...io import read_csv, read_json, write_csv
from ...paths import StudyFiles
from ...study import Stages
from .names import CNN

STAGES = Stages()
PAPER_WINNERS = {"cnn": {"lr": 2.683e-3, "weight_decay": 5.18e-4},
                 "ffnn": {"lr": 1e-4, "weight_decay": 2.683e-3}}
PAPER_TABLE2 = {  # (model, split) -> accuracy, precision, recall, F1
    ("cnn", "test"): (0.710, 0.708, 0.710, 0.706), ("cnn", "train"): (0.832, 0.833, 0.832, 0.829),
    ("ffnn", "test"): (0.520, 0.518, 0.520, 0.518), ("ffnn", "train"): (0.589, 0.587, 0.589, 0.587)}
PAPER_CONFUSION = {("cat", "dog"): {"cnn": 152, "ffnn": 200},
                   ("cat", "automobile"): {"cnn": 18, "ffnn": 20}}


def confusion_rate(confusion: pd.DataFrame, true: str, pred: str) -> float:
    """Test images of class ``true`` predicted as ``pred`` per 1,000 test images of ``true``:
    the paper's counts come from CIFAR-10's 1,000 test images per class, so a count over a
    smaller (or unbalanced) test set is comparable only as this rate."""
    return 1000 * float(confusion.loc[true, pred]) / float(confusion.loc[true].sum())


def _grid(config: dict[str, Any]) -> dict[str, Any]:
    return config["studies"]["lenet"]["grid"]


@STAGES.register(writes=("claims", "grid_summary"), settings="claims", local=True,
                 reads=lambda config: ("metrics", "confusion", "history")
                 + (("grid_table", "selection") if _grid(config)["enabled"] else ()),
                 params=lambda config: {"grid_seed": _grid(config)["seed"]
                                        if _grid(config)["enabled"] else None})
def claims(*, files: StudyFiles, settings: dict[str, Any], grid_seed: int | None,
           claims: str, grid_summary: str, departures: dict[str, str] | None = None,
           preset: str = "full", threads: int | None = None) -> None:
    """Table 2, the confusion rates, the AUC ranking, the plateau and (``grid_seed`` not
    None: the grid ran) the grid's picks against the original's winners; ``grid_summary``
    is the grid of every model in one table for the report. ``departures``/``preset``:
    the run's departures from the full settings (dependent claims are not comparable)."""
    models, seeds = list(files.models), list(files.seeds)
    table = ClaimTable(seeds, departures=departures, preset=preset)
    # With the grid on, final training uses its pick: every trained number depends on it.
    grid_keys = ("grid",) if grid_seed is not None else ()
    trained = {m: training_keys(m) + grid_keys for m in models}
    tested = {m: trained[m] + ("subset.test",) for m in models}
    metrics = {m: [read_json(p) for p in paths] for m, paths in files.by_model("metrics").items()}
    for (model, split), paper in PAPER_TABLE2.items():
        if model not in models:
            continue
        for name, value in zip(("accuracy", "precision", "recall", "f1"), paper):
            table.numeric(f"lenet.tab2.{model}.{split}.{name}", f"{model} {split} {name}",
                          "paper", value, [r["splits"][split][name] for r in metrics[model]],
                          settings["metric_abs"],
                          depends_on=tested[model] if split == "test" else trained[model])
    confusions = files.by_model("confusion")
    for (true, pred), paper in PAPER_CONFUSION.items():
        for model in [m for m in paper if m in models]:
            rates = [confusion_rate(read_csv(p, index_col=0), true, pred)
                     for p in confusions[model]]
            table.numeric(f"lenet.fig13.{model}.{true}_{pred}", f"{model}: test images of "
                          f"{true} predicted as {pred}, per 1,000 {true} test images (paper: "
                          f"{paper[model]} of CIFAR-10's 1,000)", "paper", paper[model], rates,
                          settings["count_rel"] * paper[model], depends_on=tested[model])
    for model in models:
        aucs = pd.DataFrame([r["auc"] for r in metrics[model]])
        for which, cls, pick in (("easiest", "automobile", "idxmax"),
                                 ("hardest", "cat", "idxmin")):
            per_seed = [getattr(row, pick)() for _, row in aucs.iterrows()]
            table.threshold(f"lenet.fig14.{model}.{which}", f"{model}: {cls} is the {which} "
                            f"class by AUC (1 = yes; seeds' picks: {', '.join(per_seed)})",
                            "paper", cls, [float(c == cls) for c in per_seed], 0.5,
                            below=False, depends_on=tested[model])
    if CNN in models:
        after = settings["plateau_epoch"]
        gains = []
        for path in files.by_model("history", [CNN])[CNN]:
            acc = read_csv(path).set_index("epoch")["test_acc"]
            gains.append(float(acc[acc.index > after].max() - acc.loc[after])
                         if acc.index.max() > after else float("nan"))
        verdict, rule = threshold_verdict(gains, settings["plateau_gain"])
        if any(np.isnan(gains)):
            verdict, rule = INCONCLUSIVE, rule + f" (needs more than {after} epochs)"
        table.add("lenet.fig7.plateau", f"CNN test accuracy plateaus after epoch {after}: best "
                  "later gain (fraction)", "paper", f"plateau after ~{after}", gains, verdict,
                  rule, depends_on=tested[CNN])
    grids = ([read_csv(files.file("grid_table", model=m)) for m in models]
             if grid_seed is not None else [])
    write_csv(grid_summary, pd.concat(grids) if grids else pd.DataFrame(
        {"note": ["not run: the grid search is off (studies.lenet.grid.enabled: false); the "
                  "final models trained with the configured learning rates and weight decays "
                  "(config.yaml: the document's winners)"]}))
    # A pick depends on its grid's points, epochs, subset and seed (not on which pick final
    # training uses) and on the training settings the grid keeps (grid.grid_spec: its own lr,
    # weight decay and epochs replace the rest); the clean grid on its hold-out, the paper
    # grid on the original's grid settings. A shrunken grid (a preset) may not contain the
    # original's winner at all, and a grid switched off (grid.enabled) picked nothing: their
    # departing grid keys make these claims not comparable, the switched-off one with no value.
    grid_run = tuple(f"grid.{k}" for k in ("enabled", "lr", "weight_decay", "epochs",
                                           "train_subset", "seed")) + (
        "training.optimizer", "training.batch_size", "training.momentum", "subset.train",
        "normalize", "dataset")
    protocol_keys = {"clean": ("grid.holdout_fraction",),
                     "paper": ("grid.paper_models", "subset.test")}
    for model in models:
        pick = read_json(files.file("selection", model=model)) if grid_seed is not None else {}
        winner = PAPER_WINNERS[model]
        for protocol in ("paper", "clean"):
            if grid_seed is not None and protocol not in pick:
                continue
            chosen = pick.get(protocol)
            same = [] if chosen is None else [float(
                np.isclose(chosen["lr"], winner["lr"], rtol=0.01)
                and np.isclose(chosen["weight_decay"], winner["weight_decay"], rtol=0.01))]
            ours = ("not run" if chosen is None else f"by {chosen['by']}; ours: lr "
                    f"{chosen['lr']:.4g}, weight decay {chosen['weight_decay']:.4g}")
            table.threshold(f"lenet.grid.{model}.{protocol}", f"{model}: the {protocol} "
                            f"grid's pick is the original's winner (1 = yes; {ours})", protocol,
                            f"lr {winner['lr']:g}, wd {winner['weight_decay']:g}", same, 0.5,
                            below=False, seeds=[grid_seed] if chosen else [],
                            depends_on=grid_run + protocol_keys[protocol] + (
                                f"models.{model}.arch", f"models.{model}.options"))
    write_csv(claims, table.frame())
