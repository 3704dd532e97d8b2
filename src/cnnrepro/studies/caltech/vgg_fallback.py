"""Why a random-VGG19 fallback with a plain new last layer sits at chance, and the
meaningful offline baseline the study runs instead.

Without ImageNet weights, ``vgg19_transfer`` trains a new last layer on a frozen, randomly
initialised VGG19. With a plain Linear there, measured on Caltech images (see
:func:`scale_table`): the head's input (fc7 → ReLU → dropout, fc6/fc7 drawn from
N(0, 0.01²)) is small, mostly a common positive offset (mean 0.04 per unit), and its
between-image std (0.02) is about 7× smaller than the dropout noise in training mode
(0.13). SGD at lr 1e-3 then barely moves the head (weight norm 1.00 → 1.03 in 10 epochs):
logits stay at a few tenths and the loss at ln 3. Without dropout the raw head stays at
chance too; standardising its input fixes it, so the fallback's head is
:func:`cnnrepro.models.standardized_head`. The random conv features themselves are
informative: a linear probe on standardised features (statistics from the training split
only, :func:`backbone_probe`) is far above chance.

What this baseline shows: the pipeline end to end, and how much class information a
*random* VGG19 keeps (the architecture's prior). What it cannot show: what ImageNet
features detect; patches and guided backprop of random filters show the architecture's
prior (edges/blobs from the input statistics), not learned object parts.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.nn import functional as F

PROBE_CS = (0.001, 0.01, 0.1, 1.0)  # default inverse L2 strengths (config: fallback.probe_cs)


def _stages(model: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Output of every stage from the last conv block to the logits (torchvision VGG)."""
    h = torch.flatten(model.avgpool(model.features(x)), 1)
    out = [("features (avgpool, flat)", h)]
    for i, module in enumerate(model.classifier):
        h = module(h)
        out.append((f"classifier[{i}] {type(module).__name__}", h))
    return out


def scale_table(model: nn.Module, x: torch.Tensor, seed: int = 0) -> pd.DataFrame:
    """Scale of each stage on normalised images ``x``, in eval and in train mode (dropout
    on; seeded, global RNG untouched). ``between_image_std`` is the per-unit std across
    images averaged over units (the signal a linear head can use); ``dropout_noise_std``
    the std of train − eval at that stage."""
    was_training = model.training
    rows = []
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        evaluated = dict(_stages(model.eval(), x))
        trained = dict(_stages(model.train(), x))
    model.train(was_training)
    for mode, stages in (("eval", evaluated), ("train", trained)):
        for stage, h in stages.items():
            rows.append({"mode": mode, "stage": stage, "units": h.shape[1],
                         "mean": float(h.mean()), "std": float(h.std()),
                         "between_image_std": float(h.std(0).mean()),
                         "zero_fraction": float((h == 0).float().mean()),
                         "abs_max": float(h.abs().max()),
                         "dropout_noise_std": float((h - evaluated[stage]).std())})
    return pd.DataFrame(rows)


def head_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> dict:
    """Loss, logit range and the new head's weight and gradient norms for one batch in
    train mode (what one SGD step sees)."""
    # the last Linear: the new layer itself, or the one inside the fallback's standardised head
    head = [m for m in model.classifier[-1].modules() if isinstance(m, nn.Linear)][-1]
    was_training = model.training
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model.train()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        grad = torch.autograd.grad(loss, head.weight)[0]
        logits, loss = logits.detach(), loss.detach()
    model.train(was_training)
    return {"loss": loss.item(), "logit_abs_max": float(logits.abs().max()),
            "head_weight_norm": float(head.weight.detach().norm()),
            "head_grad_norm": float(grad.norm())}


def extract_features(model: nn.Module, images: torch.Tensor,
                     normalize: Callable[[torch.Tensor], torch.Tensor], pooling: str = "gap",
                     batch_size: int = 16) -> np.ndarray:
    """Frozen conv features of uint8 ``images``: ``"gap"`` = global average pool of the
    last conv block (512), ``"flatten"`` = torchvision's 7×7 avgpool flattened (25088)."""
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            h = model.features(normalize(images[i:i + batch_size]))
            h = h.mean((2, 3)) if pooling == "gap" else torch.flatten(model.avgpool(h), 1)
            out.append(h.float().cpu())
    return torch.cat(out).numpy()


def linear_probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                 cs: tuple[float, ...] = PROBE_CS, seed: int = 0) -> dict:
    """Standardise (training-split statistics) → multinomial logistic regression, fitted
    on ``"train"``; ``C`` picked on ``"val"`` (ties: the stronger penalty). Returns the
    chosen C, accuracy per split and the validation accuracy of every C."""
    def fit(c: float):
        probe = make_pipeline(StandardScaler(),
                              LogisticRegression(C=c, max_iter=5000, random_state=seed))
        return probe.fit(features["train"], labels["train"])

    val_acc = {c: fit(c).score(features["val"], labels["val"]) for c in cs}
    best = max(cs, key=lambda c: (val_acc[c], -c))
    probe = fit(best)
    return {"C": best, "val_by_C": val_acc,
            "accuracy": {name: float(probe.score(features[name], labels[name]))
                         for name in features}}


def backbone_probe(model: nn.Module, images: dict[str, torch.Tensor],
                   labels: dict[str, torch.Tensor],
                   normalize: Callable[[torch.Tensor], torch.Tensor], seed: int,
                   pooling: str = "gap", cs: tuple[float, ...] = PROBE_CS) -> dict:
    """:func:`linear_probe` on the pooled conv features of ``model``'s frozen backbone: for
    the fallback, a random VGG19 (the offline baseline); with ImageNet weights, a linear
    probe of those. ``images`` and ``labels`` map split names (train, val, test) to uint8
    images and labels."""
    feats = {name: extract_features(model, x, normalize, pooling) for name, x in images.items()}
    result = linear_probe(feats, {k: v.cpu().numpy() for k, v in labels.items()}, tuple(cs),
                          seed=seed)
    return {"seed": seed, "pooling": pooling, "dim": feats["train"].shape[1],
            "n": {k: len(v) for k, v in feats.items()}, **result}
