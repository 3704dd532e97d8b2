"""Study ``vdk``: the stages after training, each on one trained (model, seed).

Attribution (the paper's four Captum methods and their deletion/insertion faithfulness),
the model-randomisation test of those methods, FGSM and its sanity checks, and the
Gaussian-blur search, both protocols. Each writes data files only; figures and the claims
table read them.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import torch

from ... import attacks, attribution
from ...datasets.prepared import load_split, per_class_subset
from ...io import write_csv, write_json, write_npz
from ...provenance import stamp
from ...runtime import normalizer, standardizer
from ...study import Stages
from ...trained import open_trained
from .blur import (
    IMMUNE,
    clean_blur_flips,
    draw_sigmas,
    first_flip,
    min_blur_paper,
    paper_kernel_sizes,
)

CAR_CLASS, CAR_RANK = "automobile", 1  # official test index 9 = test/automobile/0001.jpg
STAGES = Stages()
# Each runs on one trained (model, seed), reading its weights and the study's splits.
PER_RUN = {"reads": ("weights",), "data": True, "per_run": True}


def showcase_indices(labels: np.ndarray, classes: list[str], per_class: int) -> np.ndarray:
    """The paper's car first, then the first ``per_class`` test images of every class."""
    car = np.flatnonzero(labels == classes.index(CAR_CLASS))[CAR_RANK]
    rest = [i for c in range(len(classes)) for i in np.flatnonzero(labels == c)[:per_class]
            if i != car]
    return np.array([car, *rest])


@STAGES.register(writes=("attributions", "faithfulness", "ig_completeness"),
                 settings="attribution", **PER_RUN,
                 params=lambda config: {"batching": config["runtime"]["attribution_batch"]})
def explain(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
            settings: dict[str, Any], batching: dict[str, dict[str, int | None]],
            attributions: str, faithfulness: str, ig_completeness: str,
            threads: int | None = None) -> None:
    """Attributions of the showcase images, deletion/insertion AUC per method, and
    Integrated Gradients' completeness on the showcase images (its convergence delta).
    ``batching``: config ``runtime.attribution_batch`` (Captum's batch sizes per device
    type); the ones used are recorded in the attributions file's provenance."""
    model, splits, device = open_trained(spec, weights, data, threads)
    captum_batching = attribution.batching(batching, device)
    normalize = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)
    full_test = load_split(data["test"]).to(device)  # the car is picked from the full set
    labels = full_test.labels.cpu().numpy()
    show = showcase_indices(labels, full_test.classes, settings["images_per_class"])
    x = normalize(full_test.images[show])
    target = full_test.labels[show]
    maps = attribution.explain(model, x, target, settings, seed, captum_batching)
    with torch.no_grad():
        probs = torch.softmax(model(x), 1).cpu().numpy()
    provenance = {**stamp(spec, seed, device), "captum_batching": captum_batching}
    write_npz(attributions, images=full_test.images[show].cpu().numpy(), labels=labels[show],
              indices=show, probs=probs, classes=np.asarray(full_test.classes),
              provenance=np.asarray(json.dumps(provenance)),
              **{m: a.cpu().numpy().astype(np.float32) for m, a in maps.items()})

    complete = attribution.ig_completeness(
        model, x, target, ig_steps=settings["ig_steps"],
        internal_batch_size=captum_batching.get("internal_batch_size"))
    write_csv(ig_completeness, pd.DataFrame({"model": spec["model"], "seed": seed,
                                             "image": show, **complete}))

    test = splits["test"]
    pick = per_class_subset(test.labels.cpu().numpy(), settings["auc_images"])
    xa, ya = normalize(test.images[pick]), test.labels[pick]
    auc_settings = {**settings, "nt_samples": settings["auc_nt_samples"]}
    rows = []
    for method, attr in {**attribution.explain(model, xa, ya, auc_settings, seed,
                                               captum_batching),
                         "random": attribution.random_attributions(xa.shape, seed)}.items():
        deletion, insertion = attribution.deletion_insertion(model, xa, ya, attr.to(device),
                                                             settings["auc_steps"])
        rows += [{"model": spec["model"], "seed": seed, "image": int(i), "method": method,
                  "deletion_auc": d, "insertion_auc": s}
                 for i, d, s in zip(pick, deletion, insertion)]
    write_csv(faithfulness, pd.DataFrame(rows))


@STAGES.register(writes=("randomisation", "randomisation_maps", "class_sensitivity"),
                 settings="randomisation",
                 **PER_RUN, params=lambda config: {
                     "attribution_settings": config["studies"]["vdk"]["attribution"],
                     "batching": config["runtime"]["attribution_batch"]})
def randomisation(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
                  settings: dict[str, Any], attribution_settings: dict[str, Any],
                  batching: dict[str, dict[str, int | None]], randomisation: str,
                  randomisation_maps: str, class_sensitivity: str,
                  threads: int | None = None) -> None:
    """Do the maps depend on the learned weights (Adebayo et al. 2018)? Each method the
    report shows, on class-balanced test images, for the trained model and with its layers
    re-initialised from the output down (:func:`cnnrepro.attribution.randomisation_cascade`),
    with the attribution settings of the shown maps but ``settings['nt_samples']``. And on
    the same images: do they depend on the class explained
    (:func:`cnnrepro.attribution.class_sensitivity`)?"""
    model, splits, device = open_trained(spec, weights, data, threads)
    test = splits["test"]
    pick = per_class_subset(test.labels.cpu().numpy(), settings["images"])
    normalize = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)
    options = {**attribution_settings, "nt_samples": settings["nt_samples"]}
    seed_ = settings["seed"] + seed
    x, y = normalize(test.images[pick]), test.labels[pick]
    captum_batching, methods = attribution.batching(batching, device), tuple(settings["methods"])
    frame, strip = attribution.randomisation_cascade(model, attribution.explained_maps(
        x, y, options, seed_, captum_batching, methods), seed_)
    classes = attribution.class_sensitivity(lambda target: attribution.explained_maps(
        x, target, options, seed_, captum_batching, methods)(model), y, len(test.classes), seed_)
    attribution.write_map_checks(
        test, pick, spec["model"], seed, device, spec, frame=frame, strip=strip,
        randomisation=randomisation, randomisation_maps=randomisation_maps, classes=classes,
        class_sensitivity=class_sensitivity)


def _open_attacked(spec: dict[str, Any], weights: str, data: dict[str, str],
                   settings: dict[str, Any], threads: int | None):
    """Model, the attacked test images (``settings['images']``, class-balanced), device,
    normalisation constants."""
    model, splits, device = open_trained(spec, weights, data, threads)
    test = splits["test"]
    if settings.get("images"):
        test = test.take(per_class_subset(test.labels.cpu().numpy(), settings["images"]))
    return model, test, device, spec["normalize"]["mean"], spec["normalize"]["std"]


@STAGES.register(writes=("fgsm", "fgsm_curve"), settings="fgsm", **PER_RUN)
def fgsm(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
         settings: dict[str, Any], fgsm: str, fgsm_curve: str,
         threads: int | None = None) -> None:
    """Both FGSM protocols on the (configured subset of the) test set."""
    model, test, device, mean, std = _open_attacked(spec, weights, data, settings, threads)
    images01 = test.images.float() / 255
    n_classes = len(test.classes)
    paper = attacks.fgsm_paper(model, standardizer(mean, std, device)(images01), test.labels,
                               mean, std, settings["paper_epsilon"], n_classes)
    clean = attacks.fgsm_clean(model, images01, test.labels, mean, std, settings["epsilons"],
                               n_classes)
    write_csv(fgsm_curve, pd.DataFrame([{**r, "model": spec["model"], "seed": seed}
                                        for r in clean["curve"]]))
    write_json(fgsm, {
        "model": spec["model"], "seed": seed, "classes": test.classes,
        "paper": {k: paper[k] for k in ("epsilon", "score", "n_scored", "accuracy_all",
                                         "clean_accuracy", "confusion")},
        "clean": {"curve": clean["curve"],
                  "confusion": {f"{eps:g}": m for eps, m in clean["confusion"].items()}},
        "provenance": stamp(spec, seed, device)})


@STAGES.register(writes=("attack_checks",), settings="attack_checks", **PER_RUN)
def attack_checks(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
                  settings: dict[str, Any], attack_checks: str,
                  threads: int | None = None) -> None:
    """Is the FGSM attack what it says it is: FGSM, PGD and random-sign noise of the same
    L-infinity size at every eps on the same class-balanced test images, every image
    checked against its budget (the sanity claims read this)."""
    model, test, device, mean, std = _open_attacked(spec, weights, data, settings, threads)
    rows = attacks.attack_checks(model, test.images.float() / 255, test.labels, mean, std,
                                 settings["epsilons"], settings["pgd_steps"],
                                 settings["pgd_alpha"], settings["seed"] + seed)
    write_csv(attack_checks, pd.DataFrame([{**r, "model": spec["model"], "seed": seed}
                                           for r in rows]))


@STAGES.register(writes=("blur", "blur_summary"), settings="blur", **PER_RUN)
def blur(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
                settings: dict[str, Any], blur: str, blur_summary: str,
                threads: int | None = None) -> None:
    """Minimal blur perturbation, paper protocol (batched) and clean protocol."""
    model, test, device, mean, std = _open_attacked(spec, weights, data, settings, threads)
    p = settings["paper"]
    kernels = paper_kernel_sizes(p["arg_min"], p["arg_max"], p["arg_step"])
    sigmas = draw_sigmas(len(test), len(kernels), p["attempts"], p["sigma_seed"] + seed)
    normalize = normalizer(mean, std, device)
    paper_k = min_blur_paper(model, normalize(test.images), test.labels.cpu(), sigmas, kernels)
    with torch.no_grad():
        pred = torch.cat([model(normalize(test.images[i:i + 1000])).argmax(1)
                          for i in range(0, len(test), 1000)]).cpu()
    correct = (pred == test.labels.cpu()).numpy()
    c = settings["clean"]
    grid = np.round(np.arange(c["sigma_min"], c["sigma_max"] + 1e-9, c["sigma_step"]), 6)
    clean_sigma = np.full(len(test), np.nan)
    keep = np.flatnonzero(correct)
    flips = clean_blur_flips(
        model, test.images[torch.as_tensor(keep, device=device)].float() / 255,
        test.labels[torch.as_tensor(keep, device=device)].cpu(),
        standardizer(mean, std, device), list(grid))
    clean_sigma[keep] = first_flip(flips, list(grid))
    write_npz(blur, paper_kernel=paper_k, clean_sigma=clean_sigma, correct=correct,
              labels=test.labels.cpu().numpy(), kernel_sizes=np.asarray(kernels),
              sigma_grid=grid, clean_flipped=flips)
    immune_paper = float((paper_k == IMMUNE).mean())
    immune_clean = float(np.isnan(clean_sigma[keep]).mean()) if len(keep) else float("nan")
    write_json(blur_summary, {
        "model": spec["model"], "seed": seed, "n": int(len(test)),
        "paper": {"immune": immune_paper, "affected": 1 - immune_paper,
                  "kernel_sizes": kernels, "attempts": p["attempts"]},
        "clean": {"n_correct": int(len(keep)), "immune": immune_clean,
                  "affected": 1 - immune_clean, "sigma_grid": grid.tolist(),
                  # per sigma, every correct image blurred at it: the sanity claim's curve
                  "damage": flips.mean(1).tolist() if len(keep) else []},
        "provenance": stamp(spec, seed, device)})
