"""Translation equivariance of conv layers and invariance of a classifier, measured
(document 3.2.10–3.2.11 states both; it measures neither).

Equivariance: conv(shift(x)) = shift(conv(x)), compared on the interior away from the
borders, where padding and the wrapped or zero-filled strip break it for a trivial reason.
Invariance: how much the flattened features and the predicted class move under a shift.
"""

from __future__ import annotations

import math
from typing import Iterable

import pandas as pd
import torch
from torch import nn

from ...receptive_field import geometry


def shift(x: torch.Tensor, dy: int, dx: int, mode: str = "circular") -> torch.Tensor:
    """Translate ``x`` (…, H, W) by ``dy`` rows and ``dx`` columns (down/right if
    positive): ``"circular"`` wraps around (``torch.roll``), ``"zero"`` fills with 0 (for
    normalised images, the dataset-mean colour)."""
    if mode == "circular":
        return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    if mode != "zero":
        raise ValueError(f"mode must be 'circular' or 'zero', not {mode!r}")
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src = (slice(max(-dy, 0), h - max(dy, 0)), slice(max(-dx, 0), w - max(dx, 0)))
    dst = (slice(max(dy, 0), h - max(-dy, 0)), slice(max(dx, 0), w - max(-dx, 0)))
    out[(..., *dst)] = x[(..., *src)]
    return out


def _modules(layers: nn.Module) -> list[nn.Module]:
    return list(layers) if isinstance(layers, nn.Sequential) else [layers]


def stride1_prefix(features: nn.Sequential) -> nn.Sequential:
    """The longest prefix of ``features`` with total stride 1 (before the first pool or
    strided conv): the part that is exactly equivariant to every integer shift."""
    end = 0
    while end < len(features) and geometry(features[: end + 1])["jump"] == (1, 1):
        end += 1
    return features[:end]


def equivariance_error(layers: nn.Module, x: torch.Tensor, k: int, mode: str = "circular",
                       margin: int | None = None) -> float:
    """Relative error ‖f(shift_k x) − shift_{k/J}(f x)‖ / ‖shift_{k/J}(f x)‖ on the interior,
    for a horizontal shift by ``k`` and ``f = layers`` (total stride J). NaN when J does not
    divide ``k`` (the shift falls between output positions). ``margin`` output pixels are
    dropped on every side; by default k/J + the receptive-field size, which covers the
    wrapped/zero strip and the padding's reach."""
    geo = geometry(_modules(layers))
    jump, rf = geo["jump"][1], geo["size"][1]
    if k % jump:
        return math.nan
    k_out = k // jump
    margin = k_out + rf if margin is None else margin
    with torch.no_grad():
        a = layers(shift(x, 0, k, mode))
        b = shift(layers(x), 0, k_out, mode)
    inner = (..., slice(margin, a.shape[-2] - margin), slice(margin, a.shape[-1] - margin))
    a, b = a[inner], b[inner]
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def invariance(model: nn.Module, x: torch.Tensor, k: int, mode: str = "circular"
               ) -> tuple[float, float]:
    """(mean relative change of the flattened ``model.features`` output, share of images
    whose predicted class changes) under a horizontal shift by ``k``."""
    shifted = shift(x, 0, k, mode)
    with torch.no_grad():
        f0 = model.features(x).flatten(1)
        fk = model.features(shifted).flatten(1)
        p0, pk = model(x).argmax(1), model(shifted).argmax(1)
    change = ((fk - f0).norm(dim=1) / f0.norm(dim=1).clamp_min(1e-12)).mean()
    return float(change), float((p0 != pk).float().mean())


def shift_study(model: nn.Module, x: torch.Tensor, shifts: Iterable[int] = (1, 2, 4, 8, 16, 32),
                modes: Iterable[str] = ("circular", "zero"),
                layers: nn.Module | None = None) -> pd.DataFrame:
    """Tidy rows (mode, shift, equivariance_error, feature_change, prediction_change) for
    normalised images ``x`` (N, C, H, W). ``model`` has ``.features`` (a Sequential);
    equivariance is measured on ``layers``, by default its stride-1 conv prefix."""
    model.eval()
    layers = stride1_prefix(model.features) if layers is None else layers
    rows = []
    for mode in modes:
        for k in shifts:
            feature_change, prediction_change = invariance(model, x, k, mode)
            rows.append({"mode": mode, "shift": k,
                         "equivariance_error": equivariance_error(layers, x, k, mode),
                         "feature_change": feature_change,
                         "prediction_change": prediction_change})
    return pd.DataFrame(rows)
