"""Provenance: what every artifact carries."""

from __future__ import annotations

import importlib.metadata
import subprocess

import torch
from conftest import ROOT

from cnnrepro.io import read_json
from cnnrepro.provenance import git_commit, stamp


def test_stamp_carries_versions_device_seed_and_config():
    block = stamp({"lr": 0.1}, seed=3, device=torch.device("cpu"))
    assert block["versions"]["torch"] == importlib.metadata.version("torch")
    assert block["seed"] == 3 and block["config"] == {"lr": 0.1}
    assert block["device"].startswith("cpu:") and "threads" in block["device"]
    assert "T" in block["created"]
    assert block["numerics"]["cudnn_conv_fp32_precision"] == torch.backends.cudnn.conv.fp32_precision
    assert block["numerics"]["cuda_matmul_fp32_precision"] == torch.backends.cuda.matmul.fp32_precision
    assert block["numerics"]["deterministic_algorithms"] == torch.are_deterministic_algorithms_enabled()


def test_a_trained_model_records_full_float32(trained_mnist_run):
    """The pipeline's default: CUDA convolutions and matmuls in IEEE float32, recorded."""
    out, _ = trained_mnist_run
    numerics = read_json(out / "train.json")["provenance"]["numerics"]
    assert numerics["cudnn_conv_fp32_precision"] == numerics["cuda_matmul_fp32_precision"] == "ieee"
    assert numerics["deterministic_algorithms"] and not numerics["cudnn_benchmark"]
    assert not numerics["fill_uninitialized_memory"]


def test_git_commit_of_the_workflow_and_outside_a_repository(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    assert git_commit(ROOT).removesuffix("-dirty") == head
    assert git_commit(tmp_path) == "unknown"
