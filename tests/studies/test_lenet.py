"""The lenet study: model sizes, the data probe, the GIF, the grid's fan-out and its pick."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cnnrepro import config as cfg
from cnnrepro.io import write_npz
from cnnrepro.models import build_model
from cnnrepro.studies.lenet.claims import PAPER_WINNERS, confusion_rate
from cnnrepro.studies.lenet.grid import logspace, select
from cnnrepro.studies.lenet.probes import (animation_frames, covariance_sample, probe_data,
                                          write_gif)
from conftest import ROOT, snakemake


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_by_hand():
    cnn = build_model("lenet_cnn", {"channels": [32, 64], "kernel": 5}, 10, 3, 32)
    assert n_params(cnn) == (3 * 25 + 1) * 32 + (32 * 25 + 1) * 64 + (64 * 8 * 8 + 1) * 10
    ffnn = build_model("ffnn", {"hidden": [100]}, 10, 3, 32)
    assert n_params(ffnn) == (3 * 32 * 32 + 1) * 100 + (100 + 1) * 10


def test_covariance_is_numpy_cov_of_a_class_balanced_random_sample(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 3, 4, 4), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 20)  # sorted by class, as the prepared arrays are
    write_npz(tmp_path / "train.npz", images=images, labels=labels,
              classes=np.asarray(["a", "b", "c"]))
    probe_data(data={"train": str(tmp_path / "train.npz")},
               settings={"samples_per_class": 3, "covariance_images": 25}, seed=0,
               data_probe=str(tmp_path / "probe.npz"))
    probe = np.load(tmp_path / "probe.npz")
    picked = probe["covariance_indices"]
    # every class, balanced (25 = 9 + 8 + 8), and not the first images of each class
    assert sorted(np.bincount(labels[picked]).tolist()) == [8, 8, 9]
    assert (probe["covariance_labels"] == labels[picked]).all() and int(probe["n_images"]) == 25
    firsts = [np.flatnonzero(labels == c)[:8] for c in range(3)]  # random, not the first ones
    assert not all(set(f) <= set(picked) for f in firsts)
    expected = np.cov(images[picked].reshape(25, -1) / 255, rowvar=False)
    assert probe["covariance"].shape == (48, 48)
    np.testing.assert_allclose(probe["covariance"], expected, rtol=1e-5, atol=1e-7)
    assert probe["samples"].shape == (3, 3, 3, 4, 4)


def test_covariance_sample_covers_every_class_where_the_first_images_do_not():
    labels = np.repeat(np.arange(10), 5000)  # CIFAR-10's prepared training split
    picked = covariance_sample(labels, 6000, np.random.default_rng(0))
    assert np.bincount(labels[picked]).tolist() == [600] * 10
    assert np.unique(labels[:6000]).tolist() == [0, 1]  # what "the first 6,000" gave
    other = covariance_sample(labels, 6000, np.random.default_rng(1))
    assert not np.array_equal(picked, other)  # random, by the seed


def test_confusion_rate_per_1000_images_of_the_true_class():
    classes = ["cat", "dog", "automobile"]
    confusion = pd.DataFrame([[30, 12, 8], [5, 40, 5], [0, 1, 49]], index=classes,
                             columns=classes)
    # 12 of 50 cat test images predicted as dog = 240 per 1,000; the paper's 152 is of 1,000
    assert confusion_rate(confusion, "cat", "dog") == pytest.approx(240.0)
    assert confusion_rate(confusion, "cat", "automobile") == pytest.approx(160.0)
    assert confusion_rate(confusion, "dog", "cat") == pytest.approx(100.0)
    full = confusion * 20  # the same model on 1,000 images per class: the same rates
    assert confusion_rate(full, "cat", "dog") == pytest.approx(240.0)
    assert full.loc["cat", "dog"] == 240


def test_gif_has_one_frame_per_shown_snapshot_in_epoch_order(tmp_path):
    rng = np.random.default_rng(1)
    epochs = np.array([0, 2, 4, 6])
    evo = {"epochs": epochs, "fmap": rng.normal(size=(4, 32, 32)),
           "relu": rng.random((4, 32, 32)), "pool": rng.random((4, 16, 16))}
    evo["fmap"][np.arange(4), 0, 0] = epochs * 10.0  # a marker that grows with the epoch
    write_npz(tmp_path / "evolution.npz", **evo)
    write_gif(tmp_path / "evolution.npz", tmp_path / "maps.gif")
    expected = animation_frames(np.load(tmp_path / "evolution.npz"))
    gif = Image.open(tmp_path / "maps.gif")
    assert gif.n_frames == len(epochs)
    markers = []
    for k in range(gif.n_frames):
        gif.seek(k)
        frame = np.asarray(gif.convert("L"))
        np.testing.assert_array_equal(frame, expected[k])
        markers.append(frame[0, 0])
    assert markers == sorted(markers) and len(set(markers)) == len(markers)


def test_selection_picks_by_validation_and_by_test(tmp_path):
    grid = {"lr": {"start": -4, "stop": -2, "num": 2},
            "weight_decay": {"start": -3, "stop": -1, "num": 2}, "selection": "paper"}
    accs = {(0, 0): (0.3, 0.5), (0, 1): (0.6, 0.4), (1, 0): (float("nan"), float("nan")),
            (1, 1): (0.5, 0.45)}
    histories = []
    for (i, j), (val, test) in accs.items():  # grid_points order: row-major
        path = tmp_path / f"{i}{j}.csv"
        path.write_text(f"epoch,train_loss,val_acc,test_acc\n1,1.0,{val},{test}\n")
        histories.append(str(path))
    select(histories=histories, grid=grid, model="cnn", grid_table=str(tmp_path / "grid.csv"),
           selection=str(tmp_path / "sel.json"), overrides=str(tmp_path / "over.json"))
    pick = json.loads((tmp_path / "sel.json").read_text())
    assert (pick["clean"]["lr_index"], pick["clean"]["wd_index"]) == (0, 1)
    assert (pick["paper"]["lr_index"], pick["paper"]["wd_index"]) == (0, 0)
    assert pick["clean"]["weight_decay"] == pytest.approx(1e-1)
    overrides = json.loads((tmp_path / "over.json").read_text())  # the configured pick
    assert overrides["training"] == {"lr": pytest.approx(1e-4), "weight_decay": pytest.approx(1e-3)}
    assert "paper" in overrides["selected_by"]


def test_full_config_plans_64_grid_jobs_per_model(tmp_path):
    proc = snakemake(tmp_path, "-n", "--quiet", "rules", configfiles=())
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout + proc.stderr, flags=re.M))
    models = cfg.load(ROOT / "config.yaml")["studies"]["lenet"]["models"]
    assert int(counts["grid_point_lenet"]) == 64 * len(models)
    assert int(counts["select_lenet"]) == len(models)


@pytest.mark.e2e
def test_quick_grid_runs_picks_a_point_and_final_training_uses_it(quick_run):
    workdir, _ = quick_run
    quick = cfg.load(ROOT / "config.yaml", [ROOT / "config/presets/quick.yaml"])
    grid = quick["studies"]["lenet"]["grid"]
    for model in quick["studies"]["lenet"]["models"]:
        pick = json.loads((workdir / f"results/lenet/grid/{model}/selection.json").read_text())
        assert pick["clean"]["lr"] in logspace(grid["lr"])
        meta = json.loads((workdir / f"results/lenet/{model}/seed0/train.json").read_text())
        assert meta["provenance"]["config"]["training"]["lr"] == pick[grid["selection"]]["lr"]
    # The quick grid does not contain the original's winners: "not picked" is not comparable.
    claims = pd.read_csv(workdir / "results/lenet/summary/claims.csv").set_index("claim_id")
    for model, winner in PAPER_WINNERS.items():
        assert not (np.isclose(logspace(grid["lr"]), winner["lr"], rtol=0.01).any()
                    and np.isclose(logspace(grid["weight_decay"]), winner["weight_decay"],
                                   rtol=0.01).any())
        assert claims.loc[f"lenet.grid.{model}.clean", "verdict"] == "not comparable"
        assert "grid.lr" in claims.loc[f"lenet.grid.{model}.clean", "reason"]
    evo = np.load(workdir / "results/lenet/cnn/seed0/probe/evolution.npz")
    assert evo["epochs"].tolist() == [0, 2] and evo["kernels"].shape == (2, 3, 5, 5)
    assert (workdir / "results/report/lenet/lenet_feature_maps.gif").is_file()
