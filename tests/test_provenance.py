"""Provenance: what every artifact carries."""

from __future__ import annotations

import importlib.metadata
import subprocess

import torch

from cnnrepro.provenance import git_commit, stamp
from conftest import ROOT


def test_stamp_carries_versions_device_seed_and_config():
    block = stamp({"lr": 0.1}, seed=3, device=torch.device("cpu"))
    assert block["versions"]["torch"] == importlib.metadata.version("torch")
    assert block["seed"] == 3 and block["config"] == {"lr": 0.1}
    assert block["device"].startswith("cpu:") and "threads" in block["device"]
    assert "T" in block["created"]


def test_git_commit_of_the_workflow_and_outside_a_repository(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    assert git_commit(ROOT).removesuffix("-dirty") == head
    assert git_commit(tmp_path) == "unknown"
