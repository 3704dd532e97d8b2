"""Study ``mnist``: the claims table and the layer-structure table of both models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ...claims import (
    INCONCLUSIVE,
    ClaimTable,
    map_check_claims,
    threshold_verdict,
    training_keys,
)
from ...io import read_csv, read_json, write_csv
from ...paths import StudyFiles
from ...study import Stages

STAGES = Stages()
PAPER = {"acc": {"cnn": 98.94, "cnn_bn": 99.18}, "time_ratio": 1391 / 786,
         "parameters": 799_078, "fc_param_share": 98.80, "neurons": 31_870,
         "conv_neuron_share": 98.40}


def structure_table(layers_csv: str | Path) -> tuple[pd.DataFrame, dict[str, float]]:
    """The layer table with its totals and conv vs FC shares of parameters and neurons."""
    layers = read_csv(layers_csv)
    by_kind = layers.groupby("kind")[["parameters", "neurons"]].sum()
    total = layers[["parameters", "neurons"]].sum()
    shares = {"parameters": int(total["parameters"]), "neurons": int(total["neurons"]),
              "fc_param_share": 100 * by_kind.loc["fc", "parameters"] / total["parameters"],
              "conv_neuron_share": 100 * by_kind.loc["conv", "neurons"] / total["neurons"]}
    return layers, shares


@STAGES.register(writes=("claims", "structure"),
                 reads=("metrics", "train_meta", "layers", "lab_summary", "randomisation",
                        "class_sensitivity"), settings="claims",
                 local=True)
def claims(*, files: StudyFiles, settings: dict[str, Any], claims: str, structure: str,
           departures: dict[str, str] | None = None, preset: str = "full",
           threads: int | None = None) -> None:
    """The claims table and the layer-structure table (``departures``/``preset``: the
    run's departures from the full settings, which make dependent claims not comparable)."""
    models, seeds = list(files.models), list(files.seeds)
    table = ClaimTable(seeds, departures=departures, preset=preset)
    tested = ("subset.test",)
    for model in [m for m in ("cnn", "cnn_bn") if m in models]:
        acc = [100 * read_json(p)["splits"]["test"]["accuracy"]
               for p in files.by_model("metrics")[model]]
        table.numeric(f"mnist.acc.{model}", f"{model} test accuracy", "paper",
                      PAPER["acc"][model], acc, settings["accuracy_pp"], "%",
                      depends_on=training_keys(model) + tested)
    if {"cnn", "cnn_bn"} <= set(models):
        metas = {m: [read_json(p) for p in paths]
                 for m, paths in files.by_model("train_meta", ["cnn", "cnn_bn"]).items()}
        ratio = [b["train_seconds"] / a["train_seconds"]
                 for a, b in zip(metas["cnn"], metas["cnn_bn"])]
        verdict, rule = threshold_verdict(ratio, 1.0, below=False)
        rule += "; both models of a seed timed on the same machine, else inconclusive"
        where = lambda meta: (meta["provenance"].get("host"),  # noqa: E731
                              meta["provenance"].get("device"))
        if any(where(a) != where(b) for a, b in zip(metas["cnn"], metas["cnn_bn"])):
            verdict = INCONCLUSIVE
        # The ratio of training times does not depend on the epochs or the number of images
        # (both scale the two models alike); the batch, the optimiser and the layers move it.
        table.add("mnist.time", "batch norm makes training slower: training-time ratio "
                  "cnn_bn / cnn above 1 (same run, same machine)", "paper",
                  f"1391 s / 786 s = {PAPER['time_ratio']:.2f}", ratio, verdict, rule, "x",
                  depends_on=("training.batch_size", "training.optimizer", "models.cnn",
                              "models.cnn_bn"))
    for model in models:
        accuracy = [read_json(p)["splits"]["test"]["accuracy"]
                    for p in files.by_model("metrics", [model])[model]]
        map_check_claims(table, files, "mnist", model, settings,
                         (accuracy, settings["learned_accuracy"]),
                         training_keys(model) + tested + ("randomisation", "lab.occlusion"))
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
                              [shares[key]], settings["count"], unit, seeds=seeds[:1],
                              deterministic=True, depends_on=("models.cnn.options",))
    write_csv(structure, pd.concat(tables, ignore_index=True))
    for model in models:
        lab = [read_json(p) for p in files.by_model("lab_summary")[model]]
        trained = training_keys(model)
        threshold = lab[0]["fooling"]["threshold"]
        table.threshold(f"mnist.fool.{model}", f"fooling images reach p(target) >= "
                        f"{threshold:g} (share of the 10 classes)", "paper",
                        "~100 % target probability", [r["fooling"]["reached"] for r in lab],
                        settings["most"], below=False, depends_on=trained + ("lab.fooling",))
        beta = lab[0]["targeted"]["beta"]
        table.threshold(f"mnist.targeted.{model}", "targeted images are classified as the "
                        f"target (share of source × other-class pairs; beta {beta:g} on the "
                        "[0, 1] scale = the assignment's 0.0001 on 0-255)", "paper",
                        "classified as target", [r["targeted"]["hit_rate"] for r in lab],
                        settings["most"], below=False, depends_on=trained + tested + tuple(
                            f"lab.targeted.{k}" for k in ("sources", "beta", "step",
                                                          "iterations", "threshold")))
        gap = {k: [r["noise"][k]["to_target"] - r["noise"][k]["control_to_target"] for r in lab]
               for k in ("held_out", "in_sample")}
        table.threshold(f"mnist.noise.{model}", "learned noises steer predictions of "
                        f"{lab[0]['noise']['held_out']['images']} held-out test images (none "
                        "seen while learning) to their class more than same-norm Gaussian noise "
                        "(difference of shares; in-sample, on the "
                        f"{lab[0]['noise']['in_sample']['images']} learning images: "
                        f"{', '.join(f'{g:.2f}' for g in gap['in_sample'])})", "clean", "-",
                        gap["held_out"], settings["noise_gap"], below=False,
                        depends_on=trained + tested + ("lab.noise",))
    write_csv(claims, table.frame())
