"""The up-front cost estimate: FLOPs per job, calibration from benchmark files, wall time."""

from __future__ import annotations

import copy
import os
import time

import pytest

from cnnrepro import config as cfg
from cnnrepro import paths
from cnnrepro.estimate import (
    Job,
    Measurement,
    describe,
    duration,
    estimate,
    forward_flops,
    job_work,
    measured_seconds,
    measurements,
    record_sizes,
    run_cost,
)

SETTINGS = {"cpu_gflops": 100, "gpu_gflops": 10000, "job_seconds": 5, "light_job_seconds": 1,
            "light_rules": ["figure", "claims"], "stage_factors": {"explain": 4.0},
            "guard_hours": 12}


def test_forward_flops_of_a_linear_model_by_hand(full_config):
    spec = cfg.training_spec(full_config, "lenet", "ffnn")
    # Linear 3072->100 and 100->10: 2 FLOPs per multiply-add
    assert forward_flops(spec, (3, 32, 10)) == 2 * (3072 * 100 + 100 * 10)


def test_run_cost_counts_training_evaluation_and_holdout(full_config):
    spec = copy.deepcopy(cfg.training_spec(full_config, "lenet", "ffnn"))
    spec["training"]["epochs"] = 2
    spec["subset"] = {"train": 1000, "test": 200}
    spec["holdout_fraction"] = 0.1
    f = forward_flops(spec, (3, 32, 10))
    # per epoch: 900 images trained (3 passes), 100 validation and 200 test images scored
    assert run_cost(spec, (3, 32, 10), (50000, 10000)) == f * (2 * (3 * 900 + 100 + 200) + 1000)


def test_a_frozen_stem_is_counted_once_per_image_whatever_the_epochs(full_config):
    spec = copy.deepcopy(cfg.training_spec(full_config, "caltech", "vgg19"))
    spec["subset"] = {"train": None, "test": None}
    shape, f = (3, 224, 3), forward_flops(spec, (3, 224, 3))
    costs = set()
    for epochs in (2, 10):
        spec["training"]["epochs"] = epochs
        costs.add(run_cost(spec, shape, (180, 40)))
    assert costs == {f * (2 * 180 + 40)}  # the stem over every image, then the last pass
    cnn = cfg.training_spec(full_config, "caltech", "cnn")
    assert run_cost(cnn, shape, (180, 40)) > cnn["training"]["epochs"] * 3 * 180 * forward_flops(
        cnn, shape)  # trained end to end: every epoch runs the whole model


def test_job_work_trains_scores_or_is_nothing(full_config):
    spec = copy.deepcopy(cfg.training_spec(full_config, "lenet", "ffnn"))
    spec["subset"] = {"train": 1000, "test": 200}
    f = forward_flops(spec, (3, 32, 10))
    assert job_work(full_config, spec, trains=True) == run_cost(spec, (3, 32, 10), (50000, 10000))
    assert job_work(full_config, spec, trains=False) == f * 200  # one pass over the test images
    assert job_work(full_config, None, trains=False) == 0


def test_caltech_sizes_come_from_its_split_ratios(full_config):
    spec = cfg.training_spec(full_config, "caltech", "cnn")
    test = round(262 * full_config["data"]["caltech"]["split"]["test"])
    shape = (3, full_config["data"]["caltech"]["image_size"], 3)
    assert job_work(full_config, spec, trains=False) == forward_flops(spec, shape) * test


def test_flop_model_adds_start_up_to_factored_work():
    jobs = [Job("prepare_dataset"), Job("explain", "vdk", "m", work=2e11), Job("all", runs=False)]
    est = estimate(jobs, SETTINGS, cores=1, device="cpu")
    # start-up only; 5 s + 4 x 2e11 FLOPs at 100 GFLOP/s; a target rule runs nothing
    assert est.seconds == (5.0, 5 + 8.0, 0.0)
    assert est.measured == (False, False, False)
    on_gpu = estimate(jobs, SETTINGS, cores=1, device="cuda")
    assert on_gpu.seconds[1] == pytest.approx(5 + 8e11 / 1e13)
    by_study = {**SETTINGS, "stage_factors": {"explain": 4.0, "explain/vdk": 1.0}}
    mixed = [Job("explain", "vdk", "m", work=2e11), Job("explain", "lenet", "m", work=2e11)]
    assert estimate(mixed, by_study, cores=1, device="cpu").seconds == (5 + 2.0, 5 + 8.0)


def test_jobs_that_import_no_torch_start_up_in_their_own_time():
    """Figures and claims tables (light_rules; a study stage by its stage name) start in
    light_job_seconds, every other job in job_seconds."""
    jobs = [Job("figure", "vdk"), Job("claims_vdk", "vdk"), Job("claims_lenet", "lenet"),
            Job("train_model", "vdk", "m"), Job("grid_lenet", "lenet"), Job("claims")]
    assert estimate(jobs, SETTINGS, cores=1, device="cpu").seconds == (1, 1, 1, 5, 5, 1)


def test_wall_time_is_spread_over_cores_or_the_longest_chain():
    # a chain a -> b (10 s each) beside two independent 10 s jobs
    jobs = [Job("x"), Job("x", after=(0,)), Job("x"), Job("x")]
    found = [Measurement("x", 10.0)]
    assert estimate(jobs, SETTINGS, cores=1, device="cpu", found=found).wall == 40
    assert estimate(jobs, SETTINGS, cores=2, device="cpu", found=found).wall == 20
    assert estimate(jobs, SETTINGS, cores=8, device="cpu", found=found).wall == 20  # the chain
    # a job holding 2 threads occupies 2 of the cores
    two = [Job("x", threads=2), Job("x", threads=2)]
    assert estimate(two, SETTINGS, cores=2, device="cpu", found=found).wall == 20
    # on a cluster each job has its own node: two jobs at once run side by side
    on_cluster = estimate(two, SETTINGS, cores=2, device="cpu", found=found, cluster=True)
    assert on_cluster.wall == 10 and "a cluster, 2 jobs at once" in describe(
        on_cluster, {"preset": "cpu", "seeds": [0]})


def test_measured_seconds_scale_with_work_beyond_start_up():
    job = Job("train_model", "vdk", "a", work=3e12)
    same = Measurement("train_model", 25.0, "b.tsv", "vdk", "a", 1e12, "cpu")
    other = Measurement("train_model", 105.0, "c.tsv", "vdk", "z", 1e12, "cpu")
    # its own model first: 5 s start-up + 3 x 20 s
    assert measured_seconds(job, [same, other], "cpu", 5) == pytest.approx(65.0)
    # another model of the rule when its own was never measured
    assert measured_seconds(Job("train_model", "vdk", "q", work=1e12), [other], "cpu", 5) == 105
    # a measurement on another device, or of unknown size, does not scale a model job
    assert measured_seconds(job, [Measurement("train_model", 25.0, "b.tsv", "vdk", "a", 1e12,
                                              "cuda")], "cpu", 5) is None
    assert measured_seconds(job, [Measurement("train_model", 25.0, "b.tsv")], "cpu", 5) is None
    # a job without a model takes its own file's seconds, else its rule's median
    fig = Job("figure", benchmark="f1.tsv")
    figs = [Measurement("figure", 4.0, "f1.tsv"), Measurement("figure", 9.0, "f2.tsv"),
            Measurement("figure", 7.0, "f3.tsv")]
    assert measured_seconds(fig, figs, "cpu", 5) == 4.0
    assert measured_seconds(Job("figure", benchmark="new.tsv"), figs, "cpu", 5) == 7.0


def _benchmark(root, name, seconds):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\n" f"{seconds}\t0:00:00\t1.0\n")
    return path


def test_sizes_belong_to_the_benchmark_file_as_the_run_left_it(tmp_path):
    bench = paths.benchmark("train_model", "vdk", "a", "seed0")
    other = paths.benchmark("train_model", "vdk", "b", "seed0")
    since = time.time() - 1
    _benchmark(tmp_path, bench, 20.0)  # written during the run
    _benchmark(tmp_path, other, 30.0)
    os.utime(tmp_path / other, (since - 60, since - 60))  # written by an earlier run
    record_sizes([Job("train_model", "vdk", "a", work=1e12, benchmark=bench),
                  Job("train_model", "vdk", "b", work=2e12, benchmark=other),
                  Job("figure", "vdk")], "cpu", since, tmp_path)
    found = {m.benchmark: m for m in measurements(tmp_path)}
    assert (found[bench].rule, found[bench].work, found[bench].device) == ("train_model", 1e12, "cpu")
    assert found[bench].seconds == 20
    assert found[other].work is None and found[other].rule == "train_model"  # size unknown
    # a later run rewrites the file and is killed before it can record the new size
    _benchmark(tmp_path, bench, 80.0)
    os.utime(tmp_path / bench, (since + 60, since + 60))
    found = {m.benchmark: m for m in measurements(tmp_path)}
    assert found[bench].work is None and found[bench].seconds == 80


def test_calibrated_estimate_of_a_measured_run_gives_back_its_seconds(tmp_path):
    jobs = [Job("prepare_dataset", benchmark=paths.benchmark("prepare_dataset", "mnist", "train")),
            Job("train_model", "mnist", "cnn", work=4e12,
                benchmark=paths.benchmark("train_model", "mnist", "cnn", "seed0"), after=(0,)),
            Job("figure", "mnist", benchmark=paths.benchmark("figure", "mnist", "f"), after=(1,))]
    since = time.time() - 1
    for job, seconds in zip(jobs, (6.5, 42.0, 4.5)):
        _benchmark(tmp_path, job.benchmark, seconds)
    record_sizes(jobs, "cpu", since, tmp_path)
    est = estimate(jobs, SETTINGS, 2, "cpu", measurements(tmp_path))
    assert est.measured == (True, True, True)
    assert est.job_time == pytest.approx(53.0)
    text = describe(est, {"preset": "quick", "seeds": [0]})
    assert "3 jobs to run" in text and "all from this machine's benchmarks" in text


def test_describe_says_where_each_stage_came_from():
    jobs = [Job("figure", "mnist", benchmark="a.tsv"), Job("figure", "vdk", benchmark="b.tsv"),
            Job("train_model", "vdk", "m", work=1e12)]
    est = estimate(jobs, SETTINGS, 2, "cpu", [Measurement("figure", 4.0, "a.tsv")])
    text = describe(est, {"preset": "cpu", "seeds": [0, 1]})
    assert "preset 'cpu'" in text and "1 from the FLOP model" in text
    assert "train_model" in text and "FLOP model" in text.split("train_model")[1].split("\n")[0]
    assert "figure" in text and "measured" in text.split("figure")[1].split("\n")[0]
    assert "by study: mnist 4 s, vdk" in text


def test_human_readable_durations():
    assert duration(30) == "30 s"
    assert duration(600) == "10 min"
    assert duration(5 * 3600) == "5.0 h"
    assert duration(4 * 86400) == "4.0 days"
