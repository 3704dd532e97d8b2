"""Shared fixtures: the staged dataset mirror and small prepared splits made from it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from cnnrepro import config as cfg
from cnnrepro.datasets import prepare_split

ROOT = Path(__file__).resolve().parents[1]
MIRROR = (ROOT.parent / "shared" / "datasets").resolve()


@pytest.fixture(scope="session")
def mirror() -> Path:
    # Not a skip: the mirror is part of the test environment (CI has ../shared beside it).
    assert (MIRROR / "SHA256SUMS").is_file(), f"dataset mirror missing at {MIRROR}"
    return MIRROR


@pytest.fixture(scope="session")
def mnist_data(mirror, tmp_path_factory) -> dict[str, Path]:
    """MNIST train/test prepared from the mirror once per session."""
    out = tmp_path_factory.mktemp("mnist")
    paths = {}
    for split in ("train", "test"):
        paths[split] = out / f"{split}.npz"
        prepare_split("mnist", split, paths[split], out / f"{split}.json", mirror,
                      out / "downloads")
    return paths


@pytest.fixture(scope="session")
def full_config() -> dict:
    return cfg.load(ROOT / "config.yaml")


@pytest.fixture
def mnist_spec(full_config) -> dict:
    """A small, fast MNIST CNN training spec (600 train / 200 test images)."""
    spec = copy.deepcopy(cfg.training_spec(full_config, "mnist", "cnn"))
    spec["subset"] = {"train": 600, "test": 200}
    spec["training"]["epochs"] = 2
    spec["device"] = "cpu"
    return spec


@pytest.fixture(scope="session")
def trained_mnist(mnist_data, full_config, tmp_path_factory):
    """A quick-trained MNIST CNN (600 images, 2 epochs: well above chance) and its data."""
    from cnnrepro.train import open_trained, train

    spec = copy.deepcopy(cfg.training_spec(full_config, "mnist", "cnn"))
    spec.update(subset={"train": 600, "test": 200}, device="cpu")
    spec["training"]["epochs"] = 2
    out = tmp_path_factory.mktemp("trained_mnist")
    train(spec, 0, mnist_data, out, threads=2)
    model, splits, _ = open_trained(spec, out / "model.pt", mnist_data)
    return model, splits, spec
