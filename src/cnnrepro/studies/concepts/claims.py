"""Study ``concepts``: the claims table (common :class:`cnnrepro.claims.ClaimTable` format)
and the FGSM summary over seeds.

* Formula checks (one claim per layer type, and the separable / standard cost ratio) and
  the CAM = Grad-CAM identity of a GAP + linear model are structural: deterministic, so
  comparable under every preset.
* FGSM success depends on how the attacked model was trained and on the attack settings:
  its claims name this study's ``fgsm`` keys and the borrowed model's training keys
  (``studies.<study>.…``), so a preset that departs from either makes them
  ``not comparable``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...claims import (
    FAILS,
    HOLDS,
    ClaimTable,
    attack_sanity_claims,
    largest_rise,
    map_check_claims,
    training_keys,
)
from ...io import read_csv, read_json, write_csv
from ...paths import StudyFiles
from ...study import Stages

# What the slides state, per layer type (the paper value of each formula claim).
STAGES = Stages()
FORMULAS = {
    "standard": "weights C_out·C_in·K², O(C_out·C_in·K²·W·H)",
    "pointwise 1x1": "channel mixing: C_out channels, spatial size unchanged",
    "dilated": "receptive field K + (K − 1)(d − 1) with the weights of a K×K kernel",
    "depthwise-separable": "O(C_in·K²·W·H + C_out·C_in·W·H)",
    "transposed": "W_0 = K + (W_i − 1)·S − 2P",
}
SLIDE_FGSM = "x (97.3 % macaw) → x′ (88.9 % bookcase): FGSM fools the model"


def borrowed_keys(study: str, model: str) -> tuple[str, ...]:
    """The training keys of a model, as this study's departures name them."""
    keys = training_keys(model)
    return keys if study == "concepts" else tuple(f"studies.{study}.{k}" for k in keys)


def summarise_fgsm(sweep: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n over seeds of the sweep, per target and epsilon."""
    stats = (sweep.groupby(["target", "study", "model", "epsilon"], sort=False)
             [["untargeted_error", "targeted_success"]].agg(["mean", "std", "count"]))
    stats.columns = [f"{a}_{b}".replace("_count", "_n") for a, b in stats.columns]
    return stats.reset_index()


@STAGES.register(writes=("claims", "fgsm_summary"), settings="claims", local=True,
                 reads=("convtypes_checks", "convtypes_ratios", "cam_agreement", "fgsm_sweep",
                        "attack_checks", "metrics", "randomisation", "class_sensitivity"),
                 params=lambda config: {
                     "fgsm_settings": config["studies"]["concepts"]["fgsm"],
                     "grid_seed": config["studies"]["concepts"]["convtypes"]["seed"]})
def claims(*, files: StudyFiles, settings: dict[str, Any], fgsm_settings: dict[str, Any],
           grid_seed: int, claims: str, fgsm_summary: str,
           departures: dict[str, str] | None = None, preset: str = "full",
           threads: int | None = None) -> None:
    """The claims table and the FGSM summary (``departures``: this study's and the borrowed
    studies' departures from the full settings)."""
    seeds = list(files.seeds)
    table = ClaimTable(seeds, departures=departures, preset=preset)

    checks = read_csv(files.file("convtypes_checks"))
    for layer, rows in checks.groupby("layer", sort=False):
        n, ok = len(rows), int(rows["match"].sum())
        table.add(f"concepts.formula.{layer.replace(' ', '_')}",
                  f"{layer} convolution: measured weights, parameters, MACs and output size"
                  f" (receptive field for the dilated one) equal the formulas (value: the fraction"
                  f" of its {n} checks that match)", "slides",
                  FORMULAS[layer], [ok / n], HOLDS if ok == n else FAILS,
                  f"holds if every one of the {n} checks matches ({ok} do)", "fraction",
                  seeds=[grid_seed], deterministic=True, depends_on=("convtypes",))
    ratios = read_csv(files.file("convtypes_ratios"))
    exact = ratios["mac_ratio_exact"].astype(bool)
    table.add("concepts.separable_ratio", "depthwise-separable / standard MACs = 1/C_out + 1/K² "
              "exactly (same K, stride, padding; value: the fraction of configurations)",
              "slides",
              "O(C_in·K²·W·H + C_out·C_in·W·H) / O(C_out·C_in·K²·W·H)", [float(exact.mean())],
              HOLDS if exact.all() else FAILS,
              f"holds if the measured ratio equals the formula as exact fractions in every one "
              f"of {len(ratios)} configurations", "fraction", seeds=[grid_seed],
              deterministic=True, depends_on=("convtypes",))

    # every (model, seed) of the study's own GAP models
    agreement = {run: read_csv(path) for run, path in files.runs("cam_agreement").items()}
    pearson = [float(a["pearson"].min()) for a in agreement.values()]
    scaled = all(np.allclose(a["scale"], a["expected_scale"], rtol=settings["scale_rtol"])
                 for a in agreement.values())
    floor = settings["pearson"]
    ok = scaled and all(p >= floor for p in pearson)
    table.add("concepts.cam_gradcam", "for a GAP + linear model, Grad-CAM of the last conv "
              "block equals CAM up to a positive constant (1/(h·w))", "slides",
              "Grad-CAM generalises CAM", pearson, HOLDS if ok else FAILS,
              f"holds if the lowest Pearson correlation over images is >= {floor:g} on every "
              f"seed and the fitted scale is 1/(h·w) within {settings['scale_rtol']:g} "
              "(relative)", "r", seeds=[seed for _, seed in agreement],
              deterministic=True, depends_on=("cam", "models"))

    for model in files.models:
        accuracy = [read_json(p)["splits"]["test"]["accuracy"]
                    for p in files.by_model("metrics", [model])[model]]
        map_check_claims(table, files, "concepts", model, settings,
                         (accuracy, settings["learned_accuracy"]),
                         training_keys(model) + ("randomisation",))

    sweep = read_csv(files.file("fgsm_sweep"))
    checks = read_csv(files.file("attack_checks"))
    write_csv(fgsm_summary, summarise_fgsm(sweep))
    for name, ref in fgsm_settings["targets"].items():
        rows = sweep[sweep["target"] == name]
        eps = ref["epsilon"]
        at = rows[np.isclose(rows["epsilon"], eps)].sort_values("seed")
        clean = rows[rows["epsilon"] == 0].sort_values("seed")
        learned = (list(1 - clean["untargeted_error"]), settings["learned_accuracy"])
        model_keys = borrowed_keys(ref["study"], ref["model"]) + (
            (f"studies.{ref['study']}.subset.test",) if ref["study"] != "concepts"
            else ("subset.test",))
        depends = ("fgsm",) + model_keys
        # the checks attack their own images: of the FGSM block only its eps and targets
        checked = model_keys + ("attack_checks", "fgsm.epsilons", "fgsm.target_rule",
                                f"fgsm.targets.{name}")
        who = f"{ref['study']}/{ref['model']}"
        table.threshold(f"concepts.fgsm.{name}.untargeted",
                        f"untargeted FGSM at ε = {eps:g} misclassifies most images ({who})",
                        "slides", SLIDE_FGSM, list(at["untargeted_error"]),
                        settings["untargeted_error"], below=False, unit="fraction",
                        learned=learned, seeds=list(at["seed"]), depends_on=depends)
        table.threshold(f"concepts.fgsm.{name}.targeted",
                        f"targeted FGSM ({fgsm_settings['target_rule']} class) at ε = {eps:g} "
                        f"reaches its target ({who})", "slides",
                        "x′ = x − ε·sign(∇ₓJ(x, y_target)) moves x toward the target",
                        list(at["targeted_success"]), settings["targeted_success"],
                        below=False, unit="fraction", learned=learned,
                        seeds=list(at["seed"]), depends_on=depends)
        # FGSM's success must not fall as eps grows, over the sweep's finer eps grid
        tol = settings["sanity_tolerance"]
        for goal, column, suffix in (("untargeted", "untargeted_error", name),
                                     ("targeted", "targeted_success", f"{name}.targeted")):
            falls = [largest_rise(-run.set_index("epsilon")[column])
                     for _, run in rows.groupby("seed", sort=True)]
            table.threshold(f"concepts.sanity.rise.{suffix}", f"{goal} FGSM's success does "
                            f"not fall as ε grows (largest fall between consecutive ε of the "
                            f"sweep below {tol:g}; {who})", "ours", "–", falls, tol,
                            unit="fraction", learned=learned,
                            seeds=sorted(rows["seed"].unique()), depends_on=depends)
            own = checks[(checks["target"] == name) & (checks["goal"] == goal)]
            attack_sanity_claims(table, "concepts.sanity", suffix, f"{goal} attacks on {who}",
                                 [run for _, run in own.groupby("seed", sort=True)], settings,
                                 learned, checked, keys=("pgd_excess", "noise_share"), at=eps)
    write_csv(claims, table.frame())
