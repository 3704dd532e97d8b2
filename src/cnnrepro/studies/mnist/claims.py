"""Study ``mnist``: the claims table and the layer-structure table of both models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ...claims import ClaimTable
from ...io import read_json, write_csv
from ...paths import StudyFiles

PAPER = {"acc": {"cnn": 98.94, "cnn_bn": 99.18}, "time_ratio": 1391 / 786,
         "parameters": 799_078, "fc_param_share": 98.80, "neurons": 31_870,
         "conv_neuron_share": 98.40}


def structure_table(layers_csv: str | Path) -> tuple[pd.DataFrame, dict[str, float]]:
    """The layer table with its totals and conv vs FC shares of parameters and neurons."""
    layers = pd.read_csv(layers_csv)
    by_kind = layers.groupby("kind")[["parameters", "neurons"]].sum()
    total = layers[["parameters", "neurons"]].sum()
    shares = {"parameters": int(total["parameters"]), "neurons": int(total["neurons"]),
              "fc_param_share": 100 * by_kind.loc["fc", "parameters"] / total["parameters"],
              "conv_neuron_share": 100 * by_kind.loc["conv", "neurons"] / total["neurons"]}
    return layers, shares


def claims(*, files: StudyFiles, settings: dict[str, Any], claims: str, structure: str,
           threads: int | None = None) -> None:
    models, seeds = list(files.models), list(files.seeds)
    table = ClaimTable(seeds)
    for model in [m for m in ("cnn", "cnn_bn") if m in models]:
        acc = [100 * read_json(p)["splits"]["test"]["accuracy"]
               for p in files.by_model("metrics")[model]]
        table.numeric(f"mnist.acc.{model}", f"{model} test accuracy", "paper",
                      PAPER["acc"][model], acc, settings["accuracy_pp"], "%")
    if {"cnn", "cnn_bn"} <= set(models):
        secs = {m: [read_json(p)["train_seconds"] for p in paths]
                for m, paths in files.by_model("train_meta", ["cnn", "cnn_bn"]).items()}
        ratio = [b / a for a, b in zip(secs["cnn"], secs["cnn_bn"])]
        table.numeric("mnist.time", "batch norm slows training (time ratio cnn_bn / cnn; paper "
                      "1391 s / 786 s)", "paper", PAPER["time_ratio"], ratio,
                      settings["time_ratio"], "x")
    tables = []
    for model in models:
        layers, shares = structure_table(files.run("layers", model, seeds[0]))
        tables.append(layers.assign(model=model))
        if model == "cnn":  # the document counts the plain CNN
            for key, text in (("parameters", "learnable parameters"),
                              ("fc_param_share", "FC share of the parameters"),
                              ("neurons", "neurons (conv outputs before pooling + FC outputs)"),
                              ("conv_neuron_share", "conv share of the neurons")):
                unit = "%" if key.endswith("share") else ""
                table.numeric(f"mnist.{key}", f"cnn {text}", "paper", PAPER[key],
                              [shares[key]] * len(seeds), settings["count"], unit)
    write_csv(structure, pd.concat(tables, ignore_index=True))
    for model in models:
        lab = [read_json(p) for p in files.by_model("lab_summary")[model]]
        threshold = lab[0]["fooling"]["threshold"]
        table.threshold(f"mnist.fool.{model}", f"fooling images reach p(target) >= "
                        f"{threshold:g} (share of the 10 classes)", "paper",
                        "~100 % target probability", [r["fooling"]["reached"] for r in lab],
                        settings["most"], below=False)
        table.threshold(f"mnist.targeted.{model}", "targeted images are classified as the "
                        "target (share of source × target pairs)", "paper",
                        "classified as target", [r["targeted"]["hit_rate"] for r in lab],
                        settings["most"], below=False)
        table.threshold(f"mnist.noise.{model}", "learned noises steer predictions to their "
                        "class more than same-norm Gaussian noise (difference of shares)",
                        "clean", "-", [r["noise"]["to_target"] - r["noise"]["control_to_target"]
                                       for r in lab], settings["noise_gap"], below=False)
    write_csv(claims, table.frame())
