"""The concepts study's config checks (:func:`check_config`, the registry's hook): they
build borrowed models on the meta device and the convolution-type grid's layers, so they
import torch, and the registry names them with :func:`cnnrepro.study.later` instead of
importing them."""

from __future__ import annotations

from typing import Any

from torch import nn

from ...datasets import input_shape
from ...models import meta_model
from ...spec import ConfigError, check_counts, test_images_per_class
from . import convtypes, upstream


def check_config(study: dict, config: dict) -> None:
    check_references(config)
    fgsm = study["fgsm"]
    if 0.0 not in fgsm["epsilons"]:
        raise ConfigError("config key studies.concepts.fgsm.epsilons: must include 0.0 (the "
                          "clean accuracy that the claims check first)")
    for name, ref in fgsm["targets"].items():
        if ref["epsilon"] not in fgsm["epsilons"]:
            raise ConfigError(f"config key studies.concepts.fgsm.targets.{name}.epsilon: "
                              f"{ref['epsilon']} is not in studies.concepts.fgsm.epsilons")
    counted = [(key, ref, key.split(".")[0]) for key, ref in upstream.references(config).items()
               if key != "hierarchy"]  # fgsm or gradcam; the attack checks share fgsm's targets
    counted += [(key, ref, "attack_checks") for key, ref, block in counted if block == "fgsm"]
    for key, ref, block in counted:
        asked = f"{block}.images"
        try:
            check_counts(config, ref["study"], "test", {asked: study[block]["images"]})
        except ConfigError as err:  # named as this study's key, for the borrowed study's split
            raise ConfigError(str(err).replace(f"studies.{ref['study']}.{asked}",
                                               f"studies.concepts.{asked}")
                              + f" (target {key}, a model of study {ref['study']})") from None
    check_counts(config, "concepts", "test",
                 {"cam.agreement_images": study["cam"]["agreement_images"]})
    _check_per_class(config, study)
    for problem in convtypes.grid_problems(study["convtypes"]):
        raise ConfigError(f"config key studies.concepts.convtypes: {problem}")


def _check_per_class(config: dict, study: dict) -> None:
    """CAM's images per class within the test split's; FGSM's examples, one per class,
    within each target's classes (a stage would silently show fewer)."""
    have = test_images_per_class(config, "concepts")
    if have is not None and study["cam"]["images_per_class"] > have:
        raise ConfigError(f"config key studies.concepts.cam.images_per_class: "
                          f"{study['cam']['images_per_class']} asked, but the study's test "
                          f"split has {have} images per class")
    for name, ref in study["fgsm"]["targets"].items():
        classes = input_shape(config, config["studies"][ref["study"]]["dataset"])[2]
        if study["fgsm"]["examples"] > classes:
            raise ConfigError(f"config key studies.concepts.fgsm.examples: "
                              f"{study['fgsm']['examples']} examples of different classes "
                              f"asked, but target {name} ({ref['study']}) has {classes} classes")


def check_references(config: dict[str, Any]) -> None:
    """Every reference names a configured study and model; a named ``layer`` exists in that
    model and is a Conv2d (the model is built on the meta device, nothing is loaded)."""
    for key, ref in upstream.references(config).items():
        where = f"studies.{upstream.STUDY}.{key}"
        if ref["study"] not in config["studies"]:
            raise ConfigError(f"config key {where}.study: no study {ref['study']!r}; "
                              f"configured: {sorted(config['studies'])}")
        models = config["studies"][ref["study"]]["models"]
        if ref["model"] not in models:
            raise ConfigError(f"config key {where}.model: study {ref['study']!r} has no model "
                              f"{ref['model']!r}; it has {sorted(models)}")
        if ref.get("layer") is None:
            continue
        spec = models[ref["model"]]
        channels, size, classes = input_shape(config, config["studies"][ref["study"]]["dataset"])
        modules = dict(meta_model(spec["arch"], spec.get("options", {}), classes, channels,
                                  size).named_modules())
        if not isinstance(modules.get(ref["layer"]), nn.Conv2d):
            convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
            raise ConfigError(f"config key {where}.layer: {ref['layer']!r} is not a Conv2d "
                              f"layer of {ref['study']}/{ref['model']}; its Conv2d layers: {convs}")
