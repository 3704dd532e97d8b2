"""Study ``vdk``: VDK CNNet vs Baseline CNN on CIFAR-10 (``papers/vdk-cnnet.txt``).

Stages after training (``stages``): Captum attribution with deletion/insertion
faithfulness and the model-randomisation test, FGSM with its sanity checks, and the
Gaussian-blur search, each in the ``paper`` protocol (what the original notebook did) and
the ``clean`` one; then the claims table (``claims``).
"""

from pathlib import Path

from ...spec import ConfigError, check_counts
from ...study import LazyStages, Study, Table
from .figures import FIGURES


def check_config(study: dict, config: dict) -> None:
    if study["claims"]["robust_epsilon"] not in study["fgsm"]["epsilons"]:
        raise ConfigError("config key studies.vdk.claims.robust_epsilon: "
                          f"{study['claims']['robust_epsilon']} is not in "
                          "studies.vdk.fgsm.epsilons")
    checked = study["attack_checks"]["epsilons"]
    if checked != sorted(checked):
        raise ConfigError(f"config key studies.vdk.attack_checks.epsilons: {checked} must be "
                          "ascending (accuracy is checked not to rise along them)")
    clean, paper = study["blur"]["clean"], study["blur"]["paper"]
    if clean["sigma_min"] > clean["sigma_max"]:
        raise ConfigError(f"config key studies.vdk.blur.clean.sigma_min: {clean['sigma_min']} "
                          f"is above sigma_max {clean['sigma_max']}")
    if paper["arg_min"] >= paper["arg_max"]:
        raise ConfigError(f"config key studies.vdk.blur.paper.arg_min: {paper['arg_min']} "
                          f"leaves no kernel size below arg_max {paper['arg_max']}")
    check_counts(config, "vdk", "test", {"fgsm.images": study["fgsm"]["images"],
                                         "attack_checks.images": study["attack_checks"]["images"],
                                         "blur.images": study["blur"]["images"],
                                         "randomisation.images": study["randomisation"]["images"],
                                         "attribution.auc_images": study["attribution"]["auc_images"]})


STUDY = Study(
    name="vdk",
    run_files={"attributions": "explain/attributions.npz",
               "faithfulness": "explain/faithfulness.csv",
               "ig_completeness": "explain/ig_completeness.csv",
               "fgsm": "fgsm/fgsm.json", "fgsm_curve": "fgsm/fgsm_clean.csv",
               "blur": "blur/blur.npz", "blur_summary": "blur/blur.json",
               "attack_checks": "attack_checks/attack_checks.csv",
               "randomisation": "randomisation/randomisation.csv",
               "randomisation_maps": "randomisation/maps.npz",
               "class_sensitivity": "randomisation/class_sensitivity.csv"},
    files={"paired": "claims/paired_tests.csv",
           "faithfulness_summary": "claims/faithfulness.csv", "cost_summary": "claims/cost.csv"},
    stages=LazyStages(f"{__name__}.stages", f"{__name__}.claims"),
    figures=FIGURES,
    figure_notes={"confusion_matrices": "The original's Fig. 6 is transposed: it was drawn from "
                  "scikit-learn's confusion_matrix(y_pred, y_true), so its rows are the "
                  "predicted classes and its columns the true ones; here rows are true."},
    tables=(Table("cost_summary", "Parameters, multiply-accumulates (MACs) and CPU inference latency "
                  "per image batch (vdk.cost; the paper claims a low computational burden: "
                  "VDK CNNet's MACs are judged against the Baseline's and against its own "
                  "without the VDK branches)."),
            Table("paired", "Paired comparisons over seeds (one-sided t-test on per-seed "
                  "differences; p is empty when n < 2)."),
            Table("faithfulness_summary", "Deletion and insertion AUC per model and "
                  "attribution method, mean, std and count over seeds.")),
    has_claims=True,
    schema=Path(__file__).with_name("schema.yaml"),
    check_config=check_config,
)
