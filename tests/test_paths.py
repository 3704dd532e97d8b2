"""The results tree: patterns for rules, files for jobs, and a study's artifacts by name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnnrepro import paths, studies
from cnnrepro.paths import StudyFiles


def test_one_call_gives_the_rule_pattern_or_the_job_file():
    assert paths.run_file("weights") == "results/{study}/{model}/seed{seed}/model.pt"
    assert paths.run_file("metrics", "vdk", "baseline_cnn", 2) == \
        "results/vdk/baseline_cnn/seed2/eval/metrics.json"
    assert paths.data("mnist", "test", "json") == "results/data/mnist/test.json"
    assert paths.figure("lenet", "lenet_grid", "pdf") == "results/report/lenet/lenet_grid.pdf"
    assert paths.log("train_model", "{study}", "{model}", "seed{seed}") == \
        "results/logs/train_model/{study}/{model}/seed{seed}.log"
    assert paths.study_file("claims", "mnist") == "results/mnist/claims/claims.csv"


def test_another_results_folder_moves_every_path_and_tells_the_jobs(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "RESULTS", paths.RESULTS)  # restored after the test
    monkeypatch.delenv(paths.RESULTS_ENV, raising=False)
    paths.use("runs/cpu/")
    assert paths.run_file("metrics", "vdk", "baseline_cnn", 2) == \
        "runs/cpu/vdk/baseline_cnn/seed2/eval/metrics.json"
    assert paths.report_index() == "runs/cpu/report/index.html"
    assert paths.ledger() == "ledger/claims.jsonl"  # shared by every results tree
    files = StudyFiles("s", ("a",), (0,), {}, {}, str(tmp_path))
    assert files.run("metrics", "a", 0) == tmp_path / "runs/cpu/s/a/seed0/eval/metrics.json"
    assert os.environ[paths.RESULTS_ENV] == "runs/cpu"  # a job's process reads it


def test_study_files_resolve_runs_in_model_then_seed_order(tmp_path):
    files = StudyFiles("s", ("a", "b"), (0, 1), {"probe": "probe/x.npz"},
                       {"grid": "grid/{model}/grid.csv"}, str(tmp_path))
    assert list(files.runs("probe")) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert files.run("probe", "b", 1) == tmp_path / "results/s/b/seed1/probe/x.npz"
    assert files.by_model("metrics")["a"][1] == tmp_path / "results/s/a/seed1/eval/metrics.json"
    assert files.file("grid", model="b") == tmp_path / "results/s/grid/b/grid.csv"
    listed = files.paths(["probe", ("metrics", "b"), "grid", "claims"])
    assert listed == [str(tmp_path / p) for p in (
        "results/s/a/seed0/probe/x.npz", "results/s/a/seed1/probe/x.npz",
        "results/s/b/seed0/probe/x.npz", "results/s/b/seed1/probe/x.npz",
        "results/s/b/seed0/eval/metrics.json", "results/s/b/seed1/eval/metrics.json",
        "results/s/grid/a/grid.csv", "results/s/grid/b/grid.csv",
        "results/s/claims/claims.csv")]
    with pytest.raises(KeyError):
        files.file("no_such_artifact")


@pytest.mark.parametrize("name", sorted(studies.REGISTRY))
def test_no_two_artifacts_of_a_study_share_a_path(name, full_config):
    study = studies.get(name)
    files = study.study_files(full_config)
    run_names = {**paths.RUN_FILES, **study.run_files}
    resolved = [str(files.run(n, files.models[0], 0)) for n in run_names]
    resolved += [str(files.file(n, model=files.models[0], protocol="clean"))
                 for n in {**paths.STUDY_FILES, **study.files}]
    assert len(resolved) == len(set(resolved))
    assert all(Path(p).parts[0] == "results" for p in resolved)
