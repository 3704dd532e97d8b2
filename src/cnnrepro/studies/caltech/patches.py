"""Most activated and dead neurons of a conv layer, their input patches, and guided
backpropagation of one neuron (document 3.2.12, 4.2.3, 4.2.4).

A layer is addressed as ``(features, index)``: ``features`` is the model's sequential conv
part (``ConvClassifier.features``, torchvision ``VGG.features``) and ``features[index]``
the layer; ``features[: index + 1]`` is then both what computes the activation and the
stack whose geometry gives each neuron's receptive field. Pass the index of the ReLU after
the last conv (:func:`last_conv_relu`): "activated" is then > 0 and "dead" is exactly 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from captum.attr import NeuronGuidedBackprop
from scipy import ndimage
from torch import nn

from ...receptive_field import receptive_field


def last_conv_relu(features: nn.Sequential) -> int:
    """Index of the last Conv2d of ``features``, or of the ReLU right after it."""
    last = max(i for i, m in enumerate(features) if isinstance(m, nn.Conv2d))
    if last + 1 < len(features) and isinstance(features[last + 1], nn.ReLU):
        return last + 1
    return last


def activation(features: nn.Sequential, index: int, image: torch.Tensor) -> torch.Tensor:
    """``features[index]``'s output ``(C, H, W)`` for one normalised image ``(C, H, W)``."""
    with torch.no_grad():
        return features[: index + 1](image.unsqueeze(0))[0]


def top_neurons(act: torch.Tensor, k: int = 5, distinct_channels: bool = True) -> pd.DataFrame:
    """The ``k`` largest activations of ``act`` ``(C, H, W)``: channel, row, col, value.

    ``distinct_channels`` (default): each channel's peak, best ``k`` channels. Without it
    the top ``k`` usually sit side by side in one channel (one feature seen ``k`` times
    with overlapping patches), which shows less. Ties go to the lower channel/position.
    """
    c, h, w = act.shape
    flat = act.reshape(c, -1)
    if distinct_channels:
        peak, where = flat.max(1)
        order = torch.argsort(-peak, stable=True)[:k]
        picks = [(int(ch), int(where[ch])) for ch in order]
    else:
        order = torch.argsort(-flat.reshape(-1), stable=True)[:k]
        picks = [(int(i) // (h * w), int(i) % (h * w)) for i in order]
    return pd.DataFrame([{"channel": ch, "row": pos // w, "col": pos % w,
                          "value": float(flat[ch, pos])} for ch, pos in picks])


def dead_neurons(act: torch.Tensor, n: int = 3) -> pd.DataFrame:
    """Up to ``n`` dead channels (activation <= 0 at every position of this image), the
    lowest channel indices first, each at the map's centre (any position is as dead)."""
    c, h, w = act.shape
    dead = torch.nonzero(act.reshape(c, -1).amax(1) <= 0).flatten()[:n]
    return pd.DataFrame([{"channel": int(ch), "row": h // 2, "col": w // 2,
                          "value": float(act[ch, h // 2, w // 2])} for ch in dead],
                        columns=["channel", "row", "col", "value"])


def with_patches(neurons: pd.DataFrame, features: nn.Sequential, index: int,
                 raw: np.ndarray | torch.Tensor) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Each neuron's receptive-field box (clipped; unclipped size beside it) and the
    patch of ``raw`` ``(C, H, W)`` (e.g. the uint8 image) inside it."""
    raw = np.asarray(raw)
    rows, patches = [], []
    for neuron in neurons.to_dict("records"):
        box = receptive_field(features[: index + 1], neuron["row"], neuron["col"],
                              raw.shape[-2:])
        rows.append({**neuron, "top": box.top, "left": box.left, "bottom": box.bottom,
                     "right": box.right, "rf_height": box.size[0], "rf_width": box.size[1]})
        patches.append(raw[(slice(None), *box.slices)].copy())
    return pd.DataFrame(rows), patches


def neuron_report(features: nn.Sequential, index: int, image: torch.Tensor,
                  raw: np.ndarray | torch.Tensor, k: int = 5, n_dead: int = 3,
                  distinct_channels: bool = True) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Top-``k`` and dead neurons of ``features[index]`` on one image, with boxes and
    patches; column ``kind`` is ``"top"`` or ``"dead"``, ``rank`` the order within it."""
    act = activation(features, index, image)
    frames = []
    for kind, frame in (("top", top_neurons(act, k, distinct_channels)),
                        ("dead", dead_neurons(act, n_dead))):
        frames.append(frame.assign(kind=kind, rank=range(len(frame))))
    return with_patches(pd.concat(frames, ignore_index=True), features, index, raw)


def guided_backprop(features: nn.Sequential, index: int, image: torch.Tensor,
                    neuron: tuple[int, int, int]) -> torch.Tensor:
    """Guided-backprop image ``(C, H, W)`` of neuron (channel, row, col) of
    ``features[index]`` (Captum's NeuronGuidedBackprop on the truncated stack; every ReLU
    must be its own non-in-place module, as ``cnnrepro.models`` builds them)."""
    stack = features[: index + 1]
    attribution = NeuronGuidedBackprop(stack, stack[-1]).attribute(
        image.unsqueeze(0).detach().requires_grad_(True), neuron_selector=tuple(neuron))
    return attribution[0].detach()


def sharpness(gradient: np.ndarray) -> float:
    """How sharp a guided-backprop image ``(C, H, W)`` is, independent of its scale:
    ||Laplacian(m)|| / ||m|| of m = sum over channels of |gradient| (the share of the
    image's energy in pixel-to-pixel detail; a uniform image gives 0, a blank one NaN).
    Scale-free because a more activated neuron has a larger gradient everywhere: a
    measure of magnitude would find "sharper" by construction."""
    m = np.abs(np.asarray(gradient, dtype=np.float64)).sum(0)
    norm = float(np.linalg.norm(m))
    return float(np.linalg.norm(ndimage.laplace(m)) / norm) if norm > 0 else float("nan")
