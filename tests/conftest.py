"""Shared fixtures and builders, in one place: the runs of the workflow the end-to-end
tests read, the staged dataset mirror, small prepared splits made from it, and synthetic
datasets that need no mirror.

Tiers (``-m``), set per test by :func:`pytest_collection_modifyitems` from what it uses:
``unit`` (no mirror, no Snakemake run: minutes), ``study`` (reads the mirror or trains on
it), ``e2e`` (runs the workflow: the shared quick run and small runs of its own) and
``slurm`` (a live cluster).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from cnnrepro import config as cfg
from cnnrepro.datasets.prepared import prepare_split
from cnnrepro.io import write_npz

ROOT = Path(__file__).resolve().parents[1]
MIRROR = (ROOT.parent / "shared" / "datasets").resolve()
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]
QUICK = str(ROOT / "config" / "presets" / "quick.yaml")
SLURM_REQUESTED = os.environ.get("CNNREPRO_TEST_SLURM") == "1"
TIMEOUT = 3000  # seconds: a hung run fails the test instead of CI's whole budget


class Started:
    """A Snakemake run in ``workdir``, started in the background; :meth:`result` waits.
    Its output goes to unnamed temporary files, not pipes (a run nobody reads yet must
    never block on a full pipe) and not the workdir (later runs there would overwrite it)."""

    def __init__(self, workdir: Path, *args: str, configfiles=(QUICK,),
                 env: dict[str, str] | None = None):
        self.workdir = workdir
        env = {**os.environ, "CNNREPRO_DATA_MIRROR": str(MIRROR), **(env or {})}
        # targets and options first: --configfile takes every argument after it
        command = [*SNAKEMAKE, *args, "--configfile", str(ROOT / "config.yaml"), *configfiles]
        self._out, self._err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        self._proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=self._out,
                                      stderr=self._err, text=True)
        self._args = command
        self._done: subprocess.CompletedProcess | None = None

    def result(self) -> subprocess.CompletedProcess:
        if self._done is None:
            try:
                self._proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            texts = []
            for stream in (self._out, self._err):
                stream.seek(0)
                texts.append(stream.read())
                stream.close()
            self._done = subprocess.CompletedProcess(self._args, self._proc.returncode, *texts)
        return self._done


def snakemake(workdir: Path, *args: str, configfiles=(QUICK,), env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` on the staged mirror (config files, then ``args``;
    ``env``: more environment variables)."""
    return Started(workdir, *args, configfiles=configfiles, env=env).result()


# --- the cluster ------------------------------------------------------------------------

def slurm_args() -> list[str]:
    # No accounting database in the test cluster: no account, and the profile's squeue
    # status check; a short first status check keeps the test quick.
    return ["--profile", str(ROOT / "profiles" / "slurm"), "--slurm-no-account",
            "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs"]


def slurm_answers() -> bool:
    if not shutil.which("sinfo"):
        return False
    states = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                            timeout=30).stdout
    return bool(re.search(r"idle|mix|alloc", states))


# The cluster run covers the rules that ask for a GPU (vdk's training and analyses) with
# the prepare and evaluate rules around them, for two of vdk's models: every SLURM job
# costs ~25 s of submission and polling on the test node, so CI time, not coverage, sets
# the subset. It builds each run's files that the comparison with the local run reads.
SLURM_STUDY, SLURM_MODELS = "vdk", ("baseline_cnn", "vdk_novdk")
SLURM_RUN_FILES = ("metrics", "fgsm", "fgsm_curve", "blur_summary", "faithfulness")


def slurm_targets(config: dict) -> list[str]:
    from cnnrepro import studies

    files = studies.get(SLURM_STUDY).study_files(config)
    return [str(path) for name in SLURM_RUN_FILES
            for path in files.runs(name, SLURM_MODELS).values()]


@pytest.fixture(scope="session")
def shared_runs(request, tmp_path_factory) -> dict[str, Started]:
    """The runs the end-to-end tests read, started together once per session: the quick
    preset locally and, where a test of this session needs it, its GPU rules on SLURM.
    The cluster run mostly waits on job polling, so beside the local run it costs little
    time (CI's budget), where after it, it would cost ~6 minutes."""
    runs = {}
    wanted = any("slurm_run" in item.fixturenames for item in request.session.items)
    if wanted and slurm_answers():  # else the slurm_run fixture fails or skips, saying why
        workdir = tmp_path_factory.mktemp("slurm")
        overlay = workdir / "subset.yaml"
        others = [s for s in cfg.load(ROOT / "config.yaml")["studies"] if s != SLURM_STUDY]
        overlay.write_text(yaml.safe_dump({"studies": {s: {"enabled": False} for s in others}}))
        targets = slurm_targets(cfg.load(ROOT / "config.yaml", [QUICK]))
        runs["slurm"] = Started(workdir, *targets, *slurm_args(),
                                configfiles=(QUICK, str(overlay)))
    runs["quick"] = Started(tmp_path_factory.mktemp("quick"))
    return runs


@pytest.fixture(scope="session")
def quick_run(shared_runs):
    """The quick preset run locally once per session (about 17 minutes on 2 cores)."""
    proc = shared_runs["quick"].result()
    if "slurm" in shared_runs:
        shared_runs["slurm"].result()  # nothing runs beside the tests that time a run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return shared_runs["quick"].workdir, proc


@pytest.fixture(scope="session")
def slurm_up():
    """A cluster that answers; CNNREPRO_TEST_SLURM=1 (CI) makes its absence a failure."""
    if not slurm_answers():
        if SLURM_REQUESTED:
            pytest.fail("CNNREPRO_TEST_SLURM=1 but no SLURM cluster answers (run .ci/slurm up)")
        pytest.skip("SLURM tests not requested: start a cluster (.ci/slurm up) and set "
                    "CNNREPRO_TEST_SLURM=1")


@pytest.fixture(scope="session")
def slurm_run(slurm_up, shared_runs):
    proc = shared_runs["slurm"].result()
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return shared_runs["slurm"].workdir, proc


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


# --- synthetic data (no mirror) ---------------------------------------------------------

def stripes(n_per_class: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A learnable 3-class problem: horizontal, vertical or diagonal stripes at a random
    period and phase, with noise; uint8 RGB images and int64 labels."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels = [], []
    for label, coord in enumerate((yy, xx, yy + xx)):
        for _ in range(n_per_class):
            pattern = np.sin(2 * np.pi * coord / g.uniform(3, 7) + g.uniform(0, 2 * np.pi))
            noisy = 0.5 + 0.3 * pattern + 0.15 * g.normal(size=(3, size, size))
            images.append((np.clip(noisy, 0, 1) * 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


def bands(n_per_class: int, channels: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images where class k has a bright horizontal band at rows 2k, 2k + 1
    (learnable in one or two epochs)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    images = rng.integers(20, 110, (len(labels), channels, size, size))
    for k in range(3):
        images[labels == k, :, 2 * k:2 * k + 2] += 120
    return images.astype(np.uint8), labels.astype(np.int64)


def write_split(path, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> str:
    """A prepared split as the data rule writes it (what the stages load)."""
    write_npz(path, images=images, labels=labels, classes=np.asarray(classes))
    return str(path)


# --- tiers ------------------------------------------------------------------------------

def pytest_collection_modifyitems(items):
    """Each test's tier from the fixtures it uses (``slurm`` and ``e2e`` are set by the
    modules that run the workflow): the mirror makes a ``study`` test, else ``unit``."""
    for item in items:
        if item.get_closest_marker("slurm") or item.get_closest_marker("e2e"):
            continue
        item.add_marker("study" if "mirror" in item.fixturenames else "unit")
