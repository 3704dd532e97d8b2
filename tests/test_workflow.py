"""End to end: the quick preset through Snakemake on the staged mirror.

One run per session (a few minutes on 2 cores) feeds every assertion below; a second
invocation must then have nothing to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from bad_overlays import SCHEMA_AND_SEMANTICS, SOURCE_LEVEL, YAML_LEVEL, params
from conftest import MIRROR, QUICK, ROOT, SNAKEMAKE, snakemake
from markupsafe import escape

from cnnrepro import config as cfg
from cnnrepro import launch, ledger, paths, studies
from cnnrepro.studies.vdk.figures import vdk_immune

pytestmark = pytest.mark.e2e


def test_quick_preset_produces_every_backbone_artifact(quick_run):
    workdir, proc = quick_run
    config = yaml.safe_load(Path(QUICK).read_text())
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert "jobs to run, about" in proc.stdout + proc.stderr  # the cost is said up front
    for dataset in cfg.needed_datasets(cfg.load(ROOT / "config.yaml", [QUICK])):
        splits = ["train", "val", "test"] if dataset == "caltech101_3" else ["train", "test"]
        for split in splits:
            assert (workdir / f"results/data/{dataset}/{split}.npz").stat().st_size > 0
            prov = json.loads((workdir / f"results/data/{dataset}/{split}.json").read_text())
            assert prov["source"]["kind"] == "mirror" and prov["source"]["sha256"]
    for study, sspec in base["studies"].items():
        for model in sspec["models"]:
            for seed in config["seeds"]:
                run = workdir / f"results/{study}/{model}/seed{seed}"
                for name in ("model.pt", "history.csv", "train.json", "eval/metrics.json",
                             "eval/cost.json", "eval/predictions.npz", "eval/confusion.csv", "eval/roc.csv",
                             "eval/layers.csv"):
                    assert (run / name).is_file(), f"missing {run / name}"
                assert (workdir / f"results/logs/train_model/{study}/{model}/seed{seed}.log").is_file()
                assert (workdir / f"results/benchmarks/train_model/{study}/{model}/seed{seed}.tsv").is_file()
        summary = pd.read_csv(workdir / f"results/{study}/summary/metrics_summary.csv")
        assert set(summary["model"]) == set(sspec["models"])
    lenet_snaps = sorted(p.name for p in (workdir / "results/lenet/cnn/seed0/snapshots").glob("epoch_*.pt"))
    assert lenet_snaps == ["epoch_000.pt", "epoch_001.pt", "epoch_002.pt"]


def test_quick_preset_learns(quick_run):
    workdir, _ = quick_run
    summary = pd.read_csv(workdir / "results/mnist/summary/metrics_summary.csv")
    acc = summary.query("split == 'test' and metric == 'accuracy'").set_index("model")["mean"]
    assert (acc > 0.5).all(), acc  # chance is 0.1


def test_second_run_has_nothing_to_do(quick_run):
    workdir, _ = quick_run
    proc = snakemake(workdir, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_a_code_change_reruns_the_jobs_that_run_that_code(quick_run, tmp_path):
    # Snakemake itself tracks a rule's script, not the package modules it imports
    workdir, _ = quick_run
    # a checkout whose package is an edited copy (the package finds config.yaml and the
    # report's templates beside its src/)
    shutil.copytree(ROOT / "src" / "cnnrepro", tmp_path / "src" / "cnnrepro",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("config.yaml", "config", "report", "workflow", "Snakefile"):
        (tmp_path / name).symlink_to(ROOT / name)
    lab = tmp_path / "src" / "cnnrepro" / "studies" / "mnist" / "lab.py"  # one stage's module
    lab.write_text(lab.read_text() + "\nUNUSED_BY_THE_TEST = 1\n")
    proc = snakemake(workdir, "-n", env={"PYTHONPATH": str(tmp_path / "src")})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[1], re.M))
    models = len(cfg.load(ROOT / "config.yaml", [QUICK])["studies"]["mnist"]["models"])
    assert counts["lab_mnist"] == str(models)  # every run's lab stage, for changed code
    assert "Params have changed since last execution" in out
    # and what depends on it: no training, evaluation, other stage or other study
    assert not {"train_model", "evaluate_model", "fgsm_vdk", "blur_vdk",
                "claims_vdk"} & set(counts), counts
    assert {"claims_mnist", "figure", "render_report"} <= set(counts)


def test_another_results_folder_holds_every_file_of_the_run(tmp_path):
    # runs side by side: each configuration in its own tree (a dry run lists the outputs)
    proc = snakemake(tmp_path, "-n", "--config", "results=runs/quick")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    outputs = [path for line in out.splitlines() if line.strip().startswith("output:")
               for path in line.split(":", 1)[1].split(", ")]
    assert len(outputs) > 100
    assert all(path.strip().startswith("runs/quick/") for path in outputs), outputs[:5]
    assert "runs/quick/report/index.html" in out


def test_bad_config_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("studies:\n  mnist:\n    training:\n      epochs: -1\n")
    proc = snakemake(tmp_path, "-n", configfiles=(QUICK, str(bad)))
    assert proc.returncode != 0
    assert "studies.mnist.training.epochs" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


# One row of each kind through Snakemake itself (each dry run costs seconds: the whole
# table runs through cfg.load in test_config.py, which is what the Snakefile calls first).
THROUGH_SNAKEMAKE = {"yaml_duplicate_key", "study_key_typo", "normalize_rgb_on_mnist",
                     "snapshot_beyond_epochs", "name_with_slash", "channels_words",
                     "probe_class_unicorn", "fgsm_images_beyond_test",
                     "caltech_class_not_in_mirror"}


@pytest.mark.parametrize("text, expect", params(
    [row for row in YAML_LEVEL + SCHEMA_AND_SEMANTICS + SOURCE_LEVEL
     if row[0] in THROUGH_SNAKEMAKE]))
def test_bad_overlay_stops_the_dry_run_before_any_job(text, expect, tmp_path):
    # (the other YAML-level rows fail inside Snakemake's own reader: ./repro checks them)
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(text)
    proc = snakemake(tmp_path, "-n", configfiles=(QUICK, str(overlay)))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert expect.format(file=overlay) in out, out[-2000:]
    assert "Job stats" not in out and not (tmp_path / "results").exists()


def test_without_a_mirror_the_dry_run_says_torchvision_downloads(tmp_path):
    (tmp_path / "config.yaml").symlink_to(ROOT / "config.yaml")  # the default config, here
    env = {k: v for k, v in os.environ.items() if k != "CNNREPRO_DATA_MIRROR"}
    proc = subprocess.run([*SNAKEMAKE, "-n"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cnnrepro: data downloaded by torchvision into data/downloads (no folder at " \
           "data.mirror" in proc.stderr
    assert "preset 'full'" in proc.stderr and not (tmp_path / "results").exists()


def test_corrupt_mirror_stops_the_run_before_training(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for entry in MIRROR.iterdir():
        (mirror / entry.name).symlink_to(entry)
    (mirror / "mnist").unlink()
    (mirror / "mnist").mkdir()
    for f in (MIRROR / "mnist").iterdir():
        (mirror / "mnist" / f.name).write_bytes(f.read_bytes())
    (mirror / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"truncated")
    env = {**os.environ, "CNNREPRO_DATA_MIRROR": str(mirror)}
    proc = subprocess.run([*SNAKEMAKE, "--configfile", str(ROOT / "config.yaml"), QUICK],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "t10k-images-idx3-ubyte.gz: checksum mismatch" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists(), "nothing may start, nothing may be left"


def test_quick_preset_runs_the_vdk_analyses(quick_run):
    workdir, _ = quick_run
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    for model in base["studies"]["vdk"]["models"]:
        run = workdir / f"results/vdk/{model}/seed0"
        maps = np.load(run / "explain/attributions.npz")
        assert {"saliency", "integrated_gradients", "ig_smoothgrad_sq", "deeplift"} <= set(maps.files)
        assert maps["indices"][0] == 1001  # the paper's car, official test index 9
        fgsm = json.loads((run / "fgsm/fgsm.json").read_text())
        assert fgsm["paper"]["epsilon"] == 0.16 and len(fgsm["clean"]["curve"]) == 3
        blur = json.loads((run / "blur/blur.json").read_text())
        assert 0 <= blur["paper"]["immune"] <= 1
    claims = pd.read_csv(workdir / "results/vdk/claims/claims.csv")
    assert {"vdk.acc.vdk_cnnet", "vdk.fig8.baseline_cnn", "vdk.tab1.vdk_cnnet.paper",
            "vdk.tab1.gain.clean", "vdk.cost.baseline_cnn", "vdk.cost.vdk_novdk"
            } <= set(claims["claim_id"])
    assert set(claims["verdict"]) <= {"holds", "does not hold", "inconclusive", "not comparable"}
    assert claims["rule"].str.len().min() > 10
    # one epoch on 1,000 images tests no trained claim: only the MACs are judged
    judged = claims[claims["verdict"] != "not comparable"]
    assert set(judged["claim_id"]) == {"vdk.cost.baseline_cnn", "vdk.cost.vdk_novdk"}
    # the immune figure draws Table 1's values on the bars' numeric axis
    quick = cfg.load(ROOT / "config.yaml", [QUICK])
    fig = vdk_immune(studies.get("vdk").study_files(quick, str(workdir)))
    paper_lines = sorted(line.get_ydata()[0] for line in fig.axes[0].lines
                         if line.get_linestyle() == "--")
    assert paper_lines == [15.91, 24.29]


def test_quick_preset_runs_the_mnist_lab(quick_run):
    workdir, _ = quick_run
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    for model in base["studies"]["mnist"]["models"]:
        lab = np.load(workdir / f"results/mnist/{model}/seed0/lab/lab.npz")
        assert lab["fool_images"].shape == (10, 1, 28, 28)
        assert lab["noise"].shape == (10, 1, 28, 28) and lab["occ_drop"].shape[0] == 10
    claims = pd.read_csv(workdir / "results/mnist/claims/claims.csv").set_index("claim_id")
    assert {"mnist.acc.cnn", "mnist.acc.cnn_bn", "mnist.time", "mnist.parameters",
            "mnist.neurons", "mnist.fool.cnn", "mnist.targeted.cnn", "mnist.noise.cnn"
            } <= set(claims.index)
    assert claims.loc["mnist.parameters", "reproduced_mean"] == 799_078
    assert claims.loc["mnist.parameters", "verdict"] == "holds"  # structural: any preset
    assert claims.loc["mnist.parameters", "n"] == 1
    assert claims.loc["mnist.acc.cnn", "verdict"] == "not comparable"
    assert claims.loc["mnist.time", "verdict"] == "inconclusive"  # one seed: no verdict
    structure = pd.read_csv(workdir / "results/mnist/claims/structure.csv")
    assert set(structure["model"]) == {"cnn", "cnn_bn"}


def test_quick_preset_runs_the_concepts_study(quick_run):
    workdir, _ = quick_run
    quick = cfg.load(ROOT / "config.yaml", [QUICK])
    results = workdir / "results/concepts"
    checks = pd.read_csv(results / "convtypes/checks.csv")
    assert len(checks) > 50 and checks["match"].all()  # every formula row, measured
    assert (pd.read_csv(results / "gap/seed0/cam/agreement.csv")["pearson"] > 0.999).all()
    sweep = pd.read_csv(results / "fgsm/sweep.csv")
    assert set(sweep["target"]) == set(quick["studies"]["concepts"]["fgsm"]["targets"])
    gradcam = np.load(results / "gradcam/gradcam.npz")
    assert set(json.loads(str(gradcam["targets"]))) == set(
        quick["studies"]["concepts"]["gradcam"]["targets"])
    claims = pd.read_csv(results / "claims/claims.csv").set_index("claim_id")
    structural = claims[claims.index.str.startswith("concepts.formula.")]
    assert len(structural) == 5 and (structural["verdict"] == "holds").all()
    assert claims.loc["concepts.cam_gradcam", "verdict"] == "holds"
    attacks = claims[claims.index.str.startswith("concepts.fgsm.")]
    assert len(attacks) == 4 and (attacks["verdict"] == "not comparable").all()
    page = (workdir / "results/report/concepts.html").read_text()
    for name in studies.figures_for("concepts", quick["studies"]["concepts"]):
        assert (workdir / f"results/report/concepts/{name}.png").stat().st_size > 0
        assert f"concepts/{name}.png" in page
    assert "concepts" in (workdir / "results/report/paper.tex").read_text()


def test_quick_preset_runs_the_caltech_visualisations(quick_run):
    workdir, _ = quick_run
    quick = cfg.load(ROOT / "config.yaml", [QUICK])
    report = workdir / "results/report"
    page = (report / "caltech.html").read_text()
    for name, figure in studies.figures_for("caltech", quick["studies"]["caltech"]).items():
        assert (report / f"caltech/{name}.png").is_file(), name
        # as the page writes it: an apostrophe is escaped
        assert f"caltech/{name}.png" in page and str(escape(figure.reproduces)) in page, name
    sizes = pd.read_csv(workdir / "results/caltech/conv_settings/size_table.csv")
    assert sizes["match"].all() and len(sizes) == 2 * 4 + 2 * 3 + 4
    claims = pd.read_csv(workdir / "results/caltech/claims/claims.csv").set_index("claim_id")
    for structural in ("caltech.fig1.output_size", "caltech.fig2.layer2_size",
                       "caltech.sizes.stride", "caltech.init.constant_symmetric",
                       "caltech.equivariance.circular"):
        assert claims.loc[structural, "verdict"] == "holds", structural
    assert claims.loc["caltech.fig2.layer2_size", "reproduced_mean"] == 220
    assert claims.loc["caltech.cnn.val_accuracy", "verdict"] == "not comparable"
    weights = json.loads((workdir / "results/caltech/vgg19/seed0/train.json").read_text())
    if weights["weights_used"].startswith("fallback"):  # no ImageNet weights offline
        assert "fallback" in page
        vgg = claims[claims.index.str.startswith("caltech.vgg")]
        assert vgg["statement"].str.contains("fallback").all()


def test_quick_run_ends_with_a_summary_of_what_it_made(quick_run):
    workdir, proc = quick_run
    text = (workdir / "results/report/run-summary.txt").read_text()
    assert text.splitlines()[0] in proc.stdout + proc.stderr  # printed, and kept in a file
    assert (workdir / "results/report/index.html").resolve().as_uri() in text
    assert f"paper    {(workdir / 'results/report/paper.pdf').resolve()}" in text
    quick = cfg.load(ROOT / "config.yaml", [QUICK])
    assert f"'quick', seeds [0]: {len(cfg.run_departures(quick))} departures" in text
    lines = text.splitlines()
    for study in studies.enabled(quick):
        if study.has_claims:
            verdicts = pd.read_csv(workdir / f"results/{study.name}/claims/claims.csv")["verdict"]
            (line,) = [line for line in lines if line.strip().startswith(study.name + " ")]
            counts = line.strip()[len(study.name):].strip().split(", ")
            said = {verdict: int(n) for n, verdict in (part.split(" ", 1) for part in counts)}
            assert said == dict(Counter(verdicts)), line
    # the ledger took one record per claim, and says so
    records, problems = ledger.read(workdir / paths.ledger())
    tables = [pd.read_csv(workdir / paths.study_file("claims", s.name))
              for s in studies.enabled(quick) if s.has_claims]
    assert problems == [] and len(records) == sum(len(t) for t in tables)
    assert {r["preset"] for r in records} == {"quick"} and len({r["run"] for r in records}) == 1
    assert f"  ledger   {len(records)} claims recorded as run {records[0]['run']}" in text
    assert "    the first run in the ledger" in lines
    across = (workdir / paths.report_across()).read_text()  # the page, after the ledger
    assert records[0]["run"] in across and across.count("<tr data-study=") == len(records)


def _estimate(workdir: Path, *args: str, configfiles=()) -> dict:
    """The estimate a dry run prints, job by job (CNNREPRO_ESTIMATE_JSON)."""
    out = workdir / "estimate.json"
    env = {**os.environ, "CNNREPRO_DATA_MIRROR": str(MIRROR), "CNNREPRO_ESTIMATE_JSON": str(out)}
    proc = subprocess.run([*SNAKEMAKE, "-n", *args, "--configfile", str(ROOT / "config.yaml"),
                           *configfiles], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "jobs to run, about" in proc.stdout + proc.stderr  # a dry run says it too
    return json.loads(out.read_text())


def test_estimate_counts_only_the_jobs_of_the_requested_targets(tmp_path):
    everything = _estimate(tmp_path)  # the full settings
    mnist = _estimate(tmp_path, "results/mnist/claims/claims.csv")
    seconds = {job["benchmark"]: job["seconds"] for job in everything["jobs"] if job["benchmark"]}
    assert {job["study"] for job in mnist["jobs"]} == {"mnist", ""}
    assert {job["rule"] for job in mnist["jobs"] if not job["study"]} == {"prepare_dataset"}
    # the same jobs at the same cost as in the whole run, and nothing else
    assert mnist["job_time"] == pytest.approx(sum(seconds[job["benchmark"]]
                                                  for job in mnist["jobs"]))
    assert mnist["job_time"] < 0.01 * everything["job_time"]


def test_estimate_counts_the_work_of_stages_on_borrowed_models(tmp_path):
    est = _estimate(tmp_path, "results/concepts/attack_checks/attack_checks.csv")
    start_up = cfg.load(ROOT / "config.yaml")["estimate"]["job_seconds"]
    (checks,) = [job for job in est["jobs"] if job["rule"] == "attack_checks_concepts"]
    # forward passes over the test images of vdk_cnnet and mnist's cnn, every seed: far more
    # than a job's start-up, which was all it counted
    assert checks["seconds"] > 2 * start_up


@pytest.mark.parametrize("chosen, borrowed", [("caltech", set()),
                                               ("concepts", {"vdk", "mnist", "lenet", "caltech"})])
def test_one_study_runs_that_studys_chain_and_report_only(chosen, borrowed, tmp_path,
                                                           monkeypatch):
    """./repro run --preset document --study NAME: that study's jobs, the data and the
    report; concepts also trains the models it borrows, nothing else of their studies."""
    monkeypatch.chdir(ROOT)  # ./repro runs in the project folder
    _, files, _ = launch.compose(["--preset", "document", "--study", chosen])
    path, overlay = launch.selection([chosen])
    assert files[-1] == path
    launch.write_selection(tmp_path / path.name, overlay)
    est = _estimate(tmp_path, configfiles=(str(ROOT / files[0]), str(tmp_path / path.name)))
    by_study = Counter(job["study"] for job in est["jobs"])
    assert set(by_study) == {chosen, ""} | borrowed
    assert {job["rule"] for job in est["jobs"] if job["study"] in borrowed} <= {"train_model"}
    others = {job["rule"] for job in est["jobs"] if not job["study"]}
    assert {"prepare_dataset", "render_report"} <= others <= {
        "prepare_dataset", "render_report", "report_pdf", "all"}  # report_pdf where TeX is
    whole = _estimate(tmp_path, configfiles=(str(ROOT / files[0]),))
    assert est["job_time"] < whole["job_time"]  # the estimate (and guard) covers what was asked


def test_calibrated_estimate_of_a_small_run_is_close_to_its_benchmarks(tmp_path):
    target = "results/mnist/cnn/seed0/eval/metrics.json"
    run = snakemake(tmp_path, target)
    assert run.returncode == 0, run.stderr[-3000:]
    est = _estimate(tmp_path, "--forceall", target, configfiles=(QUICK,))
    measured = 0.0
    for job in est["jobs"]:
        if job["benchmark"]:
            measured += float((tmp_path / job["benchmark"]).read_text().splitlines()[1].split()[0])
    assert len(est["jobs"]) == 4  # two splits, training, evaluation
    assert all(job["measured"] for job in est["jobs"] if job["runs"])
    assert 1 / 1.5 <= est["job_time"] / measured <= 1.5, (est["job_time"], measured)


def _repro_env(tmp_path: Path) -> dict[str, str]:
    """./repro on this interpreter's environment, building nothing: a venv folder holding a
    link to its snakemake, a python that runs this interpreter and the stamp of
    pyproject.toml; no CUDA visible. (Without bin/python ./repro builds a real venv: minutes,
    and it needs ensurepip to work where the tests run.)"""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "snakemake").symlink_to(Path(sys.prefix) / "bin" / "snakemake")
    # a script, not a link: a linked interpreter outside its venv would lose the venv's packages
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".cnnrepro-pyproject.sha256").write_text(stamp + "\n")
    return {**os.environ, "CNNREPRO_VENV": os.path.relpath(venv, ROOT),
            "CNNREPRO_DATA_MIRROR": str(MIRROR), "CUDA_VISIBLE_DEVICES": ""}


def test_repro_run_stops_a_run_over_the_guard_without_cuda(tmp_path):
    over = tmp_path / "guard.yaml"
    over.write_text("estimate: {guard_hours: 0.001}\n")  # the quick preset is ~100 times that
    workdir = tmp_path / "wd"
    workdir.mkdir()
    args = ["--cores", "1", "-d", str(workdir), "--configfile", str(ROOT / "config.yaml"),
            QUICK, str(over)]
    env = _repro_env(tmp_path)
    stopped = subprocess.run([str(ROOT / "repro"), "run", *args], env=env, capture_output=True,
                             text=True, timeout=600)
    said = stopped.stdout + stopped.stderr
    assert stopped.returncode != 0
    assert "not started" in said
    assert "./repro run --cores all --configfile config/presets/cpu.yaml" in said
    assert "./repro run --accept-cost --cores 1" in said
    assert not (workdir / "results").exists(), "no job may start"
    ahead = subprocess.run([str(ROOT / "repro"), "run", "--accept-cost", "-n", *args], env=env,
                           capture_output=True, text=True, timeout=600)
    assert ahead.returncode == 0, ahead.stderr[-3000:]
    said = ahead.stdout + ahead.stderr
    assert "going ahead as asked" in said and "not started" not in said
    # plain snakemake is not guarded: it says the estimate and runs
    plain = snakemake(workdir, "-n", configfiles=(QUICK, str(over)))
    said = plain.stdout + plain.stderr
    assert plain.returncode == 0 and "jobs to run, about" in said and "not started" not in said
