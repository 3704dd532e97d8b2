"""Training: determinism across runs, seed sensitivity, resume after a kill."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from cnnrepro import config as cfg
from cnnrepro.logs import log_to
from cnnrepro.models import ModelError, frozen_split, standardized_head
from cnnrepro.studies.lenet.probes import evolution
from cnnrepro.train import check_last_batch, score_splits, setup, train, train_one_epoch
from cnnrepro.trained import CheckpointError, load_study_splits, load_trained

METRICS = ["train_loss", "train_acc", "test_loss", "test_acc"]


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def run(spec, seed, data, out, **kw):
    meta = train(spec, seed, data, out, threads=1, **kw)
    return meta, pd.read_csv(out / "history.csv"), weights(out / "model.pt")


def test_same_seed_identical_different_seed_differs(mnist_spec, mnist_data, tmp_path):
    mnist_spec["training"]["snapshot_epochs"] = [0, 2]
    _, hist_a, w_a = run(mnist_spec, 0, mnist_data, tmp_path / "a")
    _, hist_b, w_b = run(mnist_spec, 0, mnist_data, tmp_path / "b")
    _, hist_c, w_c = run(mnist_spec, 1, mnist_data, tmp_path / "c")
    assert same_weights(w_a, w_b)
    for name in ("model.pt", "snapshots/epoch_000.pt", "snapshots/epoch_002.pt"):
        # byte-identical files, not only equal tensors: a rerun's artifacts are the same files
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
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

    with log_to(tmp_path / "resume.log"):  # as the train_model adapter runs it
        meta, hist, w = run(mnist_spec, 0, mnist_data, out)
    assert meta["resumed_from_epoch"] == 1
    assert (tmp_path / "resume.log").read_text().count("resuming mnist/cnn seed 0 from epoch 1") == 1
    assert same_weights(w, w_full)
    pd.testing.assert_frame_equal(hist[METRICS], hist_full[METRICS])
    snaps = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snaps == [f"epoch_{e:03d}.pt" for e in range(4)]
    assert same_weights(torch.load(out / "snapshots" / "epoch_003.pt"), w_full)
    assert not (out / "work").exists()


def test_checkpoints_are_written_by_time_and_at_the_end(mnist_spec, mnist_data, tmp_path,
                                                       monkeypatch):
    import cnnrepro.train as training

    mnist_spec["training"]["epochs"] = 3
    written = []
    save = training.save_checkpoint
    monkeypatch.setattr(training, "save_checkpoint",
                        lambda path, run, epoch, history: (written.append(epoch),
                                                           save(path, run, epoch, history)))
    _, _, w_every = run(mnist_spec, 0, mnist_data, tmp_path / "every", checkpoint_seconds=0)
    assert written == [1, 2, 3]
    written.clear()
    _, _, w_hour = run(mnist_spec, 0, mnist_data, tmp_path / "hour", checkpoint_seconds=3600)
    assert written == [3]  # three epochs take seconds: only the end's
    assert same_weights(w_every, w_hour)  # how often the state is saved changes nothing


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


class CreatesAFile:
    """Unpickling this object opens (creates) a file: a stand-in for any code a crafted
    checkpoint could run."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return open, (self.target, "w")


def test_crafted_checkpoint_is_refused_and_runs_nothing(mnist_spec, mnist_data, tmp_path):
    split = load_study_splits(mnist_spec, mnist_data)["train"]
    planted = tmp_path / "planted"
    crafted = {"state_dict": {"w": CreatesAFile(planted)}, "spec": mnist_spec}
    run = tmp_path / "results" / "mnist" / "cnn" / "seed0"
    (run / "work").mkdir(parents=True)
    for path in (run / "model.pt", run / "work" / "checkpoint.pt"):
        torch.save(crafted, path)
    with pytest.raises(CheckpointError) as err:
        load_trained(run / "model.pt", mnist_spec, split, torch.device("cpu"))
    assert str(run / "model.pt") in str(err.value) and "rm -r" in str(err.value)
    assert "weights_only=False" not in str(err.value)  # never advise loading it anyway
    with pytest.raises(CheckpointError, match="checkpoint.pt.*trains from scratch"):
        train(mnist_spec, 0, mnist_data, run, threads=1)  # resume reads the checkpoint
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    torch.save({"w": CreatesAFile(planted)}, snapshots / "epoch_000.pt")
    with pytest.raises(CheckpointError, match="epoch_000.pt"):
        evolution(spec={**mnist_spec, "arch": "lenet_cnn", "options": {}},
                  snapshots=str(snapshots), data=mnist_data, evolution=str(tmp_path / "e.npz"),
                  settings={"image_class": "0 - zero", "image_rank": 0, "kernel": 0, "every": 1})
    assert not planted.exists()
    torch.load(run / "model.pt", weights_only=False)  # the payload is live: a full unpickle runs it
    assert planted.exists()


def test_truncated_weights_name_the_file_and_the_remedy(mnist_spec, mnist_data, tmp_path):
    out = tmp_path / "run"
    train(mnist_spec, 0, mnist_data, out, threads=1)
    split = load_study_splits(mnist_spec, mnist_data)["train"]
    weights_file = out / "model.pt"
    weights_file.write_bytes(weights_file.read_bytes()[:1000])
    with pytest.raises(CheckpointError) as err:
        load_trained(weights_file, mnist_spec, split, torch.device("cpu"))
    assert f"rm -r '{weights_file}'" in str(err.value)


def test_a_last_batch_of_one_image_is_refused_before_training_a_batchnorm_model():
    head = standardized_head(8, 3)  # the VGG19 fallback's head
    with pytest.raises(ValueError):  # what PyTorch would do mid-epoch
        head.train()(torch.randn(1, 8))
    with pytest.raises(ModelError, match="33 training images in batches of 16"):
        check_last_batch(head, 33, 16)
    check_last_batch(head, 34, 16)  # a last batch of 2 trains
    check_last_batch(torch.nn.Linear(8, 3), 33, 16)  # no BatchNorm: any batch trains


def test_a_frozen_stem_runs_once_and_its_head_learns_the_same(full_config, tmp_path,
                                                              monkeypatch):
    """The VGG19 transfer model (random fallback backbone, as here) trains its head on the
    frozen stem's outputs computed once: the same losses, accuracies and weights as
    running the whole network on every batch, to float tolerance (the stem's convolutions
    run at another batch size)."""
    def offline(*_, **__):
        raise OSError("offline")  # fails at once where a download attempt waits on DNS
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", 26), ("test", 10)):  # 26 in batches of 8: a last batch of 2
        data[split] = tmp_path / f"{split}.npz"
        np.savez(data[split], images=rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
                 labels=np.arange(n) % 3, classes=np.array(["a", "b", "c"]))
    spec = copy.deepcopy(cfg.training_spec(full_config, "caltech", "vgg19"))
    spec.update(device="cpu", holdout_fraction=0, subset={"train": None, "test": None})
    spec["training"].update(epochs=2, batch_size=8, lr=0.01)
    found = {}
    for cache in (True, False):
        with pytest.warns(UserWarning, match="fallback"):
            run_ = setup(spec, 0, data, threads=2, cache_frozen=cache)
        rows = [{**train_one_epoch(run_, torch.nn.CrossEntropyLoss()), **score_splits(run_)}
                for _ in range(2)]
        found[cache] = run_, pd.DataFrame(rows)
    cached, plain = found[True][0], found[False][0]
    stem, head = frozen_split(cached.model)
    assert not any(p.requires_grad for p in stem.parameters())
    assert [id(p) for p in cached.net.parameters()] == [id(p) for p in head.parameters()]
    assert cached.inputs["train"].images.shape == (26, 4096)
    assert plain.net is plain.model and plain.inputs is plain.splits
    x = cached.normalize(cached.splits["test"].images[:4])
    with torch.no_grad():
        assert torch.allclose(cached.model.eval()(x), head(stem(x)), rtol=1e-5, atol=1e-6)
    for column in ("train_loss", "train_acc", "test_loss", "test_acc"):
        np.testing.assert_allclose(found[True][1][column], found[False][1][column], rtol=1e-4)
    a, b = cached.model.state_dict(), plain.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6, msg=key)
    assert not torch.equal(a["classifier.6.1.weight"], standardized_head(4096, 3)[1].weight)


def test_stem_outputs_can_train_a_head_that_starts_with_a_linear_layer():
    """The stored outputs are plain tensors (an inference-mode tensor cannot be saved for
    backward, which a Linear on it needs)."""
    from cnnrepro.datasets.prepared import Split
    from cnnrepro.train import stem_outputs

    split = Split(torch.randint(0, 255, (6, 1, 4, 4), dtype=torch.uint8),
                  torch.zeros(6, dtype=torch.long), ["a"])
    features = stem_outputs(torch.nn.Flatten(1), split, lambda x: x.float(), 4)
    head = torch.nn.Linear(16, 2)
    head(features.images).sum().backward()
    assert features.images.shape == (6, 16) and head.weight.grad.abs().sum() > 0
