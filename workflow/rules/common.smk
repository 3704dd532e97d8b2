# Shared by the rules: config validation, the study registry, and the paths each rule needs
# (every path comes from cnnrepro.paths or a study's registry entry).
import shutil
import sys

from cnnrepro import config as cfg
from cnnrepro.configfile import read_config_file
from cnnrepro.spec import evaluation_spec, training_spec
from cnnrepro import locks
from cnnrepro import paths
from cnnrepro import rules
from cnnrepro import runinfo
from cnnrepro import studies
from cnnrepro.datasets import SPECS, data_source, options as dataset_options, verify_mirror
from cnnrepro.formats import rst_text
from cnnrepro.report import render_across_runs

cfg.validate(config)  # fails naming the key, before any job is built
paths.use(config["results"])  # every path below is under it
SOURCE = data_source(config["data"]["mirror"])
MIRROR = SOURCE.mirror
STUDIES = [s.name for s in studies.enabled(config)]
SEEDS = config["seeds"]
HAVE_TEX = shutil.which("latexmk") is not None  # the PDF is built where TeX is installed


def job_code(script, *modules):
    """The `code` param for a job of workflow/scripts/<script> and those package modules, so
    that it reruns when the code it runs changes (cnnrepro.fingerprint)."""
    return rules.code(config, f"{workflow.basedir}/workflow/scripts", script, *modules)


def resources_of(stage, key):
    """A rule's resource from config.yaml's `resources:` block."""
    return config["resources"][stage][key]


def data_paths(study):
    """The prepared splits a study's models train and are tested on."""
    return rules.data_paths(config, study)


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
    data = [
        paths.data(name, split)
        for name in cfg.needed_datasets(config)
        for split in SPECS[name].splits
    ]
    summaries = [paths.study_file("metrics_summary", study) for study in STUDIES]
    claims = [paths.study_file("claims", s.name) for s in studies.enabled(config) if s.has_claims]
    pages = [paths.report_index()] + ([paths.paper("pdf")] if HAVE_TEX else [])
    return data + summaries + claims + pages


def report_figures(ext):
    return [
        paths.figure(study, name, ext)
        for study in STUDIES
        for name in studies.figures_for(study, config["studies"][study])
    ] + [
        paths.figure(study, name, ext, seed)
        for study in STUDIES
        for name, seed in studies.seed_figures(study, config)
    ]


def report_animations():
    return [
        paths.figure(s.name, name, "gif") for s in studies.enabled(config) for name in s.animations
    ]


def report_inputs(wildcards):
    """Every file the report shows: figures, study tables, claims, data provenance."""
    tables = [study_files(s.name).file(t.file) for s in studies.enabled(config) for t in s.tables]
    claims = [paths.study_file("claims", s.name) for s in studies.enabled(config) if s.has_claims]
    data = {config["studies"][study]["dataset"] for study in STUDIES}
    return (
        report_figures("png")
        + report_animations()
        + [paths.study_file("metrics_summary", study) for study in STUDIES]
        + [str(t) for t in tables]
        + claims
        + studies.card_inputs(config)
        + [paths.data(name, split, "json") for name in data for split in SPECS[name].splits]
    )


def verify_inputs(config):
    if MIRROR is not None:
        verify_mirror(MIRROR, cfg.needed_datasets(config))


def check_sources():
    """Once per run, dry runs included (jobs on a cluster parse this file again): the
    config files (a key given twice, which Snakemake's reader lets through), what only
    the data source can check, then which files, preset and data source are in force."""
    for path in workflow.overwrite_configfiles:
        read_config_file(path)
    cfg.check_data(config, MIRROR)
    given = list(workflow.overwrite_configfiles)  # merged over the Snakefile's configfile
    files = [f for f in workflow.configfiles if f not in given] + given
    print(cfg.sources_line(config, files), file=sys.stderr)
    print(
        SOURCE.describe(cfg.needed_datasets(config), config["data"]["download_root"]),
        file=sys.stderr,
    )
    for study in studies.enabled(config):
        note = study.start_note(config) if study.start_note else None
        if note:
            print(note, file=sys.stderr)


if workflow.is_main_process:
    check_sources()
    if workflow.local_exec:
        locks.mark_scheduler()  # local jobs stop when this process dies (cnnrepro.logs)
