"""Config validation: bad keys and values fail naming the key; presets are valid."""

from __future__ import annotations

import copy

import pytest
import yaml

from cnnrepro import config as cfg

from conftest import ROOT


def raw_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.mark.parametrize("preset", ["quick", "cpu"])
def test_presets_validate_and_list_deviations(preset):
    config = cfg.load(ROOT / "config.yaml", [ROOT / "config" / "presets" / f"{preset}.yaml"])
    assert config["preset"] == preset
    assert config["deviations"], "a preset must say how it departs from the full settings"


def test_defaults_are_filled():
    config = raw_config()
    del config["seeds"]
    assert "subset" not in config["studies"]["mnist"]
    validated = cfg.validate(config)
    assert validated["seeds"] == [0, 1, 2]
    assert validated["studies"]["mnist"]["subset"] == {"train": None, "test": None}


@pytest.mark.parametrize("mutate, key", [
    (lambda c: c["studies"]["mnist"]["models"]["cnn"].update(arch="resnet50"),
     "studies.mnist.models.cnn.arch"),
    (lambda c: c["studies"]["mnist"]["training"].update(epochs=-3),
     "studies.mnist.training.epochs"),
    (lambda c: c.update(seedz=[1]), "seedz"),
    (lambda c: c["studies"]["vdk"].update(trainig={}), "trainig"),
    (lambda c: c["studies"]["vdk"]["models"]["vdk_cnnet"]["options"].update(widht=32),
     "widht"),
    (lambda c: c["data"]["caltech"]["split"].update(train=0.9), "data.caltech.split"),
    (lambda c: c["studies"]["lenet"].update(dataset="fashion_mnist") or c["data"].update(
        datasets=["cifar10", "mnist", "caltech101_3"]), "studies.lenet.dataset"),
])
def test_bad_config_names_the_key(mutate, key):
    config = raw_config()
    mutate(config)
    with pytest.raises(cfg.ConfigError) as err:
        cfg.validate(config)
    assert key in str(err.value)


def test_training_spec_merges_model_overrides(full_config):
    spec = cfg.training_spec(full_config, "lenet", "ffnn")
    assert spec["training"]["lr"] == pytest.approx(1e-4)
    assert spec["training"]["batch_size"] == 200  # from the study
    untouched = cfg.training_spec(full_config, "lenet", "cnn")
    assert untouched["training"]["lr"] == pytest.approx(2.683e-3)
    assert full_config["studies"]["lenet"]["training"]["lr"] == pytest.approx(1e-3)


def test_preset_overlay_is_deep():
    base = {"a": {"b": 1, "c": 2}, "d": [1, 2]}
    merged = cfg.deep_update(copy.deepcopy(base), {"a": {"b": 5}, "d": [3]})
    assert merged == {"a": {"b": 5, "c": 2}, "d": [3]}


def test_departures_name_each_changed_setting_of_a_study():
    full = cfg.load(ROOT / "config.yaml")
    cpu = cfg.load(ROOT / "config.yaml", [ROOT / "config" / "presets" / "cpu.yaml"])
    found = cfg.departures(cpu, "vdk", full)
    assert found["training.epochs"] == "10 instead of 374"
    assert found["subset.train"] == "6000 instead of all"
    assert not any(k.startswith("claims") or k == "title" for k in found)
    assert cfg.departures(full, "mnist", full) == {}
    assert cfg.departures(cpu, "mnist", full) == {}  # more or fewer seeds are not a departure
    lenet = cfg.departures(cpu, "lenet", full)
    assert lenet["training.epochs"] == "10 instead of 30"
    assert "training.snapshot_epochs" not in lenet  # which weights are kept is not a setting
    vdk = {**full["studies"]["vdk"], "fgsm": {**full["studies"]["vdk"]["fgsm"], "epsilons": [0.0]}}
    found = cfg.departures({"studies": {"vdk": vdk}}, "vdk", full)  # a long list, abbreviated
    assert found["fgsm.epsilons"] == ("[0.0] instead of [0.0, 0.00392157, 0.00784314, …, 0.3] "
                                      "(8 values)")
