"""Atomic writing: complete file or none, with the mode a plain new file would get."""

from __future__ import annotations

import os

import pytest
import torch

from cnnrepro.io import atomic_path, write_json, write_torch


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
