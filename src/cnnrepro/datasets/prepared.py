"""Prepared splits: one ``.npz`` of uint8 images (N, C, H, W), int64 labels and class names
per dataset split, plus a provenance JSON. Training and evaluation read only these files, so
decoding happens once per dataset, never inside a training loop; the subset helpers pick
from them."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import write_json, write_npz
from ..provenance import stamp
from .catalogue import CIFAR10_MIRROR_NOTE, SPECS, DataError
from .pinned import CACHE
from .readers import DOWNLOAD_READERS, MIRROR_READERS
from .sources import download_lock, drop_bad_cache, verify_cache, verify_mirror

# What a download is checked by, for its provenance (the pins cover only the IDX datasets)
DOWNLOAD_CHECKS = {
    "mnist": "torchvision's md5 of the archives; the extracted files against pinned SHA-256",
    "fashion_mnist": "torchvision's md5 of the archives; the extracted files against pinned "
                     "SHA-256",
    "cifar10": "torchvision's md5 of each batch file, on every read (no SHA-256 pinned)",
    "caltech101_3": "torchvision's md5 of the archive when it downloads it; the extracted "
                    "images are not checked (no per-image sums exist)",
}


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
        source = {"kind": "mirror", "folder": str(mirror), "sha256": checked,
                  "verified": "each file against its pinned SHA-256 and the mirror's SHA256SUMS"}
        if name == "cifar10":
            source["note"] = CIFAR10_MIRROR_NOTE
    else:
        source = {"kind": "torchvision download", "folder": str(download_root),
                  "verified": DOWNLOAD_CHECKS[name]}
    # torchvision's cache is one folder for a dataset's splits, written non-atomically:
    # one job at a time (the mirror's archives are read in place: no lock, no cache)
    cached = name in CACHE or mirror is None
    with download_lock(download_root, name) if cached else contextlib.nullcontext():
        drop_bad_cache(name, download_root)
        if mirror is not None:
            images, labels, classes = MIRROR_READERS[name](mirror, split, download_root, options)
        else:
            images, labels, classes = DOWNLOAD_READERS[name](split, download_root, options)
        if name in CACHE:
            source["cache_sha256"] = verify_cache(name, download_root)
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
