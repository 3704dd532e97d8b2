"""Input attribution with Captum, and its faithfulness by deletion and insertion.

The four methods of the VDK paper, with the original notebook's settings: Saliency
(absolute gradient), IntegratedGradients with a zero baseline,
NoiseTunnel(IntegratedGradients, smoothgrad_sq, 100 samples, stdev 0.2), DeepLift with a
zero baseline; always on the normalised input, target = the true class.

Faithfulness (beyond the paper): pixels are removed (deletion: set to the baseline) or
inserted (insertion: copied into the baseline) in decreasing order of attribution
magnitude, and the softmax probability of the target is integrated over the removed
fraction. A faithful map gives a low deletion AUC and a high insertion AUC; a random
ordering is the reference. Hand-written because Captum has no deletion/insertion metric
(its ``infidelity`` and ``sensitivity_max`` measure other things).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .runtime import warn_only_determinism

METHODS = ("saliency", "integrated_gradients", "ig_smoothgrad_sq", "deeplift")


def attribute(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str,
              nt_samples: int = 100, nt_stdev: float = 0.2, ig_steps: int = 50,
              seed: int = 0) -> torch.Tensor:
    """Attributions of ``x`` (normalised, [N, C, H, W]) for ``target`` by ``method``."""
    from captum.attr import DeepLift, IntegratedGradients, NoiseTunnel, Saliency

    model.eval()
    x = x.detach().clone().requires_grad_(True)
    zero = torch.zeros_like(x)
    if method == "saliency":
        out = Saliency(model).attribute(x, target=target, abs=True)
    elif method == "integrated_gradients":
        out = IntegratedGradients(model).attribute(x, baselines=zero, target=target,
                                                   n_steps=ig_steps)
    elif method == "ig_smoothgrad_sq":
        torch.manual_seed(seed)  # NoiseTunnel draws its noise from torch's global RNG
        out = NoiseTunnel(IntegratedGradients(model)).attribute(
            x, baselines=zero, target=target, nt_type="smoothgrad_sq", nt_samples=nt_samples,
            stdevs=nt_stdev, n_steps=ig_steps, nt_samples_batch_size=max(1, 500 // ig_steps))
    elif method == "deeplift":
        with warn_only_determinism():
            out = DeepLift(model).attribute(x, baselines=zero, target=target)
    else:
        raise ValueError(f"unknown attribution method {method!r}; known: {METHODS}")
    return out.detach()


@torch.no_grad()
def deletion_insertion(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                       attributions: torch.Tensor, steps: int = 32,
                       baseline: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion AUC per image (probability of ``target`` vs fraction).

    Pixels (all channels together) are ranked by the channel-summed absolute attribution;
    ties keep a fixed order. ``baseline`` is the value of a removed pixel in the model's
    input space (0 = the dataset mean after normalisation).
    """
    model.eval()
    n, c, h, w = x.shape
    scores = attributions.abs().sum(1).reshape(n, -1)
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    fractions = torch.linspace(0, 1, steps + 1)
    counts = (fractions * h * w).round().long()
    deletion, insertion = np.zeros(n), np.zeros(n)
    for i in range(n):
        ranks = torch.empty(h * w, dtype=torch.long)
        ranks[order[i]] = torch.arange(h * w)
        # mask[s, p] = pixel p is among the first counts[s] pixels of the ordering
        mask = (ranks[None, :] < counts[:, None]).reshape(steps + 1, 1, h, w).to(x)
        base = torch.full_like(x[i:i + 1], baseline)
        deleted = x[i:i + 1] * (1 - mask) + base * mask
        inserted = base * (1 - mask) + x[i:i + 1] * mask
        probs = torch.softmax(model(torch.cat([deleted, inserted])), 1)[:, int(target[i])].cpu()
        deletion[i] = np.trapezoid(probs[:steps + 1].numpy(), fractions.numpy())
        insertion[i] = np.trapezoid(probs[steps + 1:].numpy(), fractions.numpy())
    return deletion, insertion


def random_attributions(shape: torch.Size, seed: int) -> torch.Tensor:
    """The reference ordering: uniformly random pixel scores."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def explain(model: nn.Module, x: torch.Tensor, target: torch.Tensor, settings: dict[str, Any],
            seed: int) -> dict[str, torch.Tensor]:
    """All methods on a batch, one image at a time for the heavy NoiseTunnel (minutes per
    model on a CPU, hence the progress bar in the job's log)."""
    out = {}
    for method in METHODS:
        parts = [attribute(model, x[i:i + 1], target[i:i + 1], method,
                           settings["nt_samples"], settings["nt_stdev"], settings["ig_steps"],
                           seed + i)
                 for i in tqdm(range(len(x)), desc=method, unit="image", mininterval=5)]
        out[method] = torch.cat(parts)
    return out
