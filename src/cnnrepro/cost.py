"""What a model costs: per layer its shapes, parameters and neurons; its forward FLOPs
(``torch.utils.flop_counter``); its latency per batch size.

The layer table counts, per leaf module, its own learnable parameters and its "neurons":
the output units of conv and linear layers (conv outputs before pooling), the convention
of the mnist study's assignment. Used by evaluation and by the studies that measure
layers on their own (concepts' convolution types).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .runtime import forward_with_hooks

NEURON_LAYERS = (nn.Conv2d, nn.Linear)


def layer_table(model: nn.Module, example: torch.Tensor) -> pd.DataFrame:
    """One row per leaf module in call order: shapes, parameters, neurons."""
    rows: list[dict[str, Any]] = []
    names = {module: name for name, module in model.named_modules()}

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append({
            "layer": names[module], "type": type(module).__name__,
            "input_shape": "x".join(map(str, inputs[0].shape[1:])),
            "output_shape": "x".join(map(str, output.shape[1:])),
            "parameters": params,
            "trainable": sum(p.numel() for p in module.parameters(recurse=False)
                             if p.requires_grad),
            "neurons": output[0].numel() if isinstance(module, NEURON_LAYERS) else 0,
            "kind": ("conv" if isinstance(module, nn.Conv2d) else
                     "fc" if isinstance(module, nn.Linear) else "other"),
        })

    forward_with_hooks(model, example, [m for m in model.modules() if not list(m.children())],
                       hook)
    return pd.DataFrame(rows)


def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    """Forward FLOPs of one example (a multiply-add counts 2)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(example)
    return int(counter.get_total_flops())


def latency(model: nn.Module, example: torch.Tensor, batch_sizes: list[int], repeats: int,
            warmup: int, max_seconds: float) -> dict[str, float]:
    """Median forward wall time in milliseconds per batch size on ``example``'s device.

    Stops repeating once ``max_seconds`` are spent on a batch size (VGG19 at batch 100 is
    seconds per pass on a CPU); at least one pass is always timed.
    """
    out = {}
    sync = torch.cuda.synchronize if example.is_cuda else (lambda: None)
    with torch.inference_mode():
        for bs in batch_sizes:
            batch = example[:1].expand(bs, *example.shape[1:]).contiguous()
            for _ in range(warmup):
                model(batch)
            times: list[float] = []
            while len(times) < repeats and (not times or sum(times) < max_seconds * 1e3):
                sync()
                tic = time.perf_counter()
                model(batch)
                sync()
                times.append((time.perf_counter() - tic) * 1e3)
            out[f"batch{bs}_ms"] = statistics.median(times)
            out[f"batch{bs}_repeats"] = len(times)
    return out
