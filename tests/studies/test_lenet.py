"""The lenet study: model sizes, the data probe, the GIF, the vectorised grids, their
settings, fan-out and picks."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, snakemake
from PIL import Image

from cnnrepro import config as cfg
from cnnrepro.datasets import estimate_sizes, input_shape
from cnnrepro.ensemble import Stacked
from cnnrepro.estimate import run_cost
from cnnrepro.io import write_npz
from cnnrepro.models import build_model
from cnnrepro.studies.lenet.claims import PAPER_WINNERS, confusion_rate
from cnnrepro.studies.lenet.grid import (
    grid,
    grid_runs,
    grid_spec,
    logspace,
    point_spec,
    select,
    train_points,
)
from cnnrepro.studies.lenet.probes import animation_frames, covariance_sample, data_probe, write_gif
from cnnrepro.train import train
from cnnrepro.trained import load_study_splits, load_trained


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
    data_probe(data={"train": str(tmp_path / "train.npz")},
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


def tiny_data(tmp_path, n_train=96, n_test=30):
    """Three classes of 3x8x8 images whose class shifts the mean: learnable in two epochs."""
    rng = np.random.default_rng(0)
    paths = {}
    for name, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 3
        images = rng.normal(96 + 40 * labels[:, None, None, None], 40, (n, 3, 8, 8))
        paths[name] = str(tmp_path / f"{name}.npz")
        write_npz(paths[name], images=images.clip(0, 255).astype(np.uint8), labels=labels,
                  classes=np.asarray(["a", "b", "c"]))
    return paths


def tiny_spec(arch, options, optimizer="adam"):
    return {"study": "lenet", "model": arch, "dataset": "tiny", "arch": arch,
            "options": options, "normalize": {"mean": [0.5] * 3, "std": [0.5] * 3},
            "subset": {}, "holdout_fraction": 0.25, "grid_protocol": "clean",
            "training": {"optimizer": optimizer, "batch_size": 16, "epochs": 2,
                         "snapshot_epochs": []},
            "device": "cpu", "deterministic": True, "precision": "ieee"}


@pytest.mark.parametrize("arch, options, chunk_size", [
    ("lenet_cnn", {"channels": [4, 8], "kernel": 3}, 3),  # 2 chunks: 3 points, then 1
    ("ffnn", {"hidden": [16]}, None)])
def test_vectorised_grid_points_equal_separately_trained_points(tmp_path, arch, options,
                                                                chunk_size):
    """Numerically equivalent, not bit-identical: the stacked (grouped) convolutions and
    batched matmuls sum in another order, so weights agree to 1e-5 and every accuracy is
    the same (a near-tie flipping one image would show up here as a failure)."""
    data = tiny_data(tmp_path)
    spec = tiny_spec(arch, options)
    runs = grid_runs({"lr": {"start": -3, "stop": -2, "num": 2},
                      "weight_decay": {"start": -4, "stop": -1, "num": 2}})
    grid(data=data, spec=spec, runs=runs, seed=0, chunk_size=chunk_size,
         grid_history=str(tmp_path / "grid.csv"), grid_meta=str(tmp_path / "grid.json"))
    vectorised = pd.read_csv(tmp_path / "grid.csv")
    assert len(vectorised) == len(runs) * 2 and json.loads(
        (tmp_path / "grid.json").read_text())["splits"] == {"train": 72, "val": 24, "test": 30}
    splits = load_study_splits(spec, data)
    _, models = train_points(spec, runs, 0, splits, torch.device("cpu"), chunk_size)
    for k, run in enumerate(runs):
        out = tmp_path / f"point{k}"
        train(point_spec(spec, run), 0, data, out)
        separate = pd.read_csv(out / "history.csv")
        ours = vectorised[(vectorised.lr_index == run["lr_index"])
                          & (vectorised.wd_index == run["wd_index"])].reset_index(drop=True)
        # accuracies: the same images right (one image is 1/24 here; train.py's are float32)
        for column in ("train_acc", "val_acc", "test_acc"):
            np.testing.assert_allclose(ours[column], separate[column], rtol=0, atol=1e-6,
                                       err_msg=f"point {k} {column}")
        for column in ("train_loss", "val_loss", "test_loss"):
            np.testing.assert_allclose(ours[column], separate[column], rtol=1e-5, atol=1e-6,
                                       err_msg=f"point {k} {column}")
        reference = load_trained(out / "model.pt", point_spec(spec, run), splits["train"],
                                 torch.device("cpu")).state_dict()
        got = models[k].state_dict()
        assert got.keys() == reference.keys()
        for name in reference:
            torch.testing.assert_close(got[name], reference[name], rtol=1e-5, atol=1e-5)
    # the points learned different things: the check is not of four copies of one run
    finals = vectorised[vectorised.epoch == 2]
    assert finals["train_loss"].nunique() == len(runs)


@pytest.mark.parametrize("training", [{"optimizer": "adam"},
                                      {"optimizer": "sgd", "momentum": 0.9}])
def test_stacked_param_group_steps_equal_separate_optimizers_bit_for_bit(training):
    torch.manual_seed(0)
    models = [build_model("lenet_cnn", {"channels": [4, 8], "kernel": 3}, 3, 3, 8)
              for _ in range(3)]  # different weights: each copy must keep its own
    settings = [{"lr": 1e-3, "weight_decay": 0.0}, {"lr": 1e-2, "weight_decay": 1e-3},
                {"lr": 0.1, "weight_decay": 1.0}]
    stacked = Stacked(models)
    optimizer = stacked.optimizer(training, settings)
    kind = torch.optim.SGD if training["optimizer"] == "sgd" else torch.optim.Adam
    extra = {"momentum": training["momentum"]} if "momentum" in training else {}
    separate = [kind(m.parameters(), **s, **extra, fused=True) for m, s in zip(models, settings)]
    for _ in range(3):
        grads = {name: torch.randn_like(p) for name, p in stacked.params.items()}
        stacked.zero_grad()
        for name, p in stacked.params.items():
            p.grad = grads[name].clone()
        stacked.share_grads()
        optimizer.step()
        for k, (model, opt) in enumerate(zip(models, separate)):
            opt.zero_grad()
            for name, p in model.named_parameters():
                p.grad = grads[name][k].clone()
            opt.step()
    for k, model in enumerate(models):
        for name, p in model.named_parameters():
            assert torch.equal(stacked.params[name][k], p.detach()), (k, name)
            assert torch.equal(stacked.module(k).state_dict()[name], p.detach())
    first = next(iter(stacked.params.values()))
    assert not torch.equal(first[0], first[1])  # the groups' settings took effect separately


def test_paper_grid_is_the_originals_and_clean_grid_the_final_architecture():
    config = cfg.load(ROOT / "config.yaml")
    cnn, ffnn = (grid_spec(config, m, "paper") for m in ("cnn", "ffnn"))
    assert cnn["options"]["kernel"] == 3 and cnn["training"]["batch_size"] == 200
    assert ffnn["training"]["batch_size"] == 100
    assert cnn["holdout_fraction"] == ffnn["holdout_fraction"] == 0  # picked on the test set
    conv = build_model(cnn["arch"], cnn["options"], 10, 3, 32).features[0]
    assert (conv.kernel_size, conv.padding) == ((3, 3), (1, 1))
    clean = {m: grid_spec(config, m, "clean") for m in ("cnn", "ffnn")}
    final = {m: cfg.training_spec(config, "lenet", m) for m in ("cnn", "ffnn")}
    for m in ("cnn", "ffnn"):
        assert clean[m]["options"] == final[m]["options"]
        assert clean[m]["training"]["batch_size"] == final[m]["training"]["batch_size"] == 200
        assert clean[m]["holdout_fraction"] == config["studies"]["lenet"]["grid"]["holdout_fraction"] > 0
        assert "lr" not in clean[m]["training"]  # each point brings its own
    assert clean["cnn"]["options"]["kernel"] == 5


def test_bad_grid_settings_are_config_errors(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("studies:\n  lenet:\n    grid: {protocols: [clean], selection: paper}\n")
    with pytest.raises(cfg.ConfigError, match="grid.selection"):
        cfg.load(ROOT / "config.yaml", [overlay])
    overlay.write_text("studies:\n  lenet:\n    grid: {paper_models: {cnn: {options: {kernels: 3}}}}\n")
    with pytest.raises(cfg.ConfigError, match="paper_models.cnn.options"):
        cfg.load(ROOT / "config.yaml", [overlay])
    overlay.write_text("studies:\n  lenet:\n    grid: {paper_models: {cnn: {training: {batchsize: 3}}}}\n")
    with pytest.raises(cfg.ConfigError, match="paper_models.cnn.training"):
        cfg.load(ROOT / "config.yaml", [overlay])


def test_selection_picks_each_protocol_from_its_own_grid(tmp_path):
    grid = {"lr": {"start": -4, "stop": -2, "num": 2},
            "weight_decay": {"start": -3, "stop": -1, "num": 2}, "selection": "paper"}
    accs = {"clean": {(0, 0): (0.3, 0.9), (0, 1): (0.6, 0.4), (1, 0): (float("nan"),) * 2,
                      (1, 1): (0.5, 0.45)},
            "paper": {(0, 0): ("", 0.5), (0, 1): ("", 0.4), (1, 0): ("", 0.55),
                      (1, 1): ("", float("nan"))}}
    histories = []
    for protocol, points in accs.items():
        lines = ["lr_index,wd_index,lr,weight_decay,epoch,train_loss,val_acc,test_acc"]
        for run, (val, test) in zip(grid_runs(grid), points.values()):
            for epoch in (1, 2):  # the pick reads the last epoch only
                last = epoch == 2
                lines.append(f"{run['lr_index']},{run['wd_index']},{run['lr']},"
                             f"{run['weight_decay']},{epoch},1.0,{val if last else 0.99},"
                             f"{test if last else 0.99}")
        histories.append(tmp_path / f"{protocol}.csv")
        histories[-1].write_text("\n".join(lines) + "\n")
    select(histories=[str(h) for h in histories], settings={**grid, "protocols": list(accs)},
           model="cnn", grid_table=str(tmp_path / "grid.csv"), selection=str(tmp_path / "sel.json"),
           overrides=str(tmp_path / "over.json"))
    pick = json.loads((tmp_path / "sel.json").read_text())
    assert (pick["clean"]["lr_index"], pick["clean"]["wd_index"]) == (0, 1)  # not test's (0, 0)
    assert (pick["paper"]["lr_index"], pick["paper"]["wd_index"]) == (1, 0)
    assert pick["clean"]["weight_decay"] == pytest.approx(1e-1)
    assert pick["paper"]["val_acc"] is None and pick["paper"]["by"] == "test_acc"
    table = pd.read_csv(tmp_path / "grid.csv")
    assert table.groupby("protocol").size().to_dict() == {"clean": 4, "paper": 4}
    overrides = json.loads((tmp_path / "over.json").read_text())  # the configured pick
    assert overrides["training"] == {"lr": pytest.approx(1e-2), "weight_decay": pytest.approx(1e-3)}
    assert "paper" in overrides["selected_by"]


@pytest.mark.e2e  # a dry run of the workflow
def test_full_config_plans_one_grid_job_per_model_and_protocol(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNREPRO_ESTIMATE_JSON", str(tmp_path / "estimate.json"))
    proc = snakemake(tmp_path, "-n", "--quiet", "rules", configfiles=())
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout + proc.stderr, flags=re.M))
    config = cfg.load(ROOT / "config.yaml")
    lenet = config["studies"]["lenet"]
    assert int(counts["grid_lenet"]) == len(lenet["grid"]["protocols"]) * len(lenet["models"]) == 4
    assert int(counts["select_lenet"]) == len(lenet["models"])
    assert "grid_point_lenet" not in counts
    # the estimate counts a grid job as its 64 training runs
    shape, sizes = input_shape(config, "cifar10"), estimate_sizes(config, "cifar10")
    jobs = json.loads((tmp_path / "estimate.json").read_text())["jobs"]
    grid_jobs = [job for job in jobs if job["rule"] == "grid_lenet"]
    for job in grid_jobs:
        protocol = job["benchmark"].rsplit("/", 1)[-1].removesuffix(".tsv")
        expected = 64 * run_cost(grid_spec(config, job["model"], protocol), shape, sizes)
        assert job["work"] == pytest.approx(expected)
    assert {job["model"] for job in grid_jobs} == set(lenet["models"])


@pytest.mark.e2e
def test_quick_grid_runs_picks_a_point_and_final_training_uses_it(quick_run):
    workdir, _ = quick_run
    quick = cfg.load(ROOT / "config.yaml", [ROOT / "config/presets/quick.yaml"])
    grid = quick["studies"]["lenet"]["grid"]
    for model in quick["studies"]["lenet"]["models"]:
        pick = json.loads((workdir / f"results/lenet/select/{model}/selection.json").read_text())
        assert pick["clean"]["lr"] in logspace(grid["lr"])
        assert pick["paper"]["weight_decay"] in logspace(grid["weight_decay"])
        meta = json.loads((workdir / f"results/lenet/{model}/seed0/train.json").read_text())
        assert meta["provenance"]["config"]["training"]["lr"] == pick[grid["selection"]]["lr"]
    # The quick grid does not contain the original's winners: "not picked" is not comparable.
    claims = pd.read_csv(workdir / "results/lenet/claims/claims.csv").set_index("claim_id")
    for model, winner in PAPER_WINNERS.items():
        assert not (np.isclose(logspace(grid["lr"]), winner["lr"], rtol=0.01).any()
                    and np.isclose(logspace(grid["weight_decay"]), winner["weight_decay"],
                                   rtol=0.01).any())
        assert claims.loc[f"lenet.grid.{model}.clean", "verdict"] == "not comparable"
        assert "grid.lr" in claims.loc[f"lenet.grid.{model}.clean", "reason"]
    evo = np.load(workdir / "results/lenet/cnn/seed0/evolution/evolution.npz")
    assert evo["epochs"].tolist() == [0, 2] and evo["kernels"].shape == (2, 3, 5, 5)
    assert (workdir / "results/report/lenet/lenet_feature_maps.gif").is_file()


def test_without_the_grid_table2_is_judged_and_the_picks_say_not_run(tmp_path, full_config):
    """grid.enabled: false (the document preset): final training uses the document's own
    winners, so Table 2 and the rest are judged; the four pick claims get no value and are
    not comparable, naming the grid."""
    from cnnrepro.claims import NOT_COMPARABLE
    from cnnrepro.studies import lenet
    from cnnrepro.studies.lenet.claims import STAGES, claims

    config = cfg.load(ROOT / "config.yaml", [ROOT / "config" / "presets" / "document.yaml"])
    config["seeds"] = [0, 1]
    files = lenet.STUDY.study_files(config, str(tmp_path))
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
    for (model, seed), path in files.runs("metrics").items():
        path.parent.mkdir(parents=True, exist_ok=True)
        split = {"accuracy": 0.7, "precision": 0.7, "recall": 0.7, "f1": 0.7}
        auc = {c: 0.9 - 0.01 * i for i, c in enumerate(classes)}
        auc["cat"] = 0.5
        path.write_text(json.dumps({"splits": {"test": split, "train": split}, "auc": auc}))
        confusion = pd.DataFrame(np.full((10, 10), 10), index=classes, columns=classes)
        confusion.to_csv(files.run("confusion", model, seed))
        pd.DataFrame({"epoch": range(31), "test_acc": np.linspace(0.3, 0.7, 31)}).to_csv(
            files.run("history", model, seed), index=False)
    out = tmp_path / "claims.csv"
    reads = STAGES["claims"].reads_for(config)  # without the grid's files: it did not run
    claims(files=files.only(reads), settings=config["studies"]["lenet"]["claims"],
           grid_seed=None, claims=str(out), grid_summary=str(tmp_path / "grid.csv"),
           departures=cfg.departures(config, "lenet"), preset="document")
    table = pd.read_csv(out).set_index("claim_id")
    picks = table[table.index.str.startswith("lenet.grid.")]
    assert len(picks) == 4 and (picks["verdict"] == NOT_COMPARABLE).all()
    assert (picks["n"] == 0).all() and picks["statement"].str.contains("not run").all()
    assert picks["reason"].str.contains("grid.enabled false instead of true").all()
    others = table[~table.index.str.startswith("lenet.grid.")]
    assert len(others) == 25 and not (others["verdict"] == NOT_COMPARABLE).any()
    assert "not run" in pd.read_csv(tmp_path / "grid.csv")["note"].iloc[0]
