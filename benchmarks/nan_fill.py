"""NaN-filling of new tensors off: training throughput with it on and off, same weights.

Deterministic mode makes torch fill every uninitialised tensor with NaN
(``torch.utils.deterministic.fill_uninitialized_memory``); the pipeline turns that off
(cnnrepro.runtime.set_numerics). Prints, for the Baseline CNN (vdk) and the lenet CNN,
the training images per CPU second of the pipeline's loop (train.train_one_epoch,
deterministic) with the filling on and off, their ratio, and whether every state-dict
tensor is equal after the epochs. Time is the process's CPU time (one thread by default),
which other jobs on shared cores disturb far less than wall time; runs alternate (on, off,
on, off, ...) and each setting keeps its fastest epoch.

    python benchmarks/nan_fill.py [--images 2000] [--epochs 2] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from cnnrepro import config as cfg
from cnnrepro.train import setup, train_one_epoch

ROOT = Path(__file__).resolve().parents[1]
MODELS = (("vdk", "baseline_cnn"), ("lenet", "cnn"))


def cpu_seconds(run_, loss) -> float:
    tic = time.process_time()
    train_one_epoch(run_, loss)
    return time.process_time() - tic


def run(spec: dict, data: dict, fill: bool, epochs: int) -> tuple[float, dict]:
    """Images per CPU second of the fastest of ``epochs`` epochs, and the weights after them."""
    run_ = setup(spec, 0, data)  # sets the numerics, NaN-filling off
    torch.utils.deterministic.fill_uninitialized_memory = fill
    loss = nn.CrossEntropyLoss()
    seconds = min(cpu_seconds(run_, loss) for _ in range(epochs))
    return len(run_.splits["train"]) / seconds, run_.model.state_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting, alternating")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = cfg.load(ROOT / "config.yaml")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, deterministic, "
          f"{args.images} images x {args.epochs} epochs, best of {args.repeats} runs")
    for study, model in MODELS:
        spec = cfg.training_spec(config, study, model)
        spec.update(device="cpu", deterministic=True, holdout_fraction=0,
                    subset={"train": args.images, "test": None})
        data = {s: ROOT / "results" / "data" / spec["dataset"] / f"{s}.npz"
                for s in ("train", "test")}
        rate = {True: [], False: []}
        weights = {}
        for _ in range(args.repeats):
            for fill in (True, False):
                images_per_s, weights[fill] = run(spec, data, fill, args.epochs)
                rate[fill].append(images_per_s)
        same = all(torch.equal(weights[True][k], weights[False][k]) for k in weights[True])
        on, off = max(rate[True]), max(rate[False])
        print(f"{study}/{model} (batch {spec['training']['batch_size']}): filling on "
              f"{on:8.1f} images/CPU-s, off {off:8.1f} images/CPU-s, ratio {off / on:5.3f}x; "
              f"every state-dict tensor equal after {args.epochs} epochs: {same}")


if __name__ == "__main__":
    main()
