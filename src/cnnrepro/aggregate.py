"""Gather every seed of a study into tidy tables: per-seed values and mean, std, n."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .io import artifact_error, read_csv, read_json, write_csv

METRICS = ("accuracy", "precision", "recall", "f1")  # rates, as the report shows them


def check_rates(frame: pd.DataFrame, path: str | Path, column: str = "value") -> None:
    """Accuracy, precision, recall, F1 and AUC are rates: a value outside [0, 1] (or a
    missing accuracy) is a damaged artifact, never a result to show."""
    rates = frame[frame["metric"].isin(METRICS) | frame["metric"].str.startswith("auc[")]
    values = rates[column]
    bad = rates[(values < 0) | (values > 1) | (values.isna() & rates["metric"].eq("accuracy"))]
    if not bad.empty:
        row = bad.iloc[0]
        raise artifact_error(path, f"{row['metric']} of {row['model']} ({row['split']}) is "
                                   f"{row[column]}, not a rate in [0, 1]")


def metric_rows(metrics: dict[str, Any], cost: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Flatten one run's ``metrics.json`` and ``cost.json`` into (split, metric, value)
    rows."""
    base = {"study": metrics["study"], "model": metrics["model"], "seed": metrics["seed"]}
    for split, values in metrics["splits"].items():
        for name, value in values.items():
            if name != "n":
                yield {**base, "split": split, "metric": name, "value": value}
    for cls, value in metrics["auc"].items():
        yield {**base, "split": "test", "metric": f"auc[{cls}]", "value": value}
    for name, value in metrics["structure"].items():
        yield {**base, "split": "-", "metric": name, "value": value}
    for device, values in cost["latency"].items():
        for name, value in values.items():
            if name.endswith("_ms"):
                yield {**base, "split": "-", "metric": f"latency_{device}_{name}", "value": value}
    for name in ("train_seconds", "train_images_per_second"):
        yield {**base, "split": "train", "metric": name, "value": cost["training"][name]}


def summarise(long: pd.DataFrame) -> pd.DataFrame:
    """mean, std (sample, ddof=1; NaN for n=1), n and the per-seed values of each metric."""
    grouped = long.sort_values("seed").groupby(["study", "model", "split", "metric"],
                                               sort=False)["value"]
    summary = grouped.agg(mean="mean", std="std", n="count").reset_index()
    seeds = long.sort_values("seed").groupby(["study", "model", "split", "metric"], sort=False)
    summary["per_seed"] = [";".join(f"{s}:{v:.6g}" for s, v in zip(g["seed"], g["value"]))
                           for _, g in seeds]
    return summary


def aggregate(metrics_files: list[str | Path], cost_files: list[str | Path],
              histories: dict[tuple[str, int], str | Path], out_long: str | Path,
              out_summary: str | Path, out_history: str | Path) -> None:
    """Per-seed metrics and costs (``cost_files`` in the order of ``metrics_files``), their
    summary, and every run's history in one table (``histories``:
    ``{(model, seed): history.csv}``)."""
    parts = []
    for path, cost in zip(metrics_files, cost_files, strict=True):
        part = pd.DataFrame(list(metric_rows(read_json(path), read_json(cost))))
        check_rates(part, path)
        parts.append(part)
    long = pd.concat(parts, ignore_index=True)
    frames = []
    for (model, seed), path in histories.items():
        frame = read_csv(path)
        frame.insert(0, "seed", seed)
        frame.insert(0, "model", model)
        frames.append(frame)
    write_csv(out_long, long)
    write_csv(out_summary, summarise(long))
    write_csv(out_history, pd.concat(frames, ignore_index=True))
