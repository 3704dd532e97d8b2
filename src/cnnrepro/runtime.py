"""Device, seeding, determinism, on-device normalisation and batched inference.

One place for the switches every stage shares, so training, evaluation, attribution and
attacks see the data exactly the same way.
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import Callable, Iterator

import numpy as np
import torch

from .datasets.prepared import Split
from .locks import gpu_slot


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA where there is one, else the CPU. ``auto`` or ``cuda`` on a machine
    with several GPUs: the first one no other job holds (:func:`cnnrepro.locks.gpu_slot`);
    ``cuda:1``: that one."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but torch sees no CUDA device")
    if name == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if name in ("auto", "cuda"):
        return torch.device("cuda", gpu_slot(torch.cuda.device_count()))
    return torch.device(name)


PRECISIONS = ("ieee", "tf32")


def set_numerics(deterministic: bool, precision: str = "ieee") -> None:
    """The one determinism and precision switch (same seed and device ⇒ same numbers).

    ``precision`` is how CUDA computes float32 convolutions and matmuls: ``"ieee"`` in full
    float32, as the originals did (cuDNN's own default is TF32, a 10-bit mantissa), or
    ``"tf32"``, faster on Ampere and later GPUs and a departure (config ``runtime.precision``).
    The CPU computes float32 either way. NaN-filling of new tensors, which deterministic
    mode turns on, stays off: every tensor this pipeline allocates uninitialised is
    written before it is read, so the filling costs time and changes no number."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if deterministic:
        # cuBLAS needs a fixed workspace for deterministic matmuls; it must be set
        # before the first CUDA call.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = not deterministic  # autotuning picks kernels by timing
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.conv.fp32_precision = precision
    torch.backends.cuda.matmul.fp32_precision = precision


@contextlib.contextmanager
def warn_only_determinism() -> Iterator[None]:
    """Let ops without a deterministic CUDA kernel run with a warning instead of an error.
    Used only around Captum's DeepLift, whose max-pool rule calls ``max_unpool2d``: its
    CUDA kernel is flagged because overlapping pooling windows make two writes race for
    one output; the max-pools of the vdk models (the only ones DeepLift runs on) have
    stride = kernel (no overlap), so each output is written once and the result is
    deterministic. On the CPU it is anyway."""
    enabled = torch.are_deterministic_algorithms_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        if enabled:
            torch.use_deterministic_algorithms(True, warn_only=False)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def standardizer(mean: list[float], std: list[float], device: torch.device
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    """float images in [0, 1] → ``(x - mean) / std`` (differentiable: attacks use it)."""
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return lambda x: (x - mean_t) / std_t


def normalizer(mean: list[float], std: list[float], device: torch.device
               ) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 (N, C, H, W) on the device → float ``(x/255 - mean) / std``."""
    standardize = standardizer(mean, std, device)
    return lambda images: standardize(images.float().div_(255.0))


class Normalized(torch.nn.Module):
    """A model that takes [0, 1] images: normalisation inside the model, as attack
    libraries expect (their epsilon and clipping live in pixel space)."""

    def __init__(self, model: torch.nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def forward_with_hooks(model: torch.nn.Module, x: torch.Tensor,
                       modules: list[torch.nn.Module], hook: Callable) -> None:
    """One no-grad forward pass with ``hook`` on ``modules``; the hooks are always removed."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()


def batches(n: int, batch_size: int, order: torch.Tensor | None = None
            ) -> Iterator[torch.Tensor | slice]:
    """Index batches by slicing (a permutation's slices, or plain ranges)."""
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size] if order is not None else slice(start, start + batch_size)


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, split: Split,
                   normalize: Callable[[torch.Tensor], torch.Tensor],
                   batch_size: int) -> torch.Tensor:
    """Logits of a whole split (on the split's device), in eval mode."""
    was_training = model.training
    model.eval()
    out = [model(normalize(split.images[index])) for index in batches(len(split), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)
