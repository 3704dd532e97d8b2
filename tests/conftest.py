"""Shared fixtures: the staged dataset mirror and small prepared splits made from it."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnrepro import config as cfg
from cnnrepro.datasets import prepare_split

ROOT = Path(__file__).resolve().parents[1]
MIRROR = (ROOT.parent / "shared" / "datasets").resolve()
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]
QUICK = str(ROOT / "config" / "presets" / "quick.yaml")


def snakemake(workdir: Path, *args: str, configfiles=(QUICK,)) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` on the staged mirror (config files, then ``args``)."""
    env = {**os.environ, "CNNREPRO_DATA_MIRROR": str(MIRROR)}
    # targets and options first: --configfile takes every argument after it
    command = [*SNAKEMAKE, *args, "--configfile", str(ROOT / "config.yaml"), *configfiles]
    return subprocess.run(command, cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=3000)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """The quick preset run locally once per session (a few minutes on 2 cores)."""
    workdir = tmp_path_factory.mktemp("quick")
    proc = snakemake(workdir)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return workdir, proc


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
def trained_mnist_run(mnist_data, full_config, tmp_path_factory) -> tuple[Path, dict]:
    """A quick-trained MNIST CNN's run folder (600 images, 2 epochs: well above chance;
    ``model.pt`` as training writes it) and its spec."""
    from cnnrepro.train import train

    spec = copy.deepcopy(cfg.training_spec(full_config, "mnist", "cnn"))
    spec.update(subset={"train": 600, "test": 200}, device="cpu")
    spec["training"]["epochs"] = 2
    out = tmp_path_factory.mktemp("trained_mnist")
    train(spec, 0, mnist_data, out, threads=2)
    return out, spec


@pytest.fixture(scope="session")
def trained_mnist(trained_mnist_run, mnist_data):
    """That CNN loaded, its splits and its spec."""
    from cnnrepro.trained import open_trained

    out, spec = trained_mnist_run
    model, splits, _ = open_trained(spec, out / "model.pt", mnist_data)
    return model, splits, spec


def sample_images(trained, n: int):
    """The first ``n`` test images of a trained fixture in [0, 1], their labels, and the
    model with its normalisation constants."""
    model, splits, spec = trained
    test = splits["test"]
    mean, std = spec["normalize"]["mean"], spec["normalize"]["std"]
    return model, test.images[:n].float() / 255, test.labels[:n], mean, std
