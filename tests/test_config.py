"""Config validation: bad keys and values fail naming the key; presets are valid."""

from __future__ import annotations

import copy
import dataclasses
import json
import socket

import pytest
import yaml
from bad_overlays import SCHEMA_AND_SEMANTICS, SOURCE_LEVEL, YAML_LEVEL, params
from conftest import QUICK, ROOT

from cnnrepro import config as cfg
from cnnrepro import studies
from cnnrepro.datasets import data_source


def raw_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.mark.parametrize("preset", ["quick", "cpu", "document"])
def test_presets_validate_and_their_departures_are_computed(preset):
    config = cfg.load(ROOT / "config.yaml", [ROOT / "config" / "presets" / f"{preset}.yaml"])
    assert config["preset"] == preset
    found = cfg.run_departures(config)
    assert found, "a preset departs from the full settings"
    # the computed list is the claims' reasons' list: each study's departures, from the top
    for study in config["studies"]:
        own = {d["key"].removeprefix(f"studies.{study}."): d["change"] for d in found
               if d["key"].startswith(f"studies.{study}.")}
        assert own == cfg.block_departures(config["studies"][study],
                                           cfg.load(ROOT / "config.yaml")["studies"][study])
    # every note of the preset explains at least one computed departure
    for note in config["deviation_notes"]:
        assert any(d["note"] == config["deviation_notes"][note] for d in found), note


def test_a_note_for_a_setting_the_run_does_not_change_is_refused():
    config = raw_config()
    config["deviation_notes"] = {"studies.mnist.training.epochs": "fewer epochs"}
    with pytest.raises(cfg.ConfigError, match=r"deviation_notes\.studies\.mnist\.training\."
                                              r"epochs: this configuration does not depart"):
        cfg.validate(config)
    config["studies"]["mnist"]["training"]["epochs"] = 1
    assert cfg.run_departures(cfg.validate(config))[0] == {
        "key": "studies.mnist.training.epochs", "change": "1 instead of 6",
        "note": "fewer epochs"}


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
])
def test_bad_config_names_the_key(mutate, key):
    config = raw_config()
    mutate(config)
    with pytest.raises(cfg.ConfigError) as err:
        cfg.validate(config)
    assert key in str(err.value)


def test_a_note_may_name_a_disabled_studys_departure(tmp_path):
    """--study caltech disables vdk and lenet under the document preset, whose notes name
    them: the notes stay valid, and the run lists only the departures it runs."""
    only = tmp_path / "only.yaml"
    only.write_text("studies: {vdk: {enabled: false}, lenet: {enabled: false}, "
                    "concepts: {enabled: false}, mnist: {enabled: false}}\n")
    config = cfg.load(ROOT / "config.yaml", [ROOT / "config" / "presets" / "document.yaml", only])
    keys = [d["key"] for d in cfg.run_departures(config)]
    assert keys and not any(k.startswith(("studies.vdk.", "studies.lenet.")) for k in keys)
    assert any(d["key"].startswith("studies.vdk.")
               for d in cfg.run_departures(config, every_study=True))


def test_tf32_is_listed_among_the_departures_with_why():
    config = raw_config()
    assert cfg.run_departures(cfg.validate(copy.deepcopy(config))) == []
    config["runtime"]["precision"] = "tf32"
    validated = cfg.validate(cfg.validate(config))
    assert cfg.run_departures(validated) == [{
        "key": "runtime.precision", "change": "tf32 instead of ieee",
        "note": cfg.BUILT_IN_NOTES["runtime.precision"]}]
    assert cfg.training_spec(validated, "vdk", "vdk_cnnet")["precision"] == "tf32"


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
    epochs = {s: cpu["studies"][s]["training"]["epochs"] for s in ("vdk", "lenet")}
    assert found["training.epochs"] == f"{epochs['vdk']} instead of 374"
    assert found["subset.train"] == "6000 instead of all"
    assert not any(k.startswith("claims") or k == "title" for k in found)
    assert cfg.departures(full, "mnist", full) == {}
    assert cfg.departures(cpu, "mnist", full) == {}  # more or fewer seeds are not a departure
    lenet = cfg.departures(cpu, "lenet", full)
    assert lenet["training.epochs"] == f"{epochs['lenet']} instead of 30"
    assert "training.snapshot_epochs" not in lenet  # which weights are kept is not a setting
    assert cpu["studies"]["lenet"]["grid"]["chunk_size"] != full["studies"]["lenet"]["grid"][
        "chunk_size"] and "grid.chunk_size" not in lenet  # execution only, as the schema says
    assert lenet["grid.epochs"].endswith("instead of 10")
    vdk = {**full["studies"]["vdk"], "fgsm": {**full["studies"]["vdk"]["fgsm"], "epsilons": [0.0]}}
    found = cfg.departures({"studies": {"vdk": vdk}}, "vdk", full)  # a long list, abbreviated
    assert found["fgsm.epsilons"] == ("[0.0] instead of [0.0, 0.00392157, 0.00784314, …, 0.3] "
                                      "(8 values)")


def test_document_preset_departs_only_in_vdk_training_and_the_lenet_grid():
    """Every study at its document's settings but the two GPU-scale parts: vdk at the CPU
    preset's sizes, lenet without its grid (final models with the document's winners); a
    study that borrows their models (concepts) inherits their departures, named as theirs."""
    full = cfg.load(ROOT / "config.yaml")
    presets = {p: cfg.load(ROOT / "config.yaml", [ROOT / "config" / "presets" / f"{p}.yaml"])
               for p in ("cpu", "document")}
    document = presets["document"]
    found = {s: cfg.departures(document, s, full) for s in full["studies"]}
    assert found["vdk"] and found["vdk"] == cfg.departures(presets["cpu"], "vdk", full)
    assert found["lenet"] == {"grid.enabled": "false instead of true"}
    assert found["concepts"] == {f"studies.{s}.{k}": v for s in ("vdk", "lenet")
                                 for k, v in found[s].items()}
    assert not any(found[s] for s in found if s not in ("vdk", "lenet", "concepts"))
    assert document["studies"]["lenet"]["grid"]["enabled"] is False
    assert len(document["seeds"]) >= 2  # a verdict needs a spread over seeds


@pytest.mark.parametrize("text, expect", params(YAML_LEVEL + SCHEMA_AND_SEMANTICS))
def test_bad_overlay_is_rejected_naming_the_key(text, expect, tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(text)
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(ROOT / "config.yaml", [QUICK, overlay])
    assert expect.format(file=overlay) in str(err.value)


@pytest.mark.parametrize("text, expect", params(SOURCE_LEVEL))
def test_bad_overlay_for_the_mirror_is_rejected_at_start_up(text, expect, tmp_path, mirror):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(text)
    config = cfg.load(ROOT / "config.yaml", [QUICK, overlay])  # valid on its own
    with pytest.raises(cfg.ConfigError) as err:
        cfg.check_data(config, mirror)
    assert expect in str(err.value)
    cfg.check_data(cfg.load(ROOT / "config.yaml", [QUICK]), mirror)  # the preset itself passes


def test_missing_overlay_file_is_one_sentence(tmp_path):
    with pytest.raises(cfg.ConfigError, match=r"quik\.yaml: no such config file"):
        cfg.load(ROOT / "config.yaml", [tmp_path / "quik.yaml"])


def test_model_option_types_come_from_the_builder_annotations():
    config = cfg.load(ROOT / "config.yaml", [QUICK])
    config["studies"]["mnist"]["models"]["cnn"]["options"]["channels"] = "thirty-two"
    with pytest.raises(cfg.ConfigError) as err:
        cfg.validate(config)
    assert "'thirty-two' is not a list of positive integers (mnist_cnn)" in str(err.value)


def test_only_the_enabled_studies_datasets_are_needed():
    config = cfg.load(ROOT / "config.yaml")
    # concepts trains on Fashion-MNIST and borrows models of the CIFAR-10, Caltech and MNIST studies
    assert cfg.needed_datasets(config) == ["cifar10", "mnist", "caltech101_3", "fashion_mnist"]
    for name in ("vdk", "lenet", "caltech", "concepts"):
        config["studies"][name]["enabled"] = False
    assert cfg.needed_datasets(config) == ["mnist"]
    config["data"]["datasets"] = ["fashion_mnist", "mnist"]  # extras by hand, as before
    assert cfg.needed_datasets(config) == ["mnist", "fashion_mnist"]


def test_a_study_can_ask_for_more_datasets(monkeypatch):
    config = cfg.load(ROOT / "config.yaml")
    for name in ("vdk", "lenet", "caltech", "concepts"):
        config["studies"][name]["enabled"] = False
    mnist = studies.REGISTRY["mnist"]
    monkeypatch.setitem(studies.REGISTRY, "mnist", dataclasses.replace(
        mnist, extra_datasets=lambda c: ["fashion_mnist"]))
    assert cfg.needed_datasets(config) == ["mnist", "fashion_mnist"]


def test_without_the_mirror_folder_the_default_config_downloads(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the start-up must not go online")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.delenv("CNNREPRO_DATA_MIRROR", raising=False)
    monkeypatch.chdir(tmp_path)  # a fresh clone elsewhere: no ../shared/datasets beside it
    config = cfg.load(ROOT / "config.yaml")
    assert config["data"]["mirror"] == "../shared/datasets"
    source = data_source(config["data"]["mirror"])
    assert source.mirror is None
    line = source.describe(cfg.needed_datasets(config), config["data"]["download_root"])
    assert line.startswith("cnnrepro: data downloaded by torchvision into data/downloads")
    assert "no folder at data.mirror" in line and "cifar10, mnist, caltech101_3" in line
    cfg.check_data(config, source.mirror)  # nothing to list without the mirror: no error


def test_beside_the_mirror_the_default_config_uses_it(mirror, monkeypatch):
    monkeypatch.delenv("CNNREPRO_DATA_MIRROR", raising=False)
    monkeypatch.chdir(ROOT)  # ../shared/datasets exists from here
    source = data_source(cfg.load(ROOT / "config.yaml")["data"]["mirror"])
    assert source.mirror is not None and source.mirror.resolve() == mirror
    assert "offline mirror" in source.describe(["mnist"], "data/downloads")


def test_the_start_up_names_the_preset_and_warns_when_overlays_drop_it(tmp_path):
    overlay = tmp_path / "mine.yaml"
    overlay.write_text("seeds: [0]\n")
    quick = cfg.load(ROOT / "config.yaml", [QUICK, overlay])
    line = cfg.sources_line(quick, [ROOT / "config.yaml", QUICK, overlay])
    assert line.endswith(f"{overlay}: preset 'quick'")
    dropped = cfg.load(ROOT / "config.yaml", [overlay])  # what --configfile a --configfile b does
    assert "No preset among these files" in cfg.sources_line(dropped, [ROOT / "config.yaml", overlay])
    full = cfg.load(ROOT / "config.yaml")
    assert "No preset" not in cfg.sources_line(full, [ROOT / "config.yaml"])


def test_lenet_probes_need_a_conv_model_named_cnn():
    config = cfg.load(ROOT / "config.yaml", [QUICK])
    config["studies"]["lenet"]["models"]["cnn"] = {"arch": "ffnn", "options": {}}
    with pytest.raises(cfg.ConfigError, match="studies.lenet.models.cnn.arch: the probes need "
                                              "a first conv layer; ffnn has none"):
        cfg.validate(config)
    config["studies"]["lenet"]["models"]["convnet"] = config["studies"]["lenet"]["models"].pop("cnn")
    with pytest.raises(cfg.ConfigError, match="studies.lenet.models: the probes follow the "
                                              "model named 'cnn'"):
        cfg.validate(config)


def test_keys_follow_config_yaml_order_however_the_files_were_merged():
    """Snakemake merges the Snakefile's config.yaml under the command line's preset (as
    ./repro run passes it), so quick's caltech.models.vgg19 came first; the tests pass
    both files on the command line and got config.yaml's order. Validation settles it."""
    from snakemake.utils import update_config

    from cnnrepro.configfile import read_config_file

    as_repro_run = read_config_file(QUICK)  # the command line's config first ...
    update_config(as_repro_run, read_config_file(ROOT / "config.yaml"))  # ... then the file
    update_config(as_repro_run, read_config_file(QUICK))
    assert list(as_repro_run["studies"]["caltech"]["models"]) == ["vgg19", "cnn"]
    as_tests = cfg.load(ROOT / "config.yaml", [QUICK])
    cfg.validate(as_repro_run)
    assert list(as_repro_run["studies"]["caltech"]["models"]) == ["cnn", "vgg19"]
    assert json.dumps(as_repro_run) == json.dumps(as_tests)  # every key, every depth
    extra = cfg.load(ROOT / "config.yaml")
    extra["studies"]["caltech"]["models"] = {"mine": {"arch": "caltech_cnn"},
                                             **extra["studies"]["caltech"]["models"]}
    cfg.follow_order(extra, read_config_file(ROOT / "config.yaml"))
    assert list(extra["studies"]["caltech"]["models"]) == ["cnn", "vgg19", "mine"]
