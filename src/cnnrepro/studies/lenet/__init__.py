"""Study ``lenet``: a LeNet-style CNN vs a feed-forward net on CIFAR-10
(``papers/cifar10-lenet-vs-ffnn.txt``).

The grid search (one training run per point and model, ``grid``) and its two picks
(``select``), final training on the configured pick (a training-overrides file the generic
trainer applies), the data probe (``data_probe``), the CNN's snapshot probe
(``evolution``) and its GIF (``animate``), then the claims (``claims``).
"""

from pathlib import Path

from ...study import Study, Table
from . import claims, grid, probes
from .figures import FIGURES


def training_overrides(config: dict, model: str) -> str | None:
    """The grid's pick that final training applies; None when the grid is disabled."""
    if not config["studies"]["lenet"]["grid"]["enabled"]:
        return None
    return STUDY.file("overrides", model=model)


STUDY = Study(
    name="lenet",
    run_files={"evolution": "probe/evolution.npz"},
    files={"grid_weights": "grid/{model}/lr{i}_wd{j}/model.pt",
           "grid_history": "grid/{model}/lr{i}_wd{j}/history.csv",
           "grid_meta": "grid/{model}/lr{i}_wd{j}/train.json",
           "grid_table": "grid/{model}/grid.csv",
           "selection": "grid/{model}/selection.json",
           "overrides": "grid/{model}/overrides.json", "data_probe": "probe/data.npz",
           "grid_summary": "summary/grid.csv"},
    stages={"select": grid.select, "data_probe": probes.probe_data,
            "evolution": probes.follow_kernel, "animate": probes.write_animation,
            "claims": claims.claims},
    figures=FIGURES,
    animations={"lenet_feature_maps": "The feature map, ReLU and max-pool output of the "
                "peacock, one frame per shown epoch (left to right)."},
    tables=(Table("grid_summary", "Every grid point of both models: learning rate, weight "
                  "decay, validation and test accuracy after the grid's epochs (lenet.grid)."),),
    has_claims=True,
    schema=Path(__file__).with_name("schema.yaml"),
    training_overrides=training_overrides,
)
