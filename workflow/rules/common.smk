# Helpers shared by the rules: config validation and the paths each rule needs.
import shutil

from cnnrepro import config as cfg
from cnnrepro import figures
from cnnrepro.datasets import SPECS, resolve_mirror, verify_mirror
from cnnrepro.estimate import announce

cfg.validate(config)  # fails naming the key, before any job is built
MIRROR = resolve_mirror(config["data"]["mirror"])
STUDIES = cfg.enabled_studies(config)
SEEDS = config["seeds"]
CLAIMS = ("vdk", "mnist", "lenet")  # studies with analysis stages (caltech: an open issue)
HAVE_TEX = shutil.which("latexmk") is not None  # the PDF is built where TeX is installed


def res(stage, key):
    return config["resources"][stage][key]


def dataset_options(wildcards):
    return config["data"]["caltech"] if wildcards.dataset == "caltech101_3" else {}


def data_paths(study):
    """The prepared splits a study's models train and are tested on."""
    dataset = config["studies"][study]["dataset"]
    return {
        split: f"results/data/{dataset}/{split}.npz" for split in SPECS[dataset].splits
    }


def study_data(wildcards):
    return data_paths(wildcards.study)


def grid_selection(study):
    """The lenet grid's pick that final training uses (clean or paper); None: no grid."""
    grid = config["studies"][study].get("grid")
    return grid["selection"] if grid and grid["enabled"] else None


def train_inputs(wildcards):
    inputs = data_paths(wildcards.study)
    if grid_selection(wildcards.study):
        inputs["selection"] = f"results/{wildcards.study}/grid/{wildcards.model}/selection.json"
    return inputs


def seed_dir(wildcards):
    return f"results/{wildcards.study}/{wildcards.model}/seed{wildcards.seed}"


def study_models(study):
    return list(config["studies"][study]["models"])


def study_runs(study, pattern):
    return [
        pattern.format(study=study, model=model, seed=seed)
        for model in config["studies"][study]["models"]
        for seed in SEEDS
    ]


def final_targets(wildcards):
    data = [
        f"results/data/{name}/{split}.npz"
        for name in cfg.needed_datasets(config)
        for split in SPECS[name].splits
    ]
    summaries = [f"results/{study}/summary/metrics_summary.csv" for study in STUDIES]
    studies = [f"results/{study}/summary/claims.csv" for study in STUDIES if study in CLAIMS]
    pages = ["results/report/index.html"] + (["results/report/paper.pdf"] if HAVE_TEX else [])
    return data + summaries + studies + pages


def study_figures(study):
    return figures.figures_for(study, config["studies"][study])


def report_figures(kind):
    return [
        f"results/report/{study}/{name}.{kind}" for study in STUDIES for name in study_figures(study)
    ]


def report_animations():
    return [
        f"results/report/{study}/{name}.gif"
        for study in STUDIES
        for name in figures.ANIMATIONS.get(study, {})
    ]


def report_inputs(wildcards):
    """Every file the report shows: figures, study summaries, claims, data provenance."""
    data = {config["studies"][study]["dataset"] for study in STUDIES}
    return (
        report_figures("png")
        + report_animations()
        + [f"results/{study}/summary/metrics_summary.csv" for study in STUDIES]
        + [f"results/{study}/summary/claims.csv" for study in STUDIES if study in CLAIMS]
        + [f"results/data/{name}/{split}.json" for name in data for split in SPECS[name].splits]
    )


def verify_inputs(config):
    if MIRROR is not None:
        verify_mirror(MIRROR, cfg.needed_datasets(config))
