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
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from sklearn.metrics import confusion_matrix
from torch import nn

from .runtime import Normalized


def fgsm_paper_perturb(model: nn.Module, images_norm: torch.Tensor, labels: torch.Tensor,
                       mean: list[float], std: list[float], epsilon: float) -> torch.Tensor:
    """Captum FGSM exactly as the original called it, on the un-normalised image."""
    from captum.robust import FGSM

    mean_t = torch.tensor(mean, device=images_norm.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images_norm.device).view(1, -1, 1, 1)
    unnormalised = images_norm * std_t + mean_t  # the original's x / 2 + 0.5
    attack = FGSM(model, lower_bound=0.0, upper_bound=1.0)
    return attack.perturb(unnormalised, epsilon=epsilon, target=labels).detach()


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
    return attack(images01, labels).detach()


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
        yield eps, torch.clamp(images01 + eps * step, min=0, max=1)


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
