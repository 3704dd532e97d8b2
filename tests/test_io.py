"""Atomic writing: complete file or none, with the mode a plain new file would get; a full
disk said first. Reading back: a damaged artifact named with its rule and remedy."""

from __future__ import annotations

import errno
import json
import os
import shutil
from base64 import urlsafe_b64encode
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cnnrepro.aggregate import check_rates
from cnnrepro.io import (
    ArtifactError,
    atomic_path,
    read_csv,
    read_json,
    read_npz,
    write_json,
    write_npz,
    write_torch,
)


def test_failed_body_leaves_neither_target_nor_temporary(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{\"half\": ")
            raise RuntimeError("killed mid-write")
    assert list((tmp_path / "out").iterdir()) == []


def test_finished_body_replaces_target_whole(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    write_json(target, {"accuracy": 0.5})
    assert target.read_text().strip().startswith("{") and "0.5" in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_artifact_mode_follows_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        plain = tmp_path / "plain"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_same_object_gives_the_same_bytes_under_any_name(tmp_path):
    # each write goes through its own random temporary name; the bytes must not show it
    obj = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3,
           "rng": torch.Generator().manual_seed(0).get_state()}
    write_torch(tmp_path / "a" / "model.pt", obj)
    write_torch(tmp_path / "b" / "checkpoint.pt", obj)
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "checkpoint.pt").read_bytes()
    loaded = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    assert torch.equal(loaded["state_dict"]["w"], obj["state_dict"]["w"])


# --------------------------------------------------------------------------- reading back


def _record(workdir, path, rule):
    """Snakemake's metadata record of ``path`` (what it keeps for every output)."""
    name = urlsafe_b64encode(path.encode()).decode()
    (workdir / ".snakemake" / "metadata").mkdir(parents=True, exist_ok=True)
    (workdir / ".snakemake" / "metadata" / name).write_text(json.dumps({"rule": rule}))


@pytest.mark.parametrize("name, content, read, problem", [
    ("m.json", b'{"accuracy": 0.', read_json, "unreadable (JSONDecodeError"),
    ("c.csv", b"", read_csv, "unreadable (EmptyDataError"),
    ("a.npz", b"PK\x03\x04truncated", read_npz, "unreadable (BadZipFile"),
])
def test_a_damaged_artifact_names_its_file_rule_and_remedy(tmp_path, monkeypatch, name, content,
                                                           read, problem):
    monkeypatch.chdir(tmp_path)
    path = Path("results") / "vdk" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    _record(tmp_path, str(path), "evaluate_model")
    with pytest.raises(ArtifactError) as err:
        read(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {problem}") and "rule evaluate_model" in message
    assert "Delete it and run the workflow again" in message
    with pytest.raises(ArtifactError, match="missing.*the job that wrote it"):
        read(Path("results") / "absent" / name)  # no record: the rule is not guessed


def test_a_truncated_npz_member_fails_on_read_not_later(tmp_path):
    write_npz(tmp_path / "a.npz", x=np.arange(100000))
    data = (tmp_path / "a.npz").read_bytes()
    (tmp_path / "a.npz").write_bytes(data[:len(data) // 2] + data[-200:])
    with pytest.raises(ArtifactError, match="a.npz: unreadable"):
        read_npz(tmp_path / "a.npz")
    write_npz(tmp_path / "b.npz", x=np.arange(3))
    assert read_npz(tmp_path / "b.npz")["x"].tolist() == [0, 1, 2]


def test_a_full_disk_says_so_first(tmp_path, monkeypatch):
    target = tmp_path / "model.pt"
    with pytest.raises(OSError, match="^.*no space left on the device: .*model.pt") as err:
        with atomic_path(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.errno == errno.ENOSPC
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 0))
    with pytest.raises(OSError, match="no space left"):  # torch's words for it
        with atomic_path(target):
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos 64 vs 0")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_rates_outside_zero_one_are_refused(tmp_path):
    good = pd.DataFrame({"model": ["cnn"] * 2, "split": ["test"] * 2,
                         "metric": ["accuracy", "train_seconds"], "value": [0.9, 300.0]})
    check_rates(good, tmp_path / "metrics.json")
    bad = good.assign(value=[1.5, 300.0])
    with pytest.raises(ArtifactError, match="metrics.json: accuracy of cnn \\(test\\) is 1.5"):
        check_rates(bad, tmp_path / "metrics.json")
    f1 = pd.DataFrame({"model": ["cnn"], "split": ["val"], "metric": ["f1"], "value": [-3.0]})
    with pytest.raises(ArtifactError, match="f1 of cnn"):
        check_rates(f1, tmp_path / "metrics.json")
