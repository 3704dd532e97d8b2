"""The code fingerprint of a job: which modules it covers, and what changes it."""

from __future__ import annotations

import shutil

import pytest
from conftest import ROOT

from cnnrepro import fingerprint, provenance

SCRIPTS = ROOT / "workflow" / "scripts"
STAGE = str(SCRIPTS / "stage.py")
TRAIN = str(SCRIPTS / "train_model.py")
FIGURE = str(SCRIPTS / "render_figure.py")


def clear_caches():
    for cached in (fingerprint._known, fingerprint._tree, fingerprint._closure,
                   fingerprint._digest):
        cached.cache_clear()


@pytest.fixture
def source(tmp_path, monkeypatch):
    """A copy of the package to edit, which the fingerprint reads instead."""
    copy = tmp_path / "cnnrepro"
    shutil.copytree(fingerprint.SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "SOURCE", copy)
    clear_caches()
    yield copy
    clear_caches()


def test_a_stage_covers_what_its_module_imports_and_nothing_of_other_studies():
    found = set(fingerprint.modules([STAGE, "cnnrepro.studies.vdk.stages"]))
    # through `from . import blur` and `from ...attacks import …`, and the adapter's own
    assert {"cnnrepro.studies.vdk.stages", "cnnrepro.studies.vdk.blur", "cnnrepro.attacks",
            "cnnrepro.attribution", "cnnrepro.study", "cnnrepro.logs"} <= found
    assert not {m for m in found if m.startswith(("cnnrepro.studies.mnist",
                                                  "cnnrepro.studies.caltech"))}
    assert "cnnrepro.train" not in found and "cnnrepro.studies" not in found
    training = set(fingerprint.modules([TRAIN]))
    assert {"cnnrepro.train", "cnnrepro.models.architectures"} <= training
    assert not {m for m in training if m.startswith("cnnrepro.studies")}


def test_a_figure_covers_plotting_and_its_own_study_only():
    found = set(fingerprint.modules([FIGURE, "cnnrepro.studies.lenet.figures"]))
    assert {"cnnrepro.plotting", "cnnrepro.studies.lenet.figures", "cnnrepro.studies"} <= found
    # the registry imports every study; that import is not followed
    assert "cnnrepro.studies.vdk.figures" not in found


def test_an_edit_reruns_the_jobs_that_run_it_and_a_comment_reruns_nothing(source):
    jobs = {"vdk stage": [STAGE, "cnnrepro.studies.vdk.stages"],
            "mnist stage": [STAGE, "cnnrepro.studies.mnist.lab"],
            "training": [TRAIN],
            "vdk figure": [FIGURE, "cnnrepro.studies.vdk.figures"]}
    before = {job: fingerprint.of(entries) for job, entries in jobs.items()}
    blur = source / "studies" / "vdk" / "blur.py"

    blur.write_text(blur.read_text() + "\n# a comment\n\n")
    clear_caches()
    assert {job: fingerprint.of(e) for job, e in jobs.items()} == before

    blur.write_text(blur.read_text() + "\nSIGMA_UNUSED = 1\n")
    clear_caches()
    after = {job: fingerprint.of(e) for job, e in jobs.items()}
    assert [job for job in jobs if after[job] != before[job]] == ["vdk stage"]

    plotting = source / "plotting.py"
    plotting.write_text(plotting.read_text() + "\nDPI_UNUSED = 1\n")
    clear_caches()
    again = {job: fingerprint.of(e) for job, e in jobs.items()}
    assert [job for job in jobs if again[job] != after[job]] == ["vdk figure"]


def test_an_unknown_entry_module_is_named():
    with pytest.raises(ValueError, match="cnnrepro.studies.vdk.absent: no such module"):
        fingerprint.modules(["cnnrepro.studies.vdk.absent"])


def test_provenance_records_the_running_jobs_code_and_it_can_be_recomputed(source):
    assert "code" not in provenance.stamp()
    code = fingerprint.entry(SCRIPTS, "stage.py", ["cnnrepro.studies.vdk.stages"])
    with fingerprint.job(code):
        assert provenance.stamp(when=False)["code"] == code
    assert fingerprint.current() is None
    assert fingerprint.again(code, SCRIPTS) == code["fingerprint"]
    blur = source / "studies" / "vdk" / "blur.py"
    blur.write_text(blur.read_text() + "\nSIGMA_UNUSED = 1\n")
    clear_caches()
    assert fingerprint.again(code, SCRIPTS) != code["fingerprint"]
