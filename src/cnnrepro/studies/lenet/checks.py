"""The lenet study's config checks (:func:`check_config`, the registry's hook): they build
the CNN on the meta device, so they import torch, and the registry names them with
:func:`cnnrepro.study.later` instead of importing them."""

from torch import nn

from ...datasets import class_names, input_shape
from ...models import allowed_options, meta_model
from ...spec import ConfigError, check_images, training_spec
from .names import CNN


def check_config(study: dict, config: dict) -> None:
    """What the probes and the grid need: the followed image's class in the dataset, a
    model named ``cnn`` whose first layer is a convolution with the followed kernel, its
    snapshots, and a grid subset the training split can fill."""

    probe, where = study["probe"], "config key studies.lenet"
    classes = class_names(config, study["dataset"])
    if probe["image_class"] not in classes:
        raise ConfigError(f"{where}.probe.image_class: {probe['image_class']!r} is not a class "
                          f"of {study['dataset']}; its classes: {classes}")
    if CNN not in study["models"]:
        raise ConfigError(f"{where}.models: the probes follow the model named "
                          f"{CNN!r}; the models are {sorted(study['models'])}")
    cnn = study["models"][CNN]
    channels, size, n_classes = input_shape(config, study["dataset"])
    model = meta_model(cnn["arch"], cnn.get("options"), n_classes, channels, size)
    features = getattr(model, "features", None)  # what probes.evolution reads
    first = features[0] if isinstance(features, nn.Sequential) and len(features) else None
    if not isinstance(first, nn.Conv2d):
        raise ConfigError(f"{where}.models.{CNN}.arch: the probes need a first conv "
                          f"layer; {cnn['arch']} has none")
    if probe["kernel"] >= first.out_channels:
        raise ConfigError(f"{where}.probe.kernel: {probe['kernel']} is not a kernel of "
                          f"{CNN}'s first conv layer (0 to {first.out_channels - 1})")
    if not training_spec(config, "lenet", CNN)["training"].get("snapshot_epochs"):
        raise ConfigError(f"{where}.training.snapshot_epochs: the kernel evolution needs "
                          f"{CNN}'s weights at some epochs; the list is empty")
    check_images(config, "studies.lenet.grid.train_subset", study["grid"]["train_subset"],
                 study["dataset"], "train")
    check_grid(study, where)


def check_grid(study: dict, where: str) -> None:
    """The pick final training uses comes from a grid that runs; the paper grid's settings
    name models of the study and options their architectures have."""

    grid = study["grid"]
    if grid["selection"] not in grid["protocols"]:
        raise ConfigError(f"{where}.grid.selection: {grid['selection']!r} picks from a grid "
                          f"that does not run (grid.protocols: {grid['protocols']})")
    for model, settings in grid["paper_models"].items():
        if model not in study["models"]:
            raise ConfigError(f"{where}.grid.paper_models.{model}: not a model of the study "
                              f"({sorted(study['models'])})")
        arch = study["models"][model]["arch"]
        unknown = set(settings.get("options", {})) - allowed_options(arch)
        if unknown:
            raise ConfigError(f"{where}.grid.paper_models.{model}.options: {sorted(unknown)} "
                              f"are not options of {arch} ({sorted(allowed_options(arch))})")
