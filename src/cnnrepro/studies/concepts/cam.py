"""Class activation maps, Grad-CAM and learned hierarchical features (``concepts.cam``).

* The CAM model is :func:`cnnrepro.models.gap_cnn` (architecture ``gap_cnn``): conv blocks →
  global average pooling → one Linear.
* :func:`class_activation_maps` is CAM (Zhou et al., 2016): M_c = Σ_k w_k^c A_k with A the
  last conv block's activations and w the classifier's weights, upsampled bilinearly.
  Hand-written because Captum has no CAM; it is a weighted sum, nothing to get wrong.
* :func:`grad_cam` and :func:`guided_grad_cam` use Captum (``LayerGradCam``,
  ``GuidedGradCam``) on any model and layer (VDK CNNet, the LeNet-style CNN, the Caltech
  CNN, VGG19).
* :func:`cam_gradcam_agreement`: for a GAP + linear model, ∂y_c/∂A_kij = w_k^c/(h·w), so the
  Grad-CAM of the last conv block (before its ReLU) is exactly CAM/(h·w).
* :func:`hierarchical_features`: the deck's first slide, low/mid/high-level features: the
  filters of a low, a middle and a deep conv layer, and one activation-maximisation image
  per chosen channel.

All functions take the model's own input (normalised images where the model was trained on
normalised images) and return NumPy arrays; nothing is plotted or written.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cnnrepro.runtime import forward_with_hooks

# ---------------------------------------------------------------- helpers -----------

def minmax(maps: np.ndarray | torch.Tensor, axes: tuple[int, ...] = (-2, -1)) -> np.ndarray:
    """Scale each map to [0, 1] over ``axes`` (a constant map becomes zeros)."""
    a = np.asarray(maps.detach().cpu() if isinstance(maps, torch.Tensor) else maps,
                   dtype=np.float64)
    low = a.min(axis=axes, keepdims=True)
    span = a.max(axis=axes, keepdims=True) - low
    return np.where(span > 0, (a - low) / np.where(span > 0, span, 1.0), 0.0)


def conv_layers(model: nn.Module, example: torch.Tensor | None = None
                ) -> list[tuple[str, nn.Conv2d]]:
    """The model's ``nn.Conv2d`` modules with their qualified names: in the order a forward
    pass on ``example`` calls them when given (VDK CNNet registers its branch convs before
    the fusion convs that run between them), else in registration order."""
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if example is None:
        return convs
    called: list[nn.Module] = []
    was_training = model.training
    model.eval()
    forward_with_hooks(model, example, [m for _, m in convs],
                       lambda module, inputs, output: called.append(module))
    model.train(was_training)
    names = {m: name for name, m in convs}
    order = list(dict.fromkeys(called))  # a conv called twice counts at its first call
    return [(names[m], m) for m in order]


def _as_targets(target: int | list[int] | torch.Tensor, n: int, device: torch.device
                ) -> torch.Tensor:
    t = torch.as_tensor(target, device=device).long().flatten()
    return t.expand(n) if t.numel() == 1 else t


def _maps(low_res: torch.Tensor, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """(N, 1, h, w) layer maps → raw upsampled, min-max normalised and low-resolution."""
    from captum.attr import LayerAttribution

    up = LayerAttribution.interpolate(low_res, size, interpolate_mode="bilinear")
    raw = up[:, 0].detach().cpu().numpy()
    return {"raw": raw, "normalized": minmax(raw),
            "low_res": low_res[:, 0].detach().cpu().numpy()}


# ---------------------------------------------------------------- CAM, Grad-CAM -----

def class_activation_maps(model: nn.Module, x: torch.Tensor,
                          target: int | list[int] | torch.Tensor, *,
                          layer: nn.Module | None = None,
                          classifier: nn.Linear | None = None) -> dict[str, np.ndarray]:
    """CAM of ``x`` (N, C, H, W) for ``target`` (one class or one per image).

    ``layer`` (default ``model.features``) outputs A, the maps that the global average
    pooling reduces; ``classifier`` (default ``model.classifier``) is the Linear after it.
    Returns ``raw`` (N, H, W: Σ_k w_k^c A_k upsampled bilinearly, bias left out),
    ``normalized`` (each map min-max scaled to [0, 1]) and ``low_res`` (N, h, w), plus
    ``logits`` (N, classes).
    """
    layer = model.features if layer is None else layer
    classifier = model.classifier if classifier is None else classifier
    if not isinstance(classifier, nn.Linear):
        raise TypeError("CAM needs a Linear classifier right after global average pooling")
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        handle.remove()
    acts = captured[-1]
    if acts.shape[1] != classifier.in_features:
        raise ValueError(f"layer has {acts.shape[1]} channels, the classifier takes "
                         f"{classifier.in_features}: not a GAP + linear model")
    weights = classifier.weight[_as_targets(target, len(x), x.device)]  # (N, K)
    low = torch.einsum("nk,nkhw->nhw", weights, acts).unsqueeze(1)
    return {**_maps(low, tuple(x.shape[-2:])), "logits": logits.cpu().numpy()}


def grad_cam(model: nn.Module, x: torch.Tensor, target: int | list[int] | torch.Tensor,
             layer: nn.Module, *, relu: bool = True) -> dict[str, np.ndarray]:
    """Grad-CAM of ``layer``'s output through Captum's ``LayerGradCam``.

    ``relu=True`` is the slides' S^c = ReLU(Σ_k w_k^c A^k); ``relu=False`` keeps the signed
    sum (used to compare with CAM). Returns ``raw`` (N, H, W, upsampled bilinearly with
    ``LayerAttribution.interpolate``), ``normalized`` and ``low_res`` as
    :func:`class_activation_maps`. Works on any model and layer whose output is (N, K, h, w).
    """
    from captum.attr import LayerGradCam

    model.eval()
    targets = _as_targets(target, len(x), x.device)
    low = LayerGradCam(model, layer).attribute(x, target=targets, relu_attributions=relu)
    return _maps(low, tuple(x.shape[-2:]))


def guided_grad_cam(model: nn.Module, x: torch.Tensor,
                    target: int | list[int] | torch.Tensor, layer: nn.Module
                    ) -> np.ndarray:
    """Captum's ``GuidedGradCam``: guided backpropagation × upsampled Grad-CAM of ``layer``,
    (N, C, H, W) like the input. Needs the model's ReLUs to be modules (all of ours are)."""
    from captum.attr import GuidedGradCam

    model.eval()
    targets = _as_targets(target, len(x), x.device)
    with warnings.catch_warnings():  # Captum announces the ReLU hooks it sets and removes
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        out = GuidedGradCam(model, layer).attribute(x.detach().clone().requires_grad_(True),
                                                    target=targets, interpolate_mode="bilinear")
    return out.detach().cpu().numpy()


def cam_gradcam_agreement(model: nn.Module, x: torch.Tensor,
                          target: int | list[int] | torch.Tensor, *,
                          layer: nn.Module | None = None) -> pd.DataFrame:
    """Per image, CAM against Grad-CAM (no ReLU) of the same GAP model's last conv block.

    Columns: ``pearson`` (correlation of the two low-resolution maps), ``scale`` (least
    squares slope, Grad-CAM ≈ scale · CAM), ``expected_scale`` (1/(h·w)) and
    ``max_abs_residual`` (of Grad-CAM − scale · CAM). For a GAP + linear model the scale is
    exactly 1/(h·w) and the correlation 1.
    """
    layer = model.features if layer is None else layer
    cam = class_activation_maps(model, x, target, layer=layer)["low_res"]
    gc = grad_cam(model, x, target, layer, relu=False)["low_res"]
    rows = []
    for i, (c, g) in enumerate(zip(cam.reshape(len(x), -1).astype(np.float64),
                                   gc.reshape(len(x), -1).astype(np.float64))):
        scale = float(c @ g / (c @ c)) if c @ c > 0 else float("nan")
        varies = c.std() > 0 and g.std() > 0
        rows.append({"image": i, "pearson": float(np.corrcoef(c, g)[0, 1]) if varies
                     else float("nan"), "scale": scale,
                     "expected_scale": 1.0 / c.size,
                     "max_abs_residual": float(np.abs(g - scale * c).max())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- hierarchy ---------

def depth_levels(model: nn.Module, example: torch.Tensor | None = None,
                 layers: dict[str, str] | None = None) -> dict[str, tuple[str, nn.Conv2d]]:
    """The first ("low"), a middle ("middle") and the last ("deep") conv layer, in the
    order of :func:`conv_layers` (call order when ``example`` is given).

    The middle one is conv number ⌊(n − 1)/2⌋; with fewer than 3 convs a level that would
    repeat an earlier one is left out (2 convs: low and deep). ``layers`` (level → module
    name, e.g. ``{"low": "features.0", "deep": "features.34"}``) picks them instead."""
    if layers is not None:
        modules = dict(model.named_modules())
        unknown = sorted(set(layers.values()) - set(modules))
        if unknown:
            raise ValueError(f"no module named {unknown} in the model")
        not_conv = sorted(n for n in layers.values() if not isinstance(modules[n], nn.Conv2d))
        if not_conv:
            raise ValueError(f"{not_conv} are not Conv2d layers (their filters are shown)")
        return {level: (name, modules[name]) for level, name in layers.items()}
    convs = conv_layers(model, example)
    if not convs:
        raise ValueError("the model has no Conv2d layer")
    levels: dict[str, tuple[str, nn.Conv2d]] = {}
    seen: set[int] = set()
    for level, index in (("low", 0), ("middle", (len(convs) - 1) // 2),
                         ("deep", len(convs) - 1)):
        if index not in seen:
            seen.add(index)
            levels[level] = convs[index]
    return levels


def filter_images(weight: torch.Tensor | np.ndarray) -> np.ndarray:
    """First-layer RGB filters (C_out, 3, K, K) as images (C_out, K, K, 3) in [0, 1], each
    min-max scaled on its own."""
    w = np.asarray(weight.detach().cpu() if isinstance(weight, torch.Tensor) else weight)
    if w.ndim != 4 or w.shape[1] != 3:
        raise ValueError(f"expected (C_out, 3, K, K) RGB filters, got shape {w.shape}")
    return minmax(w, axes=(1, 2, 3)).transpose(0, 2, 3, 1)


class _Reached(Exception):
    """Raised by a forward hook to stop the forward pass once the layer has run."""


def activation_maximization(model: nn.Module, layer: nn.Module, channels: list[int],
                            input_shape: tuple[int, int, int], *, steps: int = 64,
                            lr: float = 0.05, l2: float = 1e-3, init_std: float = 0.1,
                            bounds: tuple[float, float] | None = None,
                            seed: int = 0) -> dict[str, np.ndarray]:
    """One input per channel of ``layer`` that maximises that channel's mean activation.

    Gradient ascent (Adam, ``lr``) from seeded Gaussian noise N(0, ``init_std``²) in the
    model's input space, objective mean_{i,j} A_c(x)_{ij} − ``l2``·mean(x²), ``steps``
    steps, all channels optimised together as one batch; the input is clamped to
    ``bounds`` (e.g. the normalised range of [0, 1] pixels) after each step when given.
    The forward pass stops at ``layer`` (a hook raises), so low layers are cheap; the model's
    parameters are not touched. Returns ``images`` (n, C, H, W), ``activation_start`` and
    ``activation_end`` (the mean activation before and after, per channel).
    """
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    x = (torch.randn(len(channels), *input_shape, generator=generator) * init_std).to(device)
    x.requires_grad_(True)
    index = torch.as_tensor(channels, device=device)
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        captured.append(output)
        raise _Reached

    def objective() -> torch.Tensor:
        captured.clear()
        handle = layer.register_forward_hook(hook)
        try:
            model(x)
        except _Reached:
            pass
        finally:
            handle.remove()
        acts = captured[0]
        return acts[torch.arange(len(channels), device=device), index].flatten(1).mean(1)

    optimizer = torch.optim.Adam([x], lr=lr)
    start = objective().detach()
    for _ in range(steps):
        act = objective()
        loss = -(act - l2 * x.pow(2).flatten(1).mean(1)).sum()
        (grad,) = torch.autograd.grad(loss, x)  # no gradient lands on the parameters
        x.grad = grad
        optimizer.step()
        if bounds is not None:
            with torch.no_grad():
                x.clamp_(*bounds)
    with torch.no_grad():
        end = objective()
    return {"images": x.detach().cpu().numpy(), "activation_start": start.cpu().numpy(),
            "activation_end": end.cpu().numpy()}


def hierarchical_features(model: nn.Module, input_shape: tuple[int, int, int], *,
                          layers: dict[str, str] | None = None, channels_per_layer: int = 4,
                          steps: int = 64, lr: float = 0.05, l2: float = 1e-3,
                          init_std: float = 0.1, bounds: tuple[float, float] | None = None,
                          seed: int = 0) -> dict[str, dict[str, Any]]:
    """Low-, mid- and high-level features of a trained model (the deck's first slide).

    For each level of :func:`depth_levels` (``layers`` names them, else the low, middle and
    deep convs in call order): ``layer`` (its name), ``filters`` (the learned
    weights, C_out × C_in × K × K), ``filter_images`` (as RGB images when the layer sees 3
    channels, i.e. the first layer of an RGB model; else None), ``channels`` (the
    ``channels_per_layer`` channels visualised, evenly spaced over the layer's outputs) and
    the :func:`activation_maximization` result for them (``images``,
    ``activation_start``, ``activation_end``), seeded by ``seed``.
    """
    out: dict[str, dict[str, Any]] = {}
    device = next(model.parameters()).device
    example = torch.zeros(1, *input_shape, device=device)
    for level, (name, conv) in depth_levels(model, example, layers).items():
        weight = conv.weight.detach()
        channels = sorted(set(np.linspace(0, conv.out_channels - 1,
                                          min(channels_per_layer, conv.out_channels))
                              .round().astype(int).tolist()))
        out[level] = {
            "layer": name, "filters": weight.cpu().numpy(),
            "filter_images": filter_images(weight) if weight.shape[1] == 3 else None,
            "channels": channels,
            **activation_maximization(model, conv, channels, input_shape, steps=steps, lr=lr,
                                      l2=l2, init_std=init_std, bounds=bounds, seed=seed),
        }
    return out
