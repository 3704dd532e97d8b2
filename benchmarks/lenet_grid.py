"""The lenet grid: one vectorised job per grid vs one training run per point.

A CPU-preset-like grid (logspace(-4, 1, 4) for the learning rate and the weight decay:
16 points, the clean protocol's grid spec) on a small class-balanced CIFAR-10 subset, both
models. Prints each path's wall time and their ratio, whether both picks (validation and
test accuracy) are the same point, and the largest per-point accuracy difference in
percentage points. The per-point time is the sum of the :func:`cnnrepro.train.train` runs
the per-point jobs made (without Snakemake's per-job start-up, which would favour the
vectorised job further).

    nice -n 10 python benchmarks/lenet_grid.py [--train 2000] [--test 1000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from cnnrepro import config as cfg
from cnnrepro.studies.lenet import grid as grid_stage
from cnnrepro.studies.lenet.grid import PICK_BY, grid_runs, grid_spec, point_spec
from cnnrepro.train import train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "results/data/cifar10",
                        help="folder of the prepared train.npz and test.npz")
    parser.add_argument("--train", type=int, default=2000, help="training images (balanced)")
    parser.add_argument("--test", type=int, default=1000, help="test images (balanced)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--points", type=int, default=4, help="values per axis")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="points per vectorised pass (default: the config's)")
    parser.add_argument("--models", nargs="+", default=["ffnn", "cnn"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = cfg.load(ROOT / "config.yaml")
    grid = config["studies"]["lenet"]["grid"]
    axis = {"start": -4, "stop": 1, "num": args.points}
    grid.update(lr=axis, weight_decay=axis, epochs=args.epochs, train_subset=args.train)
    config["studies"]["lenet"]["subset"] = {"train": None, "test": args.test}
    config["device"] = "cpu"
    chunk_size = args.chunk_size or grid["chunk_size"]
    runs = grid_runs(grid)
    data = {"train": str(args.data / "train.npz"), "test": str(args.data / "test.npz")}
    print(f"{len(runs)} points, {args.epochs} epochs, {args.train} training images "
          f"({grid['holdout_fraction']:g} held out), {args.test} test images, "
          f"{torch.get_num_threads()} threads, chunk size {chunk_size}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            spec = grid_spec(config, model, "clean")
            tic = time.perf_counter()
            grid_stage.grid(data=data, spec=spec, runs=runs, seed=grid["seed"],
                            chunk_size=chunk_size, grid_history=f"{tmp}/{model}.csv",
                            grid_meta=f"{tmp}/{model}.json")
            t_vectorised = time.perf_counter() - tic
            history = pd.read_csv(f"{tmp}/{model}.csv")
            ours = history[history.epoch == args.epochs].reset_index(drop=True)
            tic = time.perf_counter()
            separate = []
            for k, run in enumerate(runs):
                train(point_spec(spec, run), grid["seed"], data, f"{tmp}/{model}/{k}")
                separate.append(pd.read_csv(f"{tmp}/{model}/{k}/history.csv").iloc[-1])
            t_points = time.perf_counter() - tic
            separate = pd.DataFrame(separate).reset_index(drop=True)
            same = {by: int(ours[by].fillna(-1).idxmax()) == int(separate[by].fillna(-1).idxmax())
                    for by in PICK_BY.values()}
            diff = max(float((100 * (ours[c] - separate[c]).abs()).max())
                       for c in ("val_acc", "test_acc"))
            print(f"{model}: per-point {t_points:7.1f} s, vectorised {t_vectorised:7.1f} s, "
                  f"ratio {t_points / t_vectorised:5.2f}x; identical picks "
                  f"{all(same.values())} ({same}); max accuracy difference {diff:.3f} pp")


if __name__ == "__main__":
    main()
