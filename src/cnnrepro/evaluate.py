"""Evaluation of one trained model: predictions, metrics, confusion, ROC, structure, cost.

Metrics come from scikit-learn; the layer table, FLOPs and latency from :mod:`.cost`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm

from .cost import count_flops, latency, layer_table
from .io import read_json, write_csv, write_json, write_npz
from .paths import EVALUATE_OUTPUTS, outputs_in
from .provenance import stamp
from .runtime import normalizer, predict_logits
from .trained import open_trained


def classification_metrics(labels: np.ndarray, logits: np.ndarray, n_classes: int
                           ) -> dict[str, float]:
    preds = logits.argmax(1)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        labels, preds, average="macro", labels=np.arange(n_classes), zero_division=0)
    return {"accuracy": skm.accuracy_score(labels, preds), "precision": precision,
            "recall": recall, "f1": f1}


def roc_table(labels: np.ndarray, logits: np.ndarray, classes: list[str]
              ) -> tuple[pd.DataFrame, dict[str, float]]:
    """One-vs-rest ROC curve points and AUC per class (softmax scores)."""
    probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), 1).numpy()
    frames, aucs = [], {}
    for k, name in enumerate(classes):
        positive = labels == k
        if positive.all() or not positive.any():
            aucs[name] = float("nan")  # undefined on a subset with one class only
            continue
        fpr, tpr, thr = skm.roc_curve(positive, probs[:, k])
        aucs[name] = float(skm.auc(fpr, tpr))
        frames.append(pd.DataFrame({"class": name, "fpr": fpr, "tpr": tpr, "threshold": thr}))
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["class", "fpr", "tpr", "threshold"])), aucs


def evaluate(spec: dict[str, Any], seed: int, weights: str | Path, data: dict[str, str | Path],
             train_meta: str | Path, outputs: Mapping[str, str | Path] | str | Path,
             threads: int | None = None) -> dict[str, Any]:
    """Evaluate one trained model; write ``outputs``
    (:data:`cnnrepro.paths.EVALUATE_OUTPUTS`: the rule's, or a run's folder to lay them
    out in). The metrics are deterministic; what is measured on the clock (latency, the
    training time) goes to the cost file, so the metrics compare byte for byte."""
    if not isinstance(outputs, Mapping):
        outputs = outputs_in(outputs, EVALUATE_OUTPUTS)
    model, splits, device = open_trained(spec, weights, data, threads)
    normalize = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)
    classes = splits["test"].classes
    evaluation = spec["evaluation"]

    results: dict[str, Any] = {"study": spec["study"], "model": spec["model"], "seed": seed,
                               "splits": {}}
    logits_by_split = {}
    for name, split in splits.items():
        logits = predict_logits(model, split, normalize, evaluation["batch_size"]).cpu().numpy()
        labels = split.labels.cpu().numpy()
        logits_by_split[name] = (logits, labels)
        results["splits"][name] = {"n": len(labels), **classification_metrics(
            labels, logits, len(classes))}

    test_logits, test_labels = logits_by_split["test"]
    confusion = skm.confusion_matrix(test_labels, test_logits.argmax(1),
                                     labels=np.arange(len(classes)))
    roc, aucs = roc_table(test_labels, test_logits, classes)
    results["auc"] = aucs

    example = normalize(splits["test"].images[:1])
    layers = layer_table(model, example)
    flops = count_flops(model, example)
    results["structure"] = {
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "trainable_parameters": int(sum(p.numel() for p in model.parameters()
                                        if p.requires_grad)),
        "neurons": int(layers["neurons"].sum()),
        "flops": flops, "macs": flops // 2,
    }
    meta = read_json(train_meta)
    results["training"] = {k: meta[k] for k in ("epochs", "weights_used")}
    results["provenance"] = stamp(spec, seed, device, when=False)
    lat = evaluation["latency"]
    timing = (lat["batch_sizes"], lat["repeats"], lat["warmup"], lat["max_seconds"])
    cost = {"study": spec["study"], "model": spec["model"], "seed": seed,
            "latency": {device.type: latency(model, example, *timing)},
            "training": {k: meta[k] for k in ("train_seconds", "train_images_per_second")},
            "provenance": stamp(spec, seed, device)}
    if device.type == "cuda":  # the CPU number is always reported too
        cost["latency"]["cpu"] = latency(model.to("cpu"), example.cpu(), *timing)

    write_npz(outputs["predictions"],
              **{f"{name}_{kind}": arr for name, (logits, labels) in logits_by_split.items()
                 for kind, arr in (("logits", logits.astype(np.float32)), ("labels", labels))},
              classes=np.asarray(classes))
    write_csv(outputs["confusion"],
              pd.DataFrame(confusion, index=pd.Index(classes, name="true"),
                           columns=classes).reset_index())
    write_csv(outputs["roc"], roc)
    write_csv(outputs["layers"], layers)
    write_json(outputs["cost"], cost)
    write_json(outputs["metrics"], results)
    return results
