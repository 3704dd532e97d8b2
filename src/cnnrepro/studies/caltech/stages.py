"""Study ``caltech``: its stages, each writing data files only (figures and claims read them).

Before training (no model): ``conv_basics`` (ch. 1: correlation vs convolution, constant vs
Kaiming, the symmetry experiment), ``stacked_layers`` (ch. 2) and ``conv_settings``
(3.2.3–3.2.7: stride, padding, filter size and the size table). After training, per
(model, seed): ``trained_maps`` (the CNN's filters and maps, 3.2.8–3.2.9), ``equivariance``
(the CNN, 3.2.10–3.2.11), ``patches`` (both models: top and dead neurons of the last conv
layer, receptive fields, guided backprop; 3.2.12, 4.2.3–4.2.4) and ``fallback`` (VGG19: the
stage scales and a linear probe of its frozen backbone).

The shown images are the first test image of every class (the document picks "one image
from each of the three classes"), the same in every stage.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import torch

from ... import attribution
from ...conv_arithmetic import output_size
from ...datasets.prepared import Split, load_split, per_class_subset
from ...io import read_json, write_csv, write_json, write_npz
from ...provenance import stamp
from ...receptive_field import receptive_field
from ...runtime import normalizer
from ...study import Stages
from ...trained import open_trained
from . import conv_basics as cb
from .equivariance import shift_study
from .filters import settings_experiment
from .names import CNN, VGG
from .patches import (
    activation,
    guided_backprop,
    last_conv_relu,
    neuron_report,
    sharpness,
    top_neurons,
)
from .vgg_fallback import backbone_probe, head_gradient, scale_table

STAGES = Stages()
# Before training: on the study's images, no model (figures' work: the report's resources).
BEFORE = {"data": True, "resources": "report"}


def showcase(split: Split, per_class: int = 1) -> np.ndarray:
    """Indices of the first ``per_class`` images of every class, class by class."""
    labels = split.labels.cpu().numpy()
    return np.concatenate([np.flatnonzero(labels == c)[:per_class]
                           for c in range(len(split.classes))])


def _provenance(settings: dict[str, Any], seed: int | None = None,
                device: torch.device | None = None) -> np.ndarray:
    """The provenance block as a 0-d string array: an npz field beside the data."""
    return np.asarray(json.dumps(stamp(settings, seed, device)))


def _shown(data: dict[str, str]) -> tuple[Split, torch.Tensor]:
    """The shown test images (uint8) and their grayscale version."""
    test = load_split(data["test"])
    shown = test.take(showcase(test))
    return shown, cb.to_grayscale(shown.images)


def _resized(images: torch.Tensor, size: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(images, size=size, mode="bilinear", antialias=True)


@STAGES.register(writes=("conv", "conv_meta"), settings="basics", **BEFORE)
def conv_basics(*, data: dict[str, str], settings: dict[str, Any], conv: str, conv_meta: str,
                threads: int | None = None) -> None:
    """Ch. 1: a Kaiming 3×3 filter's cross-correlation and convolution maps of the shown
    images, one conv layer under constant and Kaiming init, the symmetry experiment (a few
    SGD steps of a small net from each init on grayscale training images) and the same net's
    held-out accuracy from each init, trained longer on colour images, per seed."""
    if threads:
        torch.set_num_threads(threads)
    seed = settings["seed"]
    shown, gray = _shown(data)
    kernel = cb.kaiming_filter(seed=seed)
    compared = cb.correlation_vs_convolution(gray, kernel)
    init = cb.initialisation_maps(gray, settings["init_channels"], seed=seed,
                                  value=settings["constant_value"])
    sym = settings["symmetry"]
    train = load_split(data["train"])
    shrunk = train.take(per_class_subset(train.labels.numpy(), sym["images"]))
    x = _resized(cb.to_grayscale(shrunk.images), sym["image_size"])
    runs = {scheme: cb.symmetry_experiment(x, shrunk.labels, scheme, sym["steps"], sym["lr"],
                                           seed, settings["constant_value"], sym["channels"])
            for scheme in ("constant", "kaiming")}
    # "performs poorly": the same net on the colour images the document's models see,
    # trained long enough for Kaiming's to learn, judged on the held-out test images
    acc = settings["init_accuracy"]
    test = load_split(data["test"])
    fit = train.take(per_class_subset(train.labels.numpy(), acc["images"]))
    accuracy = cb.init_comparison(
        _resized(fit.images.float() / 255, acc["image_size"]), fit.labels,
        (_resized(test.images.float() / 255, acc["image_size"]), test.labels), acc["steps"],
        acc["lr"], list(range(seed, seed + acc["seeds"])), settings["constant_value"],
        sym["channels"])
    write_npz(conv, images=shown.images.numpy(), labels=shown.labels.numpy(),
              provenance=_provenance(settings, seed),
              classes=np.asarray(shown.classes), gray=gray.numpy(), kernel=kernel.numpy(),
              **{k: compared[k].numpy() for k in ("correlation", "convolution", "difference")},
              **{f"init_{k}": v.numpy() for k, v in init.items()},
              **{f"symmetry_{k}": r["filters"].numpy() for k, r in runs.items()})
    write_json(conv_meta, {
        "input_size": gray.shape[-1], "output_size": compared["size"][-1],
        "formula_size": output_size(gray.shape[-1], kernel.shape[-1]),
        "max_abs_difference": compared["max_abs_difference"],
        "init_rule": "fan-in: std sqrt(2 / (C_in k k)) = sqrt(2/9) for a 3x3 grayscale "
                     "filter (the document writes sqrt(2 / (224 * 224)))",
        "symmetry": {k: {key: r[key] for key in ("spread", "filter_std", "losses")}
                     for k, r in runs.items()} | {"images": len(shrunk), **sym},
        "init_accuracy": accuracy,
        "provenance": stamp(settings, seed)})


@STAGES.register(writes=("stacked_layers", "layers_meta"), settings="layers", **BEFORE)
def stacked_layers(*, data: dict[str, str], settings: dict[str, Any], stacked_layers: str,
                   layers_meta: str, threads: int | None = None) -> None:
    """Ch. 2: two stacked Kaiming layers (stride 1, padding 0) on the shown images; the
    first ``show_channels`` maps of each layer are kept (all filters are)."""
    if threads:
        torch.set_num_threads(threads)
    shown, gray = _shown(data)
    out = cb.two_layer_maps(gray, tuple(settings["channels"]), settings["kernel"],
                            settings["seed"])
    keep = settings["show_channels"]
    write_npz(stacked_layers, images=shown.images.numpy(), classes=np.asarray(shown.classes),
              provenance=_provenance(settings, settings["seed"]),
              filters1=out["filters"][0].numpy(), filters2=out["filters"][1].numpy(),
              maps1=out["maps"][0][:, :keep].numpy(), maps2=out["maps"][1][:, :keep].numpy())
    write_json(layers_meta, {"sizes": [s[-1] for s in out["sizes"]],
                             "formula_sizes": out["formula_sizes"],
                             "input_size": gray.shape[-1],
                             "provenance": stamp(settings, settings["seed"])})


@STAGES.register(writes=("setting_maps", "size_table"), settings="settings", **BEFORE)
def conv_settings(*, data: dict[str, str], settings: dict[str, Any], setting_maps: str,
                  size_table: str, threads: int | None = None) -> None:
    """3.2.3–3.2.7: the edge and Gaussian filters at every stride, padding and size
    setting on the first shown image; the size table (formula vs measured)."""
    if threads:
        torch.set_num_threads(threads)
    shown, gray = _shown(data)
    table, maps = settings_experiment(gray[:1], settings)
    write_csv(size_table, table)
    write_npz(setting_maps, image=shown.images[0].numpy(), gray=gray[0, 0].numpy(),
              image_class=np.asarray(shown.classes[int(shown.labels[0])]),
              provenance=_provenance(settings),
              **{k.replace("/", "__"): v for k, v in maps.items()})


def _conv_indices(features: torch.nn.Sequential) -> list[int]:
    return [i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)]


@STAGES.register(writes=("maps",), reads=("weights",), data=True, per_run=True, model=CNN,
                 settings="trained_maps")
def trained_maps(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
                 settings: dict[str, Any], maps: str, threads: int | None = None) -> None:
    """3.2.8–3.2.9: the trained CNN's conv filters (all) and each conv layer's first
    ``show_channels`` feature maps (before ReLU) of the shown images."""
    model, splits, device = open_trained(spec, weights, data, threads)
    test = splits["test"]
    shown = test.take(showcase(test))
    x = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)(shown.images)
    out = {}
    with torch.no_grad():
        for n, index in enumerate(_conv_indices(model.features), 1):
            out[f"filters{n}"] = model.features[index].weight.cpu().numpy()
            out[f"maps{n}"] = model.features[: index + 1](x)[:, :settings["show_channels"]
                                                             ].cpu().numpy()
    write_npz(maps, images=shown.images.cpu().numpy(), classes=np.asarray(shown.classes),
              provenance=_provenance(spec, seed, device), **out)


@STAGES.register(writes=("equivariance",), reads=("weights",), data=True, per_run=True,
                 model=CNN, settings="equivariance")
def equivariance(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
                 settings: dict[str, Any], equivariance: str,
                 threads: int | None = None) -> None:
    """3.2.10–3.2.11 measured: equivariance error of the stride-1 conv part and the
    change of pooled features and predictions under horizontal shifts of test images."""
    model, splits, device = open_trained(spec, weights, data, threads)
    test = splits["test"]
    test = test.take(per_class_subset(test.labels.cpu().numpy(), settings["images"]))
    x = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)(test.images)
    table = shift_study(model, x, settings["shifts"], settings["modes"])
    write_csv(equivariance, table.assign(model=spec["model"], seed=seed, images=len(test)))


@STAGES.register(writes=("patches", "patch_table"), reads=("weights", "train_meta"), data=True,
                 per_run=True, settings="patches")
def patches(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
            train_meta: str, settings: dict[str, Any], patches: str, patch_table: str,
            threads: int | None = None) -> None:
    """3.2.12 and 4.2.3–4.2.4: on each shown image, the ``top`` most activated and
    ``dead`` dead neurons of the last conv layer (after its ReLU), each one's receptive
    field box, input patch and guided-backprop image (Captum)."""
    model, splits, device = open_trained(spec, weights, data, threads)
    test = splits["test"]
    shown = test.take(showcase(test))
    x = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)(shown.images)
    features = model.features
    index = last_conv_relu(features)
    rows, crops, gradients = [], [], []
    for i in range(len(shown)):
        table, found = neuron_report(features, index, x[i], shown.images[i].cpu(),
                                     settings["top"], settings["dead"],
                                     settings["distinct_channels"])
        for neuron in table.to_dict("records"):
            gradients.append(guided_backprop(features, index, x[i], (
                neuron["channel"], neuron["row"], neuron["col"])).cpu().numpy())
        rows.append(table.assign(image=i, image_class=shown.classes[int(shown.labels[i])]))
        crops += found
    table = pd.concat(rows, ignore_index=True)
    table["gradient_abs_max"] = [float(np.abs(g).max()) for g in gradients]
    table["sharpness"] = [sharpness(g) for g in gradients]
    weights_used = read_json(train_meta).get("weights_used")
    write_csv(patch_table, table.assign(model=spec["model"], seed=seed, layer=index,
                                        weights_used=weights_used or "trained from scratch"))
    # crops differ in size where a box is clipped at the border: one padded array
    # (255 outside the crop) and each crop's size
    height = max(c.shape[1] for c in crops)
    width = max(c.shape[2] for c in crops)
    padded = np.full((len(crops), crops[0].shape[0], height, width), 255, np.uint8)
    for k, c in enumerate(crops):
        padded[k, :, :c.shape[1], :c.shape[2]] = c
    write_npz(patches, images=shown.images.cpu().numpy(), classes=np.asarray(shown.classes),
              provenance=_provenance(spec, seed, device), crops=padded,
              crop_sizes=np.array([c.shape[1:] for c in crops]),
              gradients=np.stack(gradients).astype(np.float32))


@STAGES.register(writes=("randomisation", "randomisation_maps"), reads=("weights",), data=True,
                 per_run=True, model=CNN, settings="randomisation")
def randomisation(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
                  settings: dict[str, Any], randomisation: str, randomisation_maps: str,
                  threads: int | None = None) -> None:
    """Does guided backprop depend on the learned weights (Adebayo et al. 2018 found it
    barely does)? On ``images`` class-balanced test images, the guided-backprop image of
    each image's most activated neuron of the last conv layer (as ``patches`` shows them),
    inside the neuron's receptive field, for the trained CNN and with the layers below that
    neuron re-initialised from the top down
    (:func:`cnnrepro.attribution.randomisation_cascade`). The CNN only: VGG19's backbone
    under the fallback was never trained, so there is nothing learned to lose.

    The neuron is taken before its ReLU: for a neuron the trained model activates, guided
    backprop is the same there and after the ReLU (the ReLU passes the unit gradient), and a
    re-initialised layer that silences the neuron still leaves a map to compare."""
    model, splits, device = open_trained(spec, weights, data, threads)
    test = splits["test"]
    pick = per_class_subset(test.labels.cpu().numpy(), settings["images"])
    x = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)(
        test.images[pick])
    relu = last_conv_relu(model.features)
    conv = max(i for i in range(relu + 1) if isinstance(model.features[i], torch.nn.Conv2d))
    neurons = [top_neurons(activation(model.features, relu, image), 1).iloc[0] for image in x]
    selectors = [(int(n["channel"]), int(n["row"]), int(n["col"])) for n in neurons]

    # Compared inside each neuron's receptive field, the map's support: outside it every
    # pixel is 0 in every map, and those ties would make any two maps correlate near 1.
    boxes = [receptive_field(model.features[: conv + 1], row, col, x.shape[-2:]).slices
             for _, row, col in selectors]

    def maps(net: torch.nn.Module) -> dict[str, list[np.ndarray]]:
        return {"guided_backprop": [
            guided_backprop(net.features, conv, image, neuron).abs().sum(0).cpu().numpy()[box]
            for image, neuron, box in zip(x, selectors, boxes)]}

    def below_the_neuron(net: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
        return [(f"features.{name}", layer) for name, layer
                in attribution.parameterised_layers(net.features[: conv + 1])]

    frame, strip = attribution.randomisation_cascade(model, maps, settings["seed"] + seed,
                                                     below_the_neuron)
    where = np.asarray(selectors)
    attribution.write_map_checks(
        test, pick, spec["model"], seed, device, {"spec": spec, "settings": settings}, frame=frame,
        strip=strip, randomisation=randomisation, randomisation_maps=randomisation_maps,
        per_image={"channel": where[:, 0], "row": where[:, 1], "col": where[:, 2]})


@STAGES.register(writes=("fallback",), reads=("weights", "train_meta"), data=True,
                 per_run=True, model=VGG, settings="fallback")
def fallback(*, spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
             train_meta: str, settings: dict[str, Any], fallback: str,
             threads: int | None = None) -> None:
    """The VGG19 backbone the run used (ImageNet or the fallback's random one): scale of
    every stage from the last conv block to the logits, eval and train mode, on
    ``scale_images`` validation images; one batch's head gradient; and a linear probe
    (standardised, C chosen on validation) of its frozen pooled conv features."""
    model, splits, device = open_trained(spec, weights, data, threads)
    normalize = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)
    val = splits["val"]
    val = val.take(per_class_subset(val.labels.cpu().numpy(), settings["scale_images"]))
    x = normalize(val.images)
    probe = backbone_probe(model, {k: s.images for k, s in splits.items()},
                           {k: s.labels for k, s in splits.items()}, normalize, seed,
                           settings["pooling"], settings["probe_cs"])
    write_json(fallback, {
        "model": spec["model"], "seed": seed,
        "weights_used": read_json(train_meta).get("weights_used"),
        "scales": scale_table(model, x, seed).to_dict("records"),
        "head_gradient": head_gradient(model, x, val.labels, seed),
        "probe": probe, "chance": 1 / len(val.classes),
        "provenance": stamp(spec, seed, device)})
