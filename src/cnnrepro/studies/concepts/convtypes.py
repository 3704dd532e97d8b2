"""Convolution types of the slides, measured on real PyTorch layers and checked against
their formulas (artifact ``concepts.convtypes``).

Layers: the standard convolution, the 1×1 (pointwise) convolution, dilated convolutions,
the depthwise-separable convolution (depthwise ``groups=C_in`` K×K, then pointwise 1×1) and
the transposed convolution. Each is built with PyTorch's default ``bias=True`` and measured
for weights, parameters, MACs, output size and CPU latency; the dilated one also for its
receptive field.

Conventions (the checked formulas follow them):

* **Bias.** ``weights`` counts the kernels only (the slides' O(·) counts multiply-
  accumulates, which a bias does not add to); ``parameters`` is what ``model.parameters()``
  holds, i.e. weights plus one bias per output channel of every conv (the separable layer
  has two convs, so its bias is C_in + C_out). MACs never include the bias additions:
  ``torch.utils.flop_counter`` counts the products only, and MACs = FLOPs / 2.
* **W, H in the MAC formulas are the output size W', H'** (after stride, padding and
  dilation): a conv evaluates its kernel once per output position. The slides write W × H,
  which equals the output size for 'same' padding at stride 1. The transposed convolution
  is counted in its scatter form, one kernel product per *input* element
  (C_in·C_out·K²·W_i·H_i), as ``FlopCounterMode`` counts it and as the layer computes it
  (products that land in the cropped padding border are computed too).
* **Output size.** Conv: W' = ⌊(W + 2P − d(K − 1) − 1)/S⌋ + 1. Transposed (PyTorch's
  general form): W_o = (W_i − 1)·S − 2P + d(K − 1) + output_padding + 1, which is the
  slides' W_o = K + (W_i − 1)·S − 2P when d = 1 and output_padding = 0; both rows are
  checked, the slides' one only where it applies.
* **Receptive field** of a dilated conv, K + (K − 1)(d − 1), is measured as the extent of
  the non-zero gradient of one (centre) output with respect to the input, on a probe input
  of side 2·K·d + 1 or more (large enough for any dilated kernel, so the extent is never
  clipped).
* Every layer is measured on one image (batch 1); 'same' padding is resolved to the integer
  d(K − 1)/2 (odd K only) so that it also applies at stride > 1.

The separable / standard MAC ratio is (C_in·K² + C_out·C_in)/(C_out·C_in·K²) =
1/C_out + 1/K² exactly whenever both layers have the same output size (same K, stride,
padding): the ratio table checks it with exact fractions, next to the measured latency
ratio.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from fractions import Fraction
from itertools import product
from typing import Any

import pandas as pd
import torch
from torch import nn

from ...conv_arithmetic import dilated_kernel_size, output_size, transposed_output_size
from ...cost import count_flops, latency
from ...runtime import seed_everything

LAYERS = ("standard", "pointwise 1x1", "dilated", "depthwise-separable", "transposed")
CHECK_COLUMNS = ["layer", "configuration", "quantity", "expression", "formula", "measured",
                 "match"]


def default_grid() -> dict[str, Any]:
    """The default shape grid: C_in 32, C_out 16/64/256, K 3/5/7 on a 32×32 input.

    ``stride``, ``padding`` (ints or 'same') and ``dilation`` apply to the standard,
    dilated and separable layers (the standard and separable ones use d = 1); the pointwise
    layer uses every C_out at stride 1, padding 0; ``transposed`` has its own small grid
    (an upsampling layer sees a smaller map). ``latency_max_seconds`` caps the timed
    passes of one layer.
    """
    return {
        "c_in": 32,
        "c_out": [16, 64, 256],
        "kernel": [3, 5, 7],
        "stride": [1, 2],
        "padding": ["same"],
        "dilation": [1, 2, 3],
        "input_size": 32,
        "transposed": {"kernel": [2, 3, 4], "stride": [1, 2], "padding": [0, 1],
                       "output_padding": [0, 1], "input_size": 16},
        "latency_max_seconds": 2.0,
    }


# ---------------------------------------------------------------- formulas ----------

def resolve_padding(padding: int | str, kernel: int, dilation: int = 1) -> int:
    """'same' → d(K − 1)/2 (odd K), 'valid' → 0, an int → itself."""
    if padding == "same":
        if kernel % 2 == 0:
            raise ValueError(f"padding 'same' needs an odd kernel here, not K={kernel}")
        return dilation * (kernel - 1) // 2
    if padding == "valid":
        return 0
    if isinstance(padding, int) and padding >= 0:
        return padding
    raise ValueError(f"padding must be 'same', 'valid' or an int >= 0, not {padding!r}")


def slide_transposed_output_size(size: int, kernel: int, stride: int = 1,
                                 padding: int = 0) -> int:
    """The slides' W_o = K + (W_i − 1)·S − 2P (d = 1, output_padding = 0)."""
    return kernel + (size - 1) * stride - 2 * padding


def separable_mac_ratio(c_out: int, kernel: int) -> Fraction:
    """The slides' cost ratio separable / standard = 1/C_out + 1/K², exact."""
    return Fraction(1, c_out) + Fraction(1, kernel * kernel)


# ---------------------------------------------------------------- layers ------------

def build_layer(layer: str, c_in: int, c_out: int, kernel: int = 1, stride: int = 1,
                padding: int = 0, dilation: int = 1, output_padding: int = 0) -> nn.Module:
    """One real layer of type ``layer`` (one of ``LAYERS``), with PyTorch's default bias."""
    if layer in ("standard", "dilated"):
        return nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation)
    if layer == "pointwise 1x1":
        return nn.Conv2d(c_in, c_out, 1)
    if layer == "depthwise-separable":
        return nn.Sequential(OrderedDict(
            depthwise=nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation,
                                groups=c_in),
            pointwise=nn.Conv2d(c_in, c_out, 1)))
    if layer == "transposed":
        return nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding,
                                  output_padding=output_padding, dilation=dilation)
    raise ValueError(f"unknown layer type {layer!r}; known: {LAYERS}")


def measure_layer(layer: nn.Module, x: torch.Tensor, *, repeats: int = 5, warmup: int = 2,
                  max_seconds: float = 2.0) -> dict[str, Any]:
    """Weights (no bias), parameters (with bias), MACs, output shape and CPU latency.

    MACs are ``FlopCounterMode`` FLOPs / 2 for ``x`` (use batch 1 for per-image MACs);
    latency is the median of ``repeats`` timed passes after ``warmup`` untimed ones
    (``cnnrepro.evaluate.latency``), NaN when ``repeats`` is 0, with torch's current
    intra-op thread count (set by the caller; recorded as ``threads``).
    """
    layer.eval()
    flops = count_flops(layer, x)
    with torch.no_grad():
        out = layer(x)
    timed = (latency(layer, x, [x.shape[0]], repeats, warmup, max_seconds)
             if repeats > 0 else {})
    return {
        "weights": sum(p.numel() for name, p in layer.named_parameters()
                       if name.split(".")[-1] == "weight"),
        "parameters": sum(p.numel() for p in layer.parameters()),
        "macs": flops // 2,
        "output_channels": out.shape[1],
        "output_height": out.shape[2],
        "output_width": out.shape[3],
        "latency_ms": timed.get(f"batch{x.shape[0]}_ms", float("nan")),
        "threads": torch.get_num_threads(),
    }


def measured_receptive_field(layer: nn.Module, in_channels: int, size: int) -> int:
    """Extent (in input pixels, along the width) of the non-zero gradient of the centre
    output of channel 0 with respect to a ``size``×``size`` input."""
    x = torch.rand(1, in_channels, size, size, requires_grad=True)
    out = layer(x)
    h, w = out.shape[2] // 2, out.shape[3] // 2
    (grad,) = torch.autograd.grad(out[0, 0, h, w], x)
    columns = torch.nonzero(grad.abs().sum(dim=(0, 1, 2)) > 0).flatten()
    return int(columns.max() - columns.min() + 1) if len(columns) else 0


# ---------------------------------------------------------------- the study ---------

def _config(c_in: int, c_out: int, k: int, s: int, p: int, d: int, w: int,
            output_padding: int | None = None) -> str:
    text = f"C_in={c_in} C_out={c_out} K={k} S={s} P={p} d={d} W={w}"
    return text if output_padding is None else f"{text} output_padding={output_padding}"


def _row(layer: str, config: str, quantity: str, expression: str, formula: int,
         measured: int) -> dict[str, Any]:
    return {"layer": layer, "configuration": config, "quantity": quantity,
            "expression": expression, "formula": int(formula), "measured": int(measured),
            "match": bool(int(formula) == int(measured))}


def _checks(layer: str, config: str, m: dict[str, Any], *, weights: tuple[str, int],
            bias: tuple[str, int], macs: tuple[str, int], out: tuple[str, int]
            ) -> list[dict[str, Any]]:
    """The rows every layer type shares: weights, parameters, MACs, output size (the
    inputs and kernels are square, so H' = W'; the ``layers`` table keeps both)."""
    return [
        _row(layer, config, "weights (no bias)", *weights, m["weights"]),
        _row(layer, config, "parameters (with bias)", f"{weights[0]} + {bias[0]}",
             weights[1] + bias[1], m["parameters"]),
        _row(layer, config, "MACs", *macs, m["macs"]),
        _row(layer, config, "output size (H' = W')", *out, m["output_width"]),
    ]


def conv_points(grid: dict[str, Any]) -> Iterator[tuple[int, int, int, int, int, int]]:
    """Each (C_out, K, S, P, d, output size) of the grid whose output is not empty, with
    its padding resolved (:func:`resolve_padding` raises for 'same' with an even K)."""
    for c_out, k, s, pad, d in product(grid["c_out"], grid["kernel"], grid["stride"],
                                       grid["padding"], grid["dilation"]):
        p = resolve_padding(pad, k, d)
        out = output_size(grid["input_size"], k, stride=s, padding=p, dilation=d)
        if out >= 1:
            yield c_out, k, s, p, d, out


def transposed_points(grid: dict[str, Any]) -> Iterator[tuple[int, int, int, int, int, int]]:
    """Each (C_out, K, S, P, output_padding, output size) of the transposed grid that
    PyTorch builds (output_padding < stride) with an output that is not empty."""
    t = grid["transposed"]
    for c_out, k, s, p, op in product(grid["c_out"], t["kernel"], t["stride"], t["padding"],
                                      t["output_padding"]):
        out = transposed_output_size(t["input_size"], k, stride=s, padding=p,
                                     output_padding=op)
        if op < s and out >= 1:
            yield c_out, k, s, p, op, out


def grid_problems(grid: dict[str, Any]) -> list[str]:
    """Why a grid would measure none of a layer type (its checks and claim would vanish)."""
    grid = {**default_grid(), **grid}
    try:
        dilations = {point[4] for point in conv_points(grid)}
    except ValueError as err:
        return [str(err)]
    size = grid["input_size"]
    problems = []
    if 1 not in dilations:
        problems.append(f"no kernel, stride and padding of the grid give a standard "
                        f"convolution (dilation 1) an output on its {size}x{size} input")
    if any(d > 1 for d in grid["dilation"]) and not any(d > 1 for d in dilations):
        problems.append(f"no dilated kernel of the grid fits its {size}x{size} input")
    if not any(True for _ in transposed_points(grid)):
        problems.append("transposed: no kernel, stride, padding and output_padding of the "
                        "grid give an output (PyTorch needs output_padding < stride)")
    return problems


def measure_convtypes(grid: dict[str, Any] | None = None, *, repeats: int = 5,
                      warmup: int = 2, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Build every layer of ``grid`` (default :func:`default_grid`), measure it and check it.

    Returns three tables:

    * ``checks``: one row per checked quantity, ``layer | configuration | quantity |
      expression | formula | measured | match`` (``expression`` is the formula's text,
      ``formula`` its value);
    * ``ratios``: separable / standard costs per C_out, K (and stride, padding): MACs,
      their ratio, the theoretical 1/C_out + 1/K² and whether they are exactly equal,
      parameter ratio, latencies and the latency ratio;
    * ``layers``: one row per measured layer (parameters, MACs, output shape, latency).
    """
    grid = {**default_grid(), **(grid or {})}
    seed_everything(seed)
    c_in, size = grid["c_in"], grid["input_size"]
    timing = {"repeats": repeats, "warmup": warmup,
              "max_seconds": grid.get("latency_max_seconds", 2.0)}
    x = torch.rand(1, c_in, size, size)
    checks: list[dict[str, Any]] = []
    layers: list[dict[str, Any]] = []
    measured: dict[tuple, dict[str, Any]] = {}

    def measure(layer: str, config: str, module: nn.Module, inp: torch.Tensor) -> dict:
        m = measure_layer(module, inp, **timing)
        layers.append({"layer": layer, "configuration": config, **m})
        return m

    # 1×1: mixes channels, keeps H×W
    for c_out in grid["c_out"]:
        config = _config(c_in, c_out, 1, 1, 0, 1, size)
        m = measure("pointwise 1x1", config, build_layer("pointwise 1x1", c_in, c_out), x)
        checks += _checks("pointwise 1x1", config, m,
                          weights=("C_out·C_in", c_out * c_in), bias=("C_out", c_out),
                          macs=("C_out·C_in·W·H", c_out * c_in * size * size),
                          out=("W (unchanged)", size))
        checks.append(_row("pointwise 1x1", config, "output channels", "C_out", c_out,
                           m["output_channels"]))

    # standard, dilated and depthwise-separable convolutions
    for c_out, k, s, p, d, out in conv_points(grid):
        if ("standard" if d == 1 else "dilated", c_out, k, s, p, d) in measured:
            continue  # measured already ('same' and 0 coincide for K = 1)
        area = out * out
        config = _config(c_in, c_out, k, s, p, d, size)
        # d = 1 is the regular conv (and the separable one is built at d = 1 only)
        kinds = ["standard", "depthwise-separable"] if d == 1 else ["dilated"]
        for layer in kinds:
            m = measure(layer, config, build_layer(layer, c_in, c_out, k, s, p, d), x)
            measured[(layer, c_out, k, s, p, d)] = m
            if layer == "depthwise-separable":
                checks += _checks(
                    layer, config, m,
                    weights=("C_in·K² + C_out·C_in", c_in * k * k + c_out * c_in),
                    bias=("C_in + C_out", c_in + c_out),
                    macs=("C_in·K²·W'·H' + C_out·C_in·W'·H'",
                          c_in * k * k * area + c_out * c_in * area),
                    out=("⌊(W + 2P − K)/S⌋ + 1", out))
                continue
            checks += _checks(
                layer, config, m, weights=("C_out·C_in·K²", c_out * c_in * k * k),
                bias=("C_out", c_out), macs=("C_out·C_in·K²·W'·H'", c_out * c_in * k * k * area),
                out=("⌊(W + 2P − d(K − 1) − 1)/S⌋ + 1", out))
            # the receptive field, of the regular (d = 1) and the dilated convs
            probe = max(size, 2 * k * d + 1)
            checks.append(_row(layer, config, "receptive field", "K + (K − 1)(d − 1)",
                               dilated_kernel_size(k, d),
                               measured_receptive_field(
                                   build_layer(layer, c_in, c_out, k, s, p, d), c_in, probe)))

    # transposed convolution: learned upsampling
    t = grid["transposed"]
    t_size = t["input_size"]
    x_t = torch.rand(1, c_in, t_size, t_size)
    for c_out, k, s, p, op, out in transposed_points(grid):
        config = _config(c_in, c_out, k, s, p, 1, t_size, op)
        m = measure("transposed", config, build_layer("transposed", c_in, c_out, k, s, p, 1, op),
                    x_t)
        checks += _checks("transposed", config, m,
                          weights=("C_in·C_out·K²", c_in * c_out * k * k), bias=("C_out", c_out),
                          macs=("C_in·C_out·K²·W_i·H_i", c_in * c_out * k * k * t_size ** 2),
                          out=("(W_i − 1)·S − 2P + d(K − 1) + output_padding + 1", out))
        if op == 0:
            checks.append(_row("transposed", config, "output size, slides' formula",
                               "K + (W_i − 1)·S − 2P",
                               slide_transposed_output_size(t_size, k, s, p),
                               m["output_width"]))

    ratios = []
    for (layer, c_out, k, s, p, _), std in measured.items():
        if layer != "standard":
            continue
        sep = measured[("depthwise-separable", c_out, k, s, p, 1)]
        mac_ratio = Fraction(sep["macs"], std["macs"])
        theory = separable_mac_ratio(c_out, k)
        ratios.append({
            "c_in": c_in, "c_out": c_out, "kernel": k, "stride": s,
            "padding": p, "input_size": size,
            "output_size": std["output_width"],
            "macs_standard": std["macs"], "macs_separable": sep["macs"],
            "mac_ratio": float(mac_ratio), "theoretical_ratio": float(theory),
            "mac_ratio_exact": mac_ratio == theory,
            "parameter_ratio": sep["parameters"] / std["parameters"],
            "latency_standard_ms": std["latency_ms"],
            "latency_separable_ms": sep["latency_ms"],
            "latency_ratio": sep["latency_ms"] / std["latency_ms"],
        })
    return {"checks": pd.DataFrame(checks, columns=CHECK_COLUMNS),
            "ratios": pd.DataFrame(ratios), "layers": pd.DataFrame(layers)}
