"""Study ``concepts``: its figures, each drawn from the stages' data files and each naming
the slide of ``papers/conv-filters-cam-attacks-slides.txt`` it reproduces.

A figure's name is its function's name, its file (``results/report/concepts/<name>.png``)
and its report entry.
"""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np

from ...io import read_csv, read_npz
from ...paths import StudyFiles
from ...plotting import (
    attack_check_curves,
    image_panel,
    randomisation_curves,
    randomisation_strip,
)
from ...study import Figures
from . import upstream

FIGURES = Figures()
ATTACK_CHECKS = ("concepts.sanity.rise.", "concepts.sanity.pgd_excess.",
                 "concepts.sanity.noise_share.")


def _rgb(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) uint8 or [0, 1] float → [0, 1] float."""
    return images / 255.0 if images.dtype == np.uint8 else images


def _overlay(ax: plt.Axes, image: np.ndarray, heat: np.ndarray, title: str) -> None:
    """A heat map in [0, 1] (jet, half transparent) over a (C, H, W) [0, 1] image (one
    channel: grey)."""
    image_panel(image, title, (ax.figure, ax))
    ax.imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)


# ---------------------------------------------------------------- convolution types ---

@FIGURES.register(
    "Every formula check of the convolution types, per layer type (rows) and quantity "
    "(columns): the number of configurations of the grid (C_in {convtypes[c_in]}, C_out "
    "{convtypes[c_out]}, K {convtypes[kernel]}, dilation {convtypes[dilation]}) whose "
    "measured value (parameters and MACs from torch.utils.flop_counter, output size and "
    "receptive field from real layers) equals the formula. Green: all match; red: some do "
    "not; grey: the quantity does not apply to the layer.",
    "slides 'Types of Convolutional Filters' (1×1, dilated, depthwise separable, transposed: "
    "their formulas)", ("convtypes_summary",))
def concepts_formula_checks(files: StudyFiles) -> plt.Figure:
    summary = read_csv(files.file("convtypes_summary"))
    layers = list(dict.fromkeys(summary["layer"]))
    quantities = list(dict.fromkeys(summary["quantity"]))
    share = np.full((len(layers), len(quantities)), np.nan)
    fig, ax = plt.subplots(figsize=(1.6 * len(quantities) + 2, 0.6 * len(layers) + 1.5))
    for row in summary.itertuples():
        i, j = layers.index(row.layer), quantities.index(row.quantity)
        share[i, j] = row.matches / row.rows
        ax.text(j, i, f"{row.matches}/{row.rows}", ha="center", va="center", fontsize=8)
    colours = plt.get_cmap("RdYlGn").with_extremes(bad="lightgrey")
    ax.imshow(np.ma.masked_invalid(share), cmap=colours, vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(quantities)), [q.replace(" (", "\n(") for q in quantities],
                  fontsize=7)
    ax.set_yticks(range(len(layers)), layers, fontsize=8)
    ax.set_title("matching checks / checks")
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Cost of a depthwise-separable convolution relative to the standard one, against C_out, "
    "one line per kernel size K (stride 1, 'same' padding, {convtypes[input_size]}×"
    "{convtypes[input_size]} input, C_in {convtypes[c_in]}). Left: measured MAC ratio "
    "(points) on the formula 1/C_out + 1/K² (lines). Right: the measured CPU latency ratio "
    "(median of timed passes, batch 1): what the MAC saving buys on this machine.",
    "slide 'Depthwise Separable Convolutions' (computational complexity)",
    ("convtypes_ratios",))
def concepts_separable_cost(files: StudyFiles) -> plt.Figure:
    ratios = read_csv(files.file("convtypes_ratios"))
    ratios = ratios[ratios["stride"] == ratios["stride"].min()]
    fig, (ax_mac, ax_lat) = plt.subplots(1, 2, figsize=(10, 4))
    for k, rows in ratios.groupby("kernel"):
        rows = rows.sort_values("c_out")
        line, = ax_mac.plot(rows["c_out"], rows["theoretical_ratio"], label=f"K = {k}")
        ax_mac.plot(rows["c_out"], rows["mac_ratio"], "o", color=line.get_color())
        ax_lat.plot(rows["c_out"], rows["latency_ratio"], "o-", color=line.get_color(),
                    label=f"K = {k}")
    for ax, title in ((ax_mac, "MACs: separable / standard"),
                      (ax_lat, "CPU latency: separable / standard")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("C_out")
        ax.set_title(title)
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- hierarchy ------------

@FIGURES.register(
    "Low-, mid- and high-level features of {hierarchy[study]}/{hierarchy[model]} (first "
    "seed): one row per depth (the first, a middle and the last conv layer in the order the "
    "forward pass calls them). Left: the learned filters of the first layer as RGB images; "
    "right: for {hierarchy[channels]} channels of each layer, the input that maximises the "
    "channel's mean activation ({hierarchy[steps]} Adam steps from seeded noise). The slides "
    "describe edges and colours at low layers, textures and parts deeper; whether these "
    "maps show that depends on how well the model learned (see its model card).",
    "slide 'Learning Hierarchical Abstractions with CNNs'", ("hierarchy",),
    shows=upstream.shown("hierarchy"))
def concepts_hierarchy(files: StudyFiles) -> plt.Figure:
    data = read_npz(files.file("hierarchy"))
    levels = [str(level) for level in data["levels"]]
    filters = data[f"{levels[0]}_filter_images"] if f"{levels[0]}_filter_images" in data else None
    shown = min(16, len(filters)) if filters is not None else 0
    cols = max(shown, max(len(data[f"{lv}_channels"]) for lv in levels))
    fig, axes = plt.subplots(len(levels) + (1 if shown else 0), cols,
                             figsize=(1.3 * cols, 1.5 * (len(levels) + 1)), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    row = 0
    if shown:
        for j in range(shown):
            axes[0, j].set_visible(True)
            image_panel(filters[j].transpose(2, 0, 1), f"filter {j}", (fig, axes[0, j]))
        axes[0, 0].set_ylabel(f"{levels[0]}: {data[f'{levels[0]}_layer']}", fontsize=7)
        row = 1
    for level in levels:
        for j, (image, channel) in enumerate(zip(data[f"{level}_images"],
                                                 data[f"{level}_channels"])):
            axes[row, j].set_visible(True)
            image_panel(image,
                        f"{level} {data[f'{level}_layer']}\nchannel {channel}",
                        (fig, axes[row, j]))
        row += 1
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- CAM ------------------

@FIGURES.register(
    "Class activation maps of the GAP model on {dataset} test images ({cam[images_per_class]} "
    "per class): M_c = Σ_k w_k^c A_k of the last conv block for the true class c, upsampled "
    "bilinearly to the input and min-max scaled (jet, over the image). Titles: true class, "
    "and the predicted class with its softmax probability (red when wrong).",
    "slides 'Class Activation Maps'", ("cam",), per_seed=True,
    checks=("concepts.sanity.randomisation.", "concepts.sanity.class_sensitivity."))
def concepts_cam(files: StudyFiles) -> plt.Figure:
    model, seed = files.models[0], files.seeds[0]
    data = read_npz(files.run("cam", model, seed))
    classes = [str(c) for c in data["classes"]]
    n = len(data["labels"])
    cols = min(n, 10)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(2 * rows, cols, figsize=(1.5 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    images = _rgb(data["images"])
    for i in range(n):
        top, bottom = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        top.set_visible(True)
        bottom.set_visible(True)
        label, pred = int(data["labels"][i]), int(data["pred"][i])
        image_panel(images[i], classes[label],
                    (fig, top))
        _overlay(bottom, images[i], data["cam"][i],
                 f"{classes[pred]} {100 * data['conf'][i]:.0f}%")
        bottom.title.set_color("black" if pred == label else "red")
    fig.tight_layout()
    return fig


SHORT = {"cam": "CAM", "grad_cam": "Grad-CAM", "guided_grad_cam": "Guided Grad-CAM"}


@FIGURES.register(
    "Model randomisation (Adebayo et al. 2018; beyond the slides) of the GAP model's CAM, "
    "Grad-CAM (last conv layer) and Guided Grad-CAM: its layers re-initialised from the "
    "output down, one more at a time (x axis: the last layer re-initialised), and each "
    "method's maps of {randomisation[images]} class-balanced test images for the true class "
    "compared with the trained model's: Spearman rank correlation (left) and SSIM (right), "
    "mean and standard deviation over images and seeds. Maps that depend on the learned "
    "weights fall towards 0; the claims concepts.sanity.randomisation.* hold where the mean "
    "correlation with every layer re-initialised is below "
    "{claims[randomisation_similarity]} on every seed.",
    "beyond the slides (their CAM and Grad-CAM)", ("randomisation",),
    checks=("concepts.sanity.randomisation.",))
def concepts_randomisation(files: StudyFiles) -> plt.Figure:
    return randomisation_curves(files, SHORT)


@FIGURES.register(
    "The cascade of model randomisation for one test image (Adebayo et al. 2018, their Fig. "
    "2 layout): per method, the GAP model's map for the true class (scaled to its maximum) "
    "for the trained model, then with the layers re-initialised from the output down up to "
    "the one named above the column.",
    "beyond the slides (their CAM and Grad-CAM)", ("randomisation_maps",), per_seed=True,
    checks=("concepts.sanity.randomisation.",))
def concepts_randomisation_strip(files: StudyFiles) -> plt.Figure:
    return randomisation_strip(files, SHORT)


# ---------------------------------------------------------------- Grad-CAM -------------

@FIGURES.register(
    "Grad-CAM (Captum LayerGradCam, S^c = ReLU(Σ_k w_k^c A^k) with w_k^c the spatial mean of "
    "∂y^c/∂A^k, upsampled and min-max scaled) and Guided Grad-CAM (Captum GuidedGradCam: "
    "guided backpropagation × Grad-CAM, absolute value summed over channels) for the true "
    "class, on trained models of the other studies and on the GAP model (first seed). One "
    "row per model and image: the image (true class; predicted class and probability), the "
    "Grad-CAM over it, and Guided Grad-CAM. The layer used is named on the left. The sanity "
    "claims below test both methods on the study's own GAP model.",
    "slide 'Gradient-Weighted CAMs'", ("gradcam",), shows=upstream.shown("gradcam"),
    checks=("concepts.sanity.randomisation.", "concepts.sanity.class_sensitivity."))
def concepts_gradcam(files: StudyFiles) -> plt.Figure:
    data = read_npz(files.file("gradcam"))
    targets = json.loads(str(data["targets"]))
    rows = [(name, i) for name in targets for i in range(len(data[f"{name}__labels"]))]
    fig, axes = plt.subplots(len(rows), 3, figsize=(6.6, 2.2 * len(rows)), squeeze=False)
    for (name, i), (ax_img, ax_cam, ax_guided) in zip(rows, axes):
        meta = targets[name]
        classes = meta["classes"]
        image = _rgb(data[f"{name}__images"][i])
        label, pred = int(data[f"{name}__labels"][i]), int(data[f"{name}__pred"][i])
        image_panel(image,
                    f"{classes[label]} → {classes[pred]} "
                    f"{100 * data[f'{name}__conf'][i]:.0f}%", (fig, ax_img),
                    colour="black" if pred == label else "red")
        ax_img.set_ylabel(f"{meta['study']}/{meta['model']}\n{meta['layer']}", fontsize=7)
        _overlay(ax_cam, image, data[f"{name}__gradcam"][i], "Grad-CAM")
        guided = np.abs(data[f"{name}__guided"][i]).sum(0)
        image_panel(guided / max(guided.max(), 1e-12), "Guided Grad-CAM", (fig, ax_guided),
                    cmap="gray")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- FGSM -----------------

@FIGURES.register(
    "FGSM as the slides show it, on trained models of the other studies (first seed): x "
    "(true class; predicted class and softmax confidence) + ε·sign(∇ₓJ) (grey = 0) = x′ "
    "(predicted class and confidence, red when it changed). Untargeted rows: x′ = x + "
    "ε·sign(∇ₓJ(x, y)); targeted rows: x′ = x − ε·sign(∇ₓJ(x, y_target)) toward the "
    "{fgsm[target_rule]} class (torchattacks FGSM, pixels clipped to [0, 1]; ε per model "
    "in its row label).",
    "slide 'Common Adversarial Attacks' (FGSM and targeted FGSM: x + ε·sign(∇) = x′)",
    ("fgsm_examples",), shows=upstream.shown("fgsm"),
    checks=ATTACK_CHECKS)
def concepts_fgsm(files: StudyFiles) -> plt.Figure:
    data = read_npz(files.file("fgsm_examples"))
    targets = json.loads(str(data["targets"]))
    rows = [(name, kind, i) for name in targets for kind in ("untargeted", "targeted")
            for i in range(len(data[f"{name}__{kind}__label"]))]
    fig, axes = plt.subplots(len(rows), 3, figsize=(6.6, 2.3 * len(rows)), squeeze=False)
    for (name, kind, i), (ax_x, ax_d, ax_adv) in zip(rows, axes):
        meta, key = targets[name], f"{name}__{kind}__"
        classes, eps = meta["classes"], meta["epsilon"]
        label, clean, adv = (int(data[key + k][i]) for k in ("label", "clean_pred", "adv_pred"))
        image, delta = data[key + "image"][i], data[key + "perturbation"][i]
        image_panel(image,
                    f"x: {classes[label]}\n→ {classes[clean]} "
                    f"{100 * data[key + 'clean_conf'][i]:.1f}%", (fig, ax_x))
        ax_x.set_ylabel(f"{meta['study']}/{meta['model']}\n{kind}, ε = {eps:.3g}", fontsize=7)
        shown = 0.5 + delta / (2 * eps) if eps > 0 else np.full_like(delta, 0.5)
        # what the middle panel holds: x' - x, a step up the true class's loss, or down
        # the target class's
        step = (f"x′ − x = −ε·sign(∇ₓJ(x, y_t))\ny_t = {classes[int(data[key + 'target'][i])]}"
                if kind == "targeted" else "x′ − x = ε·sign(∇ₓJ(x, y))")
        image_panel(shown, step, (fig, ax_d))
        adv_image = data[key + "adv_image"][i]
        image_panel(adv_image,
                    f"x′: {classes[adv]} {100 * data[key + 'adv_conf'][i]:.1f}%", (fig, ax_adv),
                    colour="red" if adv != clean else "black")
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Beyond the slides: FGSM against ε (pixel units) on {fgsm[images]} class-balanced test "
    "images of each model; untargeted error rate (share of x′ not classified as the true "
    "class; at ε = 0 the clean error) and targeted success rate (share of x′ classified as "
    "the {fgsm[target_rule]} class), mean and ±1 std band over seeds.",
    "beyond the slides: targeted FGSM success against ε", ("fgsm_sweep",),
    shows=upstream.shown("fgsm", all_seeds=True),
    checks=ATTACK_CHECKS)
def concepts_fgsm_sweep(files: StudyFiles) -> plt.Figure:
    sweep = read_csv(files.file("fgsm_sweep"))
    fig, (ax_u, ax_t) = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in sweep.groupby("target", sort=False):
        stats = rows.groupby("epsilon")[["untargeted_error", "targeted_success"]].agg(
            ["mean", "std"]).fillna(0.0)
        label = f"{rows['study'].iloc[0]}/{rows['model'].iloc[0]}"
        for ax, column in ((ax_u, "untargeted_error"), (ax_t, "targeted_success")):
            mean, std = stats[(column, "mean")], stats[(column, "std")]
            line, = ax.plot(stats.index, mean, "o-", label=label)
            ax.fill_between(stats.index, mean - std, mean + std, alpha=0.2,
                            color=line.get_color())
    for ax, title in ((ax_u, "untargeted FGSM: error rate"),
                      (ax_t, "targeted FGSM: success rate")):
        ax.set_xlabel("ε")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Beyond the slides: is each attack an attack (Carlini et al. 2019)? Untargeted error "
    "(share of images misclassified) and targeted success (share predicted as the "
    "{fgsm[target_rule]} class) of FGSM, PGD ({attack_checks[pgd_steps]} steps of "
    "{attack_checks[pgd_alpha]:g} eps, random start) and random-sign noise of the same "
    "L-infinity size, on the same {attack_checks[images]} class-balanced test images of each "
    "model, at each ε of the sweep up to the model's own, mean ± std over seeds. Every "
    "adversarial image was checked to lie within ε of its source and inside [0, 1]. PGD should "
    "lie on or above FGSM and noise far below it: the claims concepts.sanity.* judge each.",
    "ours (attack sanity checks)", ("attack_checks",),
    shows=upstream.shown("fgsm", all_seeds=True), checks=ATTACK_CHECKS)
def concepts_attack_checks(files: StudyFiles) -> plt.Figure:
    checks = read_csv(files.file("attack_checks"))
    return attack_check_curves(
        {f"{rows['study'].iloc[0]}/{rows['model'].iloc[0]}, {goal}": rows
         for (_, goal), rows in checks.groupby(["target", "goal"], sort=False)},
        "success", "attack success (%)")
