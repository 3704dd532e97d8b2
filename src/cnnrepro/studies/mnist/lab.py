"""Study ``mnist``: the lab's probes of one trained CNN (the ``lab`` stage), and the
occlusion maps' sanity checks (the ``randomisation`` stage).

The probes work in pixel space ([0, 1] images; the model wrapped with its normalisation):
predictions on random test images, filters, activations, occlusion (Captum), non-targeted
"fooling" images, targeted images and learned class noises. The procedures follow the
assignment the lab answers (see ../shared/STUDIES.md): gradient *ascent* on a logit with a
fixed step, no clipping to the image range (the assignment has none; the report says so).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from captum.attr import Occlusion
from torch import nn

from ... import attribution
from ...datasets.prepared import per_class_subset
from ...io import write_json, write_npz
from ...provenance import stamp
from ...runtime import Normalized, forward_with_hooks
from ...study import Stages
from ...trained import open_trained

STAGES = Stages()


def activations(model: nn.Module, x: torch.Tensor, n_layers: int = 2) -> list[torch.Tensor]:
    """Outputs of the first ``n_layers`` ReLUs of the conv stack (conv → [BN] → ReLU)."""
    relus = [m for m in model.features if isinstance(m, nn.ReLU)][:n_layers]
    found: list[torch.Tensor] = []
    forward_with_hooks(model, x, relus, lambda _m, _i, out: found.append(out.detach()))
    return found


def occlusion_maps(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, patch: int,
                   stride: int, grey: float) -> torch.Tensor:
    """Drop of the true-class probability when a grey patch covers each pixel (Captum's
    Occlusion, batched; each pixel averages the windows that cover it)."""
    prob = lambda x: torch.softmax(model(x), 1)  # noqa: E731 - Captum wants a callable
    return Occlusion(prob).attribute(images, sliding_window_shapes=(1, patch, patch),
                                     strides=(1, stride, stride), baselines=grey,
                                     target=labels, perturbations_per_eval=64)


def ascend(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, step: float, iterations: int,
           threshold: float | None = None, source: torch.Tensor | None = None,
           beta: float = 0.0) -> dict[str, Any]:
    """Gradient ascent on C = logit[target] − β·MSE(x, source), one image per target.

    Images whose target probability reaches ``threshold`` stop moving. Returns the final
    images, per-iteration cost and target probability, and the iteration each one stopped.
    """
    x = x.clone()
    rows = torch.arange(len(targets))
    active = torch.ones(len(targets), dtype=torch.bool, device=x.device)
    stopped = torch.full((len(targets),), iterations, dtype=torch.long)
    costs, probs = [], []
    for it in range(iterations):
        x.requires_grad_(True)
        logits = model(x)
        cost = logits[rows, targets]
        if source is not None:
            cost = cost - beta * ((x - source) ** 2).flatten(1).mean(1)
        grad, = torch.autograd.grad(cost.sum(), x)  # images are independent in eval mode
        p = torch.softmax(logits.detach(), 1)[rows, targets]
        costs.append(cost.detach().cpu())
        probs.append(p.cpu())
        if threshold is not None:
            done = active & (p >= threshold)
            stopped[done.cpu()] = it
            active &= ~done
            if not active.any():
                break
        with torch.no_grad():
            x = x.detach() + step * grad * active.view(-1, 1, 1, 1)
    with torch.no_grad():
        final = torch.softmax(model(x), 1)
    return {"images": x.detach(), "cost": torch.stack(costs, 1), "prob": torch.stack(probs, 1),
            "stopped": stopped, "final_probs": final}


def learn_noise(model: nn.Module, images: torch.Tensor, target: int, step: float,
                iterations: int) -> torch.Tensor:
    """One noise N (zeros at start) ascending the mean logit[target] of ``images`` + N."""
    noise = torch.zeros_like(images[:1], requires_grad=True)
    for _ in range(iterations):
        cost = model(images + noise)[:, target].mean()
        grad, = torch.autograd.grad(cost, noise)
        with torch.no_grad():
            noise += step * grad
    return noise.detach()


def noise_probe(model: nn.Module, x01: torch.Tensor, learn: torch.Tensor, held_out: torch.Tensor,
                n_classes: int, step: float, iterations: int, gen: torch.Generator
                ) -> dict[str, Any]:
    """One noise per class learned on the images ``learn``, a same-norm Gaussian control per
    noise, and the share of predictions each sends to its class: on the learning images
    (in-sample, as the assignment shows them) and on the ``held_out`` images, which the
    noise never saw (the claim's measure: does the noise generalise?)."""
    if np.intersect1d(learn.cpu().numpy(), held_out.cpu().numpy()).size:
        raise ValueError("held-out images must be disjoint from the noise's learning images")
    noises = torch.cat([learn_noise(model, x01[learn], t, step, iterations)
                        for t in range(n_classes)])
    controls = torch.randn(noises.shape, generator=gen).to(noises.device)
    controls *= noises.flatten(1).norm(dim=1).view(-1, 1, 1, 1) / controls.flatten(1).norm(
        dim=1).view(-1, 1, 1, 1)
    targets = torch.arange(n_classes, device=noises.device).view(-1, 1)

    def predict(added: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack([model(x01[images] + n).argmax(1) for n in added])

    out: dict[str, Any] = {"noise": noises}
    for name, images in (("in_sample", learn), ("held_out", held_out)):
        pred, control = predict(noises, images), predict(controls, images)
        out[name] = {"images": int(len(images)),
                     "to_target": (pred == targets).float().mean().item(),
                     "control_to_target": (control == targets).float().mean().item(),
                     "pred": pred, "control_pred": control}
    return out


def targeted_pairs(n_sources: int, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(source class, target class) of every targeted pair: each source class goes to every
    other class (a target equal to the source's class tests nothing)."""
    pairs = [(s, t) for s in range(n_sources) for t in range(n_classes) if t != s]
    return torch.tensor([s for s, _ in pairs]), torch.tensor([t for _, t in pairs])


@STAGES.register(writes=("lab", "lab_summary"), reads=("weights",), data=True, per_run=True,
                 settings="lab")
def lab(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
               settings: dict[str, Any], lab: str, lab_summary: str,
               threads: int | None = None) -> None:
    """Every probe of the lab on one trained (model, seed); data files only."""
    net, splits, device = open_trained(spec, weights, data, threads)
    model = Normalized(net, spec["normalize"]["mean"], spec["normalize"]["std"]).to(device).eval()
    test = splits["test"]
    x01 = test.images.float() / 255
    labels = test.labels
    n_classes = len(test.classes)
    gen = torch.Generator().manual_seed(seed)
    pick = lambda n: torch.randperm(len(labels), generator=gen)[:n].to(device)  # noqa: E731

    shown = pick(settings["prediction_images"])
    with torch.no_grad():
        shown_pred = model(x01[shown]).argmax(1)
    probe = x01[shown[:1]]
    act1, act2 = activations(net, (probe - model.mean) / model.std)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]

    occ = settings["occlusion"]
    occluded = pick(occ["images"])
    with torch.no_grad():
        p_true = torch.softmax(model(x01[occluded]), 1)[torch.arange(len(occluded)),
                                                        labels[occluded]]
    drop = occlusion_maps(model, x01[occluded], labels[occluded], occ["patch"], occ["stride"],
                          occ["grey"])

    fool = settings["fooling"]
    targets = torch.arange(n_classes, device=device)
    start = (fool["mean"] + fool["std"] * torch.randn(n_classes, *x01.shape[1:],
                                                      generator=gen)).to(device)
    fooled = ascend(model, start, targets, fool["step"], fool["iterations"], fool["threshold"])

    tg = settings["targeted"]
    sources = torch.stack([torch.nonzero(labels == c)[0, 0] for c in range(tg["sources"])])
    pair_sources, pair_targets = targeted_pairs(tg["sources"], n_classes)
    src = x01[sources[pair_sources.to(device)]]
    pair_targets = pair_targets.to(device)
    sweep, targeted = [], None
    for beta in tg["betas"]:  # the MSE weight's trade-off: distance to the source vs success
        run = ascend(model, src, pair_targets, tg["step"], tg["iterations"], tg["threshold"],
                     source=src, beta=beta)
        mse = ((run["images"] - src) ** 2).flatten(1).mean(1)
        sweep.append({"beta": beta, "hit_rate": float((run["final_probs"].argmax(1)
                                                       == pair_targets).float().mean()),
                      "mean_mse": float(mse.mean()), "median_mse": float(mse.median()),
                      "mean_target_probability": float(
                          run["final_probs"][torch.arange(len(pair_targets)),
                                             pair_targets].mean())})
        if beta == tg["beta"]:
            targeted, targeted_mse = run, mse

    nz = settings["noise"]
    # one permutation: the learning images and the held-out images never overlap
    order = torch.randperm(len(labels), generator=gen).to(device)
    fixed, held = order[:nz["images"]], order[nz["images"]:nz["images"] + nz["held_out"]]
    noise = noise_probe(model, x01, fixed, held, n_classes, nz["step"], nz["iterations"], gen)

    cpu = lambda t: t.detach().cpu().numpy()  # noqa: E731
    write_npz(lab, classes=np.asarray(test.classes),
              shown_images=cpu(x01[shown]), shown_labels=cpu(labels[shown]),
              shown_pred=cpu(shown_pred), conv1=cpu(convs[0].weight), conv2=cpu(convs[1].weight),
              probe_image=cpu(probe[0]), act1=cpu(act1[0]), act2=cpu(act2[0]),
              occ_images=cpu(x01[occluded]), occ_labels=cpu(labels[occluded]),
              occ_p_true=cpu(p_true), occ_drop=cpu(drop),
              fool_images=cpu(fooled["images"]), fool_cost=cpu(fooled["cost"]),
              fool_prob=cpu(fooled["prob"]), fool_stopped=cpu(fooled["stopped"]),
              fool_final=cpu(fooled["final_probs"]),
              targeted_sources=cpu(x01[sources]), targeted_source_labels=cpu(labels[sources]),
              targeted_pair_sources=cpu(pair_sources),
              targeted_images=cpu(targeted["images"]), targeted_targets=cpu(pair_targets),
              targeted_probs=cpu(targeted["final_probs"]), targeted_mse=cpu(targeted_mse),
              noise=cpu(noise["noise"]), noise_indices=cpu(fixed), noise_images=cpu(x01[fixed]),
              noise_labels=cpu(labels[fixed]), noise_pred=cpu(noise["in_sample"]["pred"]),
              control_pred=cpu(noise["in_sample"]["control_pred"]),
              noise_held_out_indices=cpu(held),
              noise_held_out_pred=cpu(noise["held_out"]["pred"]))
    fool_p = fooled["final_probs"][targets, targets]
    targeted_hit = targeted["final_probs"].argmax(1) == pair_targets
    write_json(lab_summary, {
        "model": spec["model"], "seed": seed,
        "fooling": {"threshold": fool["threshold"],
                    "reached": float((fool_p >= fool["threshold"]).float().mean()),
                    "mean_target_probability": float(fool_p.mean()),
                    "iterations": cpu(fooled["stopped"]).tolist()},
        "targeted": {"beta": tg["beta"], "pairs": int(len(pair_targets)),
                     "hit_rate": float(targeted_hit.float().mean()),
                     "mean_mse": float(targeted_mse.mean()), "beta_sweep": sweep},
        "noise": {k: {m: v for m, v in noise[k].items() if not m.endswith("pred")}
                  for k in ("in_sample", "held_out")},
        "provenance": stamp(spec, seed, device)})


@STAGES.register(writes=("randomisation", "randomisation_maps", "class_sensitivity"),
                 reads=("weights",), data=True, per_run=True, settings="randomisation",
                 params=lambda config: {"occlusion": config["studies"]["mnist"]["lab"]["occlusion"]})
def randomisation(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
                  settings: dict[str, Any], occlusion: dict[str, Any], randomisation: str,
                  randomisation_maps: str, class_sensitivity: str,
                  threads: int | None = None) -> None:
    """Do the occlusion maps depend on the learned weights, and on the class explained
    (Adebayo et al. 2018)? The lab's occlusion (its patch, stride and grey; absolute drop)
    on ``images`` class-balanced test images, for the trained model and with its layers
    re-initialised from the output down (:func:`cnnrepro.attribution.randomisation_cascade`),
    and for another class (:func:`cnnrepro.attribution.class_sensitivity`)."""
    net, splits, device = open_trained(spec, weights, data, threads)
    test = splits["test"]
    pick = per_class_subset(test.labels.cpu().numpy(), settings["images"])
    x01, y = test.images[pick].float() / 255, test.labels[pick]
    norm = spec["normalize"]

    def maps(model: nn.Module, target: torch.Tensor = y) -> dict[str, np.ndarray]:
        wrapped = Normalized(model, norm["mean"], norm["std"]).to(device).eval()
        drop = occlusion_maps(wrapped, x01, target, occlusion["patch"], occlusion["stride"],
                              occlusion["grey"])
        return {"occlusion": drop.abs().sum(1).detach().cpu().numpy()}

    seed_ = settings["seed"] + seed
    frame, strip = attribution.randomisation_cascade(net, maps, seed_)
    classes = attribution.class_sensitivity(lambda target: maps(net, target), y,
                                            len(test.classes), seed_)
    attribution.write_map_checks(
        test, pick, spec["model"], seed, device,
        {"spec": spec, "settings": settings, "occlusion": occlusion}, frame=frame, strip=strip,
        randomisation=randomisation, randomisation_maps=randomisation_maps, classes=classes,
        class_sensitivity=class_sensitivity)
