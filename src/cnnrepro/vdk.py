"""Study ``vdk``: the stages after training (attribution, FGSM, blur) and the claims table.

Each stage works on one trained (model, seed) and writes data files only; figures and the
report read them. The claims stage gathers every seed of every model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import attacks, attribution, blur
from .claims import claim_row, numeric_verdict, paired_verdict, threshold_verdict
from .datasets import load_split, per_class_subset
from .io import read_json, write_csv, write_json, write_npz
from .provenance import stamp
from .runtime import normalizer, standardizer
from .train import open_trained

CAR_CLASS, CAR_RANK = "automobile", 1  # official test index 9 = test/automobile/0001.jpg


def showcase_indices(labels: np.ndarray, classes: list[str], per_class: int) -> np.ndarray:
    """The paper's car first, then the first ``per_class`` test images of every class."""
    car = np.flatnonzero(labels == classes.index(CAR_CLASS))[CAR_RANK]
    rest = [i for c in range(len(classes)) for i in np.flatnonzero(labels == c)[:per_class]
            if i != car]
    return np.array([car, *rest])


def explain_stage(spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
                  settings: dict[str, Any], out_npz: str, out_csv: str,
                  threads: int | None = None) -> None:
    """Attributions of the showcase images, and deletion/insertion AUC per method."""
    model, splits, device = open_trained(spec, weights, data, threads)
    normalize = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)
    full_test = load_split(data["test"]).to(device)  # the car is picked from the full set
    labels = full_test.labels.cpu().numpy()
    show = showcase_indices(labels, full_test.classes, settings["images_per_class"])
    x = normalize(full_test.images[show])
    target = full_test.labels[show]
    maps = attribution.explain(model, x, target, settings, seed)
    with torch.no_grad():
        probs = torch.softmax(model(x), 1).cpu().numpy()
    write_npz(out_npz, images=full_test.images[show].cpu().numpy(), labels=labels[show],
              indices=show, probs=probs, classes=np.asarray(full_test.classes),
              **{m: a.cpu().numpy().astype(np.float32) for m, a in maps.items()})

    test = splits["test"]
    pick = per_class_subset(test.labels.cpu().numpy(), settings["auc_images"])
    xa, ya = normalize(test.images[pick]), test.labels[pick]
    auc_settings = {**settings, "nt_samples": settings["auc_nt_samples"]}
    rows = []
    for method, attr in {**attribution.explain(model, xa, ya, auc_settings, seed),
                         "random": attribution.random_attributions(xa.shape, seed)}.items():
        deletion, insertion = attribution.deletion_insertion(model, xa, ya, attr.to(device),
                                                             settings["auc_steps"])
        rows += [{"model": spec["model"], "seed": seed, "image": int(i), "method": method,
                  "deletion_auc": d, "insertion_auc": s}
                 for i, d, s in zip(pick, deletion, insertion)]
    write_csv(out_csv, pd.DataFrame(rows))


def _open_attacked(spec: dict[str, Any], weights: str, data: dict[str, str],
                   settings: dict[str, Any], threads: int | None):
    """Model, the attacked test images (``settings['images']``, class-balanced), device,
    normalisation constants."""
    model, splits, device = open_trained(spec, weights, data, threads)
    test = splits["test"]
    if settings.get("images"):
        test = test.take(per_class_subset(test.labels.cpu().numpy(), settings["images"]))
    return model, test, device, spec["normalize"]["mean"], spec["normalize"]["std"]


def fgsm_stage(spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
               settings: dict[str, Any], out_json: str, out_csv: str,
               threads: int | None = None) -> None:
    """Both FGSM protocols on the (configured subset of the) test set."""
    model, test, device, mean, std = _open_attacked(spec, weights, data, settings, threads)
    images01 = test.images.float() / 255
    n_classes = len(test.classes)
    paper = attacks.fgsm_paper(model, standardizer(mean, std, device)(images01), test.labels,
                               mean, std, settings["paper_epsilon"], n_classes)
    clean = attacks.fgsm_clean(model, images01, test.labels, mean, std, settings["epsilons"],
                               n_classes)
    write_csv(out_csv, pd.DataFrame([{**r, "model": spec["model"], "seed": seed}
                                     for r in clean["curve"]]))
    write_json(out_json, {
        "model": spec["model"], "seed": seed, "classes": test.classes,
        "paper": {k: paper[k] for k in ("epsilon", "score", "n_scored", "accuracy_all",
                                         "clean_accuracy", "confusion")},
        "clean": {"curve": clean["curve"],
                  "confusion": {f"{eps:g}": m for eps, m in clean["confusion"].items()}},
        "provenance": stamp(spec, seed, device)})


def blur_stage(spec: dict[str, Any], seed: int, weights: str, data: dict[str, str],
               settings: dict[str, Any], out_npz: str, out_json: str,
               threads: int | None = None) -> None:
    """Minimal blur perturbation, paper protocol (batched) and clean protocol."""
    model, test, device, mean, std = _open_attacked(spec, weights, data, settings, threads)
    p = settings["paper"]
    kernels = blur.paper_kernel_sizes(p["arg_min"], p["arg_max"], p["arg_step"])
    sigmas = blur.draw_sigmas(len(test), len(kernels), p["attempts"], p["sigma_seed"] + seed)
    normalize = normalizer(mean, std, device)
    paper_k = blur.min_blur_paper(model, normalize(test.images), test.labels.cpu(), sigmas,
                                  kernels)
    with torch.no_grad():
        pred = torch.cat([model(normalize(test.images[i:i + 1000])).argmax(1)
                          for i in range(0, len(test), 1000)]).cpu()
    correct = (pred == test.labels.cpu()).numpy()
    c = settings["clean"]
    grid = np.round(np.arange(c["sigma_min"], c["sigma_max"] + 1e-9, c["sigma_step"]), 6)
    clean_sigma = np.full(len(test), np.nan)
    keep = np.flatnonzero(correct)
    clean_sigma[keep] = blur.min_blur_clean(
        model, test.images[torch.as_tensor(keep, device=device)].float() / 255,
        test.labels[torch.as_tensor(keep, device=device)].cpu(),
        standardizer(mean, std, device), list(grid))
    write_npz(out_npz, paper_kernel=paper_k, clean_sigma=clean_sigma, correct=correct,
              labels=test.labels.cpu().numpy(), kernel_sizes=np.asarray(kernels),
              sigma_grid=grid)
    immune_paper = float((paper_k == blur.IMMUNE).mean())
    immune_clean = float(np.isnan(clean_sigma[keep]).mean()) if len(keep) else float("nan")
    write_json(out_json, {
        "model": spec["model"], "seed": seed, "n": int(len(test)),
        "paper": {"immune": immune_paper, "affected": 1 - immune_paper,
                  "kernel_sizes": kernels, "attempts": p["attempts"]},
        "clean": {"n_correct": int(len(keep)), "immune": immune_clean,
                  "affected": 1 - immune_clean, "sigma_grid": grid.tolist()},
        "provenance": stamp(spec, seed, device)})


# --------------------------------------------------------------------------- claims

PAPER = {"acc": {"vdk_cnnet": 72.59, "baseline_cnn": 63.62},
         "fgsm": {"vdk_cnnet": 0.1435, "baseline_cnn": 0.1771},
         "immune": {"vdk_cnnet": 24.29, "baseline_cnn": 15.91}}


def cost_table(models: list[str], seeds: list[int], root: Path) -> pd.DataFrame:
    """Parameters, MACs and inference latency per model (latency: mean over seeds)."""
    rows = []
    for model in models:
        for seed in seeds:
            m = read_json(root / model / f"seed{seed}" / "eval" / "metrics.json")
            row = {"model": model, "seed": seed, "parameters": m["structure"]["parameters"],
                   "macs": m["structure"]["macs"]}
            for device, values in m["latency"].items():
                row.update({f"latency_{device}_{k}": v for k, v in values.items()
                            if k.endswith("_ms")})
            rows.append(row)
    table = pd.DataFrame(rows).groupby("model", sort=False).mean(numeric_only=True).drop(
        columns="seed").reset_index()
    return table.astype({"parameters": int, "macs": int})


def claims_stage(models: list[str], seeds: list[int], results: str | Path, tolerances: dict,
                 out_claims: str, out_paired: str, out_faithfulness: str, out_cost: str) -> None:
    """The study's claims table, paired comparisons, faithfulness and cost summaries."""
    root = Path(results)
    write_csv(out_cost, cost_table(models, seeds, root))

    def per_seed(path: str, pick) -> dict[str, list[float]]:
        return {m: [pick(read_json(root / m / f"seed{s}" / path)) for s in seeds]
                for m in models}

    acc = per_seed("eval/metrics.json", lambda d: 100 * d["splits"]["test"]["accuracy"])
    macs = per_seed("eval/metrics.json", lambda d: d["structure"]["macs"])
    fgsm_paper = per_seed("attack/fgsm.json", lambda d: d["paper"]["score"])
    eps_small = tolerances["robust_epsilon"]
    fgsm_small = per_seed("attack/fgsm.json", lambda d: next(
        r["accuracy"] for r in d["clean"]["curve"] if abs(r["epsilon"] - eps_small) < 1e-9))
    immune = {proto: per_seed("attack/blur.json", lambda d, p=proto: 100 * d[p]["immune"])
              for proto in ("paper", "clean")}
    faith = pd.concat([pd.read_csv(root / m / f"seed{s}" / "explain" / "faithfulness.csv")
                       for m in models for s in seeds], ignore_index=True)
    per_seed_faith = faith.groupby(["model", "method", "seed"])[
        ["deletion_auc", "insertion_auc"]].mean().reset_index()
    summary = per_seed_faith.groupby(["model", "method"])[["deletion_auc", "insertion_auc"]].agg(
        ["mean", "std", "count"])
    summary.columns = ["_".join(c) for c in summary.columns]
    write_csv(out_faithfulness, summary.reset_index())

    rows, paired = [], []
    vdk, base = "vdk_cnnet", "baseline_cnn"

    def add_numeric(cid, text, protocol, model, paper, values, tol, unit):
        verdict, rule = numeric_verdict(paper, values, tol)
        rows.append(claim_row(cid, text, protocol, paper, values, seeds, verdict, rule, unit))

    def add_paired(cid, text, protocol, a, b, paper="-", lower_is_better=False, unit=""):
        verdict, rule, res = paired_verdict(a, b, tolerances["alpha"], lower_is_better)
        rows.append(claim_row(cid, text, protocol, paper,
                              np.asarray(a) - np.asarray(b), seeds, verdict, rule, unit))
        paired.append({"claim_id": cid, **res})

    for model in (vdk, base):
        if model in models:
            add_numeric(f"vdk.acc.{model}", f"{model} test accuracy", "paper", model,
                        PAPER["acc"][model], acc[model], tolerances["accuracy_pp"], "%")
            add_numeric(f"vdk.fig8.{model}", f"{model} FGSM score (eps 0.16, correct-only, "
                        "un-normalised input)", "paper", model, PAPER["fgsm"][model],
                        fgsm_paper[model], tolerances["fgsm_score"], "")
            for proto in ("paper", "clean"):
                add_numeric(f"vdk.tab1.{model}.{proto}", f"{model} immune to blur ({proto} "
                            "protocol)", proto, model, PAPER["immune"][model],
                            immune[proto][model], tolerances["immune_pp"], "%")
            verdict, rule = threshold_verdict(fgsm_small[model], tolerances["robust_accuracy"])
            rows.append(claim_row(f"vdk.fig8.not_robust.{model}",
                                  f"{model} is not robust: accuracy at eps {eps_small:.4g} "
                                  f"below {tolerances['robust_accuracy']:g}", "clean",
                                  "neither model is robust", fgsm_small[model], seeds,
                                  verdict, rule))
    if vdk in models:
        for other in [m for m in models if m != vdk]:
            add_paired(f"vdk.acc.gain.{other}", f"VDK CNNet is more accurate than {other}",
                       "clean", acc[vdk], acc[other],
                       "72.5 vs 63.6" if other == base else "-", unit="pp")
        if base in models:
            for proto in ("paper", "clean"):
                add_paired(f"vdk.tab1.gain.{proto}", "VDK CNNet has more blur-immune images "
                           "than the Baseline CNN", proto, immune[proto][vdk],
                           immune[proto][base], "24.29 vs 15.91", unit="pp")
            del_auc = {m: per_seed_faith.query("model == @m and method == 'ig_smoothgrad_sq'")
                       .sort_values("seed")["deletion_auc"].tolist() for m in (vdk, base)}
            add_paired("vdk.fig7.faithful", "VDK CNNet's IG-SmoothGrad² maps are more faithful "
                       "(lower deletion AUC) than the Baseline's", "clean", del_auc[vdk],
                       del_auc[base], "qualitative (Fig. 7)", lower_is_better=True)
            ratio = [v / b for v, b in zip(macs[vdk], macs[base])]
            verdict, rule = threshold_verdict(ratio, tolerances["cost_ratio"])
            rows.append(claim_row("vdk.cost", "VDK CNNet has a low computational burden: MACs "
                                  f"within {tolerances['cost_ratio']:g}x the Baseline's",
                                  "clean", "low computational burden", ratio, seeds, verdict,
                                  rule, "x"))
    write_csv(out_claims, pd.DataFrame(rows))
    write_csv(out_paired, pd.DataFrame(paired))
