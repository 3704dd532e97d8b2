"""Evaluation: metrics agree with an independent computation; cost numbers are sane."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cnnrepro.aggregate import summarise
from cnnrepro.evaluate import evaluate, roc_table
from cnnrepro.paths import EVALUATE_OUTPUTS
from cnnrepro.train import train


def test_evaluate_writes_consistent_artifacts(mnist_spec, mnist_data, tmp_path, full_config):
    mnist_spec["training"]["epochs"] = 1
    train(mnist_spec, 0, mnist_data, tmp_path, threads=1)
    spec = {**mnist_spec, "evaluation": {"batch_size": 128,
                                         "latency": {"batch_sizes": [1], "repeats": 2,
                                                     "warmup": 0, "max_seconds": 5}}}
    result = evaluate(spec, 0, tmp_path / "model.pt", mnist_data, tmp_path / "train.json",
                      tmp_path, threads=1)
    preds = np.load(tmp_path / "eval" / "predictions.npz")
    labels, logits = preds["test_labels"], preds["test_logits"]
    assert len(labels) == 200
    assert result["splits"]["test"]["accuracy"] == pytest.approx((logits.argmax(1) == labels).mean())
    history = pd.read_csv(tmp_path / "history.csv")
    assert result["splits"]["test"]["accuracy"] == pytest.approx(history["test_acc"].iloc[-1])
    confusion = pd.read_csv(tmp_path / "eval" / "confusion.csv").set_index("true")
    assert confusion.values.sum() == 200 and np.trace(confusion.values) == (logits.argmax(1) == labels).sum()
    assert result["structure"]["parameters"] == 799_078
    assert result["structure"]["macs"] > 0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["provenance"]["seed"] == 0
    # what the clock measures is apart, so the metrics compare byte for byte across runs
    cost = json.loads((tmp_path / "eval" / "cost.json").read_text())
    assert cost["latency"]["cpu"]["batch1_ms"] > 0 and cost["training"]["train_seconds"] > 0
    assert "created" in cost["provenance"] and "latency" not in result
    again = tmp_path / "again"
    evaluate(spec, 0, tmp_path / "model.pt", mnist_data, tmp_path / "train.json",
             {name: again / name for name in EVALUATE_OUTPUTS}, threads=1)
    assert (again / "metrics").read_bytes() == (tmp_path / "eval" / "metrics.json").read_bytes()


def test_roc_auc_perfect_and_random():
    labels = np.array([0, 0, 1, 1, 2, 2])
    logits = np.eye(3)[labels] * 10
    _, aucs = roc_table(labels, logits, ["a", "b", "c"])
    assert aucs == {"a": 1.0, "b": 1.0, "c": 1.0}
    _, flat = roc_table(labels, np.zeros((6, 3)), ["a", "b", "c"])
    assert all(v == 0.5 for v in flat.values())


def test_summary_mean_std_n_and_per_seed():
    long = pd.DataFrame({"study": "s", "model": "m", "split": "test", "metric": "accuracy",
                         "seed": [2, 0, 1], "value": [0.3, 0.1, 0.2]})
    row = summarise(long).iloc[0]
    assert row["mean"] == pytest.approx(0.2) and row["std"] == pytest.approx(0.1)
    assert row["n"] == 3 and row["per_seed"] == "0:0.1;1:0.2;2:0.3"
