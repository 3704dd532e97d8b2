"""FGSM and targeted FGSM as the slides show them (``concepts.fgsm``): x (class and
confidence) + ε·sign(∇) = x′ (class and confidence).

* untargeted: x′ = clip₀¹(x + ε·sign(∇ₓ J(x, y))), J = cross-entropy with the true label;
* targeted:   x′ = clip₀¹(x − ε·sign(∇ₓ J(x, y_target))).

Both run torchattacks' ``FGSM`` on the model wrapped in :class:`cnnrepro.runtime.Normalized`,
so images are [0, 1] pixels and ε is in pixel units (8/255 is eight grey levels); the
targeted one by ``set_mode_targeted_by_label(quiet=True)`` and ``atk(x, target)``.

Target choice: ``"next"`` (default) is (y + 1) mod C, deterministic, never the true class
and spread evenly over the classes; ``"least_likely"`` is the clean image's least probable
class (the harder, classic choice). Images whose target equals their true class (possible
only under ``"least_likely"``, for an image the model gets badly wrong) are left out of the
targeted rates.

Confidence is the softmax probability of the predicted class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from cnnrepro.attacks import fgsm_perturb
from cnnrepro.attacks import fgsm_sweep as fgsm_sweep_images
from cnnrepro.runtime import Normalized

TARGET_RULES = ("next", "least_likely")


def choose_targets(labels: torch.Tensor, n_classes: int, rule: str = "next",
                   logits: torch.Tensor | None = None) -> torch.Tensor:
    """The target class per image: (y + 1) mod C, or the least likely class of ``logits``."""
    if rule == "next":
        return (labels + 1) % n_classes
    if rule == "least_likely":
        if logits is None:
            raise ValueError("target rule 'least_likely' needs the clean logits")
        return logits.argmin(1).to(labels.device)
    raise ValueError(f"unknown target rule {rule!r}; known: {TARGET_RULES}")


def fgsm(wrapped: nn.Module, images01: torch.Tensor, labels: torch.Tensor, epsilon: float,
         target: torch.Tensor | None = None) -> torch.Tensor:
    """x′ from torchattacks' FGSM on [0, 1] images: untargeted against ``labels``, or
    targeted toward ``target`` when given (ε = 0 returns the images unchanged)."""
    if epsilon == 0:
        return images01.detach().clone()
    if target is None:
        return fgsm_perturb(wrapped, images01, labels, epsilon)
    return fgsm_perturb(wrapped, images01, target, epsilon, targeted=True)


def _predict(wrapped: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        probs = torch.softmax(wrapped(x), 1)
    return probs.argmax(1), probs


def fgsm_examples(model: nn.Module, images01: torch.Tensor, labels: torch.Tensor,
                  mean: list[float], std: list[float], epsilon: float, *,
                  targeted: bool = False, target_rule: str = "next",
                  n_classes: int | None = None) -> dict[str, np.ndarray]:
    """The slides' triptych for each image (a few images: one batch).

    ``model`` takes normalised input; it is wrapped in ``Normalized(model, mean, std)``.
    Returns arrays: ``label``, ``clean_pred``, ``clean_conf``, ``image`` (x),
    ``perturbation`` (x′ − x: ε·sign(∇) wherever the [0, 1] clip did not bind),
    ``adv_image`` (x′), ``adv_pred``, ``adv_conf``, ``epsilon``; when ``targeted`` also
    ``target``, ``target_prob_clean`` and ``target_prob_adv`` (softmax probability of the
    target before and after) and ``valid`` (target ≠ true class).
    """
    wrapped = Normalized(model, mean, std).to(images01.device).eval()
    clean_pred, clean_probs = _predict(wrapped, images01)
    n_classes = n_classes or clean_probs.shape[1]
    target = (choose_targets(labels, n_classes, target_rule, clean_probs.log())
              if targeted else None)
    adv = fgsm(wrapped, images01, labels, epsilon, target)
    adv_pred, adv_probs = _predict(wrapped, adv)
    rows = torch.arange(len(labels), device=images01.device)
    out = {
        "epsilon": np.float64(epsilon),
        "label": labels.cpu().numpy(),
        "clean_pred": clean_pred.cpu().numpy(),
        "clean_conf": clean_probs[rows, clean_pred].cpu().numpy(),
        "image": images01.cpu().numpy(),
        "perturbation": (adv - images01).cpu().numpy(),
        "adv_image": adv.cpu().numpy(),
        "adv_pred": adv_pred.cpu().numpy(),
        "adv_conf": adv_probs[rows, adv_pred].cpu().numpy(),
    }
    if targeted:
        out.update({"target": target.cpu().numpy(),
                    "target_prob_clean": clean_probs[rows, target].cpu().numpy(),
                    "target_prob_adv": adv_probs[rows, target].cpu().numpy(),
                    "valid": (target != labels).cpu().numpy()})
    return out


def sweep_targets(model: nn.Module, images01: torch.Tensor, labels: torch.Tensor,
                  mean: list[float], std: list[float], target_rule: str = "next",
                  n_classes: int | None = None, batch_size: int = 500) -> torch.Tensor:
    """The target class of every image, chosen once from the clean images under
    ``target_rule`` (:func:`choose_targets`)."""
    wrapped = Normalized(model, mean, std).to(images01.device).eval()
    targets = []
    for start in range(0, len(labels), batch_size):
        x, y = images01[start:start + batch_size], labels[start:start + batch_size]
        _, probs = _predict(wrapped, x)
        targets.append(choose_targets(y, n_classes or probs.shape[1], target_rule, probs.log()))
    return torch.cat(targets)


def fgsm_sweep(model: nn.Module, images01: torch.Tensor, labels: torch.Tensor,
               mean: list[float], std: list[float], epsilons: list[float], *,
               target_rule: str = "next", n_classes: int | None = None,
               batch_size: int = 500) -> pd.DataFrame:
    """Untargeted error rate and targeted success rate against ε.

    One row per ε: ``n``, ``untargeted_error`` (share of x′ not predicted as the true class),
    ``targeted_success`` (share of x′ predicted as the target, over the ``n_targeted`` images
    whose target differs from the true class). ε = 0 gives the clean error and the share
    already predicted as the target. Targets are chosen once, from the clean images.
    """
    wrapped = Normalized(model, mean, std).to(images01.device).eval()
    target = sweep_targets(model, images01, labels, mean, std, target_rule, n_classes,
                           batch_size)
    valid = (target != labels).cpu().numpy()
    wrong: dict[float, list[torch.Tensor]] = {eps: [] for eps in epsilons}
    hit: dict[float, list[torch.Tensor]] = {eps: [] for eps in epsilons}
    for start in range(0, len(labels), batch_size):  # one gradient per batch and attack
        part = slice(start, start + batch_size)
        x, y, t = images01[part], labels[part], target[part]
        for eps, adv in fgsm_sweep_images(wrapped, x, y, epsilons):
            wrong[eps].append((_predict(wrapped, adv)[0] != y).cpu())
        for eps, adv in fgsm_sweep_images(wrapped, x, t, epsilons, targeted=True):
            hit[eps].append((_predict(wrapped, adv)[0] == t).cpu())
    rows = []
    for eps in epsilons:
        wrong_all, hit_all = torch.cat(wrong[eps]).numpy(), torch.cat(hit[eps]).numpy()
        rows.append({"epsilon": eps, "n": len(wrong_all),
                     "untargeted_error": float(wrong_all.mean()),
                     "targeted_success": float(hit_all[valid].mean()) if valid.any()
                     else float("nan"),
                     "n_targeted": int(valid.sum()), "target_rule": target_rule})
    return pd.DataFrame(rows)
