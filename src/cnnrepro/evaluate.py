"""Evaluation of one trained model: predictions, metrics, confusion, ROC, structure, cost.

Metrics come from scikit-learn; FLOPs from ``torch.utils.flop_counter``. The layer table
counts, per leaf module, its own learnable parameters and its "neurons": the output units
of conv and linear layers (conv outputs before pooling), the convention of the mnist
study's assignment.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .io import read_json, write_csv, write_json, write_npz
from .provenance import stamp
from .runtime import forward_with_hooks, normalizer, predict_logits
from .train import open_trained

NEURON_LAYERS = (nn.Conv2d, nn.Linear)


def layer_table(model: nn.Module, example: torch.Tensor) -> pd.DataFrame:
    """One row per leaf module in call order: shapes, parameters, neurons."""
    rows: list[dict[str, Any]] = []
    names = {module: name for name, module in model.named_modules()}

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append({
            "layer": names[module], "type": type(module).__name__,
            "input_shape": "x".join(map(str, inputs[0].shape[1:])),
            "output_shape": "x".join(map(str, output.shape[1:])),
            "parameters": params,
            "trainable": sum(p.numel() for p in module.parameters(recurse=False)
                             if p.requires_grad),
            "neurons": output[0].numel() if isinstance(module, NEURON_LAYERS) else 0,
            "kind": ("conv" if isinstance(module, nn.Conv2d) else
                     "fc" if isinstance(module, nn.Linear) else "other"),
        })

    forward_with_hooks(model, example, [m for m in model.modules() if not list(m.children())],
                       hook)
    return pd.DataFrame(rows)


def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    """Forward FLOPs of one example (a multiply-add counts 2)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(example)
    return int(counter.get_total_flops())


def latency(model: nn.Module, example: torch.Tensor, batch_sizes: list[int], repeats: int,
            warmup: int, max_seconds: float) -> dict[str, float]:
    """Median forward wall time in milliseconds per batch size on ``example``'s device.

    Stops repeating once ``max_seconds`` are spent on a batch size (VGG19 at batch 100 is
    seconds per pass on a CPU); at least one pass is always timed.
    """
    out = {}
    sync = torch.cuda.synchronize if example.is_cuda else (lambda: None)
    with torch.inference_mode():
        for bs in batch_sizes:
            batch = example[:1].expand(bs, *example.shape[1:]).contiguous()
            for _ in range(warmup):
                model(batch)
            times: list[float] = []
            while len(times) < repeats and (not times or sum(times) < max_seconds * 1e3):
                sync()
                tic = time.perf_counter()
                model(batch)
                sync()
                times.append((time.perf_counter() - tic) * 1e3)
            out[f"batch{bs}_ms"] = statistics.median(times)
            out[f"batch{bs}_repeats"] = len(times)
    return out


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
             train_meta: str | Path, out_dir: str | Path, threads: int | None = None
             ) -> dict[str, Any]:
    """Write ``metrics.json``, ``predictions.npz``, ``confusion.csv``, ``roc.csv`` and
    ``layers.csv`` for one trained model into ``out_dir``."""
    out_dir = Path(out_dir)
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
    lat = evaluation["latency"]
    timing = (lat["batch_sizes"], lat["repeats"], lat["warmup"], lat["max_seconds"])
    results["latency"] = {device.type: latency(model, example, *timing)}
    if device.type == "cuda":  # the CPU number is always reported too
        results["latency"]["cpu"] = latency(model.to("cpu"), example.cpu(), *timing)
    meta = read_json(train_meta)
    results["training"] = {k: meta[k] for k in ("train_seconds", "train_images_per_second",
                                                "epochs", "weights_used")}
    results["provenance"] = stamp(spec, seed, device)

    write_npz(out_dir / "predictions.npz",
              **{f"{name}_{kind}": arr for name, (logits, labels) in logits_by_split.items()
                 for kind, arr in (("logits", logits.astype(np.float32)), ("labels", labels))},
              classes=np.asarray(classes))
    write_csv(out_dir / "confusion.csv",
              pd.DataFrame(confusion, index=pd.Index(classes, name="true"),
                           columns=classes).reset_index())
    write_csv(out_dir / "roc.csv", roc)
    write_csv(out_dir / "layers.csv", layers)
    write_json(out_dir / "metrics.json", results)
    return results
