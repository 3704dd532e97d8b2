"""Study ``concepts``: its stages, each writing data files only (figures and the claims
table read them).

* :func:`convtypes`: the convolution types measured against the slides' formulas;
* :func:`hierarchy`: low, middle and deep features of a borrowed trained model;
* :func:`cam`: CAM of the study's own GAP model and its agreement with Grad-CAM
  (one job per seed);
* :func:`gradcam`: Grad-CAM and Guided Grad-CAM of every target model;
* :func:`fgsm`: FGSM and targeted FGSM examples, and the sweep over epsilon, on every
  target model and seed;
* :func:`attack_checks`: is each of the two attacks an attack: FGSM beside PGD and
  random-sign noise of the same size, untargeted and targeted, on the same targets.

Borrowed models arrive resolved (:mod:`.upstream`): ``{spec, seed, weights, data, …}``.
Every stage records its provenance: a ``provenance`` JSON string inside its NPZ, or a
JSON file beside its CSV tables (the convolution types).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import torch

from ... import attribution
from ...attacks import attack_checks as checked_attacks
from ...datasets.prepared import per_class_subset
from ...io import write_csv, write_json, write_npz
from ...provenance import stamp
from ...runtime import normalizer
from ...study import Stages
from ...trained import open_trained
from . import cam as camlib
from . import fgsm_examples as attacks
from . import upstream
from .convtypes import measure_convtypes

STAGES = Stages()


def _provenance(config: Any, seed: int | None, device: Any) -> np.ndarray:
    return np.asarray(json.dumps(stamp(config, seed, device), default=str))


def _opened(ref: dict[str, Any], threads: int | None):
    """A borrowed model, its test split (its study's subset applied), device, mean, std."""
    model, splits, device = open_trained(ref["spec"], ref["weights"], ref["data"], threads)
    norm = ref["spec"]["normalize"]
    return model, splits["test"], device, norm["mean"], norm["std"]


def _describe(ref: dict[str, Any]) -> dict[str, Any]:
    return {k: ref[k] for k in ("study", "model", "seed")}


# ---------------------------------------------------------------- convolution types ---

# Measures CPU latency beside its formulas: no GPU (the evaluation's resources).
@STAGES.register(writes=("convtypes_checks", "convtypes_ratios", "convtypes_layers",
                         "convtypes_summary", "convtypes_meta"),
                 settings="convtypes", resources="evaluate")
def convtypes(*, settings: dict[str, Any], convtypes_checks: str, convtypes_ratios: str,
              convtypes_layers: str, convtypes_summary: str, convtypes_meta: str,
              threads: int | None = None) -> None:
    """Every layer of the grid (``settings``) measured (weights, parameters, MACs, output
    size, receptive field, latency) and checked against its formula;
    ``convtypes_summary`` counts the matches per layer type and quantity."""
    if threads:
        torch.set_num_threads(threads)
    grid = {k: v for k, v in settings.items() if k != "seed"}
    seed, sizes = settings["seed"], dict(grid)
    repeats, warmup = sizes.pop("repeats"), sizes.pop("warmup")
    tables = measure_convtypes(sizes, repeats=repeats, warmup=warmup, seed=seed)
    found = tables["checks"]
    counts = (found.groupby(["layer", "quantity", "expression"], sort=False)["match"]
              .agg(rows="size", matches="sum").reset_index())
    write_csv(convtypes_checks, found)
    write_csv(convtypes_ratios, tables["ratios"])
    write_csv(convtypes_layers, tables["layers"])
    write_csv(convtypes_summary, counts)
    write_json(convtypes_meta, {"rows": int(len(found)), "matches": int(found["match"].sum()),
                      "layers": int(len(tables["layers"])),
                      "provenance": stamp({"convtypes": grid}, seed, "cpu")})


# ---------------------------------------------------------------- hierarchy ------------

HIERARCHY_KEYS = ("channels", "steps", "lr", "l2", "init_std")  # beside the source model's


def _borrowed(resolved: Any) -> Any:
    """The input function of a stage on borrowed models: their weights and splits, to wait
    for (the stage opens them through its ``targets`` or ``source``)."""
    return lambda config, w: {"files": upstream.files(resolved(config))}


def _targets(config: dict[str, Any], kind: str, all_seeds: bool = False) -> list:
    return [r for runs in upstream.targets(config, kind, all_seeds).values() for r in runs]


def _block(config: dict[str, Any], kind: str) -> dict[str, Any]:
    return config["studies"][upstream.STUDY][kind]


@STAGES.register(writes=("hierarchy",),
                 inputs=_borrowed(lambda config: [upstream.hierarchy_source(config)]),
                 params=lambda config: {
                     "source": upstream.hierarchy_source(config),
                     "settings": {k: _block(config, "hierarchy")[k] for k in HIERARCHY_KEYS}})
def hierarchy(*, source: dict[str, Any], settings: dict[str, Any], hierarchy: str,
              threads: int | None = None) -> None:
    """Filters and activation-maximisation images of a low, a middle and a deep conv layer
    of ``source`` (the deck's first slide). The images are optimised in the model's input
    space within the normalised range of [0, 1] pixels and stored back in pixels."""
    model, test, device, mean, std = _opened(source, threads)
    shape = tuple(test.images.shape[1:])
    m, s = np.asarray(mean), np.asarray(std)
    bounds = (float((-m / s).min()), float(((1 - m) / s).max()))
    found = camlib.hierarchical_features(model, shape, channels_per_layer=settings["channels"],
                                      steps=settings["steps"], lr=settings["lr"],
                                      l2=settings["l2"], init_std=settings["init_std"],
                                      bounds=bounds, seed=source["seed"])
    arrays: dict[str, np.ndarray] = {"levels": np.asarray(list(found))}
    for level, f in found.items():
        pixels = f["images"] * s.reshape(1, -1, 1, 1) + m.reshape(1, -1, 1, 1)
        arrays.update({
            f"{level}_layer": np.asarray(f["layer"]),
            f"{level}_filters": f["filters"].astype(np.float32),
            f"{level}_channels": np.asarray(f["channels"]),
            f"{level}_images": np.clip(pixels, 0, 1).astype(np.float32),
            f"{level}_activation_start": f["activation_start"],
            f"{level}_activation_end": f["activation_end"]})
        if f["filter_images"] is not None:
            arrays[f"{level}_filter_images"] = f["filter_images"].astype(np.float32)
    write_npz(hierarchy, **arrays,
              provenance=_provenance({**_describe(source), "settings": settings},
                                     source["seed"], device))


# ---------------------------------------------------------------- CAM -----------------

@STAGES.register(writes=("cam", "cam_agreement"), reads=("weights",), data=True, per_run=True,
                 settings="cam")
def cam(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
        settings: dict[str, Any], cam: str, cam_agreement: str,
        threads: int | None = None) -> None:
    """CAM of the GAP model for the true class of ``images_per_class`` test images per
    class, and, on ``agreement_images`` test images, CAM against Grad-CAM of the same last
    conv block (for a GAP + linear model they agree up to the scale 1/(h·w))."""
    model, splits, device = open_trained(spec, weights, data, threads)
    test = splits["test"]
    labels = test.labels.cpu().numpy()
    normalize = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)
    pick = per_class_subset(labels, settings["images_per_class"] * len(test.classes))
    x, y = normalize(test.images[pick]), test.labels[pick]
    maps = camlib.class_activation_maps(model, x, y)
    probs = torch.softmax(torch.from_numpy(maps["logits"]), 1).numpy()
    write_npz(cam, images=test.images[pick].cpu().numpy(), labels=labels[pick],
              pred=probs.argmax(1), conf=probs.max(1), cam=maps["normalized"].astype(np.float32),
              classes=np.asarray(test.classes),
              provenance=_provenance({"spec": spec, "settings": settings}, seed, device))
    check = per_class_subset(labels, settings["agreement_images"])
    table = camlib.cam_gradcam_agreement(model, normalize(test.images[check]), test.labels[check])
    write_csv(cam_agreement, table.assign(test_index=check, model=spec["model"], seed=seed))


@STAGES.register(writes=("randomisation", "randomisation_maps", "class_sensitivity"),
                 reads=("weights",), data=True, per_run=True, settings="randomisation")
def randomisation(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
                  settings: dict[str, Any], randomisation: str, randomisation_maps: str,
                  class_sensitivity: str, threads: int | None = None) -> None:
    """Do CAM, Grad-CAM and Guided Grad-CAM depend on the learned weights (Adebayo et al.
    2018)? On ``images`` class-balanced test images, the GAP model's maps of the true class
    as the report shows them (CAM and Grad-CAM min-max scaled; Guided Grad-CAM absolute,
    channels summed), Grad-CAM at the last conv layer, for the trained model and with its
    layers re-initialised from the output down
    (:func:`cnnrepro.attribution.randomisation_cascade`); and whether they depend on the
    class explained (:func:`cnnrepro.attribution.class_sensitivity`)."""
    model, splits, device = open_trained(spec, weights, data, threads)
    test = splits["test"]
    pick = per_class_subset(test.labels.cpu().numpy(), settings["images"])
    x = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)(
        test.images[pick])
    y = test.labels[pick]

    def maps(net: torch.nn.Module, target: torch.Tensor = y) -> dict[str, np.ndarray]:
        layer = camlib.conv_layers(net, x[:1])[-1][1]
        return {"cam": camlib.class_activation_maps(net, x, target)["normalized"],
                "grad_cam": camlib.grad_cam(net, x, target, layer)["normalized"],
                "guided_grad_cam": np.abs(camlib.guided_grad_cam(net, x, target, layer)).sum(1)}

    frame, strip = attribution.randomisation_cascade(model, maps, settings["seed"] + seed)
    classes = attribution.class_sensitivity(lambda target: maps(model, target), y,
                                            len(test.classes), settings["seed"] + seed)
    attribution.write_map_checks(
        test, pick, spec["model"], seed, device, {"spec": spec, "settings": settings}, frame=frame,
        strip=strip, randomisation=randomisation, randomisation_maps=randomisation_maps,
        classes=classes, class_sensitivity=class_sensitivity)


# ---------------------------------------------------------------- Grad-CAM ------------

@STAGES.register(writes=("gradcam",), inputs=_borrowed(lambda config: _targets(config, "gradcam")),
                 params=lambda config: {
                     "targets": upstream.targets(config, "gradcam"),
                     "settings": {"images": _block(config, "gradcam")["images"]}})
def gradcam(*, targets: dict[str, list[dict[str, Any]]], settings: dict[str, Any],
            gradcam: str, threads: int | None = None) -> None:
    """Grad-CAM (Captum ``LayerGradCam``, ReLU as the slides) and ``GuidedGradCam`` of the
    true class for ``images`` class-balanced test images of every target (its first seed),
    at the target's ``layer`` (null: its last conv layer in call order). Arrays are stored
    per target as ``<target>__<name>``; ``targets`` (a JSON string) says which model,
    seed, layer and classes each is."""
    arrays: dict[str, np.ndarray] = {}
    described: dict[str, Any] = {}
    device = "cpu"
    for name, (ref, *_) in targets.items():
        model, test, device, mean, std = _opened(ref, threads)
        pick = per_class_subset(test.labels.cpu().numpy(), settings["images"])
        images, y = test.images[pick], test.labels[pick]
        x = normalizer(mean, std, device)(images)
        layer_name = ref.get("layer") or camlib.conv_layers(model, x[:1])[-1][0]
        layer = dict(model.named_modules())[layer_name]
        with torch.no_grad():
            probs = torch.softmax(model(x), 1).cpu().numpy()
        maps = camlib.grad_cam(model, x, y, layer)
        guided = camlib.guided_grad_cam(model, x, y, layer)
        arrays.update({f"{name}__images": images.cpu().numpy(),
                       f"{name}__labels": y.cpu().numpy(), f"{name}__pred": probs.argmax(1),
                       f"{name}__conf": probs.max(1),
                       f"{name}__gradcam": maps["normalized"].astype(np.float32),
                       f"{name}__guided": guided.astype(np.float32)})
        described[name] = {**_describe(ref), "layer": layer_name, "classes": test.classes,
                           "weights_used": getattr(model, "weights_used", None)}
    write_npz(gradcam, **arrays, targets=np.asarray(json.dumps(described)),
              provenance=_provenance({"targets": described, "settings": settings}, None,
                                     device))


# ---------------------------------------------------------------- FGSM ----------------

@STAGES.register(writes=("fgsm_examples", "fgsm_sweep"),
                 inputs=_borrowed(lambda config: _targets(config, "fgsm", True)),
                 params=lambda config: {
                     "targets": upstream.targets(config, "fgsm", True),
                     "settings": {k: v for k, v in _block(config, "fgsm").items()
                                  if k != "targets"}})
def fgsm(*, targets: dict[str, list[dict[str, Any]]], settings: dict[str, Any],
         fgsm_examples: str, fgsm_sweep: str, threads: int | None = None) -> None:
    """For every target and seed, untargeted error and targeted success against epsilon
    over ``images`` class-balanced test images (``fgsm_sweep``); for the first seed, the
    slides' triptych x + ε·sign(∇) = x′, untargeted and targeted, at the target's
    ``epsilon`` for ``examples`` images of different classes (``fgsm_examples``)."""
    rows, arrays, described = [], {}, {}
    device = "cpu"
    for name, runs in targets.items():
        for i, ref in enumerate(runs):
            model, test, device, mean, std = _opened(ref, threads)
            labels = test.labels.cpu().numpy()
            pick = per_class_subset(labels, settings["images"])
            images01, y = test.images[pick].float() / 255, test.labels[pick]
            table = attacks.fgsm_sweep(model, images01, y, mean, std,
                                             settings["epsilons"],
                                             target_rule=settings["target_rule"])
            rows.append(table.assign(target=name, study=ref["study"], model=ref["model"],
                                     seed=ref["seed"]))
            if i:
                continue
            show = per_class_subset(labels, settings["examples"])
            x, y_show = test.images[show].float() / 255, test.labels[show]
            for kind in ("untargeted", "targeted"):
                out = attacks.fgsm_examples(model, x, y_show, mean, std, ref["epsilon"],
                                                  targeted=kind == "targeted",
                                                  target_rule=settings["target_rule"])
                arrays.update({f"{name}__{kind}__{k}": np.asarray(v) for k, v in out.items()})
            described[name] = {**_describe(ref), "epsilon": ref["epsilon"],
                               "classes": test.classes}
    write_csv(fgsm_sweep, pd.concat(rows, ignore_index=True))
    write_npz(fgsm_examples, **arrays, targets=np.asarray(json.dumps(described)),
              provenance=_provenance({"targets": described, "settings": settings}, None,
                                     device))


@STAGES.register(writes=("attack_checks",),
                 inputs=_borrowed(lambda config: _targets(config, "fgsm", True)),
                 params=lambda config: {
                     "targets": upstream.targets(config, "fgsm", True),
                     "settings": {**_block(config, "attack_checks"),
                                  **{k: _block(config, "fgsm")[k]
                                     for k in ("epsilons", "target_rule")}}})
def attack_checks(*, targets: dict[str, list[dict[str, Any]]], settings: dict[str, Any],
                  attack_checks: str, threads: int | None = None) -> None:
    """Are the FGSM stage's attacks attacks (Carlini et al. 2019)? For every target and
    seed, on ``images`` class-balanced test images: FGSM, PGD and random-sign noise at each
    eps of the FGSM sweep up to the target's own, untargeted and toward the FGSM stage's
    targets, every image checked against its budget
    (:func:`cnnrepro.attacks.attack_checks`)."""
    rows = []
    for name, runs in targets.items():
        for ref in runs:
            model, test, _, mean, std = _opened(ref, threads)
            pick = per_class_subset(test.labels.cpu().numpy(), settings["images"])
            images01, y = test.images[pick].float() / 255, test.labels[pick]
            epsilons = [e for e in settings["epsilons"] if e <= ref["epsilon"] + 1e-12]
            goal = attacks.sweep_targets(model, images01, y, mean, std,
                                         settings["target_rule"])
            for targets_of in (None, goal):
                found = checked_attacks(model, images01, y, mean, std, epsilons,
                                        settings["pgd_steps"], settings["pgd_alpha"],
                                        settings["seed"] + ref["seed"], targets=targets_of)
                rows += [{**r, "target": name, "study": ref["study"], "model": ref["model"],
                          "seed": ref["seed"]} for r in found]
    write_csv(attack_checks, pd.DataFrame(rows))
