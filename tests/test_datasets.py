"""Datasets: the mirror is verified file by file; preparation is atomic and faithful."""

from __future__ import annotations

import fcntl
import gzip
import multiprocessing
import shutil

import numpy as np
import pytest
import torch

from cnnrepro.datasets import (
    DataError,
    caltech_split_indices,
    data_source,
    download_lock,
    pinned,
    split_sizes,
    verify_mirror,
)
from cnnrepro.datasets.catalogue import SPECS
from cnnrepro.datasets.prepared import holdout_split, load_split, per_class_subset, prepare_split
from cnnrepro.datasets.sources import DEFAULT_MIRROR, sha256, verify_cache


def copy_mnist_mirror(mirror, dest):
    (dest / "mnist").mkdir(parents=True)
    for path in (mirror / "mnist").iterdir():
        shutil.copyfile(path, dest / "mnist" / path.name)
    lines = [row for row in (mirror / "SHA256SUMS").read_text().splitlines()
             if row.split()[1].removeprefix("./").startswith("mnist/")]
    (dest / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return dest


def test_prepared_mnist_matches_the_idx_files(mnist_data, mirror):
    split = load_split(mnist_data["train"])
    assert split.images.shape == (60000, 1, 28, 28) and split.images.dtype == torch.uint8
    # Independent read of the official IDX labels (header of 8 bytes, then uint8 labels).
    with gzip.open(mirror / "mnist" / "train-labels-idx1-ubyte.gz") as handle:
        labels = np.frombuffer(handle.read()[8:], dtype=np.uint8)
    assert np.array_equal(split.labels.numpy(), labels)
    with gzip.open(mirror / "mnist" / "t10k-images-idx3-ubyte.gz") as handle:
        first = np.frombuffer(handle.read()[16:16 + 784], dtype=np.uint8).reshape(28, 28)
    assert np.array_equal(load_split(mnist_data["test"]).images[0, 0].numpy(), first)


def _hold_lock(root, ready, release):
    with download_lock(root, "mnist"):
        ready.set()
        release.wait(300)


def test_download_lock_excludes_another_process(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(tmp_path, ready, release))
    holder.start()
    try:
        assert ready.wait(300)
        with open(tmp_path / ".mnist.lock", "w") as handle:
            with pytest.raises(BlockingIOError):
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        release.set()
        holder.join(60)
    with download_lock(tmp_path, "mnist"):  # free again once the holder let go
        pass


def _prepare_mnist(args):
    split, mirror, out = args
    prepare_split("mnist", split, out / f"{split}.npz", out / f"{split}.json", mirror,
                  out / "downloads")
    return split


def test_train_and_test_of_one_dataset_prepare_concurrently(mirror, tmp_path):
    # Both jobs extract torchvision's raw files into one folder (the race CI once hit).
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        done = pool.map(_prepare_mnist, [("train", mirror, tmp_path), ("test", mirror, tmp_path)])
    assert done == ["train", "test"]
    assert len(load_split(tmp_path / "train.npz").labels) == 60000
    assert len(load_split(tmp_path / "test.npz").labels) == 10000


def test_corrupt_mirror_file_fails_with_checksum_and_no_output(mirror, tmp_path):
    bad = copy_mnist_mirror(mirror, tmp_path / "mirror")
    target = bad / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    expected = next(row.split()[0] for row in (bad / "SHA256SUMS").read_text().splitlines()
                    if row.endswith("t10k-labels-idx1-ubyte.gz"))
    out = tmp_path / "out"
    with pytest.raises(DataError) as err:
        prepare_split("mnist", "test", out / "test.npz", out / "test.json", bad, tmp_path / "dl")
    message = str(err.value)
    assert "t10k-labels-idx1-ubyte.gz" in message and expected in message
    assert not out.exists() or not any(out.iterdir()), "no partial output may be left"


def test_a_swapped_file_with_its_own_manifest_line_is_refused(mirror, tmp_path):
    bad = copy_mnist_mirror(mirror, tmp_path / "mirror")
    target = bad / "mnist" / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(gzip.compress(b"not the labels"))
    manifest = bad / "SHA256SUMS"
    manifest.write_text("".join(
        (f"{sha256(target)}  ./mnist/t10k-labels-idx1-ubyte.gz" if "t10k-labels" in line
         else line) + "\n" for line in manifest.read_text().splitlines()))
    with pytest.raises(DataError) as err:
        verify_mirror(bad, ["mnist"])
    pin = pinned.MIRROR["mnist/t10k-labels-idx1-ubyte.gz"]
    assert "t10k-labels-idx1-ubyte.gz" in str(err.value) and pin in str(err.value)
    assert "repository pins" in str(err.value)


def _labels(path):
    with np.load(path) as data:
        return data["labels"]


def test_a_poisoned_download_cache_is_rebuilt_from_the_verified_mirror(mirror, tmp_path,
                                                                       caplog):
    root, out = tmp_path / "dl", tmp_path / "out"
    first = prepare_split("mnist", "test", out / "a.npz", out / "a.json", mirror, root)
    assert set(first["source"]["cache_sha256"]) == set(pinned.CACHE["mnist"])
    raw = root / "MNIST" / "raw"
    labels = raw / "t10k-labels-idx1-ubyte"  # every label shifted by one, as an attacker might
    data = bytearray(labels.read_bytes())
    data[8:] = bytes((b + 1) % 10 for b in data[8:])
    labels.write_bytes(bytes(data))
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"a broken download")  # and a bad .gz
    prepare_split("mnist", "test", out / "b.npz", out / "b.json", mirror, root)
    assert np.array_equal(_labels(out / "b.npz"), _labels(out / "a.npz"))
    assert "t10k-labels-idx1-ubyte: sha256" in caplog.text and "deleted" in caplog.text
    assert sha256(raw / "train-images-idx3-ubyte.gz") == pinned.CACHE["mnist"][
        "MNIST/raw/train-images-idx3-ubyte.gz"]


def test_a_cache_file_that_fails_its_pin_after_reading_is_an_error(mirror, tmp_path):
    root = tmp_path / "dl"
    prepare_split("mnist", "test", tmp_path / "t.npz", tmp_path / "t.json", mirror, root)
    labels = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1] + b"\x00")
    with pytest.raises(DataError) as err:
        verify_cache("mnist", root)
    message = str(err.value)
    assert str(labels) in message and pinned.CACHE["mnist"]["MNIST/raw/t10k-labels-idx1-ubyte"] \
        in message and sha256(labels) in message and f"Delete {labels.parent}" in message


def test_every_file_a_dataset_reads_from_a_mirror_is_pinned():
    for spec in SPECS.values():
        assert set(spec.mirror_files) <= set(pinned.MIRROR), spec.name


def test_missing_mirror_file_is_named(mirror, tmp_path):
    bad = copy_mnist_mirror(mirror, tmp_path / "mirror")
    (bad / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: missing"):
        verify_mirror(bad, ["mnist"])


def test_mirror_env_overrides_config_and_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNREPRO_DATA_MIRROR", str(tmp_path))
    assert data_source("/nonexistent").mirror == tmp_path
    monkeypatch.setenv("CNNREPRO_DATA_MIRROR", "none")
    assert data_source(str(tmp_path)).mirror is None
    monkeypatch.setenv("CNNREPRO_DATA_MIRROR", str(tmp_path / "absent"))
    with pytest.raises(DataError, match="not a folder"):
        data_source(str(tmp_path))


def test_configured_mirror_must_exist_unless_it_is_the_shipped_default(tmp_path, monkeypatch,
                                                                       full_config):
    monkeypatch.delenv("CNNREPRO_DATA_MIRROR", raising=False)
    assert data_source(str(tmp_path)).mirror == tmp_path
    with pytest.raises(DataError, match="config key data.mirror: no folder at"):
        data_source(str(tmp_path / "absent"))  # a mistyped path is not a silent download
    monkeypatch.chdir(tmp_path)  # a fresh clone elsewhere: the default folder is not there
    assert full_config["data"]["mirror"] == DEFAULT_MIRROR
    absent = data_source(DEFAULT_MIRROR)
    assert absent.mirror is None and "no folder at data.mirror" in absent.reason
    assert data_source(None).mirror is None


def test_cifar10_mirror_order_maps_official_indices(mirror, tmp_path):
    prov = prepare_split("cifar10", "test", tmp_path / "t.npz", tmp_path / "t.json", mirror,
                         tmp_path / "dl")
    split = load_split(tmp_path / "t.npz")
    assert len(split) == 10000 and prov["per_class"]["automobile"] == 1000
    assert "JPEG re-encoding" in prov["source"]["note"]
    # test/automobile/0001.jpg (official test index 9, the VDK paper's car) is the second
    # automobile image in stored order.
    automobile = split.classes.index("automobile")
    assert np.flatnonzero(split.labels.numpy() == automobile)[1] == 1001


def test_caltech_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat([0, 1, 2], [91, 86, 85])
    ratios = {"train": 0.7, "val": 0.15, "test": 0.15}
    parts = caltech_split_indices(labels, ratios, seed=0)
    everything = np.concatenate(list(parts.values()))
    assert len(everything) == len(set(everything)) == len(labels)
    assert abs(len(parts["train"]) - 0.7 * len(labels)) <= 3
    again = caltech_split_indices(labels, ratios, seed=0)
    other = caltech_split_indices(labels, ratios, seed=1)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    assert not np.array_equal(parts["test"], other["test"])


def test_subsets_are_class_balanced():
    labels = np.repeat(np.arange(10), 100)
    idx = per_class_subset(labels, 55)
    counts = np.bincount(labels[idx], minlength=10)
    assert counts.sum() == 55 and counts.max() - counts.min() <= 1
    train, val = holdout_split(labels, 0.1, seed=0)
    assert len(val) == 100 and not set(train) & set(val)


def test_caltech_split_sizes_counted_in_the_mirror_match_the_prepared_splits(mirror, tmp_path):
    opts = {"classes": ["kangaroo", "butterfly"], "image_size": 8,
            "split": {"train": 0.6, "val": 0.25, "test": 0.15}, "split_seed": 3}
    config = {"data": {"caltech": opts}}
    sizes = split_sizes(config, "caltech101_3", mirror)  # from the archive's listing alone
    for split in ("train", "val", "test"):
        prov = prepare_split("caltech101_3", split, tmp_path / f"{split}.npz",
                             tmp_path / f"{split}.json", mirror, tmp_path / "dl", opts)
        assert prov["count"] == sizes[split], split
    assert split_sizes(config, "caltech101_3") is None  # unknown before a download
