"""Study ``mnist``: a 2-conv CNN on MNIST, with and without batch norm
(``papers/mnist-cnn-lab.txt``).

After training, the lab's probes run on every model and seed (``lab``: predictions,
filters, activations, occlusion, fooling, targeted and noise images) and the occlusion
maps' sanity checks (``randomisation``), then the claims and the layer-structure table
(``claims``).
"""

from pathlib import Path

from ...datasets import input_shape
from ...spec import ConfigError, check_counts
from ...study import LazyStages, Study, Table
from .figures import FIGURES


def check_config(study: dict, config: dict) -> None:
    """The lab's probes fit the test images and the image size; beta is in its sweep."""
    lab = study["lab"]
    targeted = lab["targeted"]
    if targeted["beta"] not in targeted["betas"]:
        raise ConfigError(f"config key studies.mnist.lab.targeted.beta: {targeted['beta']} is "
                          "not in studies.mnist.lab.targeted.betas")
    size = input_shape(config, study["dataset"])[1]
    if lab["occlusion"]["patch"] > size:
        raise ConfigError(f"config key studies.mnist.lab.occlusion.patch: {lab['occlusion']['patch']}"
                          f" pixels is larger than the {size}x{size} images")
    check_counts(config, "mnist", "test", {
        "lab.prediction_images": lab["prediction_images"],
        "lab.occlusion.images": lab["occlusion"]["images"],
        "lab.noise.images + lab.noise.held_out": lab["noise"]["images"] + lab["noise"]["held_out"]})


STUDY = Study(
    name="mnist",
    run_files={"lab": "lab/lab.npz", "lab_summary": "lab/lab.json",
               "randomisation": "randomisation/randomisation.csv",
               "randomisation_maps": "randomisation/maps.npz",
               "class_sensitivity": "randomisation/class_sensitivity.csv"},
    files={"structure": "claims/structure.csv"},
    stages=LazyStages(f"{__name__}.lab", f"{__name__}.claims"),
    figures=FIGURES,
    tables=(Table("structure", "Every layer of both models: input and output shape, "
                  "learnable parameters, neurons (conv outputs before pooling, FC outputs) and "
                  "kind (mnist.shapes, mnist.params, mnist.neurons); totals and shares are "
                  "claims."),),
    has_claims=True,
    schema=Path(__file__).with_name("schema.yaml"),
    check_config=check_config,
)
