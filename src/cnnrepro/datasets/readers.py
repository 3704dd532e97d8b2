"""Readers: decode one split of a dataset from the mirror or from torchvision's download.

MNIST and Fashion-MNIST mirror files are the official gzip files, so they are handed to
torchvision's own loader (which re-checks their md5 and extracts them without going online).
Caltech's train/val/test split is made here, stratified and fixed by a seed; the functions
that ask a mirror what it holds (:func:`split_sizes`, :func:`check_source`) live here too.
"""

from __future__ import annotations

import functools
import io
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image

from ..io import atomic_path
from .catalogue import (
    CALTECH_MIRROR_ARCHIVE,
    CALTECH_MIRROR_IMAGE,
    CIFAR10_CLASSES,
    SPECS,
    DataError,
    idx_dataset,
    options,
)

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


def _idx_download(name: str, split: str, download_root: Path) -> Arrays:
    ds = idx_dataset(name)(str(download_root), train=(split == "train"), download=True)
    return (ds.data.numpy()[:, None], ds.targets.numpy().astype(np.int64), list(ds.classes))


def _idx_mirror(name: str, mirror: Path, split: str, download_root: Path) -> Arrays:
    # The mirror holds the official gzip files: place them where torchvision looks, and
    # torchvision's own md5 check and extraction run without any network access. The
    # caller holds the download lock and has dropped cached files that fail their pins.
    raw = download_root / idx_dataset(name).__name__ / "raw"
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


# --------------------------------------------------------------------------- what a source holds


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
