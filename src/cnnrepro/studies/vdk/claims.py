"""Study ``vdk``: the claims table, paired comparisons, faithfulness and cost summaries."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ...claims import ClaimTable
from ...io import read_json, write_csv
from ...paths import StudyFiles

PAPER = {"acc": {"vdk_cnnet": 72.59, "baseline_cnn": 63.62},
         "fgsm": {"vdk_cnnet": 0.1435, "baseline_cnn": 0.1771},
         "immune": {"vdk_cnnet": 24.29, "baseline_cnn": 15.91}}
VDK, BASE = "vdk_cnnet", "baseline_cnn"


def cost_table(files: StudyFiles) -> pd.DataFrame:
    """Parameters, MACs and inference latency per model (latency: mean over seeds)."""
    rows = []
    for (model, seed), path in files.runs("metrics").items():
        m = read_json(path)
        row = {"model": model, "seed": seed, "parameters": m["structure"]["parameters"],
               "macs": m["structure"]["macs"]}
        for device, values in m["latency"].items():
            row.update({f"latency_{device}_{k}": v for k, v in values.items()
                        if k.endswith("_ms")})
        rows.append(row)
    table = pd.DataFrame(rows).groupby("model", sort=False).mean(numeric_only=True).drop(
        columns="seed").reset_index()
    return table.astype({"parameters": int, "macs": int})


def faithfulness_per_seed(files: StudyFiles) -> pd.DataFrame:
    """Mean deletion and insertion AUC per (model, method, seed)."""
    faith = pd.concat([pd.read_csv(p) for p in files.runs("faithfulness").values()],
                      ignore_index=True)
    return faith.groupby(["model", "method", "seed"])[
        ["deletion_auc", "insertion_auc"]].mean().reset_index()


def claims(*, files: StudyFiles, settings: dict[str, Any], fgsm_settings: dict[str, Any],
           claims: str, paired: str, faithfulness_summary: str, cost: str,
           threads: int | None = None) -> None:
    """The study's claims table (``settings``: the verdict rules' tolerances)."""
    models, seeds = list(files.models), list(files.seeds)
    write_csv(cost, cost_table(files))

    def per_seed(name: str, pick) -> dict[str, list[float]]:
        return {m: [pick(read_json(p)) for p in paths] for m, paths in files.by_model(name).items()}

    acc = per_seed("metrics", lambda d: 100 * d["splits"]["test"]["accuracy"])
    macs = per_seed("metrics", lambda d: d["structure"]["macs"])
    fgsm_paper = per_seed("fgsm", lambda d: d["paper"]["score"])
    eps_small = settings["robust_epsilon"]
    fgsm_small = per_seed("fgsm", lambda d: next(
        r["accuracy"] for r in d["clean"]["curve"] if abs(r["epsilon"] - eps_small) < 1e-9))
    immune = {proto: per_seed("blur_summary", lambda d, p=proto: 100 * d[p]["immune"])
              for proto in ("paper", "clean")}
    per_seed_faith = faithfulness_per_seed(files)
    summary = per_seed_faith.groupby(["model", "method"])[["deletion_auc", "insertion_auc"]].agg(
        ["mean", "std", "count"])
    summary.columns = ["_".join(c) for c in summary.columns]
    write_csv(faithfulness_summary, summary.reset_index())

    table = ClaimTable(seeds, settings["alpha"])
    eps_paper = fgsm_settings["paper_epsilon"]
    for model in (VDK, BASE):
        if model not in models:
            continue
        table.numeric(f"vdk.acc.{model}", f"{model} test accuracy", "paper",
                      PAPER["acc"][model], acc[model], settings["accuracy_pp"], "%")
        table.numeric(f"vdk.fig8.{model}", f"{model} FGSM score (eps {eps_paper:g}, "
                      "correct-only, un-normalised input)", "paper", PAPER["fgsm"][model],
                      fgsm_paper[model], settings["fgsm_score"])
        for proto in ("paper", "clean"):
            table.numeric(f"vdk.tab1.{model}.{proto}", f"{model} immune to blur ({proto} "
                          "protocol)", proto, PAPER["immune"][model], immune[proto][model],
                          settings["immune_pp"], "%")
        table.threshold(f"vdk.fig8.not_robust.{model}", f"{model} is not robust: accuracy "
                        f"at eps {eps_small:.4g} below {settings['robust_accuracy']:g}",
                        "clean", "neither model is robust", fgsm_small[model],
                        settings["robust_accuracy"])
    if VDK in models:
        for other in [m for m in models if m != VDK]:
            table.paired(f"vdk.acc.gain.{other}", f"VDK CNNet is more accurate than {other}",
                         "clean", acc[VDK], acc[other],
                         "72.5 vs 63.6" if other == BASE else "-", unit="pp")
        if BASE in models:
            for proto in ("paper", "clean"):
                table.paired(f"vdk.tab1.gain.{proto}", "VDK CNNet has more blur-immune "
                             "images than the Baseline CNN", proto, immune[proto][VDK],
                             immune[proto][BASE], "24.29 vs 15.91", unit="pp")
            del_auc = {m: per_seed_faith.query("model == @m and method == 'ig_smoothgrad_sq'")
                       .sort_values("seed")["deletion_auc"].tolist() for m in (VDK, BASE)}
            table.paired("vdk.fig7.faithful", "VDK CNNet's IG-SmoothGrad² maps are more "
                         "faithful (lower deletion AUC) than the Baseline's", "clean",
                         del_auc[VDK], del_auc[BASE], "qualitative (Fig. 7)",
                         lower_is_better=True)
            ratio = [v / b for v, b in zip(macs[VDK], macs[BASE])]
            table.threshold("vdk.cost", "VDK CNNet has a low computational burden: MACs "
                            f"within {settings['cost_ratio']:g}x the Baseline's", "clean",
                            "low computational burden", ratio, settings["cost_ratio"],
                            unit="x")
    write_csv(claims, table.frame())
    write_csv(paired, pd.DataFrame(table.tests))
