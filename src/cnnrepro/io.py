"""Atomic artifact writing: a file either appears complete or not at all.

Every writer goes through :func:`atomic_path`, which hands out a temporary name in the
target's folder and renames it into place only when the body finished without error, so
a killed job or a failed check never leaves a half-written artifact behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch


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


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        # np.savez appends ".npz" to names without it; write through a handle to keep ours.
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)


def write_torch(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        # Through a handle: given a path, torch.save names the zip archive's root folder
        # after the (random) temporary name, so identical weights would differ in bytes.
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
