"""What a run says at its start (the guard), at its end (the summary) and on failure."""

from __future__ import annotations

import copy
import os
import time
from collections import Counter

import pandas as pd
import pytest

from cnnrepro import paths, studies
from cnnrepro.estimate import Job, duration, estimate
from cnnrepro.runinfo import failure_text, guard, invocation, summary

SETTINGS = {"cpu_gflops": 100, "gpu_gflops": 10000, "job_seconds": 5, "light_job_seconds": 1,
            "light_rules": [], "stage_factors": {}, "guard_hours": 12}


def _config(full_config, preset="full", seeds=None):
    config = copy.deepcopy(full_config)
    config.update(preset=preset, estimate=SETTINGS, seeds=seeds or config["seeds"])
    return config


def _day_long(device):
    # 2 x 8.64e15 FLOPs at 100 GFLOP/s: a day each on one core
    jobs = [Job("train_model", "vdk", "m", work=8.64e15), Job("train_model", "vdk", "n", work=8.64e15)]
    return estimate(jobs, SETTINGS, 2, device)


def test_guard_stops_a_long_cpu_run_and_names_the_choices(full_config):
    config = _config(full_config)
    go = ["./repro", "run", "--accept-cost", "--cores", "all"]
    text = guard(_day_long("cpu"), config, cuda=False, on_gpu=_day_long("cuda"), go_ahead=go)
    assert "not started" in text and "about 24.0 h" in text
    assert "estimate.guard_hours (12 h)" in text
    assert "./repro run --cores all --configfile config/presets/cpu.yaml" in text
    assert f"CUDA GPU: about {duration(_day_long('cuda').wall)} there" in text
    assert "./repro run --accept-cost --cores all" in text
    # under the CPU preset the way out is the quick preset
    assert "config/presets/quick.yaml" in guard(_day_long("cpu"), _config(full_config, "cpu"),
                                                 cuda=False, on_gpu=None, go_ahead=go)


def test_guard_lets_a_short_run_or_a_cuda_machine_go(full_config):
    config = _config(full_config)
    assert guard(_day_long("cpu"), config, cuda=True, on_gpu=None, go_ahead=[]) is None
    short = estimate([Job("figure")], SETTINGS, 2, "cpu")
    assert guard(short, config, cuda=False, on_gpu=None, go_ahead=[]) is None


def _results(root, config, verdicts):
    """A results tree with the given verdicts per study, and the report's index."""
    for study, values in verdicts.items():
        table = root / paths.study_file("claims", study)
        table.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"claim_id": [f"{study}.{i}" for i in range(len(values))],
                      "verdict": values}).to_csv(table, index=False)
    index = root / paths.report_index()
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text("<html></html>")


def test_summary_counts_every_verdict_string_per_study(tmp_path, full_config):
    config = _config(full_config, "quick", seeds=[0])  # one departure: the seeds
    verdicts = {"vdk": ["holds", "does not hold", "holds", "not comparable"],
                "mnist": ["inconclusive", "holds"]}
    _results(tmp_path, config, verdicts)
    text = summary(config, tmp_path, wall=583.5, estimated=600, latexmk=True)
    lines = text.splitlines()
    assert lines[0] == "cnnrepro: finished in 9 min 44 s (estimated at start: 10 min)."
    assert "'quick'" in text and "1 departures" in text
    assert (tmp_path / paths.report_index()).resolve().as_uri() in text
    for study, values in verdicts.items():
        (line,) = [row for row in lines if row.strip().startswith(study + " ")]
        for verdict, n in Counter(values).items():
            assert f"{n} {verdict}" in line
    # enabled studies with claims but no table yet say so
    claimed = [s.name for s in studies.enabled(config) if s.has_claims and s.name not in verdicts]
    for study in claimed:
        assert any(row.strip().startswith(study) and "no claims table" in row for row in lines)


def test_summary_says_why_the_pdf_is_missing_and_how_to_build_it(tmp_path, full_config):
    config = _config(full_config)
    _results(tmp_path, config, {})
    without_tex = summary(config, tmp_path, wall=10, latexmk=False)
    report = (tmp_path / paths.report_dir()).resolve()
    assert "latexmk not found" in without_tex
    assert f"cd {report} && latexmk -pdf paper.tex" in without_tex
    assert "not among this run's targets" in summary(config, tmp_path, wall=10, latexmk=True)
    pdf = tmp_path / paths.paper("pdf")
    pdf.write_bytes(b"%PDF")
    fresh = summary(config, tmp_path, wall=10, latexmk=False)
    assert f"paper    {pdf.resolve()}\n" in fresh
    # a report this run did not rebuild says so
    old = time.time() - 3600
    os.utime(pdf, (old, old))
    assert f"paper    {pdf.resolve()}  (from an earlier run)" in summary(config, tmp_path, 10)


def test_failure_shows_the_log_tail_and_the_resume_command(tmp_path):
    log = tmp_path / paths.log("train_model", "vdk", "vdk_cnnet", "seed0")
    log.parent.mkdir(parents=True)
    log.write_text("\n".join(f"line {i}" for i in range(40)) + "\nRuntimeError: out of memory\n")
    failed = [{"rule": "train_model", "wildcards": {"study": "vdk", "model": "vdk_cnnet",
                                                    "seed": "0"},
               "logs": [paths.log("train_model", "vdk", "vdk_cnnet", "seed0")]},
              {"rule": "figure", "wildcards": {}, "logs": ["results/logs/missing.log"]}]
    text = failure_text(failed, ["snakemake", "--cores", "2", "--rerun-incomplete"], tmp_path)
    assert "2 jobs failed" in text
    assert "rule train_model (study=vdk, model=vdk_cnnet, seed=0)" in text
    assert f"last 15 lines of {log.resolve()}" in text
    assert "| RuntimeError: out of memory" in text and "| line 26" in text
    assert "| line 25" not in text
    assert "results/logs/missing.log was not written" in text
    assert text.splitlines()[-1].strip() == "snakemake --cores 2 --rerun-incomplete"


def test_invocation_is_the_command_the_user_typed():
    argv = ["/x/.venv/bin/snakemake", "--cores", "all", "--configfile", "a b.yaml"]
    assert invocation(argv, {}) == ["snakemake", "--cores", "all", "--configfile", "a b.yaml"]
    assert invocation(argv, {"CNNREPRO_COST_GUARD": "stop"})[:3] == ["./repro", "run", "--cores"]
    assert invocation(argv, {"CNNREPRO_COST_GUARD": "go"})[:3] == ["./repro", "run",
                                                                   "--accept-cost"]
    module = ["/x/site-packages/snakemake/__main__.py", "-n"]
    assert invocation(module, {}) == ["python", "-m", "snakemake", "-n"]


@pytest.mark.parametrize("seconds, text", [(42, "42 s"), (583.5, "9 min 44 s"),
                                           (7500, "2 h 05 min")])
def test_measured_durations_to_the_second(seconds, text):
    assert duration(seconds, exact=True) == text
