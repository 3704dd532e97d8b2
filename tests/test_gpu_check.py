"""The GPU check's CPU mode (benchmarks/gpu_check.py --tiny): every step runs and records
what it measured, so that on a GPU only the real run remains."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_split

from cnnrepro import paths
from cnnrepro.train import Stopped, train

ROOT = Path(__file__).resolve().parents[1]
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks/gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cifar_like(work: Path, n_train: int = 20, n_test: int = 10) -> None:
    """10 classes of 3x32x32 images, a class-coloured square on noise (learnable)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.repeat(np.arange(10), n)
        images = rng.integers(0, 120, (len(labels), 3, 32, 32))
        for k in range(10):
            images[labels == k, k % 3, 3 * k:3 * k + 6, 4:20] += 120
        write_split(work / paths.data("cifar10", split), images.astype(np.uint8), labels,
                    CIFAR10)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work, out = tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("out")
    cifar_like(work)
    results = load_script().main(["--out", str(out), "--work", str(work), "--tiny",
                                  "--budget", "3600"])
    return results, out


def test_every_step_runs_on_the_cpu(tiny):
    results, out = tiny
    failed = {key: rec.get("error") for key, rec in results["stages"].items() if not rec["ok"]}
    assert not failed
    assert all(results[name]["ok"] for name in ("environment", "data", "fp32", "determinism",
                                                "lenet_grid"))
    # every per-run stage of the study, and the evaluation, for both models
    from cnnrepro.studies import REGISTRY
    per_run = {s.name for s in REGISTRY["vdk"].stages.values() if s.per_run}
    for model in ("vdk_cnnet", "baseline_cnn"):
        assert {k.split("/")[1] for k in results["stages"] if k.startswith(model)} \
            == per_run | {"evaluate"}
    assert json.loads((out / "gpu_check.json").read_text())["seconds_total"] > 0
    assert "| vdk_cnnet | 1/1 |" in (out / "gpu_check.md").read_text()
    assert (out / "history_baseline_cnn.csv").is_file()


def test_training_is_deterministic_and_fp32_exact_on_the_cpu(tiny):
    results, _ = tiny
    det = results["determinism"]
    assert det["weights_identical"] and det["metrics_identical"]
    assert det["weights_max_abs_diff"] == 0.0 and len(det["metrics"]) == 2
    # the CPU has no TF32: both modes compute in float32 (about 1e-7 relative)
    for mode in ("ieee", "tf32"):
        assert 0 < results["fp32"]["errors"][mode]["conv"] < 1e-5
    train_rec = results["training"]["vdk_cnnet"]
    assert train_rec["complete"] and train_rec["epochs_done"] == 1
    assert train_rec["fitted_gpu_gflops"] > 0 and train_rec["flops"] > 0


def test_a_deadline_stops_training_with_its_state_saved(mnist_spec, mnist_data, tmp_path):
    mnist_spec["training"]["epochs"] = 3
    with pytest.raises(Stopped) as stop:  # a deadline already past: stops after epoch 1
        train(mnist_spec, 0, mnist_data, tmp_path, threads=1, stop_at=0.0)
    assert stop.value.epoch == 1 and stop.value.checkpoint.is_file()
    assert not (tmp_path / "model.pt").exists()
    meta = train(mnist_spec, 0, mnist_data, tmp_path, threads=1)
    assert meta["resumed_from_epoch"] == 1
