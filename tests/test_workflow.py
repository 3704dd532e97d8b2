"""End to end: the quick preset through Snakemake on the staged mirror.

One run per session (a few minutes on 2 cores) feeds every assertion below; a second
invocation must then have nothing to do.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bad_overlays import SCHEMA_AND_SEMANTICS, SOURCE_LEVEL, YAML_LEVEL, params
from cnnrepro import config as cfg
from cnnrepro import studies
from cnnrepro.studies.vdk.figures import vdk_immune
from conftest import MIRROR, QUICK, ROOT, SNAKEMAKE, snakemake

pytestmark = pytest.mark.e2e


def test_quick_preset_produces_every_backbone_artifact(quick_run):
    workdir, proc = quick_run
    config = yaml.safe_load(Path(QUICK).read_text())
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert "estimated training compute" in proc.stderr  # the cost is said up front
    for dataset in cfg.needed_datasets(cfg.load(ROOT / "config.yaml", [QUICK])):
        splits = ["train", "val", "test"] if dataset == "caltech101_3" else ["train", "test"]
        for split in splits:
            assert (workdir / f"results/data/{dataset}/{split}.npz").stat().st_size > 0
            prov = json.loads((workdir / f"results/data/{dataset}/{split}.json").read_text())
            assert prov["source"]["kind"] == "mirror" and prov["source"]["sha256"]
    for study, sspec in base["studies"].items():
        for model in sspec["models"]:
            for seed in config["seeds"]:
                run = workdir / f"results/{study}/{model}/seed{seed}"
                for name in ("model.pt", "history.csv", "train.json", "eval/metrics.json",
                             "eval/predictions.npz", "eval/confusion.csv", "eval/roc.csv",
                             "eval/layers.csv"):
                    assert (run / name).is_file(), f"missing {run / name}"
                assert (workdir / f"results/logs/train_model/{study}/{model}/seed{seed}.log").is_file()
                assert (workdir / f"results/benchmarks/train_model/{study}/{model}/seed{seed}.tsv").is_file()
        summary = pd.read_csv(workdir / f"results/{study}/summary/metrics_summary.csv")
        assert set(summary["model"]) == set(sspec["models"])
    lenet_snaps = sorted(p.name for p in (workdir / "results/lenet/cnn/seed0/snapshots").glob("epoch_*.pt"))
    assert lenet_snaps == ["epoch_000.pt", "epoch_001.pt", "epoch_002.pt"]


def test_quick_preset_learns(quick_run):
    workdir, _ = quick_run
    summary = pd.read_csv(workdir / "results/mnist/summary/metrics_summary.csv")
    acc = summary.query("split == 'test' and metric == 'accuracy'").set_index("model")["mean"]
    assert (acc > 0.5).all(), acc  # chance is 0.1


def test_second_run_has_nothing_to_do(quick_run):
    workdir, _ = quick_run
    proc = snakemake(workdir, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_bad_config_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("studies:\n  mnist:\n    training:\n      epochs: -1\n")
    proc = snakemake(tmp_path, "-n", configfiles=(QUICK, str(bad)))
    assert proc.returncode != 0
    assert "studies.mnist.training.epochs" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


# One row of each kind through Snakemake itself (each dry run costs seconds: the whole
# table runs through cfg.load in test_config.py, which is what the Snakefile calls first).
THROUGH_SNAKEMAKE = {"yaml_duplicate_key", "study_key_typo", "normalize_rgb_on_mnist",
                     "snapshot_beyond_epochs", "name_with_slash", "channels_words",
                     "probe_class_unicorn", "fgsm_images_beyond_test",
                     "caltech_class_not_in_mirror"}


@pytest.mark.parametrize("text, expect", params(
    [row for row in YAML_LEVEL + SCHEMA_AND_SEMANTICS + SOURCE_LEVEL
     if row[0] in THROUGH_SNAKEMAKE]))
def test_bad_overlay_stops_the_dry_run_before_any_job(text, expect, tmp_path):
    # (the other YAML-level rows fail inside Snakemake's own reader: ./repro checks them)
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(text)
    proc = snakemake(tmp_path, "-n", configfiles=(QUICK, str(overlay)))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert expect.format(file=overlay) in out, out[-2000:]
    assert "Job stats" not in out and not (tmp_path / "results").exists()


def test_without_a_mirror_the_dry_run_says_torchvision_downloads(tmp_path):
    (tmp_path / "config.yaml").symlink_to(ROOT / "config.yaml")  # the default config, here
    env = {k: v for k, v in os.environ.items() if k != "CNNREPRO_DATA_MIRROR"}
    proc = subprocess.run([*SNAKEMAKE, "-n"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cnnrepro: data downloaded by torchvision into data/downloads (no folder at " \
           "data.mirror" in proc.stderr
    assert "preset 'full'" in proc.stderr and not (tmp_path / "results").exists()


def test_corrupt_mirror_stops_the_run_before_training(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for entry in MIRROR.iterdir():
        (mirror / entry.name).symlink_to(entry)
    (mirror / "mnist").unlink()
    (mirror / "mnist").mkdir()
    for f in (MIRROR / "mnist").iterdir():
        (mirror / "mnist" / f.name).write_bytes(f.read_bytes())
    (mirror / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"truncated")
    env = {**os.environ, "CNNREPRO_DATA_MIRROR": str(mirror)}
    proc = subprocess.run([*SNAKEMAKE, "--configfile", str(ROOT / "config.yaml"), QUICK],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "t10k-images-idx3-ubyte.gz: checksum mismatch" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists(), "nothing may start, nothing may be left"


def test_quick_preset_runs_the_vdk_analyses(quick_run):
    workdir, _ = quick_run
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    for model in base["studies"]["vdk"]["models"]:
        run = workdir / f"results/vdk/{model}/seed0"
        maps = np.load(run / "explain/attributions.npz")
        assert {"saliency", "integrated_gradients", "ig_smoothgrad_sq", "deeplift"} <= set(maps.files)
        assert maps["indices"][0] == 1001  # the paper's car, official test index 9
        fgsm = json.loads((run / "attack/fgsm.json").read_text())
        assert fgsm["paper"]["epsilon"] == 0.16 and len(fgsm["clean"]["curve"]) == 3
        blur = json.loads((run / "attack/blur.json").read_text())
        assert 0 <= blur["paper"]["immune"] <= 1
    claims = pd.read_csv(workdir / "results/vdk/summary/claims.csv")
    assert {"vdk.acc.vdk_cnnet", "vdk.fig8.baseline_cnn", "vdk.tab1.vdk_cnnet.paper",
            "vdk.tab1.gain.clean", "vdk.cost.baseline_cnn", "vdk.cost.vdk_novdk"
            } <= set(claims["claim_id"])
    assert set(claims["verdict"]) <= {"holds", "does not hold", "inconclusive", "not comparable"}
    assert claims["rule"].str.len().min() > 10
    # one epoch on 1,000 images tests no trained claim: only the MACs are judged
    judged = claims[claims["verdict"] != "not comparable"]
    assert set(judged["claim_id"]) == {"vdk.cost.baseline_cnn", "vdk.cost.vdk_novdk"}
    # the immune figure draws Table 1's values on the bars' numeric axis
    quick = cfg.load(ROOT / "config.yaml", [QUICK])
    fig = vdk_immune(studies.get("vdk").study_files(quick, str(workdir)))
    paper_lines = sorted(line.get_ydata()[0] for line in fig.axes[0].lines
                         if line.get_linestyle() == "--")
    assert paper_lines == [15.91, 24.29]


def test_quick_preset_runs_the_mnist_lab(quick_run):
    workdir, _ = quick_run
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    for model in base["studies"]["mnist"]["models"]:
        lab = np.load(workdir / f"results/mnist/{model}/seed0/lab/lab.npz")
        assert lab["fool_images"].shape == (10, 1, 28, 28)
        assert lab["noise"].shape == (10, 1, 28, 28) and lab["occ_drop"].shape[0] == 10
    claims = pd.read_csv(workdir / "results/mnist/summary/claims.csv").set_index("claim_id")
    assert {"mnist.acc.cnn", "mnist.acc.cnn_bn", "mnist.time", "mnist.parameters",
            "mnist.neurons", "mnist.fool.cnn", "mnist.targeted.cnn", "mnist.noise.cnn"
            } <= set(claims.index)
    assert claims.loc["mnist.parameters", "reproduced_mean"] == 799_078
    assert claims.loc["mnist.parameters", "verdict"] == "holds"  # structural: any preset
    assert claims.loc["mnist.parameters", "n"] == 1
    assert claims.loc["mnist.acc.cnn", "verdict"] == "not comparable"
    assert claims.loc["mnist.time", "verdict"] == "inconclusive"  # one seed: no verdict
    structure = pd.read_csv(workdir / "results/mnist/summary/structure.csv")
    assert set(structure["model"]) == {"cnn", "cnn_bn"}
