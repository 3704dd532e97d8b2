"""Study ``lenet``: grid-search selection, data and snapshot probes, and the claims table.

The grid points themselves are ordinary training runs (:func:`cnnrepro.train.train` with
:func:`cnnrepro.config.grid_spec`); this module picks the winner two ways (``clean``: best
validation accuracy on a split held out from the training data; ``paper``: best test
accuracy, as the original did), and probes the CNN's per-epoch snapshots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from .claims import claim_row, numeric_verdict, threshold_verdict
from .datasets import load_split
from .io import atomic_path, read_json, write_csv, write_json, write_npz
from .models import build_model
from .runtime import normalizer

CNN = "cnn"  # the study's convolutional model (config name): the one whose snapshots are probed
PAPER_WINNERS = {"cnn": {"lr": 2.683e-3, "weight_decay": 5.18e-4},
                 "ffnn": {"lr": 1e-4, "weight_decay": 2.683e-3}}
PAPER_TABLE2 = {  # (model, split) -> accuracy, precision, recall, F1
    ("cnn", "test"): (0.710, 0.708, 0.710, 0.706), ("cnn", "train"): (0.832, 0.833, 0.832, 0.829),
    ("ffnn", "test"): (0.520, 0.518, 0.520, 0.518), ("ffnn", "train"): (0.589, 0.587, 0.589, 0.587)}
PAPER_CONFUSION = {("cat", "dog"): {"cnn": 152, "ffnn": 200},
                   ("cat", "automobile"): {"cnn": 18, "ffnn": 20}}


# --------------------------------------------------------------------------- grid

def select(histories: dict[tuple[int, int], str | Path], lrs: list[float], wds: list[float],
           model: str, out_csv: str, out_json: str) -> None:
    """The grid table (final-epoch validation and test accuracy) and both picks."""
    rows = []
    for (i, j), path in sorted(histories.items()):
        last = pd.read_csv(path).iloc[-1]
        rows.append({"model": model, "lr_index": i, "wd_index": j, "lr": lrs[i],
                     "weight_decay": wds[j], "val_acc": float(last["val_acc"]),
                     "test_acc": float(last["test_acc"]),
                     "train_loss": float(last["train_loss"])})
    grid = pd.DataFrame(rows)
    picks = {}
    for protocol, column in (("clean", "val_acc"), ("paper", "test_acc")):
        best = grid.loc[grid[column].fillna(-1).idxmax()]  # NaN = a diverged point
        picks[protocol] = {"by": column, **{k: best[k].item() for k in
                                            ("lr_index", "wd_index", "lr", "weight_decay",
                                             "val_acc", "test_acc")}}
    write_csv(out_csv, grid)
    write_json(out_json, {"model": model, **picks})


def apply_selection(spec: dict[str, Any], selection: str | Path, protocol: str) -> dict[str, Any]:
    """The final training spec with the grid's pick (``protocol``: clean or paper)."""
    pick = read_json(selection)[protocol]
    spec = {**spec, "training": {**spec["training"], "lr": pick["lr"],
                                 "weight_decay": pick["weight_decay"]}}
    spec["selected_by"] = f"grid, {protocol} protocol ({pick['by']})"
    return spec


# --------------------------------------------------------------------------- probes

def covariance(images: np.ndarray) -> np.ndarray:
    """Covariance of flattened images (pixel values in [0, 1]), one variable per pixel."""
    flat = images.reshape(len(images), -1).astype(np.float64) / 255
    return np.cov(flat, rowvar=False).astype(np.float32)


def data_stage(train_npz: str, settings: dict[str, Any], seed: int, out_npz: str) -> None:
    """Random training images per class and the covariance matrix of the first N images."""
    train = load_split(train_npz)
    images, labels = train.images.numpy(), train.labels.numpy()
    rng = np.random.default_rng(seed)
    samples = np.stack([rng.choice(np.flatnonzero(labels == c), settings["samples_per_class"],
                                   replace=False) for c in range(len(train.classes))])
    write_npz(out_npz, samples=images[samples], classes=np.asarray(train.classes),
              covariance=covariance(images[:settings["covariance_images"]]),
              n_images=np.asarray(min(len(images), settings["covariance_images"])))


def evolution_stage(spec: dict[str, Any], seed: int, snapshots: str, data: dict[str, str],
                    settings: dict[str, Any], out_npz: str) -> None:
    """conv1 kernel ``k`` and its feature map, ReLU and max-pool output on the followed
    training image, for every ``every``-th stored epoch."""
    train = load_split(data["train"])
    cls = train.classes.index(settings["image_class"])
    index = np.flatnonzero(train.labels.numpy() == cls)[settings["image_rank"]]
    image = train.images[index:index + 1]
    x = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], torch.device("cpu"))(image)
    model = build_model(spec["arch"], spec["options"], len(train.classes), 3, 32).eval()
    conv, relu, pool = model.features[0], model.features[1], model.features[2]
    files = sorted(Path(snapshots).glob("epoch_*.pt"))
    if not files:
        raise FileNotFoundError(f"{snapshots}: no epoch_*.pt snapshots (snapshot_epochs empty?)")
    epochs = [int(f.stem.split("_")[1]) for f in files]
    keep = [(e, f) for e, f in zip(epochs, files) if e % settings["every"] == 0]
    k = settings["kernel"]
    out: dict[str, list[np.ndarray]] = {"kernels": [], "fmap": [], "relu": [], "pool": []}
    with torch.no_grad():
        for _, path in keep:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            fmap = conv(x)
            out["kernels"].append(conv.weight[k].numpy())
            out["fmap"].append(fmap[0, k].numpy())
            out["relu"].append(relu(fmap)[0, k].numpy())
            out["pool"].append(pool(relu(fmap))[0, k].numpy())
    write_npz(out_npz, epochs=np.asarray([e for e, _ in keep]), image=image[0].numpy(),
              image_index=np.asarray(index), **{n: np.stack(v) for n, v in out.items()})


def animation_frames(evolution: dict[str, np.ndarray], scale: int = 6) -> list[np.ndarray]:
    """One uint8 frame per shown epoch: feature map | ReLU | max-pool (upsampled), each
    scaled by the range over all epochs so frames are comparable."""
    frames = []
    panels = {n: evolution[n] for n in ("fmap", "relu", "pool")}
    panels["pool"] = panels["pool"].repeat(2, axis=1).repeat(2, axis=2)
    lo = {n: v.min() for n, v in panels.items()}
    hi = {n: max(v.max(), lo[n] + 1e-12) for n, v in panels.items()}
    for e in range(len(evolution["epochs"])):
        row = [(panels[n][e] - lo[n]) / (hi[n] - lo[n]) for n in panels]
        gap = np.ones((row[0].shape[0], 2))
        strip = np.concatenate([row[0], gap, row[1], gap, row[2]], axis=1)
        frames.append((255 * strip).astype(np.uint8).repeat(scale, 0).repeat(scale, 1))
    return frames


def write_gif(evolution_npz: str | Path, out_gif: str | Path, ms_per_frame: int = 400) -> None:
    frames = [Image.fromarray(f, mode="L") for f in animation_frames(np.load(evolution_npz))]
    with atomic_path(out_gif) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=ms_per_frame, loop=0)


# --------------------------------------------------------------------------- claims

def claims_stage(models: list[str], seeds: list[int], results: str | Path,
                 tolerances: dict[str, Any], grid_seed: int | None, out_claims: str,
                 out_grid: str) -> None:
    """Table 2, the confusion counts, the AUC ranking, the plateau and (``grid_seed`` not
    None: the grid ran) the grid's picks against the original's winners; ``out_grid`` is
    the grid of every model in one table for the report."""
    root = Path(results)
    rows = []
    run = lambda m, s, rel: root / m / f"seed{s}" / rel  # noqa: E731

    def numeric(cid, text, protocol, paper, values, tol, unit=""):
        verdict, rule = numeric_verdict(paper, values, tol)
        rows.append(claim_row(cid, text, protocol, paper, values, seeds, verdict, rule, unit))

    metrics = {m: [read_json(run(m, s, "eval/metrics.json")) for s in seeds] for m in models}
    for (model, split), paper in PAPER_TABLE2.items():
        if model not in models:
            continue
        for name, value in zip(("accuracy", "precision", "recall", "f1"), paper):
            numeric(f"lenet.tab2.{model}.{split}.{name}", f"{model} {split} {name}", "paper",
                    value, [r["splits"][split][name] for r in metrics[model]],
                    tolerances["metric_abs"])
    for (true, pred), paper in PAPER_CONFUSION.items():
        for model in [m for m in paper if m in models]:
            counts = []
            for s in seeds:
                confusion = pd.read_csv(run(model, s, "eval/confusion.csv"), index_col=0)
                counts.append(float(confusion.loc[true, pred]))
            numeric(f"lenet.fig13.{model}.{true}_{pred}", f"{model}: test images of {true} "
                    f"predicted as {pred}", "paper", paper[model], counts,
                    tolerances["count_rel"] * paper[model])
    for model in models:
        aucs = pd.DataFrame([r["auc"] for r in metrics[model]])
        for which, cls, pick in (("easiest", "automobile", "idxmax"),
                                 ("hardest", "cat", "idxmin")):
            per_seed = [getattr(row, pick)() for _, row in aucs.iterrows()]
            hits = [float(c == cls) for c in per_seed]
            verdict, rule = threshold_verdict(hits, 0.5, below=False)
            rows.append(claim_row(f"lenet.fig14.{model}.{which}", f"{model}: {cls} is the "
                                  f"{which} class by AUC (1 = yes; seeds' picks: "
                                  f"{', '.join(per_seed)})", "paper", cls, hits, seeds,
                                  verdict, rule))
    if CNN in models:
        after = tolerances["plateau_epoch"]
        gains = []
        for s in seeds:
            acc = pd.read_csv(run(CNN, s, "history.csv")).set_index("epoch")["test_acc"]
            gains.append(float(acc[acc.index > after].max() - acc.loc[after])
                         if acc.index.max() > after else float("nan"))
        verdict, rule = threshold_verdict(gains, tolerances["plateau_gain"])
        if any(np.isnan(gains)):
            verdict = "inconclusive"
            rule += f" (needs more than {after} epochs)"
        rows.append(claim_row("lenet.fig7.plateau", f"CNN test accuracy plateaus after epoch "
                              f"{after}: best later gain (fraction)", "paper",
                              f"plateau after ~{after}", gains, seeds, verdict, rule))
    grids = [pd.read_csv(root / "grid" / m / "grid.csv") for m in models] if grid_seed is not None else []
    write_csv(out_grid, pd.concat(grids) if grids else pd.DataFrame(
        {"note": ["grid search disabled (studies.lenet.grid.enabled)"]}))
    if grid_seed is not None:
        for model in models:
            pick = read_json(root / "grid" / model / "selection.json")
            winner = PAPER_WINNERS[model]
            points = grids[models.index(model)]
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
                    verdict = "inconclusive"
                    rule += "; inconclusive when the original's winner is not a grid point"
                rows.append(claim_row(
                    f"lenet.grid.{model}.{protocol}", f"{model}: the grid's {protocol} pick "
                    f"(by {chosen['by']}) is the original's winner (1 = yes; ours: lr "
                    f"{chosen['lr']:.4g}, weight decay {chosen['weight_decay']:.4g})", protocol,
                    f"lr {winner['lr']:g}, wd {winner['weight_decay']:g}",
                    same, [grid_seed], verdict, rule))
    write_csv(out_claims, pd.DataFrame(rows))
