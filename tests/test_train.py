"""Training: determinism across runs, seed sensitivity, resume after a kill."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from cnnrepro.train import CheckpointError, load_study_splits, load_trained, train

METRICS = ["train_loss", "train_acc", "test_loss", "test_acc"]


def weights(path):
    return torch.load(path, weights_only=False)["state_dict"]


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def run(spec, seed, data, out, **kw):
    meta = train(spec, seed, data, out, threads=1, **kw)
    return meta, pd.read_csv(out / "history.csv"), weights(out / "model.pt")


def test_same_seed_identical_different_seed_differs(mnist_spec, mnist_data, tmp_path):
    _, hist_a, w_a = run(mnist_spec, 0, mnist_data, tmp_path / "a")
    _, hist_b, w_b = run(mnist_spec, 0, mnist_data, tmp_path / "b")
    _, hist_c, w_c = run(mnist_spec, 1, mnist_data, tmp_path / "c")
    assert same_weights(w_a, w_b)
    pd.testing.assert_frame_equal(hist_a[METRICS], hist_b[METRICS])
    assert not same_weights(w_a, w_c)
    assert not hist_a[METRICS].equals(hist_c[METRICS])
    assert hist_a["test_acc"].iloc[-1] > 0.5  # learns: chance is 0.1


class Killed(RuntimeError):
    pass


def test_killed_run_resumes_to_the_uninterrupted_result(mnist_spec, mnist_data, tmp_path):
    mnist_spec["training"]["epochs"] = 3
    mnist_spec["training"]["snapshot_epochs"] = [0, 1, 2, 3]
    _, hist_full, w_full = run(mnist_spec, 0, mnist_data, tmp_path / "full")

    def kill_after_first(epoch, row):
        if epoch == 1:
            raise Killed

    out = tmp_path / "killed"
    with pytest.raises(Killed):
        train(mnist_spec, 0, mnist_data, out, threads=1, on_epoch_end=kill_after_first)
    assert (out / "work" / "checkpoint.pt").exists()
    assert not (out / "model.pt").exists() and not (out / "history.csv").exists()

    meta, hist, w = run(mnist_spec, 0, mnist_data, out)
    assert meta["resumed_from_epoch"] == 1
    assert same_weights(w, w_full)
    pd.testing.assert_frame_equal(hist[METRICS], hist_full[METRICS])
    snaps = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snaps == [f"epoch_{e:03d}.pt" for e in range(4)]
    assert same_weights(torch.load(out / "snapshots" / "epoch_003.pt"), w_full)
    assert not (out / "work").exists()


def test_checkpoint_for_another_config_is_not_resumed(mnist_spec, mnist_data, tmp_path):
    def stop(epoch, row):
        raise Killed

    with pytest.raises(Killed):
        train(mnist_spec, 0, mnist_data, tmp_path, threads=1, on_epoch_end=stop)
    mnist_spec["training"]["lr"] = 0.01
    meta = train(mnist_spec, 0, mnist_data, tmp_path, threads=1)
    assert meta["resumed_from_epoch"] == 0


def test_bad_weights_file_is_named(mnist_spec, mnist_data, tmp_path):
    split = load_study_splits(mnist_spec, mnist_data)["train"]
    garbage = tmp_path / "model.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="model.pt"):
        load_trained(garbage, mnist_spec, split, torch.device("cpu"))
    with pytest.raises(CheckpointError, match="missing"):
        load_trained(tmp_path / "absent.pt", mnist_spec, split, torch.device("cpu"))
