"""Checkpoint writes of the full config's VDK runs (374 epochs): by time vs every epoch.

Counted from the policy itself (cnnrepro.train.checkpoint_due at
``runtime.checkpoint_seconds``), with each epoch's seconds from the estimate's FLOP model
(one epoch: forward and backward over the training images and a forward pass over the test
images, at ``estimate.gpu_gflops`` or ``cpu_gflops``; the GPU figure is estimated, not
measured) and each checkpoint's bytes from a real one (model and optimizer state after a
step). Prints, per model and device, the writes and gigabytes both ways and their ratio.

    python benchmarks/checkpoint_writes.py [--interval SECONDS]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import torch

from cnnrepro import config as cfg
from cnnrepro.datasets import estimate_sizes, input_shape
from cnnrepro.estimate import forward_flops
from cnnrepro.models import build_model
from cnnrepro.train import checkpoint_due, make_optimizer

ROOT = Path(__file__).resolve().parents[1]


def writes(epochs: int, epoch_seconds: float, interval: float) -> int:
    """Checkpoints one run writes under the policy, its epochs each taking ``epoch_seconds``."""
    count, since = 0, 0.0
    for epoch in range(1, epochs + 1):
        since += epoch_seconds
        if checkpoint_due(epoch, epochs, since, interval):
            count, since = count + 1, 0.0
    return count


def checkpoint_bytes(spec: dict, shape: tuple[int, int, int]) -> int:
    channels, size, classes = shape
    model = build_model(spec["arch"], spec["options"], classes, channels, size)
    optimizer = make_optimizer(model, spec["training"])
    model(torch.zeros(2, channels, size, size)).sum().backward()
    optimizer.step()  # the momentum buffers exist from the first step on
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    return buffer.tell()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interval", type=float, default=None,
                        help="seconds between checkpoints (default: runtime.checkpoint_seconds)")
    args = parser.parse_args()
    config = cfg.load(ROOT / "config.yaml")
    interval = args.interval if args.interval is not None else config["runtime"]["checkpoint_seconds"]
    shape, (n_train, n_test) = input_shape(config, "cifar10"), estimate_sizes(config, "cifar10")
    seeds = len(config["seeds"])
    print(f"vdk, full config: {n_train} training images, {seeds} seeds, interval {interval:g} s")
    totals = {}
    for device, gflops in (("gpu", config["estimate"]["gpu_gflops"]),
                           ("cpu", config["estimate"]["cpu_gflops"])):
        for model in config["studies"]["vdk"]["models"]:
            spec = cfg.training_spec(config, "vdk", model)
            epochs = spec["training"]["epochs"]
            epoch_s = forward_flops(spec, shape) * (3 * n_train + n_test) / (gflops * 1e9)
            size = checkpoint_bytes(spec, shape)
            timed, every = writes(epochs, epoch_s, interval), writes(epochs, epoch_s, 0)
            total = totals.setdefault(device, [0, 0, 0.0, 0.0])
            total[0] += seeds * timed
            total[1] += seeds * every
            total[2] += seeds * timed * size / 1e9
            total[3] += seeds * every * size / 1e9
            print(f"  {device} {model:13s} {epoch_s:8.2f} s/epoch, {size / 1e6:6.1f} MB: "
                  f"{timed:4d} writes by time vs {every} every epoch ({every / timed:.0f}x fewer)")
    for device, (timed, every, gb_timed, gb_every) in totals.items():
        print(f"  {device} all VDK runs: {timed} writes ({gb_timed:.1f} GB) by time vs {every} "
              f"({gb_every:.1f} GB) every epoch: {every / timed:.1f}x fewer")


if __name__ == "__main__":
    main()
