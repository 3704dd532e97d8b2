"""The two sources of data: a verified offline mirror, or torchvision downloads.

A mirror is a folder with a ``SHA256SUMS`` manifest (``../shared/datasets`` is one), used when
``data.mirror`` names a folder that exists (:func:`data_source`). Every file used is verified
against the SHA-256 pinned in the repository (:mod:`.pinned`), and the manifest must agree; a
missing, corrupt or replaced file is an error naming the file, both checksums and the fix.
torchvision's cache under ``data.download_root`` is checked against its pins too
(:func:`drop_bad_cache` before torchvision reads it, :func:`verify_cache` after)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import pinned
from .catalogue import SPECS, DataError

log = logging.getLogger(__name__)

MIRROR_ENV = "CNNREPRO_DATA_MIRROR"


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
                    f"every file checked against its pinned SHA-256 and the SHA256SUMS): {names}")
        return (f"cnnrepro: data downloaded by torchvision into {download_root} "
                f"({self.reason}): {names}")


DEFAULT_MIRROR = "../shared/datasets"  # config.yaml's data.mirror (tests keep them equal)


def data_source(configured: str | None) -> DataSource:
    """The source in force. ``$CNNREPRO_DATA_MIRROR`` wins and must name a folder
    (``none`` or empty forces downloads); the shipped default ``data.mirror`` is used when
    that folder exists, so it works both beside the staged mirror (offline) and on a fresh
    clone elsewhere (online); any other ``data.mirror`` must exist (a mistyped path would
    otherwise switch to downloads in silence)."""
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
    if configured != DEFAULT_MIRROR:
        raise DataError(f"config key data.mirror: no folder at {os.path.abspath(path)!r}. "
                        f"Point it at a mirror with a SHA256SUMS file, or set it to null to "
                        f"download with torchvision.")
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
    """Check every mirror file the datasets need against its pinned SHA-256, and the
    mirror's manifest against the pin; return {relative path: sha256}.

    Raises :class:`DataError` naming each missing, corrupt or replaced file.
    """
    sums = read_manifest(mirror)
    problems, verified = [], {}
    for name in datasets:
        for rel in SPECS[name].mirror_files:
            expected, listed, path = pinned.MIRROR[rel], sums.get(rel), mirror / rel
            if listed is None:
                problems.append(f"{path}: not listed in {mirror / 'SHA256SUMS'}")
            elif listed != expected:
                problems.append(f"{path}: {mirror / 'SHA256SUMS'} lists sha256 {listed}, the "
                                f"repository pins {expected} (cnnrepro/datasets/pinned.py): "
                                f"the mirror holds another file than the one this project "
                                f"was built on; restore the original")
            elif not path.is_file():
                problems.append(f"{path}: missing (expected sha256 {expected})")
            else:
                actual = sha256(path)
                if actual != expected:
                    problems.append(f"{path}: checksum mismatch, expected sha256 {expected}, "
                                    f"got {actual} (corrupt or replaced file: restore the "
                                    f"original)")
                else:
                    verified[rel] = actual
    if problems:
        raise DataError("data mirror check failed:\n  " + "\n  ".join(problems))
    return verified


def drop_bad_cache(name: str, download_root: Path) -> None:
    """Delete each file of torchvision's cache that is not what its pin says, so that
    torchvision rebuilds it from the verified mirror or downloads it again (md5-checked)."""
    for rel, expected in pinned.CACHE.get(name, {}).items():
        path = download_root / rel
        if path.is_file() and (actual := sha256(path)) != expected:
            log.warning("%s: sha256 %s, pinned %s: deleted, torchvision makes it again",
                        path, actual, expected)
            path.unlink()


def verify_cache(name: str, download_root: Path) -> dict[str, str]:
    """After torchvision has read ``name``: every pinned cache file must match its pin;
    return {path under download_root: sha256} (empty for a dataset with none pinned)."""
    verified = {}
    for rel, expected in pinned.CACHE.get(name, {}).items():
        path = download_root / rel
        actual = sha256(path) if path.is_file() else "no file"
        if actual != expected:
            raise DataError(f"{path}: torchvision's copy is not the pinned file (sha256 "
                            f"{expected}, found {actual}). Delete {path.parent} and run again.")
        verified[rel] = actual
    return verified


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

