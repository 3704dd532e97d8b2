"""The up-front cost estimate: FLOPs per run and per study."""

from __future__ import annotations

import copy

import pytest

from cnnrepro import config as cfg
from cnnrepro.estimate import forward_flops, human, run_cost, study_cost
from cnnrepro.studies.lenet.grid import grid_points, grid_spec


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


def test_study_cost_adds_each_grid_point_once(full_config):
    config = copy.deepcopy(full_config)
    config["studies"]["lenet"]["grid"].update(lr={"start": -4, "stop": -2, "num": 2},
                                              weight_decay={"start": -4, "stop": -2, "num": 2})
    with_grid = study_cost(config, "lenet")
    config["studies"]["lenet"]["grid"]["enabled"] = False
    without = study_cost(config, "lenet")
    shape, sizes = (3, 32, 10), (50000, 10000)
    grid = [grid_spec(config, m, i, j) for m in config["studies"]["lenet"]["models"]
            for i, j in grid_points(config["studies"]["lenet"]["grid"])]
    assert len(grid) == 8
    assert with_grid - without == pytest.approx(sum(run_cost(s, shape, sizes) for s in grid))


def test_human_readable_durations():
    assert human(30) == "30 s"
    assert human(600) == "10 min"
    assert human(5 * 3600) == "5.0 h"
    assert human(4 * 86400) == "4.0 days"
