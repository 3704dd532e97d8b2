"""The vdk study: its blur search (both protocols), its stages' helpers and its claims."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import sample_images

from cnnrepro.runtime import standardizer
from cnnrepro.studies.vdk import blur


def test_batched_paper_blur_equals_the_captum_loop(trained_mnist):
    model, x01, y, mean, std = sample_images(trained_mnist, 40)
    x_norm = standardizer(mean, std, x01.device)(x01)
    kernels = blur.paper_kernel_sizes(1, 31, 2)
    sigmas = blur.draw_sigmas(len(y), len(kernels), 5, seed=3)
    batched = blur.min_blur_paper(model, x_norm, y, sigmas, kernels, batch_size=16)
    one_by_one = [blur.min_blur_captum(model, x_norm[i], int(y[i]), sigmas[:, :, i], kernels)
                  for i in range(len(y))]
    assert batched.tolist() == one_by_one
    assert len(set(one_by_one)) > 2  # the comparison is not vacuous


def test_per_image_blur_matches_torchvision():
    from torchvision.transforms.functional import gaussian_blur

    images = torch.rand(3, 3, 32, 32)
    sigmas = torch.tensor([0.3, 1.1, 1.9])
    ours = blur.blur_per_image(images, 7, sigmas)
    for i, s in enumerate(sigmas.tolist()):
        assert torch.allclose(ours[i], gaussian_blur(images[i], [7, 7], [s, s]), atol=1e-6)


def test_clean_blur_equals_brute_force(trained_mnist):
    model, x01, y, mean, std = sample_images(trained_mnist, 60)
    standardize = standardizer(mean, std, x01.device)
    with torch.no_grad():
        correct = model(standardize(x01)).argmax(1) == y
    x01, y = x01[correct], y[correct]
    grid = [0.5, 1.0, 1.5, 2.0, 3.0]
    flips = blur.clean_blur_flips(model, x01, y, standardize, grid, batch_size=7)
    found = blur.first_flip(flips, grid)
    brute = np.zeros((len(grid), len(y)), dtype=bool)
    with torch.no_grad():
        for i in range(len(y)):
            for row, sigma in enumerate(grid):
                k = blur.kernel_for_sigma(sigma)
                img = blur.blur_per_image(x01[i:i + 1], k, torch.tensor([sigma]))
                brute[row, i] = model(standardize(img)).argmax(1).item() != y[i].item()
    np.testing.assert_array_equal(flips, brute)
    first = [grid[row.index(True)] if any(row) else np.nan for row in brute.T.tolist()]
    np.testing.assert_array_equal(found, first)


# --------------------------------------------------------------------------- claims

SANE = {"fgsm": (0.5, 0.05), "pgd": (0.5, 0.01), "noise": (0.5, 0.45)}  # eps 0, eps 8/255


# Mean Spearman correlation with the trained maps, every layer re-initialised, per method:
# gradients lose their rank order, a method that ignores the model would not.
RANDOMISED = {"saliency": 0.1, "deeplift": 0.9}
# The same for the maps of the true class against another class.
CLASS_SIMILARITY = {"saliency": 0.2, "deeplift": 0.95}


def _synthetic_vdk_run(root, full_accuracy: dict[str, float], seeds=(0, 1, 2),
                       checks: dict[str, tuple[float, float]] = SANE,
                       randomised: dict[str, float] = RANDOMISED,
                       damage: tuple[float, ...] = (0.1, 0.3, 0.6)):
    """The files the vdk claims read, for every model and seed, with chosen accuracies
    (the rest plausible; ``checks``: accuracy at eps 0 and 8/255 per attack;
    ``randomised``: see :data:`RANDOMISED`; ``damage``: the clean blur's share flipped per
    sigma): a small stand-in for a finished run."""
    import pandas as pd

    from cnnrepro.io import write_csv, write_json
    from cnnrepro.studies import get

    files = get("vdk").study_files({"studies": {"vdk": {"models": dict.fromkeys(
        full_accuracy)}}, "seeds": list(seeds)}, str(root))
    macs = {"vdk_cnnet": 44_434_688, "baseline_cnn": 651_720, "vdk_novdk": 28_706_048,
            "vdk_dilated": 44_041_472}
    for (model, seed), path in files.runs("metrics").items():
        acc = full_accuracy[model] + 0.002 * seed
        write_json(path, {"splits": {"test": {"accuracy": acc}},
                          "structure": {"parameters": 1, "macs": macs[model]}})
        write_json(files.run("cost", model, seed), {"latency": {"cpu": {"batch1_ms": 1.0}}})
        write_json(files.run("fgsm", model, seed), {
            "paper": {"score": 0.15 if model == "vdk_cnnet" else 0.18},
            "clean": {"curve": [{"epsilon": 0.0, "accuracy": acc},
                                {"epsilon": 0.03137255, "accuracy": 0.05}]}})
        immune = 0.243 if model == "vdk_cnnet" else 0.159
        write_json(files.run("blur_summary", model, seed),
                   {"paper": {"immune": immune},
                    "clean": {"immune": immune + 0.01 * seed, "damage": list(damage),
                              "sigma_grid": [0.5, 1.0, 1.5][:len(damage)]}})
        write_csv(files.run("ig_completeness", model, seed), pd.DataFrame(
            {"image": [0, 1, 2], "relative": [0.01, 0.02, 0.5 if model == "baseline_cnn" else 0.03]}))
        write_csv(files.run("attack_checks", model, seed), pd.DataFrame(
            [{"epsilon": eps, "attack": attack, "goal": "untargeted", "accuracy": acc,
              "success": 1 - acc, "model": model, "seed": seed}
             for attack, pair in checks.items() for eps, acc in zip((0.0, 0.03137255), pair)]))
        write_csv(files.run("randomisation", model, seed), pd.DataFrame(
            [{"method": method, "step": step, "layer": f"layer{step}", "image": i,
              "spearman": rho if step == 2 else 0.95, "ssim": 0.5, "model": model,
              "seed": seed} for method, rho in randomised.items() for step in (1, 2)
             for i in range(3)]))
        write_csv(files.run("class_sensitivity", model, seed), pd.DataFrame(
            [{"method": method, "image": i, "other_class": 1, "spearman": rho, "ssim": 0.5,
              "model": model, "seed": seed} for method, rho in CLASS_SIMILARITY.items()
             for i in range(3)]))
        write_csv(files.run("faithfulness", model, seed), pd.DataFrame(
            [{"model": model, "seed": seed, "image": i, "method": "ig_smoothgrad_sq",
              "deletion_auc": (0.2 if model == "vdk_cnnet" else 0.3) + 0.01 * (i + seed),
              "insertion_auc": 0.5} for i in range(3)]))
    return files


def _vdk_claims(files, tmp_path, departures, preset):
    import pandas as pd

    from cnnrepro import config as cfg
    from cnnrepro.studies.vdk.claims import STAGES, claims

    vdk = cfg.load(cfg.ROOT / "config.yaml")["studies"]["vdk"]
    out = {n: str(tmp_path / f"{n}.csv") for n in ("claims", "paired", "faithfulness_summary",
                                                   "cost_summary")}
    claims(files=files.only(STAGES["claims"].reads), settings=vdk["claims"],
           fgsm_settings=vdk["fgsm"], ig_steps=vdk["attribution"]["ig_steps"],
           departures=departures, preset=preset, **out)
    return pd.read_csv(out["claims"]).set_index("claim_id")


def test_vdk_claims_not_comparable_under_quick_and_judged_under_full(tmp_path):
    from cnnrepro import config as cfg

    files = _synthetic_vdk_run(tmp_path, {"vdk_cnnet": 0.726, "baseline_cnn": 0.60,
                                          "vdk_novdk": 0.70, "vdk_dilated": 0.71})
    quick = cfg.load(cfg.ROOT / "config.yaml", [cfg.ROOT / "config/presets/quick.yaml"])
    under_quick = _vdk_claims(files, tmp_path, cfg.departures(quick, "vdk"), "quick")
    trained = under_quick[~under_quick["deterministic"]]
    assert (trained["verdict"] == "not comparable").all()
    assert trained["reason"].str.startswith("preset quick: training.").all()
    assert under_quick.loc["vdk.acc.vdk_cnnet", "reproduced_mean"] == pytest.approx(72.8)
    # the cost claims are structural: judged under every preset, once
    assert under_quick.loc["vdk.cost.baseline_cnn", "verdict"] == "does not hold"
    assert under_quick.loc["vdk.cost.vdk_novdk", "verdict"] == "holds"
    assert under_quick.loc["vdk.cost.vdk_novdk", "n"] == 1

    full = _vdk_claims(files, tmp_path, {}, "full")
    assert full.loc["vdk.acc.vdk_cnnet", "verdict"] == "holds"          # 72.8 vs 72.59
    assert full.loc["vdk.acc.baseline_cnn", "verdict"] == "does not hold"  # 60.2 vs 63.62
    assert full.loc["vdk.fig8.not_robust.vdk_cnnet", "verdict"] == "holds"
    assert full.loc["vdk.acc.gain.baseline_cnn", "verdict"] == "holds"
    assert full.loc["vdk.fig7.faithful", "verdict"] == "holds"
    # the clean-protocol immune share is compared between models, not with Table 1
    assert "vdk.tab1.vdk_cnnet.clean" not in full.index
    assert {"vdk.tab1.vdk_cnnet.paper", "vdk.tab1.gain.clean"} <= set(full.index)
    assert (full["reason"].isna()).all()


def test_a_vdk_model_at_chance_is_not_called_not_robust(tmp_path):
    files = _synthetic_vdk_run(tmp_path, {"vdk_cnnet": 0.10, "baseline_cnn": 0.10})
    full = _vdk_claims(files, tmp_path, {}, "full")
    for model in ("vdk_cnnet", "baseline_cnn"):
        assert full.loc[f"vdk.fig8.not_robust.{model}", "reproduced_mean"] < 0.2
        assert full.loc[f"vdk.fig8.not_robust.{model}", "verdict"] == "inconclusive"


@pytest.mark.parametrize("checks, verdicts", [
    (SANE, {"rise": "holds", "pgd_excess": "holds", "noise_share": "holds"}),
    # accuracy rising with eps, PGD weaker than FGSM, noise as strong as FGSM: each caught
    ({"fgsm": (0.5, 0.6), "pgd": (0.5, 0.7), "noise": (0.5, 0.05)},
     {"rise": "does not hold", "pgd_excess": "does not hold", "noise_share": "inconclusive"}),
    ({"fgsm": (0.5, 0.05), "pgd": (0.5, 0.2), "noise": (0.5, 0.05)},
     {"rise": "holds", "pgd_excess": "does not hold", "noise_share": "does not hold"})])
def test_attack_sanity_claims_catch_an_attack_that_is_not_one(tmp_path, checks, verdicts):
    files = _synthetic_vdk_run(tmp_path, {"vdk_cnnet": 0.726, "baseline_cnn": 0.60},
                               checks=checks)
    full = _vdk_claims(files, tmp_path, {}, "full")
    for model in ("vdk_cnnet", "baseline_cnn"):
        for key, verdict in verdicts.items():
            row = full.loc[f"vdk.sanity.{key}.{model}"]
            assert row["verdict"] == verdict, (key, row["rule"])
            assert row["protocol"] == "ours" and row["paper_value"] == "–"


@pytest.mark.parametrize("damage, verdict", [((0.1, 0.3, 0.6), "holds"),
                                             ((0.1, 0.3, 0.3), "holds"),
                                             ((0.1, 0.6, 0.3), "does not hold")])
def test_blur_that_damages_less_at_a_larger_sigma_is_caught(tmp_path, damage, verdict):
    files = _synthetic_vdk_run(tmp_path, {"vdk_cnnet": 0.726, "baseline_cnn": 0.60},
                               damage=damage)
    row = _vdk_claims(files, tmp_path, {}, "full").loc["vdk.sanity.blur_monotone.vdk_cnnet"]
    assert row["verdict"] == verdict and row["protocol"] == "ours"
    assert row["reproduced_mean"] == pytest.approx(max(-np.diff(damage)))  # the largest fall


def test_integrated_gradients_completeness_is_judged_by_the_median_relative_delta(tmp_path):
    files = _synthetic_vdk_run(tmp_path, {"vdk_cnnet": 0.726, "baseline_cnn": 0.60})
    full = _vdk_claims(files, tmp_path, {}, "full")
    # medians 0.02 and 0.03 (below 0.05) hold; one bad image of three does not move them
    assert full.loc["vdk.sanity.ig_completeness.vdk_cnnet", "verdict"] == "holds"
    assert full.loc["vdk.sanity.ig_completeness.baseline_cnn", "reproduced_mean"] == 0.02


def test_attack_sanity_claims_are_inconclusive_for_a_model_at_chance(tmp_path):
    files = _synthetic_vdk_run(tmp_path, {"vdk_cnnet": 0.10, "baseline_cnn": 0.10})
    full = _vdk_claims(files, tmp_path, {}, "full")
    sanity = full[full.index.str.startswith("vdk.sanity.")]
    assert len(sanity) == 18 and (sanity["verdict"] == "inconclusive").all()  # IG's, blur's too


def test_randomisation_claims_hold_for_maps_that_change_and_fail_for_maps_that_do_not(tmp_path):
    files = _synthetic_vdk_run(tmp_path, {"vdk_cnnet": 0.726, "baseline_cnn": 0.60})
    full = _vdk_claims(files, tmp_path, {}, "full")
    for model in ("vdk_cnnet", "baseline_cnn"):
        saliency = full.loc[f"vdk.sanity.randomisation.saliency.{model}"]
        assert saliency["verdict"] == "holds" and saliency["reproduced_mean"] == pytest.approx(0.1)
        assert full.loc[f"vdk.sanity.randomisation.deeplift.{model}", "verdict"] == "does not hold"
        assert saliency["protocol"] == "ours" and saliency["n"] == 3
        # maps that change with the class explained, and maps that do not
        assert full.loc[f"vdk.sanity.class_sensitivity.saliency.{model}", "verdict"] == "holds"
        assert (full.loc[f"vdk.sanity.class_sensitivity.deeplift.{model}", "reproduced_mean"]
                == pytest.approx(0.95))
        assert (full.loc[f"vdk.sanity.class_sensitivity.deeplift.{model}", "verdict"]
                == "does not hold")
