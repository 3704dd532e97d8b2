"""The workflow on a live SLURM cluster through profiles/slurm.

CI starts a one-node cluster (.ci/slurm up) and sets CNNREPRO_TEST_SLURM=1: then a cluster
that is not up is a failure, never a skip. Without that variable (a laptop) these tests are
skipped with a message saying how to run them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pandas as pd
import pytest
import yaml
from conftest import QUICK, ROOT, snakemake

from cnnrepro import config as cfg
from cnnrepro import paths

pytestmark = pytest.mark.slurm
REQUESTED = os.environ.get("CNNREPRO_TEST_SLURM") == "1"
# Timings differ between any two runs; every other number must be identical.
TIMING = r"^(latency_|train_seconds|train_images_per_second)"


def slurm_args() -> list[str]:
    # No accounting database in the test cluster: no account, and the profile's squeue
    # status check; a short first status check keeps the test quick.
    return ["--profile", str(ROOT / "profiles" / "slurm"), "--slurm-no-account",
            "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs"]


@pytest.fixture(scope="module")
def slurm_up():
    up = shutil.which("sinfo") and subprocess.run(
        ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30).stdout.strip()
    if not up or not re.search(r"idle|mix|alloc", up):
        if REQUESTED:
            pytest.fail("CNNREPRO_TEST_SLURM=1 but no SLURM cluster answers (run .ci/slurm up)")
        pytest.skip("SLURM tests not requested: start a cluster (.ci/slurm up) and set "
                    "CNNREPRO_TEST_SLURM=1")


# The cluster run covers the studies whose rules ask for a GPU (vdk's analyses, mnist's
# training) and leaves the others to the local run: CI time, not coverage, sets the subset.
# It builds only what the comparison reads (31 jobs, not the 58 with figures and report:
# each SLURM job costs ~25 s of submission and polling on the test node).
SLURM_STUDIES = ("vdk", "mnist")
SLURM_TARGETS = [*(paths.study_file("metrics_long", s) for s in SLURM_STUDIES),
                 paths.study_file("claims", "vdk")]


@pytest.fixture(scope="module")
def slurm_run(slurm_up, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm")
    others = [s for s in cfg.load(ROOT / "config.yaml")["studies"] if s not in SLURM_STUDIES]
    overlay = workdir / "subset.yaml"
    overlay.write_text(yaml.safe_dump({"studies": {s: {"enabled": False} for s in others}}))
    proc = snakemake(workdir, *SLURM_TARGETS, *slurm_args(), configfiles=(QUICK, str(overlay)))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return workdir, proc


def comparable(workdir, study: str) -> pd.DataFrame:
    long = pd.read_csv(workdir / paths.study_file("metrics_long", study))
    return long[~long["metric"].str.match(TIMING)].reset_index(drop=True)


def test_slurm_run_equals_local_run(slurm_run, quick_run):
    workdir, _ = slurm_run
    local, _ = quick_run
    for study in SLURM_STUDIES:
        pd.testing.assert_frame_equal(comparable(workdir, study), comparable(local, study))
    claims = [pd.read_csv(d / paths.study_file("claims", "vdk")) for d in (workdir, local)]
    pd.testing.assert_frame_equal(*claims)


GPU_RULES = {"train_model", "explain_vdk", "attack_fgsm_vdk", "attack_blur_vdk"}
CPU_RULES = {"prepare_dataset", "evaluate_model"}


def submitted_jobs() -> dict[str, list[str]]:
    """scontrol's record of each job (kept for MinJobAge after it ends), by rule."""
    lines = subprocess.run(["scontrol", "show", "job", "--oneliner"], capture_output=True,
                           text=True, timeout=30).stdout.splitlines()
    by_rule: dict[str, list[str]] = {}
    for line in lines:
        rule = re.search(r"Comment=rule_(\w+?)_wildcards", line)
        if rule:
            by_rule.setdefault(rule.group(1), []).append(line)
    return by_rule


def test_gpu_rules_are_submitted_with_a_gpu(slurm_run):
    by_rule = submitted_jobs()
    assert GPU_RULES <= set(by_rule), f"GPU rules missing from scontrol: {sorted(by_rule)}"
    for rule in GPU_RULES:
        assert all("TresPerJob=gres:gpu:1" in line for line in by_rule[rule]), rule
    for rule in CPU_RULES & set(by_rule):
        assert not any("gpu" in line for line in by_rule[rule]), rule


def test_failing_job_fails_the_workflow_naming_the_rule(slurm_up, tmp_path):
    bad = tmp_path / "cuda.yaml"
    bad.write_text("device: cuda\n")  # no CUDA device on the test node: the job fails
    target = "results/mnist/cnn/seed0/model.pt"
    proc = snakemake(tmp_path, target, *slurm_args(),
                     configfiles=(str(ROOT / "config/presets/quick.yaml"), str(bad)))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Error in rule train_model" in output
    assert not (tmp_path / target).exists()
    assert not (tmp_path / "results/mnist/cnn/seed0/history.csv").exists()
