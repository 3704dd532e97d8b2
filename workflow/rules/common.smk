# Shared by the rules: config validation, the study registry, and the paths each rule needs
# (every path comes from cnnrepro.paths or a study's registry entry).
import shutil

from cnnrepro import config as cfg
from cnnrepro import paths
from cnnrepro import runinfo
from cnnrepro import studies
from cnnrepro.datasets import SPECS, options as dataset_options, resolve_mirror, verify_mirror

cfg.validate(config)  # fails naming the key, before any job is built
MIRROR = resolve_mirror(config["data"]["mirror"])
STUDIES = [s.name for s in studies.enabled(config)]
SEEDS = config["seeds"]
HAVE_TEX = shutil.which("latexmk") is not None  # the PDF is built where TeX is installed


def resources_of(stage, key):
    """A rule's resource from config.yaml's `resources:` block."""
    return config["resources"][stage][key]


def data_paths(study):
    """The prepared splits a study's models train and are tested on."""
    dataset = config["studies"][study]["dataset"]
    return {split: paths.data(dataset, split) for split in SPECS[dataset].splits}


def study_models(study):
    return list(config["studies"][study]["models"])


def study_files(study):
    """The study's artifacts by name for this config's models and seeds."""
    return studies.get(study).study_files(config)


def train_inputs(wildcards):
    """The study's splits, and the training-overrides file where the study has one."""
    inputs = data_paths(wildcards.study)
    overrides = studies.get(wildcards.study).training_overrides
    found = overrides(config, wildcards.model) if overrides else None
    if found:
        inputs["overrides"] = found
    return inputs


def final_targets(wildcards):
    data = [paths.data(name, split) for name in cfg.needed_datasets(config)
            for split in SPECS[name].splits]
    summaries = [paths.study_file("metrics_summary", study) for study in STUDIES]
    claims = [paths.study_file("claims", s.name) for s in studies.enabled(config) if s.has_claims]
    pages = [paths.report_index()] + ([paths.paper("pdf")] if HAVE_TEX else [])
    return data + summaries + claims + pages


def report_figures(ext):
    return [paths.figure(study, name, ext) for study in STUDIES
            for name in studies.figures_for(study, config["studies"][study])]


def report_animations():
    return [paths.figure(s.name, name, "gif") for s in studies.enabled(config)
            for name in s.animations]


def report_inputs(wildcards):
    """Every file the report shows: figures, study tables, claims, data provenance."""
    tables = [study_files(s.name).file(t.file) for s in studies.enabled(config) for t in s.tables]
    claims = [paths.study_file("claims", s.name) for s in studies.enabled(config) if s.has_claims]
    data = {config["studies"][study]["dataset"] for study in STUDIES}
    return (report_figures("png") + report_animations()
            + [paths.study_file("metrics_summary", study) for study in STUDIES]
            + [str(t) for t in tables] + claims
            + [paths.data(name, split, "json") for name in data for split in SPECS[name].splits])


def verify_inputs(config):
    if MIRROR is not None:
        verify_mirror(MIRROR, cfg.needed_datasets(config))
