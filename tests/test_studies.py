"""The study registry: each study's figures, stages and config keys are where it says."""

from __future__ import annotations

import copy
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import QUICK, ROOT

from cnnrepro import config as cfg
from cnnrepro import fingerprint, paths, plotting, rules, studies
from cnnrepro.datasets import SPECS
from cnnrepro.study import declared

STUDIES = sorted(studies.REGISTRY)
SCRIPTS = ROOT / "workflow" / "scripts"
SPLITS = {split for spec in SPECS.values() for split in spec.splits}


@pytest.mark.parametrize("name", STUDIES)
def test_figure_name_is_function_name_and_its_code_is_fingerprinted(name, full_config):
    for fig_name, figure in studies.figures_for(name).items():
        assert figure.name == fig_name == figure.draw.__name__
        shared = fig_name in plotting.SHARED
        expected = "cnnrepro.plotting" if shared else f"cnnrepro.studies.{name}.figures"
        assert figure.module == expected
        # the rule's code param covers the drawing module and what it draws with
        covered = fingerprint.modules([str(SCRIPTS / "render_figure.py"), figure.module])
        assert {figure.module, "cnnrepro.plotting"} <= set(covered)
        inputs = studies.figure_inputs(name, fig_name, full_config)
        assert all(p.startswith("results/") for p in inputs), inputs
        figure.caption_for(full_config["studies"][name])  # every caption's config keys exist
        figure.absent_for(full_config["studies"][name])


STAGES = [(study, stage) for study, stage in rules.all_stages()]
STAGE_IDS = [study.rule(stage) for study, stage in STAGES]


class Wildcards(dict):
    """What Snakemake hands an input or param function: the job's wildcards by name."""

    __getattr__ = dict.__getitem__


def _job_wildcards(study, stage, config) -> Wildcards:
    """The wildcards of one of the stage's jobs under ``config``."""
    found = {"model": stage.model or next(iter(config["studies"][study.name]["models"])),
             "seed": str(config["seeds"][0])}
    found.update({name: pattern.split("|")[0] for name, pattern in stage.wildcards.items()})
    return Wildcards(found)


@pytest.mark.parametrize("study,stage", STAGES, ids=STAGE_IDS)
@pytest.mark.parametrize("preset", ["full", "quick"])
def test_each_stage_takes_exactly_what_its_rule_gives(study, stage, preset, full_config):
    """Rule, stage key and function share one name; the function takes, by keyword, each
    file the rule writes and every input and param the rule gives it (for a job of the full
    and the quick config), and nothing the rule does not give (bar defaults)."""
    config = full_config if preset == "full" else cfg.load(ROOT / "config.yaml", [QUICK])
    assert study.stages[stage.name] is stage and stage.run.__name__ == stage.name
    module = rules.params(config, study, stage)["module"]
    assert declared(module, stage.name) is stage  # what the adapter looks up
    assert study.rule(stage) == f"{stage.name}_{study.name}"
    w = _job_wildcards(study, stage, config)
    inputs = rules.inputs(config, study, stage)(w)
    given = (set(stage.writes) | {"threads"} | (set(inputs) - {"files", *SPLITS})
             | ({"data"} if set(inputs) & set(SPLITS) else set())
             | set(rules.params(config, study, stage)) - {"study", "stage", "module"})
    params = inspect.signature(stage.run).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    assert given <= set(params), sorted(given - set(params))
    required = {n for n, p in params.items() if p.default is inspect.Parameter.empty}
    assert required <= given, sorted(required - given)
    for value in rules.params(config, study, stage).values():  # each param resolves
        value(w) if callable(value) else value


@pytest.mark.parametrize("study,stage", STAGES, ids=STAGE_IDS)
def test_a_stage_writes_into_the_folder_of_its_name_and_alone(study, stage, full_config):
    """figure -> artifact -> stage is one lookup: the stage that writes a file is its
    producer, and the file's folder says so."""
    for name in stage.writes:
        relative = (study.run_files if stage.per_run else study.files).get(
            name, paths.STUDY_FILES.get(name))
        assert relative is not None, f"{name} is not a {'run' if stage.per_run else 'study'} file"
        assert relative.split("/")[0] == stage.name, (name, relative)
        assert study.producer(name) is stage
    for name in rules.outputs(study, stage):
        assert name in stage.writes


@pytest.mark.parametrize("name", STUDIES)
def test_every_figure_input_has_one_producer_named_in_its_lineage(name):
    for fig_name in studies.figures_for(name):
        lineage = studies.lineage(name, fig_name)
        assert lineage["drawn_by"].endswith(f".py::{fig_name}")
        for step in lineage["computed_by"]:
            module, function = step["code"].split("::")
            assert (Path(studies.__file__).parents[1].parent / module).is_file()
            assert step["rule"].startswith(function) or step["rule"] in {
                "train_model", "evaluate_model", "aggregate_study"}


def test_an_undeclared_read_is_an_error_naming_the_file(tmp_path, full_config):
    files = studies.get("vdk").study_files(full_config, str(tmp_path)).only(["fgsm"])
    files.runs("fgsm")  # declared
    with pytest.raises(paths.UndeclaredRead, match="'metrics' is not among the files declared"):
        files.by_model("metrics")
    with pytest.raises(KeyError, match="no stage"):
        declared("cnnrepro.studies.vdk.stages", "no_such_stage")


def test_every_registered_study_has_its_schema_block_and_every_key_a_description():
    schema = cfg.load_schema()
    blocks = schema["properties"]["studies"]["properties"]
    assert set(blocks) == set(studies.REGISTRY)

    def undescribed(node, where):
        found = []
        for key, sub in node.get("properties", {}).items():
            if "description" not in sub and "$ref" not in sub and "allOf" not in sub:
                found.append(f"{where}.{key}")
            found += undescribed(sub, f"{where}.{key}")
        return found

    for name, study in studies.REGISTRY.items():
        if study.schema is not None:
            import yaml
            assert not undescribed(yaml.safe_load(study.schema.read_text()), name)


def test_per_seed_figures_are_drawn_once_more_per_further_seed_from_that_seed(full_config):
    found = studies.seed_figures("vdk", full_config)
    assert found == [(name, seed) for name in ("vdk_attributions", "vdk_attribution_gallery",
                                               "vdk_randomisation_strip")
                     for seed in full_config["seeds"][1:]]
    assert paths.figure("vdk", "vdk_attributions", "png", 2) == \
        "results/report/vdk/vdk_attributions-seed2.png"
    inputs = studies.figure_inputs("vdk", "vdk_attributions", full_config, seed=2)
    assert inputs[:-1] and all("/seed2/" in p for p in inputs[:-1])
    one_seed = {**full_config, "seeds": [0]}
    assert studies.seed_figures("vdk", one_seed) == []
    # of mnist's figures only the randomisation strip is per seed, not the lab's
    assert studies.seed_figures("mnist", full_config) == [
        ("mnist_randomisation_strip", seed) for seed in full_config["seeds"][1:]]


def test_a_study_note_extends_a_shared_caption_for_that_study_only():
    vdk = studies.figures_for("vdk")["confusion_matrices"]
    mnist = studies.figures_for("mnist")["confusion_matrices"]
    assert "confusion_matrix(y_pred, y_true)" in vdk.caption
    assert vdk.caption.startswith(mnist.caption) and "transposed" not in mnist.caption
    assert vdk.draw is plotting.SHARED["confusion_matrices"].draw


def test_unknown_study_is_named():
    with pytest.raises(KeyError, match="unknown study 'nope'"):
        studies.get("nope")


def test_training_curves_draw_validation_and_a_one_epoch_run_shows(tmp_path):
    """The document's curves are train vs validation: drawn where history has val_acc; a
    run of one epoch is a marker, not an invisible line of one point."""
    import pandas as pd

    files = paths.StudyFiles("caltech", ("cnn",), (0,), root=str(tmp_path))
    path = Path(files.file("histories"))
    path.parent.mkdir(parents=True)
    pd.DataFrame({"model": ["cnn"], "seed": [0], "epoch": [1], "train_loss": [1.0],
                  "val_loss": [1.1], "test_loss": [1.2], "train_acc": [0.5], "val_acc": [0.4],
                  "test_acc": [0.3]}).to_csv(path, index=False)
    fig = plotting.training_curves(files)
    accuracy = fig.axes[1]
    lines = {line.get_label(): line for line in accuracy.get_lines()}
    assert set(lines) == {"cnn (train)", "cnn (val)", "cnn (test)"}
    assert lines["cnn (val)"].get_ydata()[0] == 40.0
    assert all(line.get_marker() == "o" for line in lines.values())


@pytest.mark.parametrize("name", STUDIES)
def test_a_studys_file_names_shadow_no_shared_name(name):
    """A figure's inputs are looked up by name, run files first: a study file named like a
    shared run file ("layers": eval/layers.csv) made a figure wait for the wrong file."""
    study = studies.get(name)
    shared = set(paths.RUN_FILES) | set(paths.STUDY_FILES)
    assert not (set(study.files) | set(study.run_files)) & shared
    assert not set(study.files) & set(study.run_files)


def test_the_registry_and_a_figure_job_import_no_torch():
    """A figure job imports the registry, the cards and the plotting code; the stages (and
    with them torch, Captum, torchattacks, scikit-learn) load only when a stage is looked
    up (#36: seconds of start-up per job)."""
    heavy = ("torch", "captum", "torchattacks", "sklearn")
    probe = ("import sys\nfrom cnnrepro.studies import REGISTRY, render\n"
             f"print([m for m in {heavy!r} if m in sys.modules])\n"
             "REGISTRY['vdk'].stages['fgsm']\n"
             f"print([m for m in {heavy!r} if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "[]"
    assert "torch" in out[1]  # looking a stage up loads the study's stage modules


def test_a_lazy_hook_is_the_function_it_names():
    config = cfg.load(cfg.ROOT / "config.yaml", [QUICK])
    bad = copy.deepcopy(config)
    bad["studies"]["lenet"]["probe"]["kernel"] = 999
    with pytest.raises(cfg.ConfigError, match="probe.kernel: 999"):
        studies.get("lenet").check_config(bad["studies"]["lenet"], bad)
    assert studies.get("lenet").check_config.__name__ == "check_config"


def test_the_generic_writers_name_functions_that_exist():
    for rule, module, name in studies.GENERIC_WRITERS.values():
        assert callable(getattr(importlib.import_module(module), name)), (rule, module, name)
