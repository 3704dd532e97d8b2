"""Study ``lenet``: a LeNet-style CNN vs a feed-forward net on CIFAR-10
(``papers/cifar10-lenet-vs-ffnn.txt``).

The grid searches (one vectorised job per model and protocol, ``grid``) and their
picks (``select``), final training on the configured pick (a training-overrides file the generic
trainer applies), the data probe (``data_probe``), the CNN's snapshot probe
(``evolution``) and its GIF (``animate``), then the claims (``claims``).
"""

from pathlib import Path

from ...study import LazyStages, Study, Table, later
from .figures import FIGURES
from .names import FILES


def training_overrides(config: dict, model: str) -> str | None:
    """The grid's pick that final training applies; None when the grid is disabled."""
    if not config["studies"]["lenet"]["grid"]["enabled"]:
        return None
    return STUDY.file("overrides", model=model)


STUDY = Study(
    name="lenet",
    run_files={"evolution": "evolution/evolution.npz"},
    files={**FILES, "data_probe": "data_probe/data.npz", "grid_summary": "claims/grid.csv"},
    stages=LazyStages(f"{__name__}.grid", f"{__name__}.probes", f"{__name__}.claims"),
    figures=FIGURES,
    animations={"lenet_feature_maps": "The feature map, ReLU and max-pool output of the "
                "peacock, one frame per shown epoch (left to right)."},
    tables=(Table("grid_summary", "Every point of both models' grids (clean and paper "
                  "protocol): learning rate, weight decay, validation and test accuracy after "
                  "the grid's epochs (lenet.grid)."),),
    has_claims=True,
    schema=Path(__file__).with_name("schema.yaml"),
    check_config=later(f"{__name__}.checks", "check_config"),
    training_overrides=training_overrides,
)
