"""The study registry: each study's figures, stages and config keys are where it says."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from cnnrepro import config as cfg
from cnnrepro import paths, plotting, studies

STUDIES = sorted(studies.REGISTRY)


@pytest.mark.parametrize("name", STUDIES)
def test_figure_name_is_function_name_and_its_code_is_a_rule_input(name, full_config):
    for fig_name, figure in studies.figures_for(name).items():
        assert figure.name == fig_name == figure.draw.__name__
        shared = fig_name in plotting.SHARED
        expected = (Path(plotting.__file__) if shared else
                    Path(inspect.getsourcefile(studies.get(name).figures[fig_name].draw)))
        assert figure.source == expected.resolve()
        if not shared:  # a study's figure lives in its own folder
            assert figure.source.parent.name == name
        inputs = studies.figure_inputs(name, fig_name, full_config)
        assert inputs[-1] == str(figure.source)
        assert all(p.startswith("results/") for p in inputs[:-1]), inputs
        figure.caption_for(full_config["studies"][name])  # every caption's config keys exist
        figure.absent_for(full_config["studies"][name])


@pytest.mark.parametrize("name", STUDIES)
def test_stages_take_keyword_arguments_and_threads(name):
    for stage_name, function in studies.get(name).stages.items():
        params = inspect.signature(function).parameters
        assert "threads" in params, f"{name}.{stage_name} must accept threads"
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values()), stage_name
    with pytest.raises(KeyError, match="no stage"):
        studies.stage(name, "no_such_stage")


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
    assert found == [(name, seed) for name in ("vdk_attributions", "vdk_attribution_gallery")
                     for seed in full_config["seeds"][1:]]
    assert paths.figure("vdk", "vdk_attributions", "png", 2) == \
        "results/report/vdk/vdk_attributions-seed2.png"
    inputs = studies.figure_inputs("vdk", "vdk_attributions", full_config, seed=2)
    assert inputs[:-1] and all("/seed2/" in p for p in inputs[:-1])
    one_seed = {**full_config, "seeds": [0]}
    assert studies.seed_figures("vdk", one_seed) == []
    assert studies.seed_figures("mnist", full_config) == []  # its figures are not per seed


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
