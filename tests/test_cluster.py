"""The workflow on a live SLURM cluster through profiles/slurm.

CI starts a one-node cluster (.ci/slurm up) and sets CNNREPRO_TEST_SLURM=1: then a cluster
that is not up is a failure, never a skip. Without that variable (a laptop) these tests are
skipped with a message saying how to run them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from conftest import QUICK, ROOT, SLURM_MODELS, SLURM_RUN_FILES, SLURM_STUDY, slurm_args, snakemake

from cnnrepro import config as cfg
from cnnrepro import paths, studies

pytestmark = pytest.mark.slurm


def content(path) -> object:
    """A run file's content without its provenance (which records when it was written)."""
    if path.suffix != ".json":
        return path.read_text()
    data = json.loads(path.read_text())
    data.pop("provenance", None)
    return data


def test_slurm_run_equals_local_run(slurm_run, quick_run):
    """Every file the cluster run built for vdk's two models (metrics, both FGSM
    protocols, the blur search, attribution faithfulness) equals the local run's."""
    config = cfg.load(ROOT / "config.yaml", [QUICK])
    files = [studies.get(SLURM_STUDY).study_files(config, root=str(root))
             for root in (slurm_run[0], quick_run[0])]
    for name in SLURM_RUN_FILES:
        on_cluster, local = (f.runs(name, SLURM_MODELS) for f in files)
        for run in on_cluster:
            assert content(on_cluster[run]) == content(local[run]), (name, run)


GPU_RULES = {"train_model", "explain_vdk", "fgsm_vdk", "blur_vdk"}
CPU_RULES = {"prepare_dataset", "evaluate_model"}


def submitted_jobs(slurm_run) -> dict[str, list[str]]:
    """scontrol's record of each job this run submitted, by rule. Records are kept for
    MinJobAge after a job ends, and across a restart of the controller: an earlier run's
    must not count, even one in the same folder (pytest numbers its folders anew when
    the old ones are gone), so the job name, the run's own SLURM run ID, decides."""
    workdir, proc = slurm_run
    (run_id,) = set(re.findall(r"SLURM run ID: (\S+)", proc.stdout + proc.stderr))
    lines = subprocess.run(["scontrol", "show", "job", "--oneliner"], capture_output=True,
                           text=True, timeout=30).stdout.splitlines()
    by_rule: dict[str, list[str]] = {}
    for line in [line for line in lines if f"WorkDir={workdir} " in f"{line} "
                 and f"JobName={run_id} " in f"{line} "]:
        rule = re.search(r"Comment=rule_(\w+?)_wildcards", line)
        if rule:
            by_rule.setdefault(rule.group(1), []).append(line)
    return by_rule


def test_gpu_rules_are_submitted_with_a_gpu(slurm_run):
    by_rule = submitted_jobs(slurm_run)
    assert GPU_RULES <= set(by_rule), f"GPU rules missing from scontrol: {sorted(by_rule)}"
    for rule in GPU_RULES:
        assert all("TresPerJob=gres:gpu:1" in line for line in by_rule[rule]), rule
    for rule in CPU_RULES & set(by_rule):
        assert not any("gpu" in line for line in by_rule[rule]), rule


def test_only_the_big_jobs_are_submitted(slurm_run):
    """The jobs of seconds (datasets here; claims, figures and the report too) are local
    rules: the cluster gets one batch job per training or analysis job and nothing else."""
    by_rule = {rule: len(jobs) for rule, jobs in submitted_jobs(slurm_run).items()}
    assert by_rule == {rule: len(SLURM_MODELS) for rule in GPU_RULES | {"evaluate_model"}}


def test_failing_job_fails_the_workflow_naming_the_rule(slurm_up, quick_run, tmp_path):
    # The prepared splits come from the local run, so the one job submitted is the one
    # that fails (each SLURM job costs ~25 s on the test node).
    for split in ("train", "test"):
        for ext in ("npz", "json"):
            source = quick_run[0] / paths.data("mnist", split, ext)
            (tmp_path / source.relative_to(quick_run[0]).parent).mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tmp_path / source.relative_to(quick_run[0]))
    bad = tmp_path / "cuda.yaml"
    bad.write_text("device: cuda\n")  # no CUDA device on the test node: the job fails
    target = "results/mnist/cnn/seed0/model.pt"
    proc = snakemake(tmp_path, target, *slurm_args(), configfiles=(QUICK, str(bad)))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Error in rule train_model" in output
    assert re.search(r"^total\s+1$", output, re.M), output[-3000:]  # the only job
    assert not (tmp_path / target).exists()
    assert not (tmp_path / "results/mnist/cnn/seed0/history.csv").exists()
