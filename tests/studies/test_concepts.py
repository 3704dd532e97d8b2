"""Study ``concepts`` end to end without Snakemake: every stage on tiny synthetic data and
two tiny trained models, then the claims and every figure; its config checks and its
borrowed models' inputs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from conftest import bands, write_split

from cnnrepro import config as cfg
from cnnrepro import paths
from cnnrepro.io import write_json
from cnnrepro.studies import figures_for, get, render
from cnnrepro.studies.concepts import checks, stages, upstream
from cnnrepro.studies.concepts import claims as concepts_claims
from cnnrepro.train import train

QUICK = cfg.ROOT / "config" / "presets" / "quick.yaml"
TINY_GRID = {"c_in": 4, "c_out": [4, 8], "kernel": [3], "stride": [1, 2], "padding": ["same"],
             "dilation": [1, 2], "input_size": 8,
             "transposed": {"kernel": [2, 3], "stride": [2], "padding": [0, 1],
                            "output_padding": [0, 1], "input_size": 4},
             "repeats": 1, "warmup": 0, "latency_max_seconds": 0.5}


def _dataset(root, name: str, channels: int, size: int) -> dict[str, str]:
    found = {}
    for split, seed in (("train", 0), ("test", 1)):
        found[split] = write_split(root / "data" / name / f"{split}.npz",
                                   *bands(40 if split == "train" else 12, channels, size, seed),
                                   ["top", "middle", "bottom"])
    return found


def _spec(study: str, model: str, arch: str, options: dict, channels: int) -> dict:
    return {"study": study, "model": model, "dataset": "synthetic", "arch": arch,
            "options": options, "normalize": {"mean": [0.5] * channels, "std": [0.25] * channels},
            "subset": {}, "holdout_fraction": 0,
            "training": {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.0, "batch_size": 20,
                         "epochs": 4},
            "device": "cpu", "deterministic": True, "precision": "ieee"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished concepts run in miniature: its data files under ``root/results``."""
    root = tmp_path_factory.mktemp("concepts")
    gray, rgb = _dataset(root, "gray", 1, 12), _dataset(root, "rgb", 3, 12)
    gap = _spec("concepts", "gap", "gap_cnn", {"channels": [4, 8], "kernel": 3}, 1)
    cnn = _spec("other", "cnn", "lenet_cnn", {"channels": [4, 6], "kernel": 3}, 3)
    seeds = (0, 1)
    refs = {}
    for spec, data in ((gap, gray), (cnn, rgb)):
        for seed in seeds:
            weights = root / paths.run_file("weights", spec["study"], spec["model"], seed)
            train(spec, seed, data, weights.parent)
            refs[(spec["model"], seed)] = {"study": spec["study"], "model": spec["model"],
                                           "seed": seed, "spec": spec, "weights": str(weights),
                                           "data": data}
    config = {"studies": {"concepts": {"models": {"gap": {}}}}, "seeds": list(seeds)}
    files = get("concepts").study_files(config, str(root))
    out = {name: str(files.file(name)) for name in get("concepts").files}

    stages.convtypes(settings={**TINY_GRID, "seed": 0},
                     **{name: out[name] for name in stages.STAGES["convtypes"].writes})
    hierarchy = {"channels": 2, "steps": 5, "lr": 0.1, "l2": 1e-3, "init_std": 0.1}
    stages.hierarchy(source=refs[("cnn", 0)], settings=hierarchy, hierarchy=out["hierarchy"])
    for seed in seeds:
        stages.cam(spec=gap, seed=seed, weights=refs[("gap", seed)]["weights"], data=gray,
                   settings={"images_per_class": 2, "agreement_images": 9},
                   cam=str(files.run("cam", "gap", seed)),
                   cam_agreement=str(files.run("cam_agreement", "gap", seed)))
    stages.gradcam(targets={"cnn": [{**refs[("cnn", 0)], "layer": None}],
                            "gap": [{**refs[("gap", 0)], "layer": "features.3"}]},
                   settings={"images": 3}, gradcam=out["gradcam"])
    fgsm = {"images": 30, "examples": 3, "epsilons": [0.0, 0.1, 0.5], "target_rule": "next"}
    targets = {"cnn": [{**refs[("cnn", s)], "epsilon": 0.5} for s in seeds],
               "gap": [{**refs[("gap", s)], "epsilon": 0.1} for s in seeds]}
    stages.fgsm(targets=targets, settings=fgsm, fgsm_examples=out["fgsm_examples"],
                fgsm_sweep=out["fgsm_sweep"])
    checks = {"images": 30, "pgd_steps": 5, "pgd_alpha": 0.25, "seed": 0}
    stages.attack_checks(targets=targets, settings={**checks, **fgsm},
                         attack_checks=out["attack_checks"])
    fgsm_block = {**fgsm, "targets": {n: {k: r[0][k] for k in ("study", "model", "epsilon")}
                                      for n, r in targets.items()}}
    sweep = pd.read_csv(out["fgsm_sweep"])
    for seed in seeds:
        stages.randomisation(spec=gap, seed=seed, weights=refs[("gap", seed)]["weights"],
                             data=gray, settings={"images": 3, "seed": 0},
                             randomisation=str(files.run("randomisation", "gap", seed)),
                             randomisation_maps=str(files.run("randomisation_maps", "gap", seed)),
                             class_sensitivity=str(files.run("class_sensitivity", "gap", seed)))
        # the claims judge a model that learned: its clean accuracy, as the sweep measured it
        clean = sweep[(sweep["target"] == "gap") & (sweep["seed"] == seed)
                      & (sweep["epsilon"] == 0)]["untargeted_error"]
        write_json(files.run("metrics", "gap", seed),
                   {"splits": {"test": {"accuracy": 1 - float(clean.iloc[0])}}})
    return {"root": root, "files": files, "out": out, "refs": refs, "fgsm": fgsm_block,
            "config": {"seeds": list(seeds), "report": {"chance_margin": 0.05},
                       "studies": {"concepts": {
                "models": {"gap": {}}, "dataset": "synthetic", "convtypes": TINY_GRID,
                "hierarchy": {"study": "other", "model": "cnn", **hierarchy},
                "cam": {"images_per_class": 2}, "fgsm": fgsm_block, "attack_checks": checks,
                "gradcam": {"targets": {"cnn": {"study": "other", "model": "cnn"},
                                        "gap": {"study": "concepts", "model": "gap"}}}}}}}


def test_convtypes_stage_writes_every_check_and_its_summary(run):
    out = run["out"]
    checks, summary = pd.read_csv(out["convtypes_checks"]), pd.read_csv(out["convtypes_summary"])
    assert checks["match"].all()
    assert summary["rows"].sum() == len(checks) and (summary["matches"] == summary["rows"]).all()
    assert set(summary["layer"]) == {"standard", "pointwise 1x1", "dilated",
                                     "depthwise-separable", "transposed"}
    meta = json.loads(open(out["convtypes_meta"]).read())
    assert meta["rows"] == meta["matches"] == len(checks)
    assert meta["provenance"]["config"]["convtypes"]["c_in"] == 4
    assert len(pd.read_csv(out["convtypes_ratios"])) == 2 * 2  # C_out × stride, K = 3


def test_hierarchy_stage(run):
    data = np.load(run["out"]["hierarchy"])
    assert list(data["levels"]) == ["low", "deep"]  # two convs: no separate middle
    assert data["low_filter_images"].shape == (4, 3, 3, 3)
    assert data["deep_images"].shape == (2, 3, 12, 12)
    assert 0 <= data["deep_images"].min() and data["deep_images"].max() <= 1  # pixels
    assert (data["deep_activation_end"] > data["deep_activation_start"]).all()
    assert json.loads(str(data["provenance"]))["config"]["study"] == "other"


def test_cam_stage_and_its_agreement_with_gradcam(run):
    files = run["files"]
    for seed in (0, 1):
        data = np.load(files.run("cam", "gap", seed))
        assert data["images"].shape == (6, 1, 12, 12) and data["cam"].shape == (6, 12, 12)
        assert np.bincount(data["labels"]).tolist() == [2, 2, 2]
        assert data["cam"].min() >= 0 and data["cam"].max() <= 1
        agreement = pd.read_csv(files.run("cam_agreement", "gap", seed))
        assert len(agreement) == 9 and (agreement["seed"] == seed).all()
        assert (agreement["pearson"] > 0.999).all()
        assert np.allclose(agreement["scale"], 1 / 36, rtol=1e-4)  # one pool: 6×6 maps


def test_randomisation_stage_cascades_every_layer_for_each_method(run):
    files = run["files"]
    for seed in (0, 1):
        cascade = pd.read_csv(files.run("randomisation", "gap", seed))
        layers = cascade.drop_duplicates("step")["layer"].tolist()
        assert layers[0] == "classifier" and layers[-1] == "features.0"  # output down
        assert set(cascade["method"]) == {"cam", "grad_cam", "guided_grad_cam"}
        assert len(cascade) == 3 * 3 * len(layers) and (cascade["seed"] == seed).all()
        strip = np.load(files.run("randomisation_maps", "gap", seed))
        assert strip["cam"].shape == (len(layers) + 1, 12, 12)
        # step 0 is the trained model's map: the cam stage's map of the same image
        cam = np.load(files.run("cam", "gap", seed))
        np.testing.assert_allclose(strip["cam"][0], cam["cam"][0], atol=1e-6)
        # maps for the true class against another: every image, every method, another class
        classes = pd.read_csv(files.run("class_sensitivity", "gap", seed))
        assert len(classes) == 3 * 3 and set(classes["method"]) == set(cascade["method"])
        labels = np.load(run["refs"][("gap", seed)]["data"]["test"])["labels"]
        assert (classes["other_class"] != labels[classes["test_index"]]).all()


def test_gradcam_stage(run):
    data = np.load(run["out"]["gradcam"])
    targets = json.loads(str(data["targets"]))
    assert targets["cnn"]["layer"] == "features.3"  # the last conv of the lenet CNN
    assert targets["gap"]["layer"] == "features.3"
    assert data["cnn__guided"].shape == (3, 3, 12, 12)
    assert data["gap__gradcam"].shape == (3, 12, 12)
    assert data["cnn__images"].dtype == np.uint8


def test_fgsm_stage_sweeps_every_seed_and_shows_the_first(run):
    sweep = pd.read_csv(run["out"]["fgsm_sweep"])
    assert len(sweep) == 2 * 2 * 3 and set(sweep["seed"]) == {0, 1}
    assert (sweep["n"] == 30).all()
    big = sweep[sweep["epsilon"] == 0.5]
    assert (big["untargeted_error"] > sweep[sweep["epsilon"] == 0]["untargeted_error"].max()).all()
    data = np.load(run["out"]["fgsm_examples"])
    eps = np.abs(data["cnn__untargeted__perturbation"]).max()
    assert eps <= 0.5 + 1e-6 and eps > 0.4
    assert (data["cnn__targeted__target"] == (data["cnn__targeted__label"] + 1) % 3).all()


def test_attack_checks_stage_runs_fgsm_pgd_and_noise_both_ways_up_to_each_targets_eps(run):
    checks = pd.read_csv(run["out"]["attack_checks"])
    # cnn's eps 0.5 takes the whole sweep, gap's 0.1 stops there: 2 seeds x 3 attacks x 2 goals
    eps = checks.groupby("target")["epsilon"].unique()
    assert sorted(eps["cnn"]) == [0.0, 0.1, 0.5] and sorted(eps["gap"]) == [0.0, 0.1]
    assert len(checks) == 2 * 3 * 2 * (3 + 2)
    assert set(checks["goal"]) == {"untargeted", "targeted"} and (checks["images"] == 30).all()
    assert (checks["max_linf"] <= checks["epsilon"] + 1e-6).all()
    clean = checks[checks["epsilon"] == 0]
    untargeted = clean[clean["goal"] == "untargeted"]
    assert np.allclose(untargeted["success"], 1 - untargeted["accuracy"])
    # the untargeted FGSM rows agree with the FGSM stage's sweep where they share images
    sweep = pd.read_csv(run["out"]["fgsm_sweep"]).set_index(["target", "seed", "epsilon"])
    fgsm = checks[(checks["attack"] == "fgsm") & (checks["goal"] == "untargeted")]
    for row in fgsm.itertuples():
        assert row.success == pytest.approx(
            sweep.loc[(row.target, row.seed, row.epsilon), "untargeted_error"])
    targeted = checks[(checks["goal"] == "targeted") & (checks["attack"] == "fgsm")]
    for row in targeted.itertuples():
        assert row.success == pytest.approx(
            sweep.loc[(row.target, row.seed, row.epsilon), "targeted_success"])


def _claims(run, departures, preset):
    concepts_config = cfg.load(cfg.ROOT / "config.yaml")["studies"]["concepts"]
    out = {k: str(run["root"] / f"{k}.csv") for k in ("claims", "fgsm_summary")}
    reads = concepts_claims.STAGES["claims"].reads_for({})
    concepts_claims.claims(files=run["files"].only(reads), settings=concepts_config["claims"],
                           fgsm_settings=run["fgsm"], grid_seed=0, departures=departures,
                           preset=preset, **out)
    return pd.read_csv(out["claims"]).set_index("claim_id"), pd.read_csv(out["fgsm_summary"])


def test_claims_structural_rows_hold_under_a_preset_attacks_not_comparable(run):
    table, summary = _claims(run, {"studies.other.training.epochs": "1 instead of 30",
                                   "fgsm.images": "30 instead of 1000"}, "quick")
    formula = table[table.index.str.startswith("concepts.formula.")]
    assert len(formula) == 5 and (formula["verdict"] == "holds").all()
    assert (formula["reproduced_mean"] == 1.0).all() and formula["deterministic"].all()
    assert table.loc["concepts.separable_ratio", "verdict"] == "holds"
    assert table.loc["concepts.cam_gradcam", "verdict"] == "holds"
    assert table.loc["concepts.cam_gradcam", "n"] == 2
    attacks = table[table.index.str.startswith("concepts.fgsm.")]
    assert len(attacks) == 4 and (attacks["verdict"] == "not comparable").all()
    assert attacks["reason"].str.startswith("preset quick: fgsm.images").all()
    # the attack checks attack their own images: fewer sweep images leave them comparable
    # (the gap model's training is the full one here); the borrowed model's shorter
    # training does not
    for suffix in ("gap", "gap.targeted"):
        assert table.loc[f"concepts.sanity.rise.{suffix}", "verdict"] == "not comparable"
        for key in ("pgd_excess", "noise_share"):
            assert table.loc[f"concepts.sanity.{key}.{suffix}", "verdict"] != "not comparable"
            assert table.loc[f"concepts.sanity.{key}.cnn", "reason"].startswith(
                "preset quick: studies.other.training.epochs")
    assert set(summary["target"]) == {"cnn", "gap"}
    assert (summary["untargeted_error_n"] == 2).all()
    randomised = table[table.index.str.startswith("concepts.sanity.randomisation.")]
    assert sorted(randomised.index) == [f"concepts.sanity.randomisation.{m}.gap"
                                        for m in ("cam", "grad_cam", "guided_grad_cam")]
    assert (randomised["n"] == 2).all() and (randomised["protocol"] == "ours").all()
    by_class = table[table.index.str.startswith("concepts.sanity.class_sensitivity.")]
    assert len(by_class) == 3 and (by_class["n"] == 2).all()


def test_attack_claims_are_judged_without_departures(run):
    table, _ = _claims(run, {}, "full")
    sweep = pd.read_csv(run["out"]["fgsm_sweep"])
    at = sweep[(sweep["target"] == "cnn") & (sweep["epsilon"] == 0.5)]
    row = table.loc["concepts.fgsm.cnn.untargeted"]
    assert row["reproduced_mean"] == pytest.approx(at["untargeted_error"].mean())
    assert row["verdict"] in ("holds", "does not hold", "inconclusive")
    assert row["verdict"] != "not comparable" and pd.isna(row["reason"])
    # is the attack an attack: the largest fall of the error between consecutive eps, per
    # seed, against the tolerance (single-step FGSM on a tiny model can fall: it shows)
    for target in ("cnn", "gap"):
        sane = table.loc[f"concepts.sanity.rise.{target}"]
        runs = sweep[sweep["target"] == target].sort_values(["seed", "epsilon"])
        falls = [-run["untargeted_error"].diff().min() for _, run in runs.groupby("seed")]
        assert sane["protocol"] == "ours" and sane["n"] == 2
        assert sane["reproduced_mean"] == pytest.approx(np.mean(falls))
        fooled = table.loc[f"concepts.fgsm.{target}.untargeted", "verdict"] != "inconclusive"
        expected = ("holds" if max(falls) < 0.01 else "does not hold") if fooled else "inconclusive"
        assert sane["verdict"] == expected
        for key in ("pgd_excess", "noise_share"):
            for suffix in (target, f"{target}.targeted"):
                row = table.loc[f"concepts.sanity.{key}.{suffix}"]
                assert row["protocol"] == "ours" and row["n"] == 2, row
                assert row["verdict"] in ("holds", "does not hold", "inconclusive")
        assert f"concepts.sanity.rise.{target}.targeted" in table.index
    # a failing formula check would show: break one row and the layer's claim fails
    checks = pd.read_csv(run["out"]["convtypes_checks"])
    broken = checks.copy()
    broken.loc[broken["layer"] == "transposed", "match"] = False
    broken.to_csv(run["out"]["convtypes_checks"], index=False)
    try:
        failed, _ = _claims(run, {}, "full")
        assert failed.loc["concepts.formula.transposed", "verdict"] == "does not hold"
    finally:
        checks.to_csv(run["out"]["convtypes_checks"], index=False)


def test_every_figure_draws_from_the_stage_files(run, monkeypatch):
    monkeypatch.chdir(run["root"])
    names = [n for n in figures_for("concepts") if n.startswith("concepts_")]
    assert len(names) == 10
    for name in names:
        figure = figures_for("concepts")[name]
        assert figure.reproduces  # names the slide it reproduces
        figure.caption_for(cfg.load(cfg.ROOT / "config.yaml")["studies"]["concepts"])
        png, pdf = run["root"] / f"{name}.png", run["root"] / f"{name}.pdf"
        render("concepts", name, run["config"], str(png), str(pdf))
        assert png.stat().st_size > 1000 and pdf.is_file()


# ---------------------------------------------------------------- config and inputs ----

def test_borrowed_models_are_rule_inputs_of_their_own_studies():
    config = cfg.load(cfg.ROOT / "config.yaml", [QUICK])
    grad = upstream.targets(config, "gradcam")
    assert grad["vgg19"][0]["weights"] == "results/caltech/vgg19/seed0/model.pt"
    assert grad["vgg19"][0]["data"]["test"] == "results/data/caltech101_3/test.npz"
    assert grad["gap"][0]["spec"]["arch"] == "gap_cnn"
    fgsm = upstream.targets(config, "fgsm", all_seeds=True)
    assert [r["seed"] for r in fgsm["vdk_cnnet"]] == config["seeds"]
    inputs = upstream.files([r for runs in grad.values() for r in runs])
    assert "results/lenet/cnn/seed0/model.pt" in inputs and len(inputs) == len(set(inputs))
    assert upstream.datasets(config) == ["cifar10", "caltech101_3", "mnist"]
    assert cfg.needed_datasets(config)[:4] == ["cifar10", "mnist", "caltech101_3",
                                               "fashion_mnist"]


def test_disabled_upstream_study_is_named_at_start_up():
    config = cfg.load(cfg.ROOT / "config.yaml", [QUICK])
    assert upstream.disabled_note(config) is None
    config["studies"]["caltech"]["enabled"] = False
    note = upstream.disabled_note(config)
    assert "caltech/cnn, caltech/vgg19" in note and "trained for it anyway" in note


def test_departures_of_borrowed_studies_are_prefixed():
    config = cfg.load(cfg.ROOT / "config.yaml", [QUICK])
    found = cfg.departures(config, "concepts")
    assert found["studies.vdk.training.epochs"] == "1 instead of 374"
    assert found["fgsm.images"] == "100 instead of 1000"
    assert not any(k.startswith("studies.concepts.") for k in found)


@pytest.mark.parametrize("change,message", [
    (lambda c: c["gradcam"]["targets"].update(x={"study": "nope", "model": "cnn"}),
     r"studies\.concepts\.gradcam\.targets\.x\.study: no study 'nope'"),
    (lambda c: c["fgsm"]["targets"].update(x={"study": "mnist", "model": "big", "epsilon": 0.0}),
     r"studies\.concepts\.fgsm\.targets\.x\.model: study 'mnist' has no model 'big'"),
    (lambda c: c["gradcam"]["targets"]["vgg19"].update(layer="features.35"),
     r"gradcam\.targets\.vgg19\.layer: 'features\.35' is not a Conv2d layer"),
    (lambda c: c["fgsm"].update(epsilons=[0.0, 0.1]),
     r"fgsm\.targets\.mnist_cnn\.epsilon: 0\.2 is not in"),
    (lambda c: c["fgsm"].update(epsilons=[0.03137255, 0.2]), r"fgsm\.epsilons: must include 0"),
    (lambda c: c["fgsm"].update(images=600),
     r"studies\.concepts\.fgsm\.images: 600 images asked.*study mnist"),
])
def test_bad_concepts_config_is_named_at_start_up(change, message):
    config = cfg.load(cfg.ROOT / "config.yaml", [QUICK])
    bad = copy.deepcopy(config)
    change(bad["studies"]["concepts"])
    with pytest.raises(cfg.ConfigError, match=message):
        checks.check_config(bad["studies"]["concepts"], bad)
