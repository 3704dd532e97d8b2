"""FGSM: untargeted and targeted in pixel space (torchattacks), and the vdk study's
``paper`` protocol (Captum).

``paper`` (what the original notebook did): Captum's ``captum.robust.FGSM`` with bounds
[0, 1] and its default loss −log(output[target]) taken on raw logits, applied to the
un-normalised image; the perturbed [0, 1] image goes into a model trained on normalised
inputs without re-normalising. The score counts only images classified correctly before
the attack and compares the new prediction with the clean one.

``clean``: torchattacks' FGSM (cross-entropy) on a model that normalises inside
(:class:`cnnrepro.runtime.Normalized`), accuracy against the true labels over an epsilon
sweep. :func:`fgsm_perturb` is the pixel-space attack every study may use:
x' = clip(x + eps * sign(grad CE(x, y))), or targeted x' = clip(x - eps * sign(grad CE(x,
target))).

A sweep takes one gradient per batch (:func:`fgsm_sweep`): single-step FGSM's gradient does
not depend on eps, so every eps's images come from the same sign; they equal torchattacks'
per-eps images bit for bit (tested) at one backward pass instead of one per eps.

Every adversarial image is checked as it is made (:func:`check_bound`): within eps of its
source in L-infinity and inside [0, 1], else the stage stops with :class:`AttackBoundError`
(Carlini et al., "On Evaluating Adversarial Robustness", 2019). :func:`attack_checks`
sets FGSM beside PGD (torchattacks) and random-sign noise of the same size, untargeted or
targeted.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from sklearn.metrics import confusion_matrix
from torch import nn

from .runtime import Normalized

# float32 rounding of clip(x + eps * sign): a distance this far past eps is arithmetic
BOUND_TOLERANCE = 1e-6


class AttackBoundError(RuntimeError):
    """An adversarial image left its budget or the valid pixel range: the attack is not the
    one it is said to be, and nothing computed from it may stand."""


def check_bound(adversarial: torch.Tensor, source: torch.Tensor, epsilon: float,
                attack: str, low: float = 0.0, high: float = 1.0) -> float:
    """The largest L-infinity distance of ``adversarial`` from ``source`` (same shape),
    after checking it is at most ``epsilon`` and every pixel lies in [low, high]."""
    if adversarial.numel() == 0:
        return 0.0
    distance = float((adversarial - source).abs().amax())
    if distance > epsilon + BOUND_TOLERANCE:
        raise AttackBoundError(f"{attack}: an adversarial image lies {distance:.6g} from its "
                               f"source in L-infinity, beyond its budget eps = {epsilon:g}")
    lo, hi = float(adversarial.amin()), float(adversarial.amax())
    if lo < low - BOUND_TOLERANCE or hi > high + BOUND_TOLERANCE:
        raise AttackBoundError(f"{attack}: adversarial pixels span [{lo:.6g}, {hi:.6g}], "
                               f"outside the valid range [{low:g}, {high:g}]")
    return distance


def fgsm_paper_perturb(model: nn.Module, images_norm: torch.Tensor, labels: torch.Tensor,
                       mean: list[float], std: list[float], epsilon: float) -> torch.Tensor:
    """Captum FGSM exactly as the original called it, on the un-normalised image."""
    from captum.robust import FGSM

    mean_t = torch.tensor(mean, device=images_norm.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images_norm.device).view(1, -1, 1, 1)
    unnormalised = images_norm * std_t + mean_t  # the original's x / 2 + 0.5
    attack = FGSM(model, lower_bound=0.0, upper_bound=1.0)
    adversarial = attack.perturb(unnormalised, epsilon=epsilon, target=labels).detach()
    check_bound(adversarial, unnormalised, epsilon, "FGSM (paper protocol)")
    return adversarial


def fgsm_paper(model: nn.Module, images_norm: torch.Tensor, labels: torch.Tensor,
               mean: list[float], std: list[float], epsilon: float, n_classes: int,
               batch_size: int = 500) -> dict[str, Any]:
    """Run and score the paper protocol over a test set (normalised images)."""
    model.eval()
    clean_pred, new_pred = [], []
    for start in range(0, len(labels), batch_size):
        x, y = images_norm[start:start + batch_size], labels[start:start + batch_size]
        with torch.no_grad():
            clean_pred.append(model(x).argmax(1).cpu())
        adv = fgsm_paper_perturb(model, x, y, mean, std, epsilon)
        with torch.no_grad():
            new_pred.append(model(adv).argmax(1).cpu())  # fed as [0, 1], not re-normalised
    clean, new = torch.cat(clean_pred).numpy(), torch.cat(new_pred).numpy()
    true = labels.cpu().numpy()
    kept = clean == true
    return {
        "epsilon": epsilon,
        "score": float((new[kept] == clean[kept]).mean()) if kept.any() else float("nan"),
        "n_scored": int(kept.sum()),
        "accuracy_all": float((new == true).mean()),
        "clean_accuracy": float(kept.mean()),
        "confusion": confusion_matrix(clean[kept], new[kept], labels=np.arange(n_classes)),
        "clean_pred": clean, "adv_pred": new,
    }


def fgsm_perturb(wrapped: Normalized, images01: torch.Tensor, labels: torch.Tensor,
                 epsilon: float, targeted: bool = False) -> torch.Tensor:
    """torchattacks FGSM on [0, 1] images through a normalising wrapper; with ``targeted``
    ``labels`` are the targets and the step descends their cross-entropy."""
    import torchattacks

    attack = torchattacks.FGSM(wrapped, eps=epsilon)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    adversarial = attack(images01, labels).detach()
    check_bound(adversarial, images01, epsilon, "FGSM")
    return adversarial


def fgsm_sweep(wrapped: nn.Module, images01: torch.Tensor, labels: torch.Tensor,
               epsilons: list[float], targeted: bool = False
               ) -> Iterator[tuple[float, torch.Tensor]]:
    """``(eps, x')`` for every eps, as :func:`fgsm_perturb` makes them, from one gradient.

    Hand-written because torchattacks' FGSM takes one eps per call; the steps are its
    ``FGSM.forward`` (mean cross-entropy, negated when targeted, x + eps * sign(grad)
    clipped to [0, 1]), so the images are the same bits. ``wrapped`` must be in eval mode
    (torchattacks sets it; the callers do)."""
    x = images01.clone().detach().requires_grad_(True)
    loss = nn.functional.cross_entropy(wrapped(x), labels)
    (grad,) = torch.autograd.grad(-loss if targeted else loss, x)
    step = grad.sign()
    for eps in epsilons:
        adversarial = torch.clamp(images01 + eps * step, min=0, max=1)
        check_bound(adversarial, images01, eps, "FGSM")
        yield eps, adversarial


def fgsm_clean(model: nn.Module, images01: torch.Tensor, labels: torch.Tensor,
               mean: list[float], std: list[float], epsilons: list[float], n_classes: int,
               batch_size: int = 500) -> dict[str, Any]:
    """Accuracy against true labels per epsilon, and the confusion matrix per epsilon
    (one gradient per batch for the whole sweep: :func:`fgsm_sweep`)."""
    model.eval()
    wrapped = Normalized(model, mean, std).to(images01.device).eval()
    true = labels.cpu().numpy()
    preds: dict[float, list[torch.Tensor]] = {eps: [] for eps in epsilons}
    for start in range(0, len(labels), batch_size):
        x, y = images01[start:start + batch_size], labels[start:start + batch_size]
        for eps, adv in fgsm_sweep(wrapped, x, y, epsilons):
            with torch.no_grad():
                preds[eps].append(wrapped(adv).argmax(1).cpu())
    rows, confusions = [], {}
    for eps in epsilons:
        pred = torch.cat(preds[eps]).numpy()
        rows.append({"epsilon": eps, "accuracy": float((pred == true).mean())})
        confusions[eps] = confusion_matrix(true, pred, labels=np.arange(n_classes))
    return {"curve": rows, "confusion": confusions}


def pgd_perturb(wrapped: nn.Module, images01: torch.Tensor, labels: torch.Tensor,
                epsilon: float, steps: int, alpha: float, seed: int,
                targeted: bool = False) -> torch.Tensor:
    """torchattacks' PGD (Madry et al.: random start in the eps-ball, ``steps`` signed
    gradient steps of ``alpha``, projected), its random start drawn under ``seed``; with
    ``targeted`` ``labels`` are the targets and the steps descend their cross-entropy."""
    import torchattacks

    attack = torchattacks.PGD(wrapped, eps=epsilon, alpha=alpha, steps=steps, random_start=True)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    with torch.random.fork_rng(devices=[images01.device] if images01.is_cuda else []):
        torch.manual_seed(seed)
        adversarial = attack(images01, labels).detach()
    check_bound(adversarial, images01, epsilon, f"PGD ({steps} steps)")
    return adversarial


def sign_noise(images01: torch.Tensor, epsilon: float, seed: int) -> torch.Tensor:
    """Uniform random-sign noise of L-infinity size ``epsilon``, clipped to [0, 1]: the
    baseline an attack of that size must beat by far."""
    generator = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, images01.shape, generator=generator).to(images01) * 2 - 1
    noisy = torch.clamp(images01 + epsilon * signs, min=0, max=1)
    check_bound(noisy, images01, epsilon, "random-sign noise")
    return noisy


def attack_checks(model: nn.Module, images01: torch.Tensor, labels: torch.Tensor,
                  mean: list[float], std: list[float], epsilons: list[float], steps: int,
                  alpha_fraction: float, seed: int, targets: torch.Tensor | None = None,
                  batch_size: int = 500) -> list[dict[str, Any]]:
    """FGSM, PGD (``steps`` steps of ``alpha_fraction`` * eps) and random-sign noise at
    every eps on the same images, each image checked against its budget; untargeted, or
    toward ``targets`` (one class per image) when given. One row per (eps, attack): the
    accuracy against the true labels, the attack's ``success`` (untargeted: the share
    misclassified; targeted: the share predicted as the target, over the images whose target
    is not their true class) and the largest L-infinity distance measured."""
    model.eval()
    wrapped = Normalized(model, mean, std).to(images01.device).eval()
    targeted = targets is not None
    goal = targets if targeted else labels
    valid = (goal != labels) if targeted else torch.ones_like(labels, dtype=torch.bool)
    correct: dict[tuple[float, str], int] = {}
    reached: dict[tuple[float, str], int] = {}
    distance: dict[tuple[float, str], float] = {}

    def score(key: tuple[float, str], adversarial: torch.Tensor, part: slice) -> None:
        x, y, g, v = images01[part], labels[part], goal[part], valid[part]
        with torch.no_grad():
            pred = wrapped(adversarial).argmax(1)
        correct[key] = correct.get(key, 0) + int((pred == y).sum())
        hits = (pred == g) if targeted else (pred != y)
        reached[key] = reached.get(key, 0) + int((hits & v).sum())
        distance[key] = max(distance.get(key, 0.0), float((adversarial - x).abs().amax()))

    for start in range(0, len(labels), batch_size):
        part = slice(start, start + batch_size)
        x, g = images01[part], goal[part]
        for eps, adversarial in fgsm_sweep(wrapped, x, g, epsilons, targeted=targeted):
            score((eps, "fgsm"), adversarial, part)
            score((eps, "noise"), sign_noise(x, eps, seed + start), part)
            pgd = (x if eps == 0 else  # no step moves an image at eps 0
                   pgd_perturb(wrapped, x, g, eps, steps, alpha_fraction * eps, seed + start,
                               targeted))
            score((eps, "pgd"), pgd, part)
    scored = int(valid.sum())
    return [{"epsilon": eps, "attack": attack, "goal": "targeted" if targeted else "untargeted",
             "accuracy": correct[(eps, attack)] / len(labels),
             "success": reached[(eps, attack)] / scored if scored else float("nan"),
             "max_linf": distance[(eps, attack)], "images": len(labels), "scored": scored,
             "steps": steps if attack == "pgd" else 1}
            for eps in epsilons for attack in ("fgsm", "pgd", "noise")]
