"""Artifacts written atomically, and read back with errors that name the file.

Every writer goes through :func:`atomic_path`, which hands out a temporary name in the
target's folder and renames it into place only when the body finished without error, so
a killed job or a failed check never leaves a half-written artifact behind; a write that
fails on a full disk says so first. Every reader (:func:`read_json`, :func:`read_csv`,
:func:`read_npz`) turns a missing, truncated or undecodable file into one
:class:`ArtifactError` naming the file, the rule that wrote it (from Snakemake's record)
and the remedy, not a ``BadZipFile`` or ``EmptyDataError`` naming nothing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from base64 import urlsafe_b64encode
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

FULL_DISK_BYTES = 16 << 20  # a write that failed with less free than this: the disk is full


class ArtifactError(RuntimeError):
    """An artifact read back is missing, unreadable, or holds values it cannot hold."""


def producer(path: str | os.PathLike) -> str | None:
    """The rule that wrote ``path``, from Snakemake's record of it in the working folder
    (``.snakemake/metadata``, keyed by the path's URL-safe base64), or None."""
    key = os.path.relpath(path) if os.path.isabs(path) else os.path.normpath(path)
    name = urlsafe_b64encode(key.encode()).decode()
    try:
        return json.loads((Path(".snakemake") / "metadata" / name).read_text()).get("rule")
    except (OSError, ValueError, AttributeError):
        return None


def artifact_error(path: str | os.PathLike, problem: str) -> ArtifactError:
    """``path`` is bad: the error names it, its rule and the remedy."""
    rule = producer(path)
    made = f"rule {rule}" if rule else "the job that wrote it"
    return ArtifactError(f"{path}: {problem}. Delete it and run the workflow again: Snakemake "
                         f"remakes it ({made}).")


def _no_space(target: Path, err: BaseException) -> bool:
    chain = [err, err.__cause__, err.__context__]
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in chain):
        return True
    try:
        return shutil.disk_usage(target.parent).free < FULL_DISK_BYTES
    except OSError:
        return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    # not mkstemp: its 0600 would stay on the artifact (writers reopen the name), and a
    # report on shared storage must be readable; 0666 lets the umask decide, as for any
    # new file, and O_EXCL keeps the name ours
    os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except Exception as err:
        # torch's writer, for one, reports a full disk as "unexpected pos": say it plainly
        if _no_space(target, err):
            raise OSError(errno.ENOSPC, f"no space left on the device: {target} was not "
                          f"written (nothing half-written is left); free some space and run "
                          f"again") from err
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


_RECORDERS: list[set[str]] = []  # open :func:`recording_reads` blocks


@contextlib.contextmanager
def recording_reads() -> Iterator[set[str]]:
    """Collect the path of every artifact read through this module while the block runs
    (the tests compare what a figure reads with what its rule declares)."""
    found: set[str] = set()
    _RECORDERS.append(found)
    try:
        yield found
    finally:
        _RECORDERS.remove(found)


@contextlib.contextmanager
def _reading(path: str | os.PathLike) -> Iterator[None]:
    """Read errors of ``path`` as one :class:`ArtifactError`."""
    for found in _RECORDERS:
        found.add(os.path.normpath(path))
    try:
        yield
    except ArtifactError:
        raise
    except FileNotFoundError as err:
        raise artifact_error(path, "missing") from err
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else ""
        raise artifact_error(path, f"unreadable ({type(err).__name__}: {reason})") from err


def read_json(path: str | os.PathLike) -> Any:
    with _reading(path):
        return json.loads(Path(path).read_text())


def read_csv(path: str | os.PathLike, **options: Any) -> pd.DataFrame:
    with _reading(path):
        return pd.read_csv(path, **options)


def read_benchmark(path: str | os.PathLike) -> float | None:
    """The wall seconds of a Snakemake benchmark file (its first column, ``s``; the mean
    when the rule repeats); None when it has no row (a job killed while writing it)."""
    with _reading(path):
        rows = [line for line in Path(path).read_text().splitlines()[1:] if line.strip()]
    return sum(float(row.split("\t")[0]) for row in rows) / len(rows) if rows else None


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz``, read now (a truncated member fails here, naming the
    file, not later in a plot); no pickles."""
    with _reading(path), np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        # np.savez appends ".npz" to names without it; write through a handle to keep ours.
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)


def write_torch(path: str | os.PathLike, obj: Any) -> None:
    import torch  # here, not above: figure jobs read and write through io and need no torch

    with atomic_path(path) as tmp:
        # Through a handle: given a path, torch.save names the zip archive's root folder
        # after the (random) temporary name, so identical weights would differ in bytes.
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
