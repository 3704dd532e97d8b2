"""Study ``caltech``: its figures, each drawn from the stages' data files.

A figure's name is its function's name, its file (``results/report/caltech/<name>.png``)
and its report entry. Every VGG19 figure names in its title the weights the run used
(``weights_used`` of training): where that is the fallback, the figure says so.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from ...io import read_csv, read_json, read_npz
from ...paths import StudyFiles
from ...plotting import image_panel, randomisation_curves, randomisation_strip, subplot_grid
from ...study import Figures
from .names import CNN, VGG, weights_label

FIGURES = Figures()
# How the CNN reads the document's garbled sentence, said wherever the reading shows
# (a caption template: the study's config fills the fields, so it names the reading that ran)
KERNEL_READING = ("The document's \"Filter size is taken to be 32x32 and 64x64\" has two "
                  "readings: 32 and 64 filters of 3x3 (config.yaml; its other chapters use "
                  "3x3 filters), whose last conv neurons see a few pixels, so the patches "
                  "are colour and edge specks, not the animals' faces of the document's "
                  "Fig. 3.11; or filters of 32x32 and 64x64 pixels, whose neurons see 95x95 "
                  "(config/variants/caltech-literal-kernels.yaml, GPU-scale). This run's CNN: "
                  "{models[cnn][options][channels]} filters of size "
                  "{models[cnn][options][kernel]} (the RF in each panel).")
FALLBACK_NOTE = ("Where the title names the fallback, ImageNet weights could not be had: "
                 "the backbone is a random, frozen VGG19 and its new last layer a "
                 "standardised head (BatchNorm without affine, then Linear); such patches and "
                 "gradients show the architecture's prior on these images, not the learned "
                 "ImageNet features of the document.")


def _classes(data) -> list[str]:
    return [str(c) for c in data["classes"]]


def _vgg_title(files: StudyFiles, seed: int) -> str:
    return weights_label([read_json(files.run("train_meta", VGG, seed)).get("weights_used")])


@FIGURES.register(
    "One test image per class in colour and in grayscale (BT.601 luma), the Kaiming-"
    "initialised 3x3 filter (fan-in rule, std sqrt(2/9); the document writes "
    "sqrt(2/(224*224))), its cross-correlation (what conv2d computes) and its true "
    "convolution (flipped kernel) at stride 1, padding 0 (224 to 222 pixels), and their "
    "difference (zero only for a flip-symmetric kernel).",
    "Figs. 1.1-1.2", ("conv",))
def caltech_fig1_correlation_vs_convolution(files: StudyFiles) -> plt.Figure:
    data = read_npz(files.file("conv"))
    classes = _classes(data)
    fig, axes = plt.subplots(len(classes), 6, figsize=(13, 2.3 * len(classes)), squeeze=False)
    for i, row in enumerate(axes):
        label = classes[int(data["labels"][i])]
        image_panel(data["images"][i], label, (fig, row[0]))
        image_panel(data["gray"][i, 0], "grayscale", (fig, row[1]))
        image_panel(data["kernel"][0, 0], "3x3 Kaiming filter", (fig, row[2]), cmap="RdBu_r",
                    symmetric=True)
        for ax, key in zip(row[3:], ("correlation", "convolution", "difference")):
            image_panel(data[key][i, 0], f"{key} {data[key].shape[-1]}px", (fig, ax),
                        symmetric=key == "difference", cmap="RdBu_r" if key == "difference"
                        else "gray")
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Left: the first image's maps of one 1-to-{basics[init_channels]} conv layer under constant "
    "initialisation (every weight and bias {basics[constant_value]}: all channels show the "
    "same map) and under Kaiming initialisation (every channel differs). Right: the "
    "layer's 3x3 filters after {basics[symmetry][steps]} full-batch SGD steps of a small net "
    "(conv, ReLU, average pool, linear) from each initialisation: constant filters stay "
    "identical (spread in the title), Kaiming ones do not.",
    "Sec. 1 (constant vs Kaiming initialisation; no figure in the document)", ("conv", "conv_meta"))
def caltech_fig1_initialisation(files: StudyFiles) -> plt.Figure:
    data = read_npz(files.file("conv"))
    meta = read_json(files.file("conv_meta"))["symmetry"]
    shown = min(4, data["init_constant"].shape[1])
    fig, axes = plt.subplots(4, shown + 1, figsize=(2.2 * (shown + 1), 8.6), squeeze=False)
    for r, scheme in enumerate(("constant", "kaiming")):
        maps = data[f"init_{scheme}"][0]
        axes[r, 0].axis("off")
        axes[r, 0].text(0.5, 0.5, f"{scheme}\ninit maps", ha="center", va="center")
        for c in range(shown):
            image_panel(maps[c], f"channel {c}", (fig, axes[r, c + 1]))
        filters = data[f"symmetry_{scheme}"][:, 0]
        axes[r + 2, 0].axis("off")
        axes[r + 2, 0].text(0.5, 0.5, f"{scheme}: filters\nafter SGD\nspread "
                            f"{meta[scheme]['spread']:.3g}", ha="center", va="center")
        bound = np.abs(filters).max()
        for c in range(shown):
            axes[r + 2, c + 1].imshow(filters[c], cmap="RdBu_r", vmin=-bound, vmax=bound)
            axes[r + 2, c + 1].set(xticks=[], yticks=[], title=f"filter {c}")
    fig.tight_layout()
    return fig


def _filters_and_maps(fig, axes, filters: np.ndarray, maps: np.ndarray, title: str) -> None:
    """A row: the first filters (input channel 0) above their feature maps."""
    for c, ax in enumerate(axes):
        if c >= maps.shape[0]:
            ax.set_visible(False)
            continue
        image_panel(maps[c], f"{title} ch {c} ({maps.shape[-1]}px)", (fig, ax))
        inset = ax.inset_axes([0.0, 0.7, 0.3, 0.3])
        inset.imshow(filters[c, 0], cmap="RdBu_r")
        inset.set(xticks=[], yticks=[])


def _layer_figure(data, show: int, title: str) -> plt.Figure:
    classes = _classes(data)
    fig, axes = plt.subplots(2 * len(classes), show + 1,
                             figsize=(1.9 * (show + 1), 2.0 * 2 * len(classes)), squeeze=False)
    for i, label in enumerate(classes):
        for layer in (1, 2):
            row = axes[2 * i + layer - 1]
            image_panel(data["images"][i], f"{label}, layer {layer}", (fig, row[0]))
            _filters_and_maps(fig, row[1:], data[f"filters{layer}"],
                              data[f"maps{layer}"][i, :show], f"L{layer}")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Two stacked conv layers of {layers[channels][0]} and {layers[channels][1]} Kaiming-"
    "initialised 3x3 filters (stride 1, padding 0, ReLU between) on each grayscale image: "
    "for each class, layer 1's maps (222 px) then layer 2's (220 px), the filter (input "
    "channel 0) inset at the top left of its map.",
    "Figs. 2.2-2.7", ("stacked_layers",))
def caltech_fig2_stacked_layers(files: StudyFiles) -> plt.Figure:
    data = read_npz(files.file("stacked_layers"))
    return _layer_figure(data, min(6, data["maps1"].shape[1]), "Kaiming-initialised layers")


@FIGURES.register(
    "Hand-crafted filters cross-correlated with one grayscale image: the 3x3 Laplacian (edge) "
    "and Gaussian filters at strides {settings[stride][values]} (224 px, padding 0), "
    "low/equal/high padding {settings[padding][values]} (150 px, stride "
    "{settings[padding][stride]}), and Gaussians of size {settings[size][values]} (224 px, "
    "stride 1). Each title gives the measured output size; the size table lists formula "
    "and measurement for every setting. The document's padding values are lost from its "
    "text (\"the required padding is . So we tested with .\"), and \"equal\" padding, the "
    "amount for the filter to cover the image completely, is ill-posed for the document's "
    "3x3 filter at stride 4 on 150 px (150 + 2p - 3 is odd, never a multiple of 4): the "
    "low/equal/high values here are ours "
    "(studies.caltech.settings.padding.values), not the document's.",
    "Fig. 3.2 (and Sec. 3.2.3-3.2.4)", ("setting_maps", "size_table"))
def caltech_fig3_stride_padding_size(files: StudyFiles) -> plt.Figure:
    data = read_npz(files.file("setting_maps"))
    table = read_csv(files.file("size_table"))
    keys = [f"{r.experiment}__{r.filter}__{r.setting}" for r in table.itertuples()]
    fig, axes = subplot_grid(len(keys), 4, size=2.4)
    for ax, key, row in zip(axes, keys, table.itertuples()):
        ok = "=" if row.match else "≠"
        image_panel(data[key], f"{row.experiment} {row.filter} {row.setting}\n"
                    f"{row.measured_size} px {ok} formula {row.formula_size}", (fig, ax))
    fig.tight_layout()
    return fig


@FIGURES.register(
    "The trained CNN's learned filters (input channel 0, inset) and the feature maps of one "
    "test image per class, conv1 (222 px) then conv2 (220 px), before ReLU.",
    "Figs. 3.5-3.10", (("maps", CNN),), per_seed=True)
def caltech_fig3_trained_filters(files: StudyFiles) -> plt.Figure:
    data = read_npz(files.run("maps", CNN, files.seeds[0]))
    return _layer_figure(data, min(6, data["maps1"].shape[1]),
                         f"trained CNN, seed {files.seeds[0]}")


@FIGURES.register(
    "Translation, measured: test images shifted right by k pixels (circular: wrapped; zero: "
    "filled with the mean colour). Left: relative error of the CNN's stride-1 conv layers "
    "between conv(shift x) and shift(conv x) away from the borders (zero means exactly "
    "equivariant). Middle: relative change of the max-pooled features. Right: share of "
    "images whose predicted class changes (invariance). Mean over seeds.",
    "Sec. 3.2.10-3.2.11 (stated in the document, not measured there)", (("equivariance", CNN),))
def caltech_equivariance(files: StudyFiles) -> plt.Figure:
    frame = pd.concat([read_csv(p) for p in files.by_model("equivariance", [CNN])[CNN]])
    mean = frame.groupby(["mode", "shift"]).mean(numeric_only=True).reset_index()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, column, label in zip(axes, ("equivariance_error", "feature_change",
                                        "prediction_change"),
                                 ("equivariance error (interior)", "pooled-feature change",
                                  "predictions changed")):
        for mode, part in mean.groupby("mode"):
            ax.plot(part["shift"], part[column], "o-", label=mode)
        ax.set(xscale="log", xlabel="shift (px)", title=label)
        ax.set_xticks(sorted(mean["shift"].unique()),
                      [str(s) for s in sorted(mean["shift"].unique())])
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _patch_figure(files: StudyFiles, model: str, seed: int, title: str) -> plt.Figure:
    data = read_npz(files.run("patches", model, seed))
    table = read_csv(files.run("patch_table", model, seed))
    top = table[table["kind"] == "top"]
    n_top = int(top.groupby("image").size().max())
    images = sorted(table["image"].unique())
    fig, axes = plt.subplots(len(images), n_top + 1, figsize=(2.1 * (n_top + 1),
                                                              2.3 * len(images)), squeeze=False)
    colours = plt.cm.tab10.colors
    for r, image in enumerate(images):
        rows = top[top["image"] == image]
        image_panel(data["images"][image], str(rows["image_class"].iloc[0]), (fig, axes[r, 0]))
        for k, (index, row) in enumerate(rows.iterrows()):
            colour = colours[k % len(colours)]
            axes[r, 0].add_patch(Rectangle((row["left"] - 0.5, row["top"] - 0.5),
                                           row["right"] - row["left"], row["bottom"] - row["top"],
                                           fill=False, edgecolor=colour, linewidth=1.2))
            h, w = data["crop_sizes"][index]
            image_panel(data["crops"][index][:, :h, :w], f"ch {row['channel']} @ "
                        f"({row['row']},{row['col']})\nact {row['value']:.3g}, RF "
                        f"{row['rf_height']}px", (fig, axes[r, k + 1]), colour=colour)
        for ax in axes[r, len(rows) + 1:]:
            ax.set_visible(False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Patch detection by the trained CNN: on each image, the {patches[top]} most activated "
    "neurons of the last conv layer (after ReLU; each channel's peak, best channels), their "
    "receptive fields drawn as boxes (computed exactly from the layer stack: kernel, stride, "
    "padding, dilation) and the patches cropped. " + KERNEL_READING,
    "Fig. 3.11", (("patches", CNN), ("patch_table", CNN)), per_seed=True)
def caltech_fig3_patches(files: StudyFiles) -> plt.Figure:
    seed = files.seeds[0]
    return _patch_figure(files, CNN, seed, f"CNN trained here, seed {seed}")


@FIGURES.register(
    "Patch detection by VGG19 transfer: the {patches[top]} most activated neurons of the "
    "last conv layer (conv5_4 after ReLU) on each image, receptive-field boxes and patches. "
    + FALLBACK_NOTE,
    "Fig. 4.4", (("patches", VGG), ("patch_table", VGG), ("train_meta", VGG)), per_seed=True)
def caltech_fig4_patches(files: StudyFiles) -> plt.Figure:
    seed = files.seeds[0]
    return _patch_figure(files, VGG, seed, f"{_vgg_title(files, seed)}, seed {seed}")


def _gradient_figure(files: StudyFiles, model: str, seed: int, title: str) -> plt.Figure:
    """Per image: the image, then the guided-backprop image of each top and dead neuron."""
    data = read_npz(files.run("patches", model, seed))
    table = read_csv(files.run("patch_table", model, seed))
    images = sorted(table["image"].unique())
    ncols = int(table.groupby("image").size().max())
    fig, axes = plt.subplots(len(images), ncols + 1, figsize=(2.0 * (ncols + 1),
                                                              2.2 * len(images)), squeeze=False)
    for r, image in enumerate(images):
        rows = table[table["image"] == image]
        image_panel(data["images"][image], str(rows["image_class"].iloc[0]), (fig, axes[r, 0]))
        for k, (index, row) in enumerate(rows.iterrows()):
            g = data["gradients"][index]
            span = g.max() - g.min()
            shown = (g - g.min()) / span if span > 0 else np.full_like(g, 0.5)
            image_panel(shown, f"{row['kind']} ch {row['channel']}\nact {row['value']:.3g}",
                        (fig, axes[r, k + 1]), colour="black" if row["kind"] == "top" else "red")
        for ax in axes[r, len(rows) + 1:]:
            ax.set_visible(False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


GUIDED = ("Guided backpropagation (Captum NeuronGuidedBackprop) of the last conv layer's "
          "neurons to the input, per image: the {patches[top]} most activated neurons, then "
          "up to {patches[dead]} dead ones (red titles; zero activation on that image: their "
          "gradient image is blank, as the document says). Each panel scaled to [0, 1], a "
          "blank one drawn grey.")


@FIGURES.register(
    GUIDED + " Here the trained CNN (the document shows the method on VGG19 only).",
    "the method of Figs. 4.5-4.7 on the CNN (beyond the document)",
    (("patches", CNN), ("patch_table", CNN)), per_seed=True,
    checks=("caltech.sanity.randomisation.",))
def caltech_fig3_guided_backprop(files: StudyFiles) -> plt.Figure:
    seed = files.seeds[0]
    return _gradient_figure(files, CNN, seed, f"trained CNN, seed {seed}")


@FIGURES.register(
    GUIDED + " Here VGG19 transfer. " + FALLBACK_NOTE + " VGG19 has no model-randomisation "
    "test of its own: under the fallback its convolutional layers were never trained, so "
    "these maps already come from random weights (the cascade's end); the method's claim, "
    "listed below, is judged on the trained CNN.",
    "Figs. 4.5-4.7", (("patches", VGG), ("patch_table", VGG), ("train_meta", VGG)),
    per_seed=True, checks=("caltech.sanity.randomisation.",))
def caltech_fig4_guided_backprop(files: StudyFiles) -> plt.Figure:
    seed = files.seeds[0]
    return _gradient_figure(files, VGG, seed, f"{_vgg_title(files, seed)}, seed {seed}")


@FIGURES.register(
    "What the VGG19 backbone of this run carries, per seed. Left: scale of each stage from "
    "the pooled conv features to the logits on validation images (between-image std: the "
    "signal a linear head can use; dropout noise in training mode beside it). Right: "
    "validation and test accuracy of the trained head and of a linear probe (standardised "
    "pooled conv features, logistic regression, C chosen on validation), chance dashed. "
    + FALLBACK_NOTE,
    "Sec. 4 (diagnosis of the fallback; no figure in the document)",
    (("fallback", VGG), ("metrics", VGG)))
def caltech_vgg_fallback(files: StudyFiles) -> plt.Figure:
    runs = {s: read_json(p) for (_, s), p in files.runs("fallback", [VGG]).items()}
    metrics = {s: read_json(p) for (_, s), p in files.runs("metrics", [VGG]).items()}
    fig, (ax_scale, ax_acc) = plt.subplots(1, 2, figsize=(13, 4.2))
    first = pd.DataFrame(next(iter(runs.values()))["scales"])
    train = first[first["mode"] == "train"].reset_index(drop=True)
    x = np.arange(len(train))
    ax_scale.bar(x - 0.2, train["between_image_std"], 0.4, label="between-image std")
    ax_scale.bar(x + 0.2, train["dropout_noise_std"], 0.4, label="dropout noise std (train)")
    ax_scale.set_xticks(x, [s.split(" ")[0].replace("classifier", "cls") for s in train["stage"]],
                        rotation=45, fontsize=7)
    ax_scale.set(yscale="log", title=f"stage scales, seed {next(iter(runs))}")
    ax_scale.legend(fontsize=7)
    bars = {"head val": [m["splits"]["val"]["accuracy"] for m in metrics.values()],
            "head test": [m["splits"]["test"]["accuracy"] for m in metrics.values()],
            "probe val": [r["probe"]["accuracy"]["val"] for r in runs.values()],
            "probe test": [r["probe"]["accuracy"]["test"] for r in runs.values()]}
    for i, (name, values) in enumerate(bars.items()):
        ax_acc.bar(i, np.mean(values), yerr=np.std(values) if len(values) > 1 else None,
                   color="C0" if name.startswith("head") else "C1", capsize=3)
        ax_acc.plot([i] * len(values), values, "k.", ms=4)
    ax_acc.axhline(next(iter(runs.values()))["chance"], ls="--", c="grey", label="chance")
    ax_acc.set_xticks(range(len(bars)), list(bars))
    ax_acc.set(ylim=(0, 1.05), ylabel="accuracy")
    ax_acc.legend(fontsize=7)
    fig.suptitle(weights_label([r["weights_used"] for r in runs.values()]), fontsize=9)
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Model randomisation of guided backprop (Adebayo et al. 2018; beyond the document): the "
    "CNN's conv layers re-initialised from the top down, one more at a time (x axis: the "
    "last layer re-initialised), and the guided-backprop image of each of "
    "{randomisation[images]} class-balanced test images' most activated last-layer neuron "
    "compared with the trained CNN's: Spearman rank correlation (left) and SSIM (right), "
    "mean and standard deviation over images and seeds. Maps that depend on the learned "
    "weights fall towards 0; Adebayo et al. found guided backprop's barely do. The claim "
    "caltech.sanity.randomisation.guided_backprop.cnn holds where the mean correlation with "
    "every layer re-initialised is below {claims[randomisation_similarity]} on every seed.",
    "beyond the document (Fig. 3.11's method)", (("randomisation", CNN),),
    checks=("caltech.sanity.randomisation.",))
def caltech_randomisation(files: StudyFiles) -> plt.Figure:
    return randomisation_curves(files, models=[CNN])


@FIGURES.register(
    "The cascade of model randomisation for one test image (Adebayo et al. 2018, their Fig. "
    "2 layout): the CNN's guided-backprop image of the image's most activated last-layer "
    "neuron (channels summed, absolute, scaled to its maximum) for the trained CNN, then "
    "with the conv layers re-initialised from the top down up to the one named above the "
    "column.",
    "beyond the document (Fig. 3.11's method)", (("randomisation_maps", CNN),), per_seed=True,
    checks=("caltech.sanity.randomisation.",))
def caltech_randomisation_strip(files: StudyFiles) -> plt.Figure:
    return randomisation_strip(files, models=[CNN])
