"""Exact receptive field of one neuron of a sequential conv/pool stack.

Neither torchvision nor Captum computes receptive fields (checked: torchvision 0.29,
Captum 0.9); torchscan reports per-layer RF *sizes* but not a neuron's box and is not a
dependency. The box follows from the standard recursion over the layers (Araujo et al.,
Distill 2019), per axis, starting from the input (jump 1, size 1, start 0):

    k_eff = d(k − 1) + 1         dilated kernel
    size  += (k_eff − 1) · jump  receptive-field size
    start −= p · jump            input index of output unit 0's first pixel
    jump  *= s                   input distance between neighbouring output units

so unit ``i`` of the last layer sees input rows ``start + i·jump … start + i·jump + size − 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from torch import nn

from .conv_arithmetic import dilated_kernel_size

# Modules that act per position (or per channel) and leave the geometry as it is.
POINTWISE = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Identity,
             nn.BatchNorm2d, nn.Dropout, nn.Dropout2d)


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def layer_geometry(module: nn.Module) -> tuple[tuple[int, int], ...] | None:
    """``(kernel, stride, padding, dilation)`` as (h, w) pairs; ``None`` for a pointwise
    module. Anything else (adaptive pools, 'same' string padding, flatten) is an error:
    its geometry depends on the input or is not a sliding window."""
    if isinstance(module, POINTWISE):
        return None
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        if isinstance(module.padding, str):
            raise ValueError(f"{module}: string padding has no fixed geometry; use integers")
        stride = module.stride if module.stride is not None else module.kernel_size
        dilation = getattr(module, "dilation", 1)  # AvgPool2d has no dilation
        return (_pair(module.kernel_size), _pair(stride), _pair(module.padding),
                _pair(dilation))
    raise ValueError(f"receptive field: unsupported module {type(module).__name__}")


@dataclass(frozen=True)
class Box:
    """A neuron's input box. ``top/left/bottom/right`` are clipped to the image, with
    ``bottom``/``right`` exclusive (``image[..., top:bottom, left:right]`` is the patch);
    ``unclipped`` is the same box before clipping (it may extend into the padding) and
    ``size`` its (height, width), the layer's receptive-field size."""

    top: int
    left: int
    bottom: int
    right: int
    unclipped: tuple[int, int, int, int]
    size: tuple[int, int]

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)


def geometry(layers: Iterable[nn.Module]) -> dict[str, tuple[int, int]]:
    """The recursion's result for a stack: per axis ``size``, ``jump`` and ``start``."""
    size, jump, start = [1, 1], [1, 1], [0, 0]
    for module in layers:
        geo = layer_geometry(module)
        if geo is None:
            continue
        kernel, stride, padding, dilation = geo
        for a in (0, 1):
            size[a] += (dilated_kernel_size(kernel[a], dilation[a]) - 1) * jump[a]
            start[a] -= padding[a] * jump[a]
            jump[a] *= stride[a]
    return {"size": tuple(size), "jump": tuple(jump), "start": tuple(start)}


def receptive_field(layers: Iterable[nn.Module], row: int, col: int,
                    image_size: int | tuple[int, int]) -> Box:
    """The input box of output neuron (``row``, ``col``) after ``layers`` (in call order,
    e.g. ``model.features[: i + 1]``) on an image of ``image_size``."""
    height, width = _pair(image_size)
    geo = geometry(layers)
    (sh, sw), (jh, jw), (oh, ow) = geo["size"], geo["jump"], geo["start"]
    top, left = oh + row * jh, ow + col * jw
    bottom, right = top + sh, left + sw
    return Box(max(top, 0), max(left, 0), min(bottom, height), min(right, width),
               (top, left, bottom, right), (sh, sw))
