"""Study ``caltech``: visualising CNNs on a 3-class Caltech-101 subset
(``papers/caltech101-visualizing-cnns.txt``).

Stages (``stages``): before training, the convolution basics (ch. 1), two stacked layers
(ch. 2) and the stride/padding/filter-size settings with their size table (3.2.3–3.2.7);
after training, the CNN's filters and maps, translation equivariance and invariance,
patches and guided backprop of the CNN and VGG19, and the VGG19 backbone's diagnosis and
linear probe (the meaningful baseline when the fallback ran); then the claims table.
"""

from pathlib import Path

from ...spec import ConfigError, check_counts
from ...study import LazyStages, Study, Table
from .figures import FALLBACK_NOTE, FIGURES
from .names import CNN, VGG

VGG19_LAST_CONV_CHANNELS = 512  # torchvision's VGG19 (features.34), whatever its weights
VGG_NOTE = ("VGG19 was trained with the weights the VGG19 table below names (weights_used): "
            "where that is the fallback, its backbone is random and frozen and its last layer "
            "a standardised head, not the document's ImageNet model.")


def check_config(study: dict, config: dict) -> None:
    archs = {CNN: "caltech_cnn", VGG: "vgg19_transfer"}
    for name, arch in archs.items():
        if study["models"].get(name, {}).get("arch") != arch:
            raise ConfigError(f"config key studies.caltech.models.{name}: the study's stages "
                              f"need a model {name!r} of arch {arch!r}")
    shifts = study["equivariance"]["shifts"]
    if study["claims"]["invariance_shift"] not in shifts:
        raise ConfigError("config key studies.caltech.claims.invariance_shift: "
                          f"{study['claims']['invariance_shift']} is not in "
                          f"studies.caltech.equivariance.shifts {shifts}")
    check_counts(config, "caltech", "test", {"equivariance.images": study["equivariance"]["images"],
                                             "randomisation.images": study["randomisation"]["images"]})
    check_counts(config, "caltech", "train",
                 {"basics.symmetry.images": study["basics"]["symmetry"]["images"]})
    # channels a stage keeps or ranks: more than a layer has would be silently fewer
    cnn = study["models"][CNN].get("options", {}).get("channels", [])
    asked = [("layers.show_channels", study["layers"]["show_channels"],
              min(study["layers"]["channels"]), "the smaller stacked layer (layers.channels)"),
             ("trained_maps.show_channels", study["trained_maps"]["show_channels"],
              min(cnn, default=None), f"the CNN's smallest conv layer (models.{CNN}.options)")]
    if study["patches"]["distinct_channels"]:  # one neuron per channel
        last = min(cnn[-1:] + [VGG19_LAST_CONV_CHANNELS])
        asked += [(f"patches.{k}", study["patches"][k], last,
                   "the last conv layer of a model (one neuron per channel: "
                   "patches.distinct_channels)") for k in ("top", "dead")]
    for key, n, have, of in asked:
        if have is not None and n > have:
            raise ConfigError(f"config key studies.caltech.{key}: {n} channels asked, but "
                              f"{of} has {have}")


STUDY = Study(
    name="caltech",
    run_files={"maps": "trained_maps/maps.npz", "equivariance": "equivariance/equivariance.csv",
               "patches": "patches/patches.npz", "patch_table": "patches/patches.csv",
               "fallback": "fallback/fallback.json",
               "randomisation": "randomisation/randomisation.csv",
               "randomisation_maps": "randomisation/maps.npz"},
    files={"conv": "conv_basics/conv.npz", "conv_meta": "conv_basics/conv.json",
           "stacked_layers": "stacked_layers/layers.npz",
           "layers_meta": "stacked_layers/layers.json",
           "setting_maps": "conv_settings/settings.npz",
           "size_table": "conv_settings/size_table.csv",
           "fallback_summary": "claims/vgg19_fallback.csv"},
    stages=LazyStages(f"{__name__}.stages", f"{__name__}.claims"),
    figures=FIGURES,
    figure_notes={"training_curves": "The document's Figs. 3.3 (CNN) and 4.2 (VGG19). "
                                     + VGG_NOTE,
                  "confusion_matrices": "The document's Figs. 3.4 (CNN) and 4.3 (VGG19). "
                                        + VGG_NOTE,
                  "roc_curves": VGG_NOTE},
    tables=(Table("size_table", "Every stride, padding and filter-size setting "
                  "(Sec. 3.2.3-3.2.7): output size by n' = floor((n + 2p - f)/s) + 1 and as "
                  "measured; leftover = (n + 2p - f) mod s pixels the last window misses."),
            Table("fallback_summary", "VGG19 per seed: the weights training used "
                  "(weights_used), accuracy of the trained head, and the linear probe of the "
                  "frozen backbone's pooled conv features. " + FALLBACK_NOTE
                  + " The probe shows how much class information the backbone keeps; with "
                  "the fallback it cannot show what ImageNet features detect.")),
    has_claims=True,
    schema=Path(__file__).with_name("schema.yaml"),
    check_config=check_config,
)
