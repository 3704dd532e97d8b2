"""The cost of a configuration, said before any work starts.

Training FLOPs = 3 × forward FLOPs (forward + backward; 1 × for a frozen backbone) ×
training images × epochs per seed, plus one forward per epoch over the validation and
test images. Forward FLOPs are counted on the real architectures with
``torch.utils.flop_counter`` on the meta device (no memory, no weights), and divided by
the sustained GFLOP/s set in ``estimate``.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import training_spec
from .datasets import SPECS, input_shape
from .models import build_model
from .studies import get as get_study


def forward_flops(spec: dict[str, Any], shape: tuple[int, int, int]) -> int:
    channels, size, classes = shape
    options = dict(spec["options"])
    if spec["arch"] == "vgg19_transfer":
        options["weights"] = None  # the estimate never fetches weights
    with torch.device("meta"):
        model = build_model(spec["arch"], options, classes, channels, size).eval()
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.zeros(1, channels, size, size))
    return int(counter.get_total_flops())


def run_cost(spec: dict[str, Any], shape: tuple[int, int, int], sizes: tuple[int, int]
             ) -> float:
    """FLOPs of one training run: each epoch trains on the (subset of the) training split
    and scores the validation and test images; one last pass over the training images."""
    n_train, n_test = sizes
    n_train = min(n_train, spec["subset"].get("train") or n_train)
    n_test = min(n_test, spec["subset"].get("test") or n_test)
    n_val = round(spec.get("holdout_fraction", 0) * n_train)
    epochs = spec["training"]["epochs"]
    # a frozen backbone needs no backward pass: one forward per training image
    frozen = spec["arch"] == "vgg19_transfer" and not spec["options"].get("train_features")
    passes = 1 if frozen else 3
    return forward_flops(spec, shape) * (
        epochs * (passes * (n_train - n_val) + n_val + n_test) + n_train)


def study_cost(config: dict[str, Any], study: str) -> float:
    """Total FLOPs of training every model × seed of one study, plus its extra runs (a
    grid search's points: once each, not per seed)."""
    dataset = config["studies"][study]["dataset"]
    shape, sizes = input_shape(config, dataset), SPECS[dataset].full_sizes
    total = sum(run_cost(training_spec(config, study, model), shape, sizes) * len(config["seeds"])
                for model in config["studies"][study]["models"])
    extra = get_study(study).extra_runs
    if extra is not None:
        total += sum(run_cost(spec, shape, sizes) for spec in extra(config))
    return total


def human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def announce(config: dict[str, Any], stream=sys.stderr) -> dict[str, float]:
    """Print the estimated training time of the enabled studies; return seconds per study."""
    est = config["estimate"]
    costs = {s: study_cost(config, s) for s, v in config["studies"].items() if v["enabled"]}
    total = sum(costs.values())
    cpu_s, gpu_s = total / (est["cpu_gflops"] * 1e9), total / (est["gpu_gflops"] * 1e9)
    lines = [f"cnnrepro: preset '{config['preset']}', seeds {config['seeds']}; estimated "
             f"training compute {total / 1e12:,.1f} TFLOP, from scratch:"]
    for study, flops in costs.items():
        lines.append(f"  {study:8s} CPU ~{human(flops / (est['cpu_gflops'] * 1e9)):>9s}   "
                     f"GPU ~{human(flops / (est['gpu_gflops'] * 1e9))}")
    lines.append(f"  total    CPU ~{human(cpu_s):>9s}   GPU ~{human(gpu_s)}   "
                 f"(assuming {est['cpu_gflops']:g} / {est['gpu_gflops']:g} GFLOP/s)")
    if cpu_s > 6 * 3600 and not torch.cuda.is_available():
        lines.append("  No GPU here: this is days of CPU time. For a 2-core CPU use the CPU "
                     "preset: snakemake --cores all --configfile config/presets/cpu.yaml")
    print("\n".join(lines), file=stream, flush=True)
    return {s: f / (est["cpu_gflops"] * 1e9) for s, f in costs.items()}
