"""Study ``concepts``: convolution types, CAM, Grad-CAM and FGSM
(``papers/conv-filters-cam-attacks-slides.txt``).

Its own model is a GAP + linear CNN (architecture ``gap_cnn``) trained by the generic
training rule on Fashion-MNIST, for CAM. Grad-CAM, the hierarchy of features and FGSM run
on trained models borrowed from the other studies (:mod:`.upstream`). Stages
(``stages``): the convolution types against their formulas, the hierarchy of features,
CAM (per seed), Grad-CAM, FGSM; then the claims table (``claims``).
"""

from pathlib import Path

from ...datasets import input_shape
from ...spec import ConfigError, check_counts, test_images_per_class
from ...study import Study, Table
from . import claims, convtypes, stages, upstream
from .figures import FIGURES


def check_config(study: dict, config: dict) -> None:
    upstream.check(config)
    fgsm = study["fgsm"]
    if 0.0 not in fgsm["epsilons"]:
        raise ConfigError("config key studies.concepts.fgsm.epsilons: must include 0.0 (the "
                          "clean accuracy that the claims check first)")
    for name, ref in fgsm["targets"].items():
        if ref["epsilon"] not in fgsm["epsilons"]:
            raise ConfigError(f"config key studies.concepts.fgsm.targets.{name}.epsilon: "
                              f"{ref['epsilon']} is not in studies.concepts.fgsm.epsilons")
    for key, ref in upstream.references(config).items():
        if key == "hierarchy":
            continue
        asked = key.split(".")[0] + ".images"  # fgsm.images or gradcam.images
        try:
            check_counts(config, ref["study"], "test", {asked: study[key.split(".")[0]]["images"]})
        except ConfigError as err:  # named as this study's key, for the borrowed study's split
            raise ConfigError(str(err).replace(f"studies.{ref['study']}.{asked}",
                                               f"studies.concepts.{asked}")
                              + f" (target {key}, a model of study {ref['study']})") from None
    check_counts(config, "concepts", "test",
                 {"cam.agreement_images": study["cam"]["agreement_images"]})
    _check_per_class(config, study)
    for problem in convtypes.grid_problems(study["convtypes"]):
        raise ConfigError(f"config key studies.concepts.convtypes: {problem}")


def _check_per_class(config: dict, study: dict) -> None:
    """CAM's images per class within the test split's; FGSM's examples, one per class,
    within each target's classes (a stage would silently show fewer)."""
    have = test_images_per_class(config, "concepts")
    if have is not None and study["cam"]["images_per_class"] > have:
        raise ConfigError(f"config key studies.concepts.cam.images_per_class: "
                          f"{study['cam']['images_per_class']} asked, but the study's test "
                          f"split has {have} images per class")
    for name, ref in study["fgsm"]["targets"].items():
        classes = input_shape(config, config["studies"][ref["study"]]["dataset"])[2]
        if study["fgsm"]["examples"] > classes:
            raise ConfigError(f"config key studies.concepts.fgsm.examples: "
                              f"{study['fgsm']['examples']} examples of different classes "
                              f"asked, but target {name} ({ref['study']}) has {classes} classes")

STUDY = Study(
    name="concepts",
    run_files={"cam": "cam/cam.npz", "cam_agreement": "cam/agreement.csv"},
    files={"convtypes_checks": "convtypes/checks.csv", "convtypes_ratios": "convtypes/ratios.csv",
           "convtypes_layers": "convtypes/layers.csv",
           "convtypes_summary": "convtypes/summary.csv", "convtypes_meta": "convtypes/meta.json",
           "hierarchy": "hierarchy/features.npz", "gradcam": "gradcam/gradcam.npz",
           "fgsm_examples": "fgsm/examples.npz", "fgsm_sweep": "fgsm/sweep.csv",
           "fgsm_summary": "claims/fgsm.csv"},
    stages={**stages.STAGES, **claims.STAGES},
    figures=FIGURES,
    tables=(Table("convtypes_summary", "Convolution types against the slides' formulas "
                  "(concepts.convtypes): per layer type and quantity, the formula and how many "
                  "of the grid's configurations match it (measured on real PyTorch layers; "
                  "MACs from torch.utils.flop_counter; the full table is "
                  "convtypes/checks.csv)."),
            Table("convtypes_ratios", "Depthwise-separable vs standard convolution per C_out, "
                  "K and stride: MACs, their ratio against 1/C_out + 1/K², parameter ratio "
                  "and the measured CPU latency ratio."),
            Table("fgsm_summary", "FGSM on the borrowed models per ε: untargeted error and "
                  "targeted success rate, mean, std and n over seeds.")),
    has_claims=True,
    schema=Path(__file__).with_name("schema.yaml"),
    check_config=check_config,
    extra_datasets=upstream.datasets,
    borrows=upstream.studies_used,
    start_note=upstream.disabled_note,
)
