"""FGSM: untargeted and targeted in pixel space (torchattacks), and the vdk study's
``paper`` protocol (Captum).

``paper`` (what the original notebook did): Captum's ``captum.robust.FGSM`` with bounds
[0, 1] and its default loss −log(output[target]) taken on raw logits, applied to the
un-normalised image; the perturbed [0, 1] image goes into a model trained on normalised
inputs without re-normalising. The score counts only images classified correctly before
the attack and compares the new prediction with the clean one.

``clean``: torchattacks' FGSM (cross-entropy) on a model that normalises inside
(:class:`cnnrepro.runtime.Normalized`), accuracy against the true labels over an epsilon
sweep. :data:`ATTACKS` names the pixel-space attacks every study may use:
``fgsm`` (x' = clip(x + eps * sign(grad CE(x, y)))) and ``fgsm_targeted``
(x' = clip(x - eps * sign(grad CE(x, target)))).
"""

from __future__ import annotations

from typing import Any, Callable

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


ATTACKS: dict[str, Callable[..., torch.Tensor]] = {
    "fgsm": fgsm_perturb,
    "fgsm_targeted": lambda wrapped, x, targets, eps: fgsm_perturb(wrapped, x, targets, eps,
                                                                    targeted=True),
}


def fgsm_clean(model: nn.Module, images01: torch.Tensor, labels: torch.Tensor,
               mean: list[float], std: list[float], epsilons: list[float], n_classes: int,
               batch_size: int = 500) -> dict[str, Any]:
    """Accuracy against true labels per epsilon, and the confusion matrix per epsilon."""
    model.eval()
    wrapped = Normalized(model, mean, std).to(images01.device).eval()
    true = labels.cpu().numpy()
    rows, confusions = [], {}
    for eps in epsilons:
        preds = []
        for start in range(0, len(labels), batch_size):
            x, y = images01[start:start + batch_size], labels[start:start + batch_size]
            adv = fgsm_perturb(wrapped, x, y, eps) if eps > 0 else x
            with torch.no_grad():
                preds.append(wrapped(adv).argmax(1).cpu())
        pred = torch.cat(preds).numpy()
        rows.append({"epsilon": eps, "accuracy": float((pred == true).mean())})
        confusions[eps] = confusion_matrix(true, pred, labels=np.arange(n_classes))
    return {"curve": rows, "confusion": confusions}
