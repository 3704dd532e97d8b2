"""Datasets: fetch (torchvision download or verified offline mirror), prepare, load.

Preparation turns one dataset split into one cached ``.npz`` of uint8 images (N, C, H, W),
int64 labels and class names, plus a provenance JSON. Training and evaluation read only
those files, so decoding happens once per dataset, never inside a training loop.

Two sources:

* online: torchvision's own dataset classes download and md5-check the official files;
* offline: a mirror folder with a ``SHA256SUMS`` manifest (``../shared/datasets`` is one),
  used when ``data.mirror`` names a folder that exists (:func:`data_source`).
  Every file used is verified against the manifest first; a missing or corrupt file is an
  error naming the file and its expected checksum. MNIST and Fashion-MNIST mirror files are
  the official gzip files, so they are handed to torchvision's own loader (which re-checks
  their md5 and extracts them without going online).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import os
import re
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from PIL import Image

from .io import atomic_path, write_json, write_npz
from .provenance import stamp

MIRROR_ENV = "CNNREPRO_DATA_MIRROR"
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
    return list(_idx_dataset(name).classes)


def split_sizes(config: dict[str, Any], name: str, mirror: Path | None = None
                ) -> dict[str, int] | None:
    """Images per split of the prepared dataset; None where that depends on a source not
    at hand (Caltech's split is made from the images of the chosen classes: counted in
    the mirror's archive when one is given, unknown before a download)."""
    spec = SPECS[name]
    if spec.config_key is None:
        return dict(zip(("train", "test"), spec.full_sizes))
    counts = _caltech_mirror_counts(mirror) if mirror is not None else None
    if counts is None:
        return None
    opts = options(config, name)
    sizes = {"train": 0, "val": 0, "test": 0}
    for cls in opts["classes"]:
        for split, n in _split_counts(counts.get(cls, 0), opts["split"]).items():
            sizes[split] += n
    return sizes


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


def check_source(config: dict[str, Any], names: list[str], mirror: Path | None) -> list[str]:
    """Problems only the data source can show: Caltech classes the mirror does not have."""
    problems = []
    for name in names:
        if SPECS[name].config_key != "caltech" or mirror is None:
            continue
        have = _caltech_mirror_counts(mirror)
        if have is not None:
            absent = [c for c in options(config, name)["classes"] if c not in have]
            if absent:
                problems.append(f"data.caltech.classes: {absent} are not in the mirror's "
                                f"{mirror / CALTECH_MIRROR_ARCHIVE}, which has {sorted(have)} "
                                f"(set data.mirror: null to download all of Caltech-101)")
    return problems


# --------------------------------------------------------------------------- mirror


@dataclass(frozen=True)
class DataSource:
    """Where the datasets come from: a mirror folder, or torchvision downloads (None)."""

    mirror: Path | None
    reason: str  # which setting chose it

    def describe(self, datasets: list[str], download_root: str | Path) -> str:
        """The start-up line saying which source is in force, for which datasets."""
        names = ", ".join(datasets) or "none"
        if self.mirror is not None:
            return (f"cnnrepro: data from the offline mirror {self.mirror} ({self.reason}; "
                    f"every file checked against its SHA256SUMS): {names}")
        return (f"cnnrepro: data downloaded by torchvision into {download_root} "
                f"({self.reason}): {names}")


def data_source(configured: str | None) -> DataSource:
    """The source in force. ``$CNNREPRO_DATA_MIRROR`` wins and must name a folder
    (``none`` or empty forces downloads); the config's ``data.mirror`` is used when that
    folder exists, so the default works both beside the staged mirror (offline) and on a
    fresh clone elsewhere (online)."""
    value = os.environ.get(MIRROR_ENV)
    if value is not None:
        if value.strip().lower() in ("", "none", "null"):
            return DataSource(None, f"${MIRROR_ENV}={value!r}")
        path = Path(value).expanduser()
        if not path.is_dir():
            raise DataError(f"data mirror {str(path)!r} (from ${MIRROR_ENV}) is not a folder. "
                            f"Point ${MIRROR_ENV} at a mirror with a SHA256SUMS file, or set "
                            f"it to none to download with torchvision.")
        return DataSource(path, f"${MIRROR_ENV}")
    if configured is None:
        return DataSource(None, "data.mirror is null")
    path = Path(configured).expanduser()
    if path.is_dir():
        return DataSource(path, "data.mirror")
    return DataSource(None, f"no folder at data.mirror {os.path.abspath(path)!r}")


def read_manifest(mirror: Path) -> dict[str, str]:
    """``SHA256SUMS`` as {relative path: sha256}."""
    manifest = mirror / "SHA256SUMS"
    if not manifest.is_file():
        raise DataError(f"{manifest} is missing: a data mirror must list its files' SHA-256 sums.")
    sums: dict[str, str] = {}
    for line in manifest.read_text().splitlines():
        match = re.fullmatch(r"([0-9a-fA-F]{64})\s+\*?(?:\./)?(.+)", line.strip())
        if match:
            sums[match.group(2)] = match.group(1).lower()
    return sums


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_mirror(mirror: Path, datasets: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Check every mirror file the datasets need; return {relative path: sha256}.

    Raises :class:`DataError` naming each missing or corrupt file and its expected sum.
    """
    sums = read_manifest(mirror)
    problems, verified = [], {}
    for name in datasets:
        for rel in SPECS[name].mirror_files:
            expected = sums.get(rel)
            path = mirror / rel
            if expected is None:
                problems.append(f"{path}: not listed in {mirror / 'SHA256SUMS'}")
            elif not path.is_file():
                problems.append(f"{path}: missing (expected sha256 {expected})")
            else:
                actual = sha256(path)
                if actual != expected:
                    problems.append(f"{path}: checksum mismatch, expected sha256 {expected}, "
                                    f"got {actual} (corrupt or replaced file)")
                else:
                    verified[rel] = actual
    if problems:
        raise DataError("data mirror check failed:\n  " + "\n  ".join(problems))
    return verified


# --------------------------------------------------------------------------- readers
# Each reader returns (images uint8 [N, C, H, W], labels int64 [N], classes) for one split.

Arrays = tuple[np.ndarray, np.ndarray, list[str]]


def _decode_rgb(data: bytes, size: int | None = None) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")  # Caltech has a few grayscale images
        if size is not None:
            img = img.resize((size, size), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def _tar_members(archive: Path, pattern: str
                 ) -> Iterator[tuple[re.Match, Callable[[], bytes]]]:
    """Each file in the archive matching ``pattern`` (groups: class, file stem), with a
    function reading its bytes."""
    regex = re.compile(pattern)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            match = regex.fullmatch(member.name.lstrip("./"))
            if match and member.isfile():
                yield match, lambda m=member: tar.extractfile(m).read()


def _tar_images(archive: Path, pattern: str, size: int | None = None
                ) -> dict[tuple[str, str], np.ndarray]:
    """Decode every tar member matching ``pattern`` (groups: class, file stem)."""
    return {(match.group(1), match.group(2)): _decode_rgb(read(), size)
            for match, read in _tar_members(archive, pattern)}


def _cifar10_mirror(mirror: Path, split: str, download_root: Path, _: dict) -> Arrays:
    found = _tar_images(mirror / "cifar10-jpeg.tar.gz",
                        rf"cifar10-jpeg/{split}/([a-z]+)/(\d+)\.jpg")
    classes = list(CIFAR10_CLASSES)
    keys = sorted(found, key=lambda k: (classes.index(k[0]), int(k[1])))
    images = np.stack([found[k] for k in keys])
    labels = np.array([classes.index(k[0]) for k in keys], dtype=np.int64)
    return images, labels, classes


def _cifar10_download(split: str, download_root: Path, _: dict) -> Arrays:
    from torchvision.datasets import CIFAR10
    ds = CIFAR10(str(download_root), train=(split == "train"), download=True)
    return (np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)),
            np.asarray(ds.targets, dtype=np.int64), list(ds.classes))


def _idx_dataset(name: str) -> Callable:
    from torchvision.datasets import MNIST, FashionMNIST
    return {"mnist": MNIST, "fashion_mnist": FashionMNIST}[name]


def _idx_download(name: str, split: str, download_root: Path) -> Arrays:
    ds = _idx_dataset(name)(str(download_root), train=(split == "train"), download=True)
    return (ds.data.numpy()[:, None], ds.targets.numpy().astype(np.int64), list(ds.classes))


@contextlib.contextmanager
def download_lock(download_root: Path, name: str) -> Iterator[None]:
    """Hold an exclusive lock on ``name``'s files under ``download_root``.

    The train and test jobs of one dataset run at the same time and torchvision downloads
    and extracts every split's files into one shared folder, non-atomically: without the
    lock one job reads a file the other is still writing. torchvision has no lock of its
    own, hence this one (``flock``; released when the process dies).
    """
    download_root.mkdir(parents=True, exist_ok=True)
    with open(download_root / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _idx_mirror(name: str, mirror: Path, split: str, download_root: Path) -> Arrays:
    # The mirror holds the official gzip files: place them where torchvision looks, and
    # torchvision's own md5 check and extraction run without any network access.
    cls = _idx_dataset(name)
    raw = download_root / cls.__name__ / "raw"
    with download_lock(download_root, name):
        raw.mkdir(parents=True, exist_ok=True)
        for rel in SPECS[name].mirror_files:
            target = raw / Path(rel).name
            if not target.exists():
                with atomic_path(target) as tmp:  # a killed copy leaves no partial file
                    shutil.copyfile(mirror / rel, tmp)
        return _idx_download(name, split, download_root)


def _split_counts(n: int, ratios: dict[str, float]) -> dict[str, int]:
    """One class's images per split: train and val rounded, test the rest."""
    n_train = int(round(ratios["train"] * n))
    n_val = int(round(ratios["val"] * n))
    return {"train": n_train, "val": n_val, "test": n - n_train - n_val}


def caltech_split_indices(labels: np.ndarray, ratios: dict[str, float], seed: int
                          ) -> dict[str, np.ndarray]:
    """Stratified train/val/test indices, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in ("train", "val", "test")}
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        counts = _split_counts(len(idx), ratios)
        n_train, n_val = counts["train"], counts["val"]
        parts["train"].append(idx[:n_train])
        parts["val"].append(idx[n_train:n_train + n_val])
        parts["test"].append(idx[n_train + n_val:])
    return {s: np.sort(np.concatenate(p)) for s, p in parts.items()}


@functools.lru_cache(maxsize=4)
def _caltech_mirror_counts(mirror: Path) -> dict[str, int] | None:
    """Images per class in the mirror's Caltech archive (its listing: nothing decoded);
    None if it cannot be read (the mirror check before any job names the file)."""
    counts: dict[str, int] = {}
    try:
        for match, _ in _tar_members(mirror / CALTECH_MIRROR_ARCHIVE, CALTECH_MIRROR_IMAGE):
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    except (OSError, tarfile.TarError, EOFError):
        return None
    return counts


def _caltech_select(images: list[np.ndarray], labels: list[int], split: str,
                    opts: dict) -> tuple[np.ndarray, np.ndarray]:
    labels_arr = np.asarray(labels, dtype=np.int64)
    idx = caltech_split_indices(labels_arr, opts["split"], opts["split_seed"])[split]
    return np.stack([images[i] for i in idx]), labels_arr[idx]


def _caltech_mirror(mirror: Path, split: str, download_root: Path, opts: dict) -> Arrays:
    classes = list(opts["classes"])
    found = _tar_images(mirror / CALTECH_MIRROR_ARCHIVE, CALTECH_MIRROR_IMAGE,
                        opts["image_size"])
    keys = sorted((k for k in found if k[0] in classes), key=lambda k: (classes.index(k[0]), k[1]))
    missing = set(classes) - {k[0] for k in keys}
    if missing:
        raise DataError(f"{CALTECH_MIRROR_ARCHIVE} has no images of class(es) {sorted(missing)}")
    images, labels = _caltech_select([found[k] for k in keys],
                                     [classes.index(k[0]) for k in keys], split, opts)
    return images, labels, classes


def _caltech_download(split: str, download_root: Path, opts: dict) -> Arrays:
    from torchvision.datasets import Caltech101
    ds = Caltech101(str(download_root), target_type="category", download=True)
    classes = list(opts["classes"])
    images, labels = [], []
    for i, (category, index) in enumerate(zip(ds.y, ds.index)):
        name = ds.categories[category].lower()
        if name in classes:
            path = (Path(ds.root) / "101_ObjectCategories" / ds.categories[category]
                    / f"image_{index:04d}.jpg")
            images.append(_decode_rgb(path.read_bytes(), opts["image_size"]))
            labels.append(classes.index(name))
    images_arr, labels_arr = _caltech_select(images, labels, split, opts)
    return images_arr, labels_arr, classes


MIRROR_READERS: dict[str, Callable[..., Arrays]] = {
    "cifar10": _cifar10_mirror,
    "mnist": lambda m, s, r, o: _idx_mirror("mnist", m, s, r),
    "fashion_mnist": lambda m, s, r, o: _idx_mirror("fashion_mnist", m, s, r),
    "caltech101_3": _caltech_mirror,
}
DOWNLOAD_READERS: dict[str, Callable[..., Arrays]] = {
    "cifar10": _cifar10_download,
    "mnist": lambda s, r, o: _idx_download("mnist", s, r),
    "fashion_mnist": lambda s, r, o: _idx_download("fashion_mnist", s, r),
    "caltech101_3": _caltech_download,
}


# --------------------------------------------------------------------------- prepare / load


def prepare_split(name: str, split: str, out_npz: str | Path, out_json: str | Path,
                  mirror: Path | None, download_root: str | Path,
                  options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write one dataset split as ``.npz`` plus provenance JSON; return the provenance."""
    if name not in SPECS:
        raise DataError(f"unknown dataset {name!r}; known: {sorted(SPECS)}")
    if split not in SPECS[name].splits:
        raise DataError(f"dataset {name!r} has no split {split!r}; it has {SPECS[name].splits}")
    options = dict(options or {})
    download_root = Path(download_root)
    start = time.perf_counter()
    if mirror is not None:
        checked = verify_mirror(mirror, [name])  # before decoding anything
        images, labels, classes = MIRROR_READERS[name](mirror, split, download_root, options)
        source = {"kind": "mirror", "folder": str(mirror), "sha256": checked}
        if name == "cifar10":
            source["note"] = CIFAR10_MIRROR_NOTE
    else:
        with download_lock(download_root, name):
            images, labels, classes = DOWNLOAD_READERS[name](split, download_root, options)
        source = {"kind": "torchvision download (md5-checked by torchvision)",
                  "folder": str(download_root)}
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels):
        raise DataError(f"{name}/{split}: decoded arrays are malformed "
                        f"(images {images.dtype} {images.shape}, labels {labels.shape})")
    counts = np.bincount(labels, minlength=len(classes))
    provenance = {
        "dataset": name, "split": split, "count": int(len(labels)),
        "shape": list(images.shape[1:]), "classes": classes,
        "per_class": {c: int(n) for c, n in zip(classes, counts)},
        "source": source, "options": options,
        "seconds": round(time.perf_counter() - start, 2),
        "provenance": stamp(),
    }
    write_npz(out_npz, images=images, labels=labels, classes=np.asarray(classes))
    write_json(out_json, provenance)
    return provenance


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray | torch.Tensor) -> "Split":
        index = torch.as_tensor(index, dtype=torch.long)
        return Split(self.images[index], self.labels[index], self.classes)

    def to(self, device: torch.device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device), self.classes)


def load_split(path: str | Path) -> Split:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prepared dataset file {path} is missing: run the prepare_dataset rule")
    try:
        with np.load(path, allow_pickle=False) as data:
            return Split(torch.from_numpy(data["images"].copy()),
                         torch.from_numpy(data["labels"].copy()), [str(c) for c in data["classes"]])
    except (OSError, KeyError, ValueError) as err:
        raise DataError(f"prepared dataset file {path} is unreadable ({err}); delete it and "
                        f"rerun the prepare_dataset rule") from err


def per_class_subset(labels: np.ndarray | torch.Tensor, n: int | None) -> np.ndarray:
    """Indices of the first ``n`` images, balanced over classes, in stored order.

    Presets shrink datasets with this; ``None`` keeps everything.
    """
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    classes = np.unique(labels)
    quota = {c: n // len(classes) + (1 if i < n % len(classes) else 0)
             for i, c in enumerate(classes)}
    keep = np.concatenate([np.flatnonzero(labels == c)[:quota[c]] for c in classes])
    return np.sort(keep)


def holdout_split(labels: np.ndarray | torch.Tensor, fraction: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, validation) indices carved out of a training split."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val = int(round(fraction * len(idx)))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
