"""Study ``concepts``: convolution types, CAM, Grad-CAM and FGSM
(``papers/conv-filters-cam-attacks-slides.txt``).

Its own model is a GAP + linear CNN (architecture ``gap_cnn``) trained by the generic
training rule on Fashion-MNIST, for CAM. Grad-CAM, the hierarchy of features and FGSM run
on trained models borrowed from the other studies (:mod:`.upstream`). Stages
(``stages``): the convolution types against their formulas, the hierarchy of features,
CAM (per seed), Grad-CAM, FGSM and its sanity checks; then the claims table (``claims``).
"""

from pathlib import Path

from ...study import LazyStages, Study, Table, later
from . import upstream
from .figures import FIGURES

STUDY = Study(
    name="concepts",
    run_files={"cam": "cam/cam.npz", "cam_agreement": "cam/agreement.csv",
               "randomisation": "randomisation/randomisation.csv",
               "randomisation_maps": "randomisation/maps.npz",
               "class_sensitivity": "randomisation/class_sensitivity.csv"},
    files={"convtypes_checks": "convtypes/checks.csv", "convtypes_ratios": "convtypes/ratios.csv",
           "convtypes_layers": "convtypes/layers.csv",
           "convtypes_summary": "convtypes/summary.csv", "convtypes_meta": "convtypes/meta.json",
           "hierarchy": "hierarchy/features.npz", "gradcam": "gradcam/gradcam.npz",
           "fgsm_examples": "fgsm/examples.npz", "fgsm_sweep": "fgsm/sweep.csv",
           "attack_checks": "attack_checks/attack_checks.csv",
           "fgsm_summary": "claims/fgsm.csv"},
    stages=LazyStages(f"{__name__}.stages", f"{__name__}.claims"),
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
    check_config=later(f"{__name__}.checks", "check_config"),
    extra_datasets=upstream.datasets,
    borrows=upstream.studies_used,
    start_note=upstream.disabled_note,
)
