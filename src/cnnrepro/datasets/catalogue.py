"""The catalogue of datasets: what each one is (splits, mirror files, shape, classes) and
how its config options are read and checked. Nothing here reads a data file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
CIFAR10_MIRROR_NOTE = (
    "JPEG re-encoding of CIFAR-10 (image folders), not the official pickled batches: pixels "
    "differ from the originals by about 5.8/255 on average; within a class the images keep "
    "their official order, the interleaving of classes is not recoverable.")


# The 101 categories of torchvision's Caltech101 (folder names, lower case as the pipeline
# uses them; BACKGROUND_Google is not a category).
CALTECH101_CATEGORIES = frozenset("""
accordion airplanes anchor ant barrel bass beaver binocular bonsai brain brontosaurus buddha
butterfly camera cannon car_side ceiling_fan cellphone chair chandelier cougar_body cougar_face
crab crayfish crocodile crocodile_head cup dalmatian dollar_bill dolphin dragonfly
electric_guitar elephant emu euphonium ewer faces faces_easy ferry flamingo flamingo_head
garfield gerenuk gramophone grand_piano hawksbill headphone hedgehog helicopter ibis
inline_skate joshua_tree kangaroo ketch lamp laptop leopards llama lobster lotus mandolin mayfly
menorah metronome minaret motorbikes nautilus octopus okapi pagoda panda pigeon pizza platypus
pyramid revolver rhino rooster saxophone schooner scissors scorpion sea_horse snoopy soccer_ball
stapler starfish stegosaurus stop_sign strawberry sunflower tick trilobite umbrella watch
water_lilly wheelchair wild_cat windsor_chair wrench yin_yang""".split())
CALTECH_MIRROR_ARCHIVE = "caltech101-3class.tar.gz"
CALTECH_MIRROR_IMAGE = r"caltech101-3class/([a-z_]+)/(image_\d+)\.jpg"


class DataError(RuntimeError):
    """A dataset file is missing, corrupt or malformed."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    splits: tuple[str, ...]
    mirror_files: tuple[str, ...]  # paths inside the mirror, as listed in SHA256SUMS
    channels: int
    image_size: int | None          # None: set by the dataset's options (``image_size``)
    num_classes: int | None         # None: the options' ``classes``
    full_sizes: tuple[int, int]     # (train, test) images, or the total twice (split_sizes)
    config_key: str | None = None   # its options block under ``data:`` in config.yaml


_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
SPECS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec("cifar10", ("train", "test"), ("cifar10-jpeg.tar.gz",), 3, 32, 10,
                           (50000, 10000)),
    "mnist": DatasetSpec("mnist", ("train", "test"), tuple(f"mnist/{f}" for f in _IDX_FILES),
                         1, 28, 10, (60000, 10000)),
    "fashion_mnist": DatasetSpec("fashion_mnist", ("train", "test"),
                                 tuple(f"fashion-mnist/{f}" for f in _IDX_FILES), 1, 28, 10,
                                 (60000, 10000)),
    "caltech101_3": DatasetSpec("caltech101_3", ("train", "val", "test"),
                                (CALTECH_MIRROR_ARCHIVE,), 3, None, None, (262, 262),
                                config_key="caltech"),
}


def options(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The dataset's preparation options from ``config['data']`` (empty if it has none)."""
    key = SPECS[name].config_key
    return dict(config["data"][key]) if key else {}


def input_shape(config: dict[str, Any], name: str) -> tuple[int, int, int]:
    """(channels, image size, classes) of the prepared dataset."""
    spec, opts = SPECS[name], options(config, name)
    return (spec.channels, spec.image_size or opts["image_size"],
            spec.num_classes or len(opts["classes"]))


def class_names(config: dict[str, Any], name: str) -> list[str]:
    """The class names of the prepared dataset, in label order."""
    if name == "cifar10":
        return list(CIFAR10_CLASSES)
    if SPECS[name].config_key == "caltech":
        return list(options(config, name)["classes"])
    return list(idx_dataset(name).classes)


def idx_dataset(name: str) -> Callable:
    """torchvision's class for an IDX-format dataset (MNIST, Fashion-MNIST)."""
    from torchvision.datasets import MNIST, FashionMNIST
    return {"mnist": MNIST, "fashion_mnist": FashionMNIST}[name]

def estimate_sizes(config: dict[str, Any], name: str) -> tuple[int, int]:
    """(train, test) images of the prepared splits, for the cost estimate: a dataset split
    by ratios (Caltech: ``full_sizes`` holds its total) gets its total times each ratio."""
    spec = SPECS[name]
    if spec.config_key != "caltech":
        return spec.full_sizes
    ratios = options(config, name)["split"]
    return round(spec.full_sizes[0] * ratios["train"]), round(spec.full_sizes[1] * ratios["test"])


def check_options(name: str, config: dict[str, Any]) -> list[str]:
    """Problems with a dataset's options, each naming its config key."""
    problems = []
    if SPECS[name].config_key == "caltech":
        caltech = config["data"]["caltech"]
        if abs(sum(caltech["split"].values()) - 1.0) > 1e-6:
            problems.append(f"data.caltech.split: ratios must sum to 1, got {caltech['split']}")
        unknown = [c for c in caltech["classes"] if c not in CALTECH101_CATEGORIES]
        if unknown:
            problems.append(f"data.caltech.classes: {unknown} are not Caltech-101 categories "
                            f"(lower-case folder names, e.g. butterfly, grand_piano, faces_easy)")
    return problems
