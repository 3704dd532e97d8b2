"""Convolution basics of the caltech document (ch. 1–2): grayscale input, a Kaiming 3×3
filter, cross-correlation vs convolution, constant vs Kaiming initialisation, and two
stacked conv layers with the output-size formula n' = (n + 2p − f)/s + 1.

Pure functions: tensors in, tensors/dicts out. Randomness takes an explicit ``seed``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...conv_arithmetic import output_size

# ITU-R BT.601 luma weights (the ones PIL's "L" mode and OpenCV's RGB2GRAY use).
LUMA_601 = (0.299, 0.587, 0.114)


def to_grayscale(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB ``(N, 3, H, W)`` or ``(3, H, W)`` → float32 ``(N, 1, H, W)`` in [0, 1],
    Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601)."""
    x = torch.as_tensor(images)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.shape[1] != 3:
        raise ValueError(f"expected RGB images (N, 3, H, W), got shape {tuple(x.shape)}")
    weights = torch.tensor(LUMA_601, dtype=torch.float32).view(1, 3, 1, 1)
    return (x.float() / 255.0 * weights).sum(1, keepdim=True)


def kaiming_filter(out_channels: int = 1, in_channels: int = 1, size: int = 3,
                   seed: int = 0) -> torch.Tensor:
    """A ``(out, in, size, size)`` filter from N(0, 2 / fan_in), fan_in = in·size·size.

    The document writes std = sqrt(2 / (224·224)), i.e. it took the image size as the
    fan-in; Kaiming's rule (and torch's ``kaiming_normal_``) uses the number of inputs of
    one output unit, C_in·k·k (= 9 for a 3×3 grayscale filter). We use the fan-in rule.
    """
    weight = torch.empty(out_channels, in_channels, size, size)
    generator = torch.Generator().manual_seed(seed)
    return nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu",
                                   generator=generator)


def correlate(image: torch.Tensor, kernel: torch.Tensor, stride: int = 1,
              padding: int = 0) -> torch.Tensor:
    """Cross-correlation: what ``conv2d`` (and every DL library's "convolution") computes."""
    return F.conv2d(image, kernel, stride=stride, padding=padding)


def convolve(image: torch.Tensor, kernel: torch.Tensor, stride: int = 1,
             padding: int = 0) -> torch.Tensor:
    """True convolution: cross-correlation with the kernel flipped in both spatial axes."""
    return F.conv2d(image, kernel.flip(-2, -1), stride=stride, padding=padding)


def correlation_vs_convolution(gray: torch.Tensor, kernel: torch.Tensor) -> dict:
    """Both feature maps of ``gray`` (N, 1, H, W) at stride 1, padding 0, their difference
    and its largest absolute value (zero only for a kernel symmetric under the flip)."""
    corr, conv = correlate(gray, kernel), convolve(gray, kernel)
    diff = corr - conv
    return {"correlation": corr, "convolution": conv, "difference": diff,
            "max_abs_difference": float(diff.abs().max()),
            "size": tuple(corr.shape[-2:])}


def init_conv(layer: nn.Conv2d, scheme: str, seed: int = 0, value: float = 0.1) -> nn.Conv2d:
    """Initialise ``layer`` in place: ``"constant"`` (weights and bias = ``value``) or
    ``"kaiming"`` (fan-in normal weights, zero bias)."""
    with torch.no_grad():
        if scheme == "constant":
            nn.init.constant_(layer.weight, value)
            if layer.bias is not None:
                nn.init.constant_(layer.bias, value)
        elif scheme == "kaiming":
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu",
                                    generator=torch.Generator().manual_seed(seed))
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        else:
            raise ValueError(f"scheme must be 'constant' or 'kaiming', not {scheme!r}")
    return layer


def initialisation_maps(gray: torch.Tensor, channels: int = 8, size: int = 3, seed: int = 0,
                        value: float = 0.1) -> dict[str, torch.Tensor]:
    """Feature maps of the same 1→``channels`` conv layer under constant and Kaiming init:
    under constant init every channel's map is the same image (one box filter)."""
    layer = nn.Conv2d(gray.shape[1], channels, size)
    out = {}
    with torch.no_grad():
        for scheme in ("constant", "kaiming"):
            out[scheme] = init_conv(layer, scheme, seed, value)(gray)
    return out


def filter_spread(weight: torch.Tensor) -> float:
    """max over filters of max |filter_i − filter_0|: exactly 0 iff all filters are equal."""
    flat = weight.detach().reshape(weight.shape[0], -1)
    return float((flat - flat[:1]).abs().max())


def symmetry_net(in_channels: int = 1, channels: int = 8, num_classes: int = 3) -> nn.Sequential:
    """conv 3×3 → ReLU → global average pool → linear: the smallest net with a symmetry."""
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


def symmetry_experiment(images: torch.Tensor, labels: torch.Tensor, scheme: str,
                        steps: int = 5, lr: float = 0.1, seed: int = 0,
                        value: float = 0.1, channels: int = 8,
                        held_out: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """Train :func:`symmetry_net` for ``steps`` full-batch SGD steps from ``scheme`` init.

    ``"constant"`` gives every weight and bias of the conv *and* the linear layer the same
    ``value``: all conv channels then compute the same map and receive the same gradient,
    so the filters stay identical (spread exactly 0) however long one trains. ``"kaiming"``
    uses fan-in normal weights for both layers. Returns the conv filters after training,
    their spread (:func:`filter_spread`) and std across filters, the losses, and the
    accuracy on the training images and on ``held_out`` (images, labels) where given.
    """
    torch.manual_seed(seed)
    net = symmetry_net(images.shape[1], channels, num_classes=int(labels.max()) + 1)
    conv, linear = net[0], net[-1]
    init_conv(conv, scheme, seed, value)
    with torch.no_grad():
        if scheme == "constant":
            nn.init.constant_(linear.weight, value)
            nn.init.constant_(linear.bias, value)
        else:
            nn.init.kaiming_normal_(linear.weight, mode="fan_in", nonlinearity="linear",
                                    generator=torch.Generator().manual_seed(seed + 1))
            nn.init.zeros_(linear.bias)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(net(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    weight = conv.weight.detach().clone()
    splits = {"train": (images, labels)} | ({"held_out": held_out} if held_out else {})
    with torch.no_grad():
        accuracy = {split: float((net(x).argmax(1) == y).float().mean())
                    for split, (x, y) in splits.items()}
    return {"scheme": scheme, "filters": weight, "spread": filter_spread(weight),
            "filter_std": float(weight.reshape(weight.shape[0], -1).std(0).mean()),
            "losses": losses, "accuracy": accuracy}


def init_comparison(images: torch.Tensor, labels: torch.Tensor,
                    held_out: tuple[torch.Tensor, torch.Tensor], steps: int, lr: float,
                    seeds: list[int], value: float = 0.1, channels: int = 8) -> list[dict]:
    """Constant vs Kaiming initialisation by what the net learns: per seed and scheme,
    :func:`symmetry_experiment`'s accuracy on ``images`` and on ``held_out``."""
    return [{"seed": s, "scheme": scheme, "steps": steps, "train_images": len(labels),
             "test_images": len(held_out[1]),
             **symmetry_experiment(images, labels, scheme, steps, lr, s, value, channels,
                                   held_out)["accuracy"]}
            for s in seeds for scheme in ("constant", "kaiming")]


def two_layer_maps(gray: torch.Tensor, channels: tuple[int, int] = (32, 64), size: int = 3,
                   seed: int = 0) -> dict:
    """Two stacked Kaiming 3×3 conv layers (stride 1, padding 0, zero bias) on ``gray``.

    Layer 2 sees layer 1's ReLU output (a conv stack without the nonlinearity would be one
    linear filter); the maps returned are each conv's output before its ReLU. Sizes:
    224 → 222 → 220, and the formula's values beside them.
    """
    n = gray.shape[-1]
    filters, maps = [], []
    x = gray
    with torch.no_grad():
        for layer, out in enumerate(channels):
            weight = kaiming_filter(out, x.shape[1], size, seed=seed + layer)
            y = F.conv2d(x, weight)
            filters.append(weight)
            maps.append(y)
            x = F.relu(y)
    expected = [output_size(n, size), output_size(output_size(n, size), size)]
    return {"filters": filters, "maps": maps,
            "sizes": [tuple(m.shape[-2:]) for m in maps], "formula_sizes": expected}
