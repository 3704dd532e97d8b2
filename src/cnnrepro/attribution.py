"""Input attribution with Captum (a registry of methods by name), and its faithfulness by
deletion and insertion.

:data:`METHODS` maps a name to a function ``(model, x, target, **settings)``. The VDK
paper's four (:data:`PAPER_METHODS`) run with the original notebook's settings: Saliency
(absolute gradient), IntegratedGradients with a zero baseline,
NoiseTunnel(IntegratedGradients, smoothgrad_sq, 100 samples, stdev 0.2), DeepLift with a
zero baseline; always on the normalised input, target = the true class. (Guided
backpropagation and Grad-CAM live with the studies that show them: caltech, concepts.)

Model randomisation (beyond the paper; Adebayo et al., "Sanity Checks for Saliency Maps",
NeurIPS 2018): the layers are re-initialised from the output down, one more at a time, and
each method's maps on the same images are compared with the trained model's. A method whose
maps barely change explains the input, not the model. Captum has no such test; the measures
are scipy's Spearman rank correlation and scikit-image's SSIM.

Faithfulness (beyond the paper): pixels are removed (deletion: set to the baseline) or
inserted (insertion: copied into the baseline) in decreasing order of attribution
magnitude, and the softmax probability of the target is integrated over the removed
fraction. A faithful map gives a low deletion AUC and a high insertion AUC; a random
ordering is the reference. Hand-written because Captum has no deletion/insertion metric
(its ``infidelity`` and ``sensitivity_max`` measure other things).
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .io import write_csv, write_npz
from .provenance import stamp
from .runtime import warn_only_determinism


def _prepare(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return x.detach().clone().requires_grad_(True)


def saliency(model: nn.Module, x: torch.Tensor, target: torch.Tensor, **_: Any) -> torch.Tensor:
    """Absolute input gradient (Captum ``Saliency``)."""
    from captum.attr import Saliency
    return Saliency(model).attribute(_prepare(model, x), target=target, abs=True)


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *,
                         ig_steps: int = 50, internal_batch_size: int | None = None,
                         **_: Any) -> torch.Tensor:
    """Integrated Gradients from a zero baseline (the dataset mean after normalisation);
    ``internal_batch_size`` inputs per forward pass (None: all steps at once)."""
    from captum.attr import IntegratedGradients
    x = _prepare(model, x)
    return IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x),
                                                target=target, n_steps=ig_steps,
                                                internal_batch_size=internal_batch_size)


def ig_completeness(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *,
                    ig_steps: int = 50, internal_batch_size: int | None = None
                    ) -> dict[str, np.ndarray]:
    """Integrated Gradients' completeness per image (Sundararajan et al. 2017): Captum's
    convergence delta, the sum of the attributions minus f(x) - f(baseline) for the target
    logit, beside that difference (``gap``); ``relative`` = |delta| / |gap|."""
    from captum.attr import IntegratedGradients
    x = _prepare(model, x)
    baseline = torch.zeros_like(x)
    _, delta = IntegratedGradients(model).attribute(
        x, baselines=baseline, target=target, n_steps=ig_steps,
        internal_batch_size=internal_batch_size, return_convergence_delta=True)
    with torch.no_grad():
        rows = torch.arange(len(target), device=x.device)
        gap = (model(x)[rows, target] - model(baseline)[rows, target]).cpu().numpy()
    delta = delta.detach().abs().cpu().numpy()
    return {"delta": delta, "gap": gap,
            "relative": delta / np.maximum(np.abs(gap), np.finfo(np.float32).tiny)}


def ig_smoothgrad_sq(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *,
                     nt_samples: int = 100, nt_stdev: float = 0.2, ig_steps: int = 50,
                     seed: int = 0, nt_samples_batch_size: int = 10,
                     internal_batch_size: int | None = None, **_: Any) -> torch.Tensor:
    """NoiseTunnel(IntegratedGradients, SmoothGrad²), as the VDK notebook called it, in
    batches of ``nt_samples_batch_size`` noisy samples (the noise is drawn per batch, so
    the batching is part of the result)."""
    from captum.attr import IntegratedGradients, NoiseTunnel
    x = _prepare(model, x)
    torch.manual_seed(seed)  # NoiseTunnel draws its noise from torch's global RNG
    return NoiseTunnel(IntegratedGradients(model)).attribute(
        x, baselines=torch.zeros_like(x), target=target, nt_type="smoothgrad_sq",
        nt_samples=nt_samples, stdevs=nt_stdev, n_steps=ig_steps,
        nt_samples_batch_size=nt_samples_batch_size, internal_batch_size=internal_batch_size)


def deeplift(model: nn.Module, x: torch.Tensor, target: torch.Tensor, **_: Any) -> torch.Tensor:
    """DeepLift from a zero baseline."""
    from captum.attr import DeepLift
    x = _prepare(model, x)
    with warn_only_determinism():
        return DeepLift(model).attribute(x, baselines=torch.zeros_like(x), target=target)


# Every method by name: (model, x, target, **settings) -> attributions. Settings a method
# does not use are ignored, so one settings block serves a list of methods.
METHODS: dict[str, Callable[..., torch.Tensor]] = {
    f.__name__: f for f in (saliency, integrated_gradients, ig_smoothgrad_sq, deeplift)}
PAPER_METHODS = ("saliency", "integrated_gradients", "ig_smoothgrad_sq", "deeplift")  # VDK Fig. 7


def attribute(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str,
              **settings: Any) -> torch.Tensor:
    """Attributions of ``x`` (the model's input space, [N, C, H, W]) for ``target``."""
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; known: {sorted(METHODS)}")
    return METHODS[method](model, x, target, **settings).detach()


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
    ranks = torch.argsort(order, dim=1)  # each pixel's place in the ordering, on x's device
    fractions = torch.linspace(0, 1, steps + 1)
    counts = (fractions * h * w).round().long().to(x.device)
    deletion, insertion = np.zeros(n), np.zeros(n)
    for i in range(n):
        # mask[s, p] = pixel p is among the first counts[s] pixels of the ordering
        mask = (ranks[i][None, :] < counts[:, None]).reshape(steps + 1, 1, h, w).to(x)
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


def batching(per_device: dict[str, dict[str, int | None]], device: torch.device
             ) -> dict[str, int | None]:
    """Captum's batch sizes for ``device`` from config ``runtime.attribution_batch``
    (``nt_samples_batch_size``, ``internal_batch_size``): what :func:`explain` takes and
    what an attribution file records."""
    return dict(per_device[torch.device(device).type])


def explain(model: nn.Module, x: torch.Tensor, target: torch.Tensor, settings: dict[str, Any],
            seed: int, captum_batching: dict[str, int | None],
            methods: tuple[str, ...] = PAPER_METHODS) -> dict[str, torch.Tensor]:
    """Every method on a batch, one image at a time (NoiseTunnel is minutes per model on a
    CPU, hence the progress bar in the job's log). Image ``i`` uses seed ``seed + i``;
    ``captum_batching`` is :func:`batching`'s answer."""
    keys = ("nt_samples", "nt_stdev", "ig_steps")
    options = {**{k: settings[k] for k in keys if k in settings}, **captum_batching}
    out = {}
    for method in methods:
        parts = [attribute(model, x[i:i + 1], target[i:i + 1], method, seed=seed + i, **options)
                 for i in tqdm(range(len(x)), desc=method, unit="image", mininterval=5)]
        out[method] = torch.cat(parts)
    return out


def parameterised_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules that hold weights of their own and can re-initialise them (convolutions,
    linear and normalisation layers), in the model's definition order: input to output."""
    return [(name, module) for name, module in model.named_modules()
            if hasattr(module, "reset_parameters")
            and any(True for _ in module.parameters(recurse=False))]


def map_similarity(trained: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Adebayo et al.'s two measures of two maps (channels summed, absolute: [H, W]):
    Spearman's rank correlation (scipy) and SSIM (scikit-image) of the maps each scaled to
    [0, 1] by its maximum. A constant map has no rank order: its correlation is NaN."""
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    def unit(a: np.ndarray) -> np.ndarray:
        top = float(a.max())
        return a / top if top > 0 else a

    constant = np.ptp(trained) == 0 or np.ptp(other) == 0  # scipy would warn, then say NaN
    rho = float("nan") if constant else spearmanr(trained.ravel(), other.ravel()).statistic
    # SSIM's window (7 by default) must fit the map: a receptive field may be smaller
    window = min(7, *trained.shape)
    window -= 1 - window % 2
    ssim = (structural_similarity(unit(trained), unit(other), data_range=1.0, win_size=window)
            if window >= 3 else float("nan"))
    return {"spearman": float(rho), "ssim": float(ssim)}


def absolute_maps(found: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Attributions ``[N, C, H, W]`` by method as the maps the randomisation test compares:
    channels summed, absolute (``[N, H, W]``)."""
    return {m: a.abs().sum(1).cpu().numpy() for m, a in found.items()}


def explained_maps(x: torch.Tensor, target: torch.Tensor, settings: dict[str, Any], seed: int,
                   captum_batching: dict[str, int | None], methods: tuple[str, ...]
                   ) -> Callable[[nn.Module], dict[str, np.ndarray]]:
    """The maps of this module's methods (:func:`explain`) of ``x``, as a function of the
    model: what :func:`randomisation_cascade` recomputes at every step."""
    return lambda net: absolute_maps(explain(net, x, target, settings, seed, captum_batching,
                                             methods))


def class_sensitivity(maps: Callable[[torch.Tensor], dict[str, np.ndarray | list[np.ndarray]]],
                      target: torch.Tensor, classes: int, seed: int) -> pd.DataFrame:
    """Do the maps depend on the class they explain (the sanity check beside
    :func:`randomisation_cascade`)? ``maps(targets)`` gives each method's maps of fixed
    images for those classes; they are compared, image by image and with the same
    measures (:func:`map_similarity`), for the true class and for another class drawn
    uniformly (generator seeded with ``seed``). One row per (method, image)."""
    shift = torch.randint(1, classes, target.shape, generator=torch.Generator().manual_seed(seed))
    other = (target.cpu() + shift) % classes
    true_maps, other_maps = maps(target), maps(other.to(target.device))
    return pd.DataFrame([{"method": method, "image": i, "other_class": int(other[i]),
                          **map_similarity(found[i], other_maps[method][i])}
                         for method, found in true_maps.items() for i in range(len(found))])


def randomisation_cascade(model: nn.Module,
                          maps: Callable[[nn.Module], dict[str, np.ndarray | list[np.ndarray]]],
                          seed: int, layers: Callable[[nn.Module], list[tuple[str, nn.Module]]]
                          = parameterised_layers) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Adebayo et al.'s cascading randomisation of any method: ``maps(model)`` gives each
    method's maps ``[N, H, W]`` of fixed images (non-negative: absolute attributions or
    CAMs; or a list of N maps of their own sizes, e.g. each neuron's receptive field). They
    are computed for the trained model, then for a copy whose ``layers(copy)`` are re-
    initialised from the output down, one more at a time (layer ``k``'s fresh weights drawn
    from seed ``seed + k``). Returns one row per (method, step, image) with the re-
    initialised layer and both similarities to the trained maps, and per method its maps of
    the first image at every step (``[steps + 1, H, W]``, step 0 trained) for the cascade
    strip, with ``steps`` (their names)."""
    trained = maps(model)
    strip = {m: [a[0]] for m, a in trained.items()}
    randomised = copy.deepcopy(model)
    rows = []
    chosen = layers(randomised)[::-1]
    for step, (name, layer) in enumerate(chosen, 1):
        with torch.random.fork_rng(devices=[]):  # the model's RNG use stays as it was
            torch.manual_seed(seed + step)
            layer.reset_parameters()
        for method, found in maps(randomised).items():
            strip[method].append(found[0])
            rows += [{"method": method, "step": step, "layer": name, "layers": len(chosen),
                      "image": i, **map_similarity(trained[method][i], found[i])}
                     for i in range(len(found))]
    return pd.DataFrame(rows), {"steps": np.asarray(["trained", *(n for n, _ in chosen)]),
                                **{m: np.stack(s).astype(np.float32) for m, s in strip.items()}}


def write_map_checks(test: Any, pick: np.ndarray, model: str, seed: int, device: Any,
                     provenance: dict[str, Any], *, frame: pd.DataFrame,
                     strip: dict[str, np.ndarray], randomisation: str, randomisation_maps: str,
                     classes: pd.DataFrame | None = None, class_sensitivity: str | None = None,
                     per_image: dict[str, np.ndarray] | None = None) -> None:
    """One run's map sanity checks as every study writes them: the cascade's table
    (``frame``) and class sensitivity's (``classes``, where the study runs it), each row
    with its model, seed and test-set index (``pick``: the test indices of the images, in
    order; ``per_image``: more columns, one value per image), and the cascade strip beside
    the first image, its class name and the stage's ``provenance`` (the config slice it ran
    with, stamped with seed, device and versions; ``test``: the split, with ``images``,
    ``labels`` and ``classes``)."""
    def rows(table: pd.DataFrame) -> pd.DataFrame:
        image = table["image"].to_numpy()
        return table.assign(model=model, seed=seed, test_index=pick[image],
                            **{k: np.asarray(v)[image] for k, v in (per_image or {}).items()})

    if classes is not None:
        write_csv(class_sensitivity, rows(classes))
    write_csv(randomisation, rows(frame))
    write_npz(randomisation_maps, image=test.images[pick[0]].cpu().numpy(),
              label=np.asarray(test.classes[int(test.labels[pick[0]])]),
              provenance=np.asarray(json.dumps(stamp(provenance, seed, device), default=str)),
              **strip)
